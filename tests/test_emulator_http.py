"""The emulator's HTTP layer (h11) and its answers to malformed client input: always a 4xx, never a 500."""
from __future__ import annotations

import asyncio
import base64
import copy
import http.client as httplib
import io
import json
import random
import struct
from typing import Any

import orjson
import pytest
import websockets
from google.genai import errors, types
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.emulator_helpers import (  # noqa: F401  (emu, fresh_control, client are fixtures)
    API_KEY,
    TIMEOUT_S,
    client,
    emu,
    fresh_control,
    http,
    live_url,
    raw_connect,
    read_until_closed,
    run,
    tls_socket,
)
from livetalk.emulator import Emulator
from livetalk.emulator.prompt import PromptFacts
from livetalk.emulator.schema import SchemaError, generate

MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
KEY = {"x-goog-api-key": API_KEY, "Content-Type": "application/json"}


def https(emu: Emulator) -> httplib.HTTPSConnection:
    """A keep-alive HTTPS connection to the emulator."""
    return httplib.HTTPSConnection("127.0.0.1", emu.port, context=emu.client_ssl_context(), timeout=TIMEOUT_S)


def wav(pcm: bytes, *, rate: int = 16000) -> bytes:
    """A mono PCM16 WAV file."""
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2,
                       16, b"data", len(pcm)) + pcm


def inline(data: bytes | str, mime_type: str) -> dict[str, Any]:
    """A generateContent body with one inline-data part and a question."""
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    return {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": mime_type, "data": encoded}},
                                                     {"text": "Score it?"}]}]}


JUNK_WAV = b"RIFF\x24\x00\x00\x00WAVE" + bytes(range(7, 250, 3)) * 2


# -- HTTP/1.1 -----------------------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(emu):
    """Two requests on one connection are both answered, and the socket is reused."""
    conn = https(emu)
    body = json.dumps({"contents": [{"parts": [{"text": "one?"}]}]})
    conn.request("POST", GENERATE, body=body, headers=KEY)
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    conn.request("POST", GENERATE, body=body, headers=KEY)
    second = conn.getresponse()
    assert (first.status, second.status) == (200, 200)
    assert "1 question" in json.loads(second.read())["candidates"][0]["content"]["parts"][0]["text"]
    assert conn.sock is sock
    conn.close()


def test_chunked_request_body_is_read_whole(emu):
    """A chunked request body is reassembled before it is answered."""
    conn = https(emu)
    pieces = [b'{"contents": [{"parts": [{"text": ', b'"a? b? c?"}]}]}']
    conn.request("POST", GENERATE, body=iter(pieces), headers=KEY, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 200
    assert "3 question" in json.loads(response.read())["candidates"][0]["content"]["parts"][0]["text"]
    conn.close()


def test_http10_request_is_answered_then_the_connection_closes(emu):
    """An HTTP/1.0 request without keep-alive gets its answer and then the server closes."""
    body = b'{"contents": [{"parts": [{"text": "hi"}]}]}'
    head = f"POST {GENERATE} HTTP/1.0\r\nx-goog-api-key: {API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    with tls_socket(emu) as sock:
        sock.sendall(head.encode() + body)
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and b"[emulator]" in reply


def test_expect_100_continue_gets_an_interim_response(emu):
    """A client that waits for 100 Continue gets it, sends the body, and gets the answer."""
    body = b'{"contents": [{"parts": [{"text": "hi"}]}]}'
    head = (f"POST {GENERATE} HTTP/1.1\r\nHost: x\r\nx-goog-api-key: {API_KEY}\r\nExpect: 100-continue\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    with tls_socket(emu) as sock:
        sock.sendall(head.encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /emulator/v1/health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
        (b"POST /v1beta/files HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"POST /upload/v1beta/files HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
    ],
    ids=["request-line", "header-line", "content-length", "head-too-large", "body-too-large"],
)
def test_malformed_http_is_refused_with_a_google_error_and_a_close(emu, raw, status):
    """Bytes that are not acceptable HTTP/1.1 get a Google-shaped 4xx and the connection is closed."""
    with tls_socket(emu) as sock:
        sock.sendall(raw)
        reply = read_until_closed(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert json.loads(body)["error"]["code"] == status


def test_websocket_frames_sent_with_the_upgrade_are_not_lost(emu):
    """A client that sends its setup frame in the same packet as the upgrade request still gets setupComplete."""
    protocol = ClientProtocol(parse_uri(live_url(emu)))
    request = protocol.connect()
    request.headers["x-goog-api-key"] = API_KEY
    protocol.send_request(request)
    setup = Frame(Opcode.TEXT, b'{"setup": {"model": "models/x"}}').serialize(mask=True, extensions=[])
    with tls_socket(emu) as sock:
        sock.sendall(b"".join(protocol.data_to_send()) + setup)
        events: list[Any] = []
        while len(events) < 2:
            protocol.receive_data(sock.recv(65536))
            events += protocol.events_received()
    assert isinstance(events[0], Response) and events[0].status_code == 101
    assert json.loads(events[1].data) == {"setupComplete": {}}


@pytest.mark.parametrize(
    "method, path",
    [("POST", f"/v1beta/models/{MODEL}:countTokens"), ("GET", f"/v1beta/models/{MODEL}"),
     ("GET", "/v1beta/files"), ("POST", "/v1alpha/auth_tokens"), ("GET", "/healthz")],
)
def test_routes_nothing_uses_are_not_served(emu, method, path):
    """countTokens, model info, file listing, token minting and the /healthz alias answer 404."""
    assert http(emu, method, path, {} if method == "POST" else None, **KEY)[0] == 404


# -- client input: 4xx, never 500 --------------------------------------------------------------


def test_junk_wav_through_the_sdk_is_invalid_argument(client):
    """Inline audio/wav whose RIFF/WAVE header is followed by junk is a 400 INVALID_ARGUMENT, as from Gemini."""
    part = types.Part.from_bytes(data=JUNK_WAV, mime_type="audio/wav")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=[part, "Grade this."])
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")


def test_junk_wav_uploaded_through_the_files_api_is_invalid_argument(client):
    """The same junk, uploaded and then referenced by URI, is refused the same way."""
    uploaded = client.files.upload(file=io.BytesIO(JUNK_WAV), config=types.UploadFileConfig(mime_type="audio/wav"))
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(
            model=MODEL, contents=[types.Part.from_uri(file_uri=uploaded.uri, mime_type="audio/wav"), "Grade this."])
    assert caught.value.code == 400


def test_valid_wav_is_measured(emu, client):
    """A well-formed WAV is accepted and its length reported in the plain answer."""
    part = types.Part.from_bytes(data=wav(bytes(32000 * 2)), mime_type="audio/wav")
    assert "Audio: 2.0 s." in client.models.generate_content(model=MODEL, contents=[part, "How was it?"]).text


BAD_BODIES = [
    (b"{not json", 400),
    (b"[1, 2]", 400),
    ({"contents": "hi"}, 400),
    ({"contents": [{"parts": ["hi"]}]}, 400),
    ({"contents": [{"parts": [{"text": 5}]}]}, 400),
    (inline("@@@@", "audio/wav"), 400),
    (inline(JUNK_WAV, "audio/wav"), 400),
    (inline(JUNK_WAV[:12] + b"fmt \x10\x00\x00\x00" + bytes(16) + b"data\x00\x00\x00\x00", "audio/wav"), 400),
    (inline(b"RIFF", "audio/wav"), 400),
    (inline(b"not ogg at all", "audio/ogg"), 400),
    ({"contents": [{"parts": [{"fileData": {"fileUri": "files/nope"}}]}]}, 403),
    ({"contents": [], "generationConfig": "json"}, 400),
    ({"contents": [], "generationConfig": {"responseSchema": []}}, 400),
    ({"contents": [], "generationConfig": {"responseSchema": {"type": "ARRAY", "minItems": "x"}}}, 400),
    ({"contents": [], "generationConfig": {"responseSchema": {"type": "ARRAY", "minItems": 10**9}}}, 400),
    ({"contents": [], "generationConfig": {"responseSchema": {"type": "OBJECT", "properties": [1]}}}, 400),
    ({"contents": [], "generationConfig": {"responseSchema": {"type": "STRING", "minLength": 10**9}}}, 400),
    ({"contents": [], "systemInstruction": {"parts": "be nice"}}, 400),
]


@pytest.mark.parametrize("body, status", BAD_BODIES, ids=lambda v: str(v)[:40])
def test_malformed_generate_requests_get_a_google_4xx(emu, body, status):
    """Bad JSON, wrong shapes, bad base64, undecodable audio, unknown files, bad schemas: 400/403, never 500."""
    code, answer = http(emu, "POST", GENERATE, body, **KEY)
    assert code == status
    assert answer["error"]["code"] == status
    assert answer["error"]["status"] == {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED"}[status]


VALID_BODY = {
    "contents": [{"role": "user", "parts": [{"text": "User: hi?\nAI: yes"},
                                            {"inlineData": {"mimeType": "audio/wav",
                                                            "data": base64.b64encode(wav(bytes(320))).decode()}}]}],
    "systemInstruction": {"parts": [{"text": "- Questions (weight 1): asks"}]},
    "generationConfig": {"responseMimeType": "application/json",
                         "responseSchema": {"type": "OBJECT", "properties": {
                             "score": {"type": "INTEGER", "minimum": 0, "maximum": 100},
                             "notes": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1}}}},
}
JUNK_VALUES = [None, 0, -1, 1.5, True, "x", [], {}, [None], {"x": None}]


def json_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (dict keys and list indexes)."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [p for key, child in children for p in [(*path, key), *json_paths(child, (*path, key))]]


def replaced(value: Any, path: tuple[Any, ...], junk: Any) -> Any:
    """A deep copy of ``value`` with the value at ``path`` replaced by ``junk``."""
    result = copy.deepcopy(value)
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = junk
    return result


def test_any_field_replaced_by_junk_is_answered_without_a_server_error(emu):
    """Every field of a valid generateContent body, replaced in turn by junk of every JSON type, gets < 500."""
    conn = https(emu)
    statuses = {}
    for path in json_paths(VALID_BODY):
        for junk in JUNK_VALUES:
            conn.request("POST", GENERATE, body=json.dumps(replaced(VALID_BODY, path, junk)), headers=KEY)
            response = conn.getresponse()
            response.read()
            statuses[(path, repr(junk))] = response.status
    conn.close()
    assert not {case: status for case, status in statuses.items() if status >= 500}
    assert 200 in statuses.values() and 400 in statuses.values()


@pytest.mark.parametrize(
    "path, headers, body, status",
    [
        ("/upload/v1beta/files", {}, {"file": {}}, 400),
        ("/upload/v1beta/files?upload_id=nope&upload_protocol=resumable",
         {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}, b"data", 404),
        ("/emulator/v1/faults", {}, {"kind": "close", "count": "many"}, 400),
        ("/emulator/v1/faults", {}, {"kind": "stall", "after_turns": -1}, 400),
        ("/emulator/v1/rest-faults", {}, {"status": 200}, 400),
        ("/emulator/v1/settings", {}, {"tool_timeout_s": "soon"}, 400),
        ("/emulator/v1/mode", {}, {"mode": "sing"}, 400),
    ],
    ids=["upload-not-resumable", "upload-unknown-id", "fault-count", "stall-turns", "rest-fault-status",
         "settings", "mode"],
)
def test_bad_uploads_and_control_requests_get_a_4xx(emu, path, headers, body, status):
    """A non-resumable or unknown upload, and malformed control requests, are client errors."""
    assert http(emu, "POST", path, body, **KEY, **headers)[0] == status


def test_upload_at_the_wrong_offset_is_invalid_argument(emu):
    """A resumable upload chunk whose offset does not match the bytes received is a 400."""
    start = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"}
    conn = https(emu)
    conn.request("POST", "/upload/v1beta/files", body=b'{"file": {"mime_type": "text/plain"}}', headers={**KEY, **start})
    response = conn.getresponse()
    response.read()
    url = response.getheader("X-Goog-Upload-URL").removeprefix(emu.base_url)
    conn.request("POST", url, body=b"hello", headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "7"})
    refused = conn.getresponse()
    assert refused.status == 400 and json.loads(refused.read())["error"]["status"] == "INVALID_ARGUMENT"
    conn.close()


# -- Live client input: 1007, never 1011 ----------------------------------------------------------

LIVE_SETUP = {
    "model": "models/x", "systemInstruction": {"parts": [{"text": "hi"}]},
    "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": {
        "languageCode": "en-US", "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}},
    "tools": [{"functionDeclarations": [{"name": "schedule_meeting", "behavior": "NON_BLOCKING"}]}],
    "sessionResumption": {}, "inputAudioTranscription": {}, "outputAudioTranscription": {},
    "realtimeInputConfig": {"automaticActivityDetection": {"disabled": False, "silenceDurationMs": 500}},
}
LIVE_MESSAGES = [
    {"realtimeInput": {"audio": {"data": base64.b64encode(bytes(640)).decode(), "mimeType": "audio/pcm;rate=16000"}}},
    {"realtimeInput": {"text": "December 3 at 2 pm for a demo?"}},
    {"realtimeInput": {"mediaChunks": [{"data": "AAAA", "mimeType": "audio/pcm"}], "audioStreamEnd": True}},
    {"realtimeInput": {"activityStart": {}, "activityEnd": {}}},
    {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hi"}]}], "turnComplete": True}},
    {"toolResponse": {"functionResponses": [{"id": "x", "name": "schedule_meeting", "response": {},
                                             "scheduling": "SILENT"}]}},
    {"contextUpdate": {"systemInstruction": {"parts": [{"text": "x"}]}}},
]
LIVE_JUNK = [None, -1, 1.5, "x", [], {"x": None}]
BATCH = 25  # connections opened at once


def test_any_live_field_replaced_by_junk_never_closes_with_an_internal_error(emu):
    """Junk in any field of the setup or of any client message closes 1007 (or is ignored), never 1011."""
    cases = [(replaced(LIVE_SETUP, path, junk), None) for path in json_paths(LIVE_SETUP) for junk in LIVE_JUNK]
    cases += [(LIVE_SETUP, replaced(message, path, junk))
              for message in LIVE_MESSAGES for path in json_paths(message) for junk in LIVE_JUNK]

    async def one(setup: dict[str, Any], message: dict[str, Any] | None) -> None:
        ws = await raw_connect(emu, **{"x-goog-api-key": API_KEY})
        await ws.send(json.dumps({"setup": setup}))
        if message is not None:
            await ws.send(json.dumps(message))
        try:  # the pong comes after the server dealt with the message (or its close instead)
            await asyncio.wait_for(await ws.ping(), TIMEOUT_S)
        except websockets.exceptions.ConnectionClosed:
            pass
        ws.transport.abort()  # a polite close would wait behind replies this test never reads

    async def scenario() -> None:
        for start in range(0, len(cases), BATCH):
            await asyncio.gather(*(one(*case) for case in cases[start : start + BATCH]))

    run(scenario(), timeout=TIMEOUT_S * 6)
    sessions = emu.control.wait_sessions(len(cases), TIMEOUT_S, closed=True)
    codes = {s["close_code"] for s in sessions}
    assert 1011 not in codes and 1007 in codes


# -- response schemas: a SchemaError (400) or JSON, nothing else -----------------------------------

SCHEMA_KEYS = ["type", "properties", "items", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
               "exclusiveMaximum", "minItems", "maxItems", "minLength", "maxLength", "format", "anyOf", "oneOf",
               "allOf", "$ref", "$defs", "definitions", "propertyOrdering", "required", "nullable"]
SCHEMA_TYPES = ["OBJECT", "ARRAY", "STRING", "INTEGER", "NUMBER", "BOOLEAN", "NULL", "object", ["string", "null"],
                "resolve", "fill", None, 5, {}]
SCHEMA_JUNK = [None, 0, -3, 1.5, 1e30, -1e308, "x", "5", "nan", True, [], {}, "#/$defs/A"]


def random_schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A schema of random keywords whose values are schemas, lists or junk (as orjson would parse them)."""

    def value(level: int) -> Any:
        roll = rng.random()
        if level > 3 or roll < 0.3:
            return rng.choice(SCHEMA_JUNK)
        if roll < 0.6:
            return [value(level + 1) for _ in range(rng.randint(0, 3))]
        return random_schema(rng, level + 1)

    schema: dict[str, Any] = {}
    for _ in range(rng.randint(0, 6)):
        key = rng.choice(SCHEMA_KEYS)
        if key == "type":
            schema[key] = rng.choice(SCHEMA_TYPES)
        elif key in ("properties", "$defs", "definitions"):
            schema[key] = {rng.choice("abAB"): value(depth + 1) for _ in range(rng.randint(0, 3))}
        else:
            schema[key] = value(depth + 1)
    return schema


def test_random_malformed_schemas_give_a_schema_error_or_serialisable_json():
    """Thousands of random, mostly malformed schemas: each is either refused (SchemaError → 400) or answered."""
    rng = random.Random(20261203)
    facts = PromptFacts(text="User: a?\nAI: b", lines=("User: a?", "AI: b"), user_turns=1, questions=1)
    outcomes = {"refused": 0, "answered": 0}
    for _ in range(3000):
        try:
            orjson.dumps(generate(random_schema(rng), facts, preset={"a": [1, "x"], "b": {"a": 2}}))
            outcomes["answered"] += 1
        except SchemaError:
            outcomes["refused"] += 1
    assert min(outcomes.values()) > 100
