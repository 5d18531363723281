"""The Gemini emulator, driven through the real google-genai SDK (and raw sockets where the SDK hides the wire)."""
from __future__ import annotations

import asyncio
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from typing import Any, Literal

import pytest
import websockets
from google.genai import errors, types
from pydantic import BaseModel, Field

from tests.emulator_helpers import (  # noqa: F401  (emu, fresh_control, client are fixtures)
    API_KEY,
    LIVE_MODEL,
    SCALE,
    TIMEOUT_S,
    b64,
    chunks,
    client,
    emu,
    fresh_control,
    http,
    joined,
    live_config,
    live_url,
    newest_session,
    raw_connect,
    receive_turn,
    recv_json,
    recv_until,
    run,
    sdk_client,
    send_audio,
    silence,
    tone,
)
from livetalk.emulator import Emulator, FaultSpecError, Mode
from livetalk.emulator.audio import EnergyVad, VadEvent, echo_reply, samples
from livetalk.emulator.control import Moment, make_fault
from livetalk.emulator.prompt import PromptFacts
from livetalk.emulator.schema import generate
from livetalk.emulator.wire import b64decode, mime_rate, pick

GRADING_MODEL = "gemini-2.5-flash"


def audio_parts(messages: list[types.LiveServerMessage]) -> list[types.Blob]:
    """Every inline-data part of every model turn in ``messages``."""
    return [
        part.inline_data
        for m in messages
        if m.server_content and m.server_content.model_turn
        for part in m.server_content.model_turn.parts or []
        if part.inline_data
    ]


def kinds(messages: list[types.LiveServerMessage]) -> list[str]:
    """The set fields of each message's server_content, in order (for ordering checks)."""
    out = []
    for m in messages:
        content = m.server_content.model_dump(exclude_none=True) if m.server_content else {}
        out.extend(content)
    return out


# -- Live: voice, text and modalities -----------------------------------------------------------


@pytest.mark.parametrize(
    "language, heard, tag",
    [("en-US", "(speech 1.0 s)", "[emulator]"), ("ja-JP", "（音声 1.0 秒）", "[エミュレーター]")],
)
def test_voice_turn_is_transcribed_and_answered_with_24khz_audio(emu, client, language, heard, tag):
    """A second of tone then silence ends a turn: transcript, 24 kHz speech with its transcript, usage."""

    async def scenario() -> list[types.LiveServerMessage]:
        config = live_config(speech_config=types.SpeechConfig(language_code=language))
        async with client.aio.live.connect(model=LIVE_MODEL, config=config) as session:
            assert session.setup_complete is not None
            await send_audio(session, tone(1000) + silence(800))
            return await receive_turn(session)

    messages = run(scenario())
    assert joined(messages, "input_transcription") == heard
    said = joined(messages, "output_transcription")
    assert said.startswith(tag)
    parts = audio_parts(messages)
    assert {p.mime_type for p in parts} == {"audio/pcm;rate=24000"}
    seconds = sum(len(p.data) for p in parts) / 48000
    assert 0.05 * len(said) < seconds < 0.15 * len(said)
    order = kinds(messages)
    assert order[0] == "input_transcription"
    assert order.index("generation_complete") < order.index("turn_complete") == len(order) - 1
    assert messages[-1].usage_metadata.total_token_count > 0


def test_audio_stream_end_ends_the_turn_without_waiting_for_silence(client):
    """Half a second of tone followed by audioStreamEnd is answered at once."""

    async def scenario() -> list[types.LiveServerMessage]:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            await send_audio(session, tone(500))
            await session.send_realtime_input(audio_stream_end=True)
            return await receive_turn(session)

    assert joined(run(scenario()), "input_transcription") == "(speech 0.5 s)"


def test_received_audio_shows_in_the_statistics(emu, client):
    """Session stats report the duration, chunk count and overall RMS of the PCM received."""

    async def scenario() -> None:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            await send_audio(session, tone(1000, dbfs=-10) + silence(800))
            await receive_turn(session)

    run(scenario())
    stats = newest_session(emu)
    assert stats["audio_in_ms"] == 1800
    assert stats["audio_chunks"] == 90
    assert stats["audio_in_bytes"] == 1800 * 32
    assert stats["audio_in_dbfs"] == pytest.approx(-10 + 10 * math.log10(1 / 1.8), abs=0.1)
    assert stats["turns_answered"] == 1
    assert stats["setup"]["language_code"] == "en-US"
    assert stats["client_messages"]["audio"] == 90


@pytest.mark.parametrize("how", ["realtime_text", "client_content"])
def test_typed_turn_is_answered_quoting_the_text(client, how):
    """Typed text (realtime_input.text or client_content) gets a spoken reply that quotes it."""

    async def scenario() -> list[types.LiveServerMessage]:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            if how == "realtime_text":
                await session.send_realtime_input(text="hello there")
            else:
                turn = types.Content(role="user", parts=[types.Part(text="hello there")])
                await session.send_client_content(turns=turn, turn_complete=True)
            return await receive_turn(session)

    messages = run(scenario())
    assert '"hello there"' in joined(messages, "output_transcription")
    assert joined(messages, "input_transcription") == ""
    assert audio_parts(messages)


def test_text_modality_answers_with_text_parts(client):
    """With responseModalities TEXT the reply is text parts and no audio."""

    async def scenario() -> list[types.LiveServerMessage]:
        config = live_config(response_modalities=["TEXT"], output_audio_transcription=None)
        async with client.aio.live.connect(model=LIVE_MODEL, config=config) as session:
            await session.send_realtime_input(text="write to me")
            return await receive_turn(session)

    messages = run(scenario())
    assert "".join(m.text or "" for m in messages).startswith('[emulator] I heard "write to me"')
    assert not audio_parts(messages)


@pytest.mark.parametrize("model, combined", [(LIVE_MODEL, False), ("gemini-3.8-live", True)])
def test_model_generation_decides_whether_audio_and_transcript_share_a_message(client, model, combined):
    """2.5 models send one part per message; 3.x models put audio and its transcript together."""

    async def scenario() -> list[types.LiveServerMessage]:
        async with client.aio.live.connect(model=model, config=live_config()) as session:
            await session.send_realtime_input(text="hi")
            return await receive_turn(session)

    messages = run(scenario())
    both = [m for m in messages if m.server_content.model_turn and m.server_content.output_transcription]
    assert bool(both) is combined


@pytest.mark.parametrize("barge_in, heard", [("voice", "(speech 0.3 s)"), ("typed", "")])
def test_new_input_during_a_reply_interrupts_it(emu, client, barge_in, heard):
    """Speech or typed text while the model talks stops the reply, sends interrupted, and starts the next turn."""
    emu.control.reply_speed = 1.0

    async def interrupt(session) -> None:
        if barge_in == "voice":
            await send_audio(session, tone(300) + silence(800))
        else:
            await session.send_realtime_input(text="stop")

    async def scenario() -> list[types.LiveServerMessage]:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="tell me a long story")
            seen: list[types.LiveServerMessage] = []
            interrupting = None
            async for message in session.receive():
                seen.append(message)
                if message.data and interrupting is None:
                    emu.control.reply_speed = 0  # the first reply stays slow; the next one is instant
                    interrupting = asyncio.create_task(interrupt(session))
            await interrupting
            return seen

    messages = run(scenario())
    order = kinds(messages)
    assert order.count("interrupted") == 1 and order.count("turn_complete") == 1
    after = messages[order.index("interrupted") + 1 :]
    assert joined(messages, "input_transcription") == heard
    assert "Thanks" in joined(after, "output_transcription")  # the second reply of the session
    assert newest_session(emu)["interruptions"] == 1


def test_manual_activity_bounds_the_turn_when_automatic_detection_is_off(client):
    """With automatic activity detection disabled, silence does not end a turn; activityEnd does."""

    async def scenario() -> list[types.LiveServerMessage]:
        detection = types.AutomaticActivityDetection(disabled=True)
        config = live_config(realtime_input_config=types.RealtimeInputConfig(automatic_activity_detection=detection))
        async with client.aio.live.connect(model=LIVE_MODEL, config=config) as session:
            await session.send_realtime_input(activity_start=types.ActivityStart())
            await send_audio(session, tone(600) + silence(1000))
            await session.send_realtime_input(activity_end=types.ActivityEnd())
            return await receive_turn(session)

    assert joined(run(scenario()), "input_transcription") == "(speech 1.6 s)"


# -- Live: echo mode ----------------------------------------------------------------------------


def test_echo_mode_answers_each_chunk_at_once_with_its_tag(emu, client):
    """In echo mode every 20 ms chunk comes back as 1.5× the bytes, starting with the chunk's first 8 bytes."""
    emu.control.set_mode("echo", count=1)
    sent = [i.to_bytes(8, "little") + tone(20)[8:] for i in range(25)]

    async def scenario() -> list[bytes]:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            replies = []
            for piece in sent:
                await session.send_realtime_input(audio=types.Blob(data=piece, mime_type="audio/pcm;rate=16000"))
            async for message in session.receive():
                replies.append(message.data)
                if len(replies) == len(sent):
                    return replies
        return replies

    replies = run(scenario())
    assert [r[:8] for r in replies] == [s[:8] for s in sent]
    assert {len(r) for r in replies} == {960}
    stats = newest_session(emu)
    assert stats["mode"] == "echo"
    assert "input_transcription" not in json.dumps(stats["turns"])
    assert emu.control.take_mode() is Mode.CONVERSE  # the queued mode was for one session only


def test_echo_mode_offers_a_handle_each_second_of_audio_and_resumes_by_it(emu, client):
    """An echo session asked for resumption gets a new handle after each second of audio; a session
    resuming by the latest one echoes too (so a relay can survive drops and GoAways in echo mode)."""
    emu.control.set_mode("echo", count=2)
    config = live_config(session_resumption=types.SessionResumptionConfig())

    async def first() -> list[str]:
        async with client.aio.live.connect(model=LIVE_MODEL, config=config) as session:
            await send_audio(session, silence(2100))
            await session.send_realtime_input(audio=types.Blob(data=b"LASTLAST" + silence(20)[8:],
                                                               mime_type="audio/pcm;rate=16000"))
            handles = []
            async for message in session.receive():
                if message.session_resumption_update:
                    handles.append(message.session_resumption_update.new_handle)
                if message.data and message.data[:8] == b"LASTLAST":
                    return handles
        raise AssertionError("the last chunk was not echoed")

    async def resumed(handle: str) -> bytes:
        config = live_config(session_resumption=types.SessionResumptionConfig(handle=handle))
        async with client.aio.live.connect(model=LIVE_MODEL, config=config) as session:
            await send_audio(session, b"RESUMED!" + silence(20)[8:])
            async for message in session.receive():
                if message.data:
                    return message.data
        raise AssertionError("no echo after resuming")

    handles = run(first())
    assert len(handles) == 2 and len(set(handles)) == 2
    assert run(resumed(handles[-1]))[:8] == b"RESUMED!"
    assert newest_session(emu)["resume_handle"] == handles[-1]


# -- Live: faults -------------------------------------------------------------------------------


async def _provoke(client, action: str) -> list[types.LiveServerMessage]:
    """Connect, do ``action`` (nothing, send one chunk, or type a trigger), then read until the end."""
    seen: list[types.LiveServerMessage] = []
    async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
        if action == "audio":
            await send_audio(session, tone(20))
        elif action.startswith("!emu"):
            await session.send_realtime_input(text=action)
        while True:
            async for message in session.receive():
                seen.append(message)


CLOSE_CASES = [
    ({"kind": "close", "code": 1011, "reason": "Internal error encountered."}, "connect", 1011),
    ({"kind": "close", "code": 1007, "reason": "bad audio", "when": "first_audio"}, "audio", 1007),
    ({"kind": "close", "code": 1008, "reason": "later", "when": "after_ms", "after_ms": 50}, "wait", 1008),
    ({"kind": "drop"}, "connect", 1006),
    ({"kind": "drop", "when": "first_audio"}, "audio", 1006),
    ({"kind": "goaway", "time_left_s": 0.1}, "wait", 1000),
    ({}, "!emu close 1011 boom", 1011),
    ({}, "!emu drop", 1006),
    ({}, "!emu goaway 0.1", 1000),
]


@pytest.mark.parametrize("fault, action, code", CLOSE_CASES, ids=lambda v: str(v).replace(" ", "_"))
def test_closing_faults_surface_as_api_errors_with_the_close_code(emu, client, fault, action, code):
    """Close, drop and goAway faults (queued or typed) reach the caller as APIError(code)."""
    if fault:
        emu.control.fault_next(fault.pop("kind"), **fault)
    with pytest.raises(errors.APIError) as caught:
        run(_provoke(client, action))
    assert caught.value.code == code
    if action == "!emu close 1011 boom":
        assert str(caught.value) == "1011 None. boom"


def test_goaway_announces_the_time_left_before_the_close(emu, client):
    """A goaway fault sends goAway with timeLeft, then closes normally when the time is up."""
    emu.control.fault_next("goaway", after_ms=10, time_left="0.2s")
    seen: list[types.LiveServerMessage] = []

    async def scenario() -> None:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            async for message in session.receive():
                seen.append(message)

    started = time.monotonic()
    with pytest.raises(errors.APIError):
        run(scenario())
    assert [m.go_away.time_left for m in seen if m.go_away] == ["0.2s"]
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("status", [429, 403, 503])
def test_reject_fault_fails_the_handshake_with_an_http_status(emu, client, status):
    """A reject fault answers the WebSocket handshake with an HTTP error, raised as InvalidStatus."""
    emu.control.fault_next("reject", status=status)
    with pytest.raises(websockets.exceptions.InvalidStatus) as caught:
        run(_provoke(client, "connect"))
    assert caught.value.response.status_code == status


def test_hang_fault_never_completes_the_handshake(emu, client):
    """A hang fault accepts TLS but never answers the upgrade, so connecting times out."""
    emu.control.fault_next("hang")
    with pytest.raises(TimeoutError):
        run(_provoke(client, "connect"), timeout=TIMEOUT_S / 20)
    emu.control.wait_for(lambda: any(r.get("fault") == "hang" for r in emu.control.requests()), TIMEOUT_S)


@pytest.mark.parametrize("how", ["fault", "trigger"])
def test_delay_adds_latency_before_every_server_message(emu, client, how):
    """A delay fault (or '!emu delay') holds each server message back by the given time."""
    delay_s = 0.3
    if how == "fault":
        emu.control.fault_next("delay", ms=int(delay_s * 1000))

    async def scenario() -> float:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            if how == "trigger":
                await session.send_realtime_input(text=f"!emu delay {int(delay_s * 1000)}")
            started = time.monotonic()
            await session.send_realtime_input(text="hi")
            await receive_turn(session)
            return time.monotonic() - started

    assert run(scenario()) >= delay_s


def test_echo_trigger_switches_one_session_to_echo(emu, client):
    """Typing '!emu echo' makes the session echo audio chunks from then on."""

    async def scenario() -> bytes:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="!emu echo")
            await send_audio(session, b"TAG12345" + tone(20)[8:])
            async for message in session.receive():
                if message.data:
                    return message.data
        raise AssertionError("no echo")

    assert run(scenario())[:8] == b"TAG12345"
    assert newest_session(emu)["mode"] == "echo"


def test_faults_apply_to_the_next_sessions_only(emu, client):
    """A fault armed with count=1 hits one session; the next one is healthy."""
    emu.control.fault_next("close", code=1011)
    with pytest.raises(errors.APIError):
        run(_provoke(client, "connect"))

    async def healthy() -> list[types.LiveServerMessage]:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="still there?")
            return await receive_turn(session)

    assert run(healthy())[-1].server_content.turn_complete


# -- Live: session resumption -------------------------------------------------------------------


def test_resumption_handle_continues_the_conversation(emu, client):
    """A handle from sessionResumptionUpdate resumes the session, keeping the turn count."""

    async def turn(handle: str | None) -> tuple[str, str]:
        config = live_config(session_resumption=types.SessionResumptionConfig(handle=handle))
        async with client.aio.live.connect(model=LIVE_MODEL, config=config) as session:
            await session.send_realtime_input(text="hello")
            said = joined(await receive_turn(session), "output_transcription")
            async for message in session.receive():
                return said, message.session_resumption_update.new_handle
        raise AssertionError("no resumption update")

    first, handle = run(turn(None))
    second, _ = run(turn(handle))
    assert first.startswith("[emulator] I heard")
    assert second.startswith("[emulator] Thanks")
    assert newest_session(emu)["resume_handle"] == handle


def test_unknown_resumption_handle_is_refused(client):
    """Resuming with a handle the emulator never issued closes with 1008 before setupComplete."""
    config = live_config(session_resumption=types.SessionResumptionConfig(handle="no-such-handle"))

    async def scenario() -> None:
        async with client.aio.live.connect(model=LIVE_MODEL, config=config):
            pass

    with pytest.raises(errors.APIError) as caught:
        run(scenario())
    assert caught.value.code == 1008
    assert "not found" in str(caught.value)


# -- Live: the raw wire -------------------------------------------------------------------------


SPELLINGS = {
    "camel": ("generationConfig", "speechConfig", "languageCode", "inputAudioTranscription",
              "realtimeInput", "mimeType", "audioStreamEnd"),
    "snake": ("generation_config", "speech_config", "language_code", "input_audio_transcription",
              "realtime_input", "mime_type", "audio_stream_end"),
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
@pytest.mark.parametrize("urlsafe, padded", [(True, True), (True, False), (False, True), (False, False)])
def test_both_key_spellings_and_base64_alphabets_are_understood(emu, spelling, urlsafe, padded):
    """Raw frames in camelCase or snake_case, with either base64 alphabet, padded or not, decode the same."""
    gen, speech, lang, transcription, realtime, mime, end = SPELLINGS[spelling]
    pcm = tone(400, dbfs=-20)

    async def scenario() -> list[dict[str, Any]]:
        ws = await raw_connect(emu, **{"x-goog-api-key": API_KEY})
        setup = {"model": "models/x", gen: {speech: {lang: "en-US"}}, transcription: {}}
        await ws.send(json.dumps({"setup": setup}))
        assert await recv_json(ws) == {"setupComplete": {}}
        for piece in chunks(pcm):
            blob = {"data": b64(piece, urlsafe=urlsafe, padded=padded), mime: "audio/pcm;rate=16000"}
            await ws.send(json.dumps({realtime: {"audio": blob}}))
        await ws.send(json.dumps({realtime: {end: True}}))
        messages = await recv_until(ws, "turnComplete")
        await ws.close()
        return messages

    messages = run(scenario())
    assert messages[0] == {"serverContent": {"inputTranscription": {"text": "(speech 0.4 s)", "finished": True}}}
    assert "usageMetadata" in messages[-1]
    stats = newest_session(emu)
    assert stats["audio_in_bytes"] == len(pcm)
    assert stats["audio_in_dbfs"] == pytest.approx(-20, abs=0.1)


@pytest.mark.parametrize(
    "query, headers, version, method, credential, double_slash",
    [
        ("", {"x-goog-api-key": API_KEY}, "v1beta", "BidiGenerateContent", "header", False),
        (f"key={API_KEY}", {}, "v1beta", "BidiGenerateContent", "key", False),
        ("access_token=auth_tokens/abc", {}, "v1alpha", "BidiGenerateContentConstrained", "access_token", False),
        ("", {"Authorization": "Token auth_tokens/abc"}, "v1alpha", "BidiGenerateContentConstrained", "token", False),
        ("", {"x-goog-api-key": API_KEY}, "v1", "BidiGenerateContent", "header", True),
    ],
)
def test_every_credential_form_and_path_variant_is_accepted(emu, query, headers, version, method, credential, double_slash):
    """Header key, ?key=, ?access_token=, Authorization: Token, any API version and //ws/ all connect."""
    url = live_url(emu, version=version, method=method, query=query)
    if double_slash:
        url = url.replace("/ws/", "//ws/")

    async def scenario() -> dict[str, Any]:
        ws = await raw_connect(emu, url, **headers)
        await ws.send(json.dumps({"setup": {"model": "models/x"}}))
        reply = await recv_json(ws)
        await ws.close()
        return reply

    assert run(scenario()) == {"setupComplete": {}}
    stats = newest_session(emu)
    assert (stats["credential"], stats["api_version"], stats["method"]) == (credential, version, method)


def test_handshake_declines_compression_and_answers_pings(emu):
    """The SDK offers permessage-deflate; the emulator declines it, and it answers pings."""

    async def scenario() -> list[Any]:
        ws = await raw_connect(emu, **{"x-goog-api-key": API_KEY})
        pong = await ws.ping()
        await asyncio.wait_for(pong, TIMEOUT_S)
        extensions = ws.protocol.extensions
        await ws.close()
        return extensions

    assert run(scenario()) == []


def test_large_echo_replies_are_split_below_the_sdk_frame_limit(emu):
    """An echo of a 1 MB chunk arrives in several frames, each under 1 MiB."""
    emu.control.set_mode("echo", count=1)
    pcm = b"BIGCHUNK" + bytes(1_000_000 - 8)

    async def scenario() -> list[int]:
        ws = await raw_connect(emu, **{"x-goog-api-key": API_KEY})
        await ws.send(json.dumps({"setup": {"model": "models/x"}}))
        await recv_json(ws)
        await ws.send(json.dumps({"realtimeInput": {"audio": {"data": b64(pcm, urlsafe=False, padded=True),
                                                              "mimeType": "audio/pcm;rate=16000"}}}))
        sizes, total = [], 0
        while total < 1_500_000:
            frame = await asyncio.wait_for(ws.recv(), TIMEOUT_S)
            sizes.append(len(frame))
            total += len(b64decode(json.loads(frame)["serverContent"]["modelTurn"]["parts"][0]["inlineData"]["data"]))
        await ws.close()
        return sizes

    sizes = run(scenario())
    assert len(sizes) > 1 and max(sizes) < 2**20


@pytest.mark.parametrize(
    "headers, first_frame, code",
    [
        ({}, {"setup": {"model": "models/x"}}, 1008),
        ({"x-goog-api-key": API_KEY}, {"realtime_input": {"text": "hi"}}, 1007),
        ({"x-goog-api-key": API_KEY}, {"setup": {}}, 1007),
    ],
    ids=["no-credential", "not-setup-first", "setup-without-model"],
)
def test_bad_openings_are_closed_with_a_policy_or_argument_code(emu, headers, first_frame, code):
    """No credential closes 1008; a first frame that is not a valid setup closes 1007 with a reason."""

    async def scenario() -> websockets.frames.Close:
        ws = await raw_connect(emu, **headers)
        with pytest.raises(websockets.exceptions.ConnectionClosed) as caught:
            await ws.send(json.dumps(first_frame))  # without a credential the close may already be here
            await recv_json(ws)
        return caught.value.rcvd

    close = run(scenario())
    assert close.code == code
    assert 0 < len(close.reason.encode()) <= 123


# -- REST: generateContent ----------------------------------------------------------------------


class Criterion(BaseModel):
    name: str
    score: int = Field(ge=0, le=100)
    evidence: str


class Grade(BaseModel):
    overall_score: int = Field(ge=0, le=100)
    verdict: Literal["pass", "fail"]
    good_points: list[str]
    improvements: list[str]
    criteria: list[Criterion]


CALM = "User: I would like to introduce our product.\nAI: Go ahead.\nUser: It saves time."
CURIOUS = "User: What do you need?\nAI: Speed.\nUser: How fast? Which team? Any budget?"


def grade(client, transcript: str) -> Grade:
    """Grade ``transcript`` through the SDK with the Grade schema."""
    response = client.models.generate_content(
        model=GRADING_MODEL,
        contents=[f"Grade this conversation:\n{transcript}"],
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Grade),
    )
    assert isinstance(response.parsed, Grade), response.text
    return response.parsed


def test_response_schema_yields_valid_json_derived_from_the_input(client):
    """Schema answers validate, quote real input lines as evidence, and score more questions higher."""
    calm, curious = grade(client, CALM), grade(client, CURIOUS)
    assert curious.overall_score > calm.overall_score
    for result, transcript in ((calm, CALM), (curious, CURIOUS)):
        lines = {"Grade this conversation:", *transcript.splitlines()}
        assert 1 <= len(result.criteria) <= 3
        assert all(c.evidence in lines for c in result.criteria)


def test_gemini_schema_enums_bounds_and_ordering_are_respected(client):
    """A dict Schema with enums, min/max and property_ordering gets conforming JSON in that order."""
    schema = types.Schema(
        type="OBJECT",
        properties={
            "rating": types.Schema(type="INTEGER", minimum=1, maximum=5),
            "mood": types.Schema(type="STRING", enum=["happy", "sad"]),
            "ratio": types.Schema(type="NUMBER", minimum=0, maximum=1),
            "tags": types.Schema(type="ARRAY", items=types.Schema(type="STRING"), min_items=2, max_items=2),
        },
        required=["rating", "mood", "ratio", "tags"],
        property_ordering=["tags", "mood", "rating", "ratio"],
    )
    response = client.models.generate_content(
        model=GRADING_MODEL,
        contents="How is it going?",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=schema),
    )
    data = json.loads(response.text)
    assert list(data) == ["tags", "mood", "rating", "ratio"]
    assert 1 <= data["rating"] <= 5 and 0 <= data["ratio"] <= 1
    assert data["mood"] in ("happy", "sad") and len(data["tags"]) == 2
    assert response.usage_metadata.total_token_count > 0


def test_enum_mime_type_answers_with_one_bare_enum_value(client):
    """responseMimeType text/x.enum returns one of the enum values, unquoted."""
    config = types.GenerateContentConfig(
        response_mime_type="text/x.enum", response_schema={"type": "STRING", "enum": ["polite", "rude"]}
    )
    answer = client.models.generate_content(model=GRADING_MODEL, contents="Was I polite?", config=config)
    assert answer.text in ("polite", "rude")


def test_async_client_reaches_rest_too(emu):
    """The SDK's async REST path (client.aio) works against the emulator as well."""
    client = sdk_client(emu)

    async def scenario() -> str:
        try:
            return (await client.aio.models.generate_content(model=GRADING_MODEL, contents="Hello?")).text
        finally:
            await client.aio.aclose()  # its pool belongs to this event loop

    assert run(scenario()).startswith("[emulator]")


def test_plain_generation_and_streaming_agree(client):
    """Without a schema the answer is deterministic text, and the SSE stream carries the same text."""
    whole = client.models.generate_content(model=GRADING_MODEL, contents="Is this on?")
    pieces = list(client.models.generate_content_stream(model=GRADING_MODEL, contents="Is this on?"))
    assert whole.text.startswith("[emulator]") and "1 question" in whole.text
    assert len(pieces) > 1
    assert "".join(p.text for p in pieces) == whole.text


def test_files_round_trip_and_feed_generation(emu, client):
    """files.upload stores the bytes, get/delete work, and generateContent can quote the file."""
    text = "Customer: tell me the price?\nSales: It is ten dollars.\n".encode()
    uploaded = client.files.upload(file=io.BytesIO(text), config=types.UploadFileConfig(mime_type="text/plain"))
    assert uploaded.name.startswith("files/") and uploaded.size_bytes == len(text)
    assert uploaded.state == types.FileState.ACTIVE and uploaded.uri.startswith(emu.base_url)
    assert client.files.get(name=uploaded.name).uri == uploaded.uri
    answer = client.models.generate_content(
        model=GRADING_MODEL, contents=[types.Part.from_uri(file_uri=uploaded.uri, mime_type="text/plain")]
    )
    assert "Customer: tell me the price?" in answer.text
    client.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError) as caught:
        client.files.get(name=uploaded.name)
    assert caught.value.code == 404


def test_rest_fault_fails_the_next_call_only(emu, client):
    """fault_next_rest makes one call fail with a Google-shaped error; the next succeeds."""
    emu.control.fault_next_rest(429)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=GRADING_MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert client.models.generate_content(model=GRADING_MODEL, contents="hi").text


def test_rest_requires_an_api_key(emu):
    """A REST call without an API key gets 403 with the Google error shape."""
    status, body = http(emu, "POST", f"/v1beta/models/{GRADING_MODEL}:generateContent", {"contents": []})
    assert status == 403
    assert body["error"]["status"] == "PERMISSION_DENIED" and body["error"]["code"] == 403


# -- control over HTTP, lifecycle, CLI ----------------------------------------------------------


def test_http_control_api_arms_faults_sets_mode_and_reports_sessions(emu, client):
    """POST /emulator/v1/faults and /mode steer the next session; GET /sessions reports it; /reset clears."""
    assert http(emu, "POST", "/emulator/v1/faults", {"kind": "close", "code": 1011, "reason": "x"})[0] == 200
    with pytest.raises(errors.APIError):
        run(_provoke(client, "connect"))
    assert http(emu, "POST", "/emulator/v1/mode", {"mode": "echo", "count": 1})[0] == 200
    assert http(emu, "POST", "/emulator/v1/faults", {"kind": "nonsense"})[0] == 400

    async def echo() -> None:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()):
            pass

    run(echo())
    newest_session(emu)
    status, body = http(emu, "GET", "/emulator/v1/sessions")
    assert status == 200
    assert [(s["faults"], s["mode"], s["close_code"]) for s in body["sessions"]][-2:] == [
        (["close"], "converse", 1011),
        ([], "echo", 1000),
    ]
    assert http(emu, "POST", "/emulator/v1/reset")[0] == 200
    assert http(emu, "GET", "/emulator/v1/sessions")[1] == {"sessions": []}


def test_sdk_reaches_the_emulator_through_environment_variables_alone(emu, monkeypatch):
    """GOOGLE_GEMINI_BASE_URL and SSL_CERT_FILE are enough for REST and Live, with no code changes."""
    for name, value in emu.env().items():
        monkeypatch.setenv(name, value)
    from google import genai

    plain = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(api_version="v1beta"))
    assert plain.models.generate_content(model=GRADING_MODEL, contents="hi").text.startswith("[emulator]")

    async def scenario() -> list[types.LiveServerMessage]:
        async with plain.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="hi")
            return await receive_turn(session)

    assert run(scenario())[-1].server_content.turn_complete


def test_constructor_does_no_io_and_start_stop_are_idempotent():
    """Nothing is bound until start(); start() twice keeps the port; stop() closes sessions with 1001 quickly."""
    emulator = Emulator()
    assert emulator.port is None and not emulator.running
    with pytest.raises(RuntimeError):
        emulator.base_url
    port = emulator.start().port
    assert emulator.start().port == port and os.path.exists(emulator.ca_file)
    client = sdk_client(emulator)
    closed: list[int] = []

    async def scenario() -> None:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            emulator.control.wait_sessions(1, TIMEOUT_S)
            loop = asyncio.get_running_loop()
            stopping = loop.run_in_executor(None, emulator.stop)
            try:
                async for _ in session.receive():
                    pass
            except errors.APIError as exc:
                closed.append(exc.code)
            await stopping

    started = time.monotonic()
    run(scenario())
    assert time.monotonic() - started < 1.5 * SCALE
    assert closed == [1001] and not emulator.running
    emulator.stop()


def test_command_line_prints_the_environment_and_stops_on_sigterm():
    """`python -m livetalk.emulator` prints base_url, ca_file and export lines, and exits 0 on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "livetalk.emulator", "--port", "0", "--mode", "echo", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        lines = [process.stdout.readline() for _ in range(5)]
        assert lines[0].startswith("base_url: https://127.0.0.1:")
        assert any(line.startswith("export GOOGLE_GEMINI_BASE_URL=https://") for line in lines)
        assert any(line.startswith("export SSL_CERT_FILE=") for line in lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT_S) == 0
    finally:
        process.kill()
        process.stdout.close()


# -- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoded, raw",
    [("-_8=", b"\xfb\xff"), ("+/8=", b"\xfb\xff"), ("-_8", b"\xfb\xff"), ("AAE", b"\x00\x01"), ("", b"")],
)
def test_base64_decoding_accepts_both_alphabets_and_missing_padding(encoded, raw):
    """URL-safe and standard base64 decode alike, padded or not."""
    assert b64decode(encoded) == raw


@pytest.mark.parametrize(
    "mime, rate", [("audio/pcm;rate=24000", 24000), ("audio/pcm; rate=8000", 8000), ("audio/pcm", 16000), (None, 16000)]
)
def test_mime_rate_reads_the_rate_parameter(mime, rate):
    """The sample rate comes from ``rate=N``, defaulting to 16 kHz."""
    assert mime_rate(mime) == rate


def test_pick_reads_either_spelling():
    """A camelCase lookup also finds the snake_case key."""
    assert pick({"mime_type": "a"}, "mimeType") == "a" and pick({"mimeType": "b"}, "mimeType") == "b"


@pytest.mark.parametrize("n_bytes, out_bytes", [(640, 960), (642, 964), (6, 10), (0, 0)])
def test_echo_reply_is_one_and_a_half_times_longer_and_keeps_the_tag(n_bytes, out_bytes):
    """Echo output is 1.5× the input (rounded to even) and begins with the input's first 8 bytes."""
    pcm = bytes(range(256)) * 3
    out = echo_reply(pcm[:n_bytes])
    assert len(out) == out_bytes and out[: min(8, n_bytes)] == pcm[: min(8, n_bytes)]


@pytest.mark.parametrize(
    "speech_ms, events",
    [(300, [VadEvent.BARGE_IN, VadEvent.TURN_END]), (150, [VadEvent.BARGE_IN]), (50, [])],
)
def test_vad_needs_200_ms_of_speech_then_the_silence_duration(speech_ms, events):
    """Barge-in fires after 100 ms of speech; a turn ends only after ≥ 200 ms speech and 700 ms silence."""
    vad = EnergyVad(silence_ms=700)
    seen = []
    for piece in chunks(tone(speech_ms) + silence(800)):
        seen += vad.feed(samples(piece), 16000)
    assert seen == events


def test_json_schema_with_refs_nullable_fields_and_lower_case_types_validates():
    """JSON Schema input ($ref, anyOf with null, lower-case types, exclusive bounds) gets conforming values."""
    schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1},
            "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 12}]},
            "ok": {"type": ["boolean", "null"]},
        },
        "$defs": {"Item": {"type": "object", "properties": {"quote": {"type": "string"},
                                                            "level": {"type": "integer", "exclusiveMaximum": 3}}}},
    }
    facts = PromptFacts(text="a?\nb", lines=("a?", "b"), user_turns=1, questions=1)
    value = generate(schema, facts)
    assert isinstance(value["ok"], bool) and len(value["note"]) <= 12
    assert all(item["quote"] in facts.lines and 0 <= item["level"] <= 2 for item in value["items"])


@pytest.mark.parametrize(
    "params, when, after_ms",
    [({}, Moment.SETUP, 0), ({"after_ms": 40}, Moment.AFTER_MS, 40), ({"when": "after_ms:70"}, Moment.AFTER_MS, 70),
     ({"when": {"after_ms": 5}}, Moment.AFTER_MS, 5), ({"when": "first_audio"}, Moment.FIRST_AUDIO, 0)],
)
def test_fault_moments_accept_every_documented_form(params, when, after_ms):
    """`when` may be a name, "after_ms:N", {"after_ms": N}, or implied by after_ms=N."""
    fault = make_fault("close", **params)
    assert (fault.when, fault.after_ms) == (when, after_ms)


@pytest.mark.parametrize("kind, params", [("explode", {}), ("close", {"status": 429}), ("delay", {"ms": "soon"})])
def test_malformed_faults_are_refused(kind, params):
    """Unknown kinds, parameters that do not belong to the kind, and bad values raise FaultSpecError."""
    with pytest.raises(FaultSpecError):
        make_fault(kind, **params)
