"""POST /feedback: both request forms, storage and grading failures, bad inputs, concurrency."""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import struct
import threading
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest
from flask import Flask

from livetalk import feedback, grading
from livetalk.conversation_log import parse_log
from livetalk.feedback import feedback_bp
from livetalk.grading import Grader
from livetalk.recording import ConversationRecorder
from livetalk.services import Services
from livetalk.storage import GcsStorage
from livetalk.wav import FLAC, MP3, OGG, WAV, WEBM, sniff_audio, wav_header
from tests import analytics_helpers
from tests.analytics_helpers import Burst
from tests.gcs_helpers import FakeGcsServer
from tests.helpers import UNIT_S

LOG = [{"role": "user", "text": "本日はありがとうございます。お困りのことはありますか？"},
       {"role": "model", "text": "問い合わせ対応が大変です。"},
       {"role": "user", "text": "来週デモはいかがでしょうか？"}]
TEXT_LOG = "User: Hello, do you have a minute?\nAI: Briefly.\nUser: What slows your dispatchers down?\n"


CORRUPT_WAV = b"RIFF\x24\x10\x00\x00WAVE" + bytes(range(7, 250, 3)) * 40  # a WAV's first 12 bytes, then junk


def wav_bytes(seconds: float = 0.5, rate: int = 16000) -> bytes:
    pcm = (8000 * np.sin(np.arange(int(seconds * rate)) / 5)).astype("<i2").tobytes()
    return wav_header(len(pcm), sample_rate=rate, channels=1) + pcm


@pytest.fixture
def app_factory(settings, recording_pump):
    """Factory: a minimal app with just the feedback blueprint over a given store; closed at teardown."""
    made = []

    def make(store, **overrides):
        app = Flask(__name__)
        configured = dataclasses.replace(settings, **{"feedback_per_ip_per_min": 1000, **overrides})
        services = Services(configured, storage=store, pump=recording_pump,
                            grader=Grader(model=configured.gemini_grading_model, backoff_s=(0.01, 0.01)))
        app.extensions["livetalk"] = services
        app.register_blueprint(feedback_bp)
        made.append(services)
        return app.test_client()

    yield make
    for services in made:
        services.close()


def post_upload(client, *, log=json.dumps(LOG, ensure_ascii=False), audio=None, filename="talk.wav", **fields):
    data = dict(fields)
    if log is not None:
        data["log"] = log
    if audio is not None:
        data["audio"] = (io.BytesIO(audio), filename)
    return client.post("/feedback", data=data, content_type="multipart/form-data")


def read_uri(store, uri: str) -> bytes:
    """The content of a stored object named by its URI."""
    if uri.startswith("gs://"):
        bucket, _, key = uri[5:].partition("/")
        assert bucket == store.bucket_name
        return store.read(key)
    path = url2pathname(urlparse(uri).path)
    with open(path, "rb") as f:
        return f.read()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


# --- the multipart form -------------------------------------------------------------------------


def test_upload_is_graded_and_stored(store, app_factory, emu):
    """A log and a WAV are stored under the request's own names and the grade comes back per the contract."""
    audio = wav_bytes()
    response = post_upload(app_factory(store), audio=audio, session_id="client-42", scenario="sales-ja")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"session_id", "feedback", "evaluation", "stored"}
    assert body["session_id"] == "client-42"
    assert set(body["evaluation"]) >= {"score", "summary", "good_points", "improvements", "criteria"}
    assert 0 <= body["evaluation"]["score"] <= 100
    assert all({"name", "score", "comment"} <= set(c) for c in body["evaluation"]["criteria"])
    stored = body["stored"]
    assert read_uri(store, stored["log"]) == json.dumps(LOG, ensure_ascii=False).encode()
    assert read_uri(store, stored["audio"]) == audio
    assert read_uri(store, stored["feedback"]).decode() == body["feedback"]
    assert "/client-42/feedback-" in stored["log"] and stored["log"].endswith("/log.json")
    assert stored["audio"].endswith("/audio.wav")
    evaluation = json.loads(read_uri(store, stored["feedback"].replace("feedback.md", "evaluation.json")))
    assert evaluation["evaluation"] == body["evaluation"]


def test_text_log_without_audio(local_store, app_factory, emu):
    """A plain-text User:/AI: log is accepted, stored as log.txt, and audio is null."""
    response = post_upload(app_factory(local_store), log=TEXT_LOG, scenario="sales-en")
    assert response.status_code == 200, response.get_data(as_text=True)
    stored = response.get_json()["stored"]
    assert stored["audio"] is None and stored["log"].endswith("/log.txt")
    assert read_uri(local_store, stored["log"]) == TEXT_LOG.encode()
    assert "What slows your dispatchers down?" in emu.control.requests()[-1]["text"]


@pytest.mark.parametrize(("log", "scenario", "words"), [
    (TEXT_LOG, None, "B2B sales coach"),
    (json.dumps(LOG, ensure_ascii=False), None, "法人営業のトレーナー"),
    (TEXT_LOG, "sales-ja", "法人営業のトレーナー"),  # a named scenario is kept whatever the log's language
], ids=["english-log", "japanese-log", "named-scenario"])
def test_an_upload_without_a_scenario_is_graded_in_the_logs_language(local_store, app_factory, emu, log, scenario,
                                                                      words):
    """Without `scenario`, the scenario in the log's language grades it: an English log never gets a Japanese report."""
    fields = {"scenario": scenario} if scenario else {}
    response = post_upload(app_factory(local_store), log=log, **fields)
    assert response.status_code == 200, response.get_data(as_text=True)
    graded = [r for r in emu.control.requests() if "generateContent" in r["path"]][-1]
    assert words in graded["system_instruction"]


def test_log_as_a_file_part(local_store, app_factory, emu):
    """The log may come as a file part (log.json) instead of a form field."""
    client = app_factory(local_store)
    raw = json.dumps(LOG).encode()
    response = client.post("/feedback", data={"log": (io.BytesIO(raw), "log.json")}, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert read_uri(local_store, response.get_json()["stored"]["log"]) == raw


def test_traversal_in_a_filename_is_harmless(local_store, app_factory, emu, tmp_path):
    """A client's file name is never used for storage: the audio lands as audio.wav in the request's folder."""
    response = post_upload(app_factory(local_store), audio=wav_bytes(), filename="../../../../etc/evil.wav")
    assert response.status_code == 200
    uri = response.get_json()["stored"]["audio"]
    assert uri.endswith("/audio.wav") and ".." not in uri
    assert not any(p.name == "evil.wav" for p in tmp_path.rglob("*"))


def test_concurrent_posts_never_mix(store, app_factory, emu):
    """20 concurrent posts with one session id are each stored under distinct names with exactly their content."""
    client_app = app_factory(store)
    results: dict[int, tuple[int, dict, bytes, bytes]] = {}

    def post(i: int) -> None:
        log = json.dumps([{"role": "user", "text": f"request {i} " + "x" * i}])
        audio = wav_bytes(0.2 + i / 100)
        response = post_upload(client_app.application.test_client(), log=log, audio=audio, session_id="shared")
        results[i] = (response.status_code, response.get_json(), log.encode(), audio)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == list(range(20))
    uris = set()
    for status, body, log, audio in results.values():
        assert status == 200, body
        assert read_uri(store, body["stored"]["log"]) == log
        assert read_uri(store, body["stored"]["audio"]) == audio
        uris.update(body["stored"].values())
    assert len(uris) == 20 * 3


# --- measured facts of an upload -----------------------------------------------------------------

TIMINGS = ("talk_s", "talk_share_user", "longest_monologue_s", "interruptions", "response_latency_s",
           "speech_rate_user")
STEREO_CALL = [Burst("user", 0.5, 3.0), Burst("model", 3.6, 6.0), Burst("user", 6.8, 9.0), Burst("model", 9.5, 11.0)]


def stereo_wav(bursts=STEREO_CALL, seconds: float = 12.0) -> bytes:
    samples = analytics_helpers.render(bursts, duration_s=seconds, noise_dbfs=-70.0)
    return analytics_helpers.wav_bytes(samples.tobytes(), rate=analytics_helpers.RATE, channels=2)


def graded_facts(emu) -> dict:
    lines = [r for r in emu.control.requests() if "generateContent" in r["path"]][-1]["text"].splitlines()
    return json.loads(lines[lines.index(grading.FACTS_HEADER) + 1])


@pytest.mark.parametrize(("audio", "timed"), [(stereo_wav(), True), (wav_bytes(2.0), False), (None, False)],
                         ids=["stereo-wav", "mono-wav", "no-audio"])
def test_an_upload_is_measured_as_far_as_it_can_be(local_store, app_factory, emu, audio, timed):
    """A stereo WAV gives timings; without one they are null; questions and fillers always come from the log."""
    log = [{"role": "user", "text": "えーと、本日はありがとうございます。お困りのことはありますか？"},
           {"role": "model", "text": "問い合わせ対応が大変です。"},
           {"role": "user", "text": "あの、来週デモはいかがでしょうか。"}]
    response = post_upload(app_factory(local_store), log=json.dumps(log, ensure_ascii=False), audio=audio)
    assert response.status_code == 200, response.get_data(as_text=True)
    evaluation = response.get_json()["evaluation"]
    metrics = evaluation["metrics"]
    assert (metrics["questions_user"], metrics["fillers_user"]) == (2, 2)
    assert metrics["turns"] == ({"user": 2, "model": 2} if timed else {"user": 2, "model": 1})
    assert all((metrics[name] is not None) is timed for name in TIMINGS), metrics
    if timed:
        assert metrics["talk_s"] == pytest.approx({"user": 4.75, "model": 3.9}, abs=0.1)
        assert metrics["duration_s"] == pytest.approx(12.0)
    assert evaluation["outcome"] is None
    refs = evaluation["evidence_refs"]
    assert refs and all(ref["role"] == "user" and ref["start_s"] is None for ref in refs)
    facts = graded_facts(emu)
    assert "outcome" not in facts  # an upload cannot know: the grader is not told "none"
    assert facts["questions_user"] == 2


def test_a_refusal_of_the_uploaded_audio_is_415_and_the_upload_is_removed(local_store, app_factory, emu, tmp_path):
    """When the grading service cannot decode an upload's audio, the answer is 415 and nothing stays stored."""
    emu.control.fault_next_rest(status=400, message="Request contains an invalid argument: undecodable audio.")
    body = assert_error(post_upload(app_factory(local_store), audio=wav_bytes()), 415, "unsupported_audio")
    assert "could not be read" in body["error"]["message"]
    assert not list((tmp_path / "data").rglob("*.*"))


# --- the recorded-session form ------------------------------------------------------------------


def record_conversation(store, pump, session_id="20250101T000000Z-abcdef0123456789") -> ConversationRecorder:
    """A short conversation recorded by the relay's recorder, finalised."""
    clock = iter(np.arange(100.0, 200.0, 0.02))
    recorder = ConversationRecorder(store, session_id=session_id, scenario_id="sales-en", pump=pump,
                                    started_at=dt.datetime.now(dt.timezone.utc), clock=lambda: float(next(clock)))
    for _ in range(50):
        recorder.user_audio(wav_bytes(0.02)[44:])
    recorder.transcript("user", "What slows your dispatchers down?", True)
    recorder.model_audio(bytes(24000))
    recorder.transcript("model", "Sick calls every morning.", True)
    recorder.turn_complete()
    assert recorder.finalize("end") is not None
    return recorder


def test_recorded_session_is_graded(store, app_factory, emu, recording_pump):
    """JSON {session_id} grades the relay's own recording and stores the grade beside it."""
    recorder = record_conversation(store, recording_pump)
    client = app_factory(store)
    response = client.post("/feedback", json={"session_id": recorder.session_id})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    prefix = recorder.key_prefix
    assert body["session_id"] == recorder.session_id
    assert body["stored"]["log"] == store.uri(f"{prefix}/transcript.jsonl")
    assert body["stored"]["audio"] == store.uri(f"{prefix}/audio.wav")
    assert body["stored"]["feedback"].startswith(store.uri(prefix) + "/feedback-")
    assert read_uri(store, body["stored"]["feedback"]).decode() == body["feedback"]
    graded = [r for r in emu.control.requests() if "generateContent" in r["path"]][-1]
    assert "What slows your dispatchers down?" in graded["text"]
    assert "Sick calls every morning." in graded["text"]
    assert "Discovery questions" in graded["system_instruction"]  # the recording's scenario: sales-en
    second = client.post("/feedback", json={"session_id": recorder.session_id})
    assert second.status_code == 200 and second.get_json()["stored"]["feedback"] != body["stored"]["feedback"]


def test_a_recording_the_grader_cannot_decode_is_graded_from_its_transcript(local_store, app_factory, emu,
                                                                          recording_pump):
    """If the grading service refuses the relay's own recording, the conversation is graded without it."""
    recorder = record_conversation(local_store, recording_pump)
    emu.control.fault_next_rest(status=400, message="Request contains an invalid argument: undecodable audio.")
    response = app_factory(local_store).post("/feedback", json={"session_id": recorder.session_id})
    assert response.status_code == 200, response.get_data(as_text=True)
    calls = [r for r in emu.control.requests() if "generateContent" in r["path"]]
    assert "What slows your dispatchers down?" in calls[-1]["text"]
    assert response.get_json()["evaluation"]["metrics"]["talk_s"] is not None


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [({"session_id": "20990101T000000Z-0000000000000000"}, 404, "unknown_session"),
     ({"session_id": "../../etc"}, 400, "invalid_session_id"),
     ({"session_id": 42}, 400, "invalid_session_id"),
     ({}, 400, "invalid_session_id"),
     ([1, 2], 400, "invalid_json")],
    ids=["unknown", "traversal", "not-a-string", "missing", "not-an-object"],
)
def test_bad_session_requests(local_store, app_factory, emu, body, status, code):
    """JSON requests naming no valid, known session are refused with the right status."""
    assert_error(app_factory(local_store).post("/feedback", json=body), status, code)


# --- failures -------------------------------------------------------------------------------------


def test_storage_down_is_503_and_claims_nothing(app_factory, emu, tmp_path, monkeypatch):
    """With the GCS endpoint down, the answer is 503 with a clear message and no stored URIs."""
    server = FakeGcsServer(tmp_path).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    store = GcsStorage(server.new_bucket(), client=server.client(), retry_deadline_s=0.5, timeout_s=(0.5, 1.0))
    server.stop()
    response = post_upload(app_factory(store), audio=wav_bytes())
    body = assert_error(response, 503, "storage_unavailable")
    assert "stored" not in body and "127.0.0.1" not in body["error"]["message"]
    json_response = app_factory(store).post("/feedback", json={"session_id": "abc"})
    assert "stored" not in assert_error(json_response, 503, "storage_unavailable")


@pytest.mark.parametrize("status", [500, 429])
def test_grading_failure_is_502_with_stored_uris(store, app_factory, emu, status):
    """When grading keeps failing, the upload is still stored and the 502 body says where."""
    emu.control.fault_next_rest(status=status, count=grading.MAX_ATTEMPTS)
    audio = wav_bytes()
    response = post_upload(app_factory(store), audio=audio, session_id="s-502")
    body = assert_error(response, 502, "grading_failed")
    assert body["session_id"] == "s-502"
    assert body["stored"]["feedback"] is None
    assert read_uri(store, body["stored"]["log"]) == json.dumps(LOG, ensure_ascii=False).encode()
    assert read_uri(store, body["stored"]["audio"]) == audio


def test_draining_is_503(local_store, app_factory):
    """Once shutdown has begun, feedback is refused with 503."""
    client = app_factory(local_store)
    client.application.extensions["livetalk"].draining.set()
    assert_error(post_upload(client), 503, "draining")


def test_rate_limited_is_429(local_store, app_factory, emu):
    """Past the per-IP limit, requests get 429 with Retry-After."""
    client = app_factory(local_store, feedback_per_ip_per_min=1)
    assert post_upload(client).status_code == 200
    response = post_upload(client)
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1


# --- bad inputs ---------------------------------------------------------------------------------


BAD_UPLOADS = [
    ("missing-log", {"log": None}, 400, "missing_log"),
    ("invalid-json", {"log": '[{"role": "user", "text": '}, 400, "invalid_log"),
    ("json-not-a-list", {"log": '{"role": "user", "text": "hi"}'}, 400, "invalid_log"),
    ("bad-role", {"log": '[{"role": "system", "text": "hi"}]'}, 400, "invalid_log"),
    ("text-not-string", {"log": '[{"role": "user", "text": 5}]'}, 400, "invalid_log"),
    ("no-labels", {"log": "hello there\nhow are you"}, 400, "invalid_log"),
    ("empty-log", {"log": "   "}, 400, "invalid_log"),
    ("only-empty-turns", {"log": '[{"role": "user", "text": " "}]'}, 400, "invalid_log"),
    ("non-audio-named-wav", {"audio": b"this is plain text, not audio at all"}, 415, "unsupported_audio"),
    ("mp4-named-wav", {"audio": b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00"}, 415, "unsupported_audio"),
    ("empty-audio", {"audio": b""}, 400, "invalid_audio"),
    ("corrupt-wav", {"audio": CORRUPT_WAV}, 415, "unsupported_audio"),
    ("traversal-session-id", {"session_id": "../../etc/passwd"}, 400, "invalid_session_id"),
    ("slash-session-id", {"session_id": "a/b"}, 400, "invalid_session_id"),
    ("unknown-scenario", {"scenario": "../prompts"}, 400, "unknown_scenario"),
]


@pytest.mark.parametrize(("fields", "status", "code"), [c[1:] for c in BAD_UPLOADS], ids=[c[0] for c in BAD_UPLOADS])
def test_bad_uploads(local_store, app_factory, emu, tmp_path, fields, status, code):
    """Each malformed upload is refused with a clear error naming the field, and nothing is stored."""
    response = post_upload(app_factory(local_store), **fields)
    body = assert_error(response, status, code)
    field = {"missing_log": "log", "invalid_log": "log", "unsupported_audio": "audio", "invalid_audio": "audio",
             "invalid_session_id": "session_id", "unknown_scenario": "scenario"}[code]
    assert field in body["error"]["message"]
    assert not list((tmp_path / "data").rglob("*.*"))


@pytest.mark.parametrize("audio", [
    CORRUPT_WAV,
    wav_header(4000, sample_rate=16000, channels=1)[:20] + struct.pack("<H", 2) + wav_header(4000, sample_rate=16000,
                                                                                              channels=1)[22:] + bytes(4000),
], ids=["junk-after-the-riff-header", "adpcm-the-grader-cannot-decode"])
def test_unreadable_audio_is_415_never_502(local_store, app_factory, emu, tmp_path, audio):
    """Audio that claims to be WAV but cannot be read is the client's problem: 415 saying so, nothing stored."""
    response = post_upload(app_factory(local_store), audio=audio)
    body = assert_error(response, 415, "unsupported_audio")
    assert "could not be read" in body["error"]["message"]
    assert not list((tmp_path / "data").rglob("*.*"))


def test_oversize_request_is_413(local_store, app_factory):
    """A body over max_request_bytes is refused with 413 before it is read."""
    client = app_factory(local_store, max_request_bytes=64 * 1024)
    assert_error(post_upload(client, audio=wav_bytes(4.0)), 413, "too_large")


@pytest.mark.parametrize("as_file", [False, True], ids=["field", "file-part"])
def test_oversize_log_is_413(local_store, app_factory, as_file):
    """A log over the per-field limit is refused with 413, as a form field or a file part."""
    log = json.dumps([{"role": "user", "text": "x" * 10_000}] * (feedback.MAX_LOG_BYTES // 10_000 + 1))
    client = app_factory(local_store)
    if as_file:
        response = client.post("/feedback", data={"log": (io.BytesIO(log.encode()), "log.json")},
                               content_type="multipart/form-data")
    else:
        response = post_upload(client, log=log)
    assert_error(response, 413, "too_large")


@pytest.mark.parametrize(
    ("content_type", "data", "status", "code"),
    [("text/plain", "User: hi", 415, "unsupported_media_type"),
     ("application/octet-stream", b"RIFF", 415, "unsupported_media_type"),
     ("application/json", "{not json", 400, "invalid_json")],
)
def test_wrong_content_type(local_store, app_factory, content_type, data, status, code):
    """Bodies that are neither multipart/form-data nor a JSON object are refused."""
    response = app_factory(local_store).post("/feedback", data=data, content_type=content_type)
    assert_error(response, status, code)


def test_closing_the_services_finishes_pending_writes(local_store, settings):
    """Services.close waits for the writes in flight, so nothing accepted is lost at shutdown."""
    services = Services(settings, storage=local_store)
    gate = threading.Event()

    def slow_put() -> str:
        gate.wait(UNIT_S)
        return local_store.put("held/write.txt", b"kept", "text/plain")

    written = services.write(slow_put)
    closer = threading.Thread(target=services.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close returned while a write was still pending"
    gate.set()
    closer.join(UNIT_S)
    assert written.result(0) and local_store.read("held/write.txt") == b"kept"


# --- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [(wav_bytes()[:64], WAV),
     (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm", WEBM),
     (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", None),
     (b"OggS\x00\x02" + bytes(20), OGG),
     (b"fLaC\x00\x00\x00\x22", FLAC),
     (b"ID3\x04\x00\x00\x00\x00\x00\x00", MP3),
     (b"\xff\xfb\x90\x64" + bytes(8), MP3),  # MPEG-1 Layer III frame
     (b"\xff\xf1\x50\x80" + bytes(8), None),  # AAC ADTS shares the sync word but is not MP3
     (b"RIFF\x00\x00\x00\x00AVI ", None),
     (b"", None),
     (b"<html>", None)],
    ids=["wav", "webm", "matroska", "ogg", "flac", "mp3-id3", "mp3-frame", "aac", "avi", "empty", "html"],
)
def test_sniff_audio(head, kind):
    """Audio containers are recognised by their magic bytes alone."""
    assert sniff_audio(head) == kind


@pytest.mark.parametrize(
    ("text", "turns"),
    [(TEXT_LOG, [("user", "Hello, do you have a minute?"), ("model", "Briefly."),
                 ("user", "What slows your dispatchers down?")]),
     ("ユーザー：こんにちは\nAI：どうも\n続きの行", [("user", "こんにちは"), ("model", "どうも\n続きの行")]),
     ('[{"role": "user", "text": "a"}, {"role": "assistant", "text": "b"}]', [("user", "a"), ("model", "b")])],
    ids=["text", "japanese-labels-and-continuation", "json-with-alias"],
)
def test_parse_log(text, turns):
    """Both log formats parse to turns; unlabeled lines continue the previous message."""
    assert [dataclasses.astuple(t) for t in parse_log(text)] == turns


@pytest.mark.parametrize(
    ("text", "language", "scenario"),
    [(TEXT_LOG, "en", "sales-en"),
     ("User: 本日はAIアシスタントのご紹介です。PCの問い合わせは多いですか？\nAI: はい", "ja", "sales-ja"),
     ("User: Hello Sato-san, こんにちは. Do you have a minute to talk about scheduling?\nAI: Sure.", "en", "sales-en"),
     ("User: ありがとうございます\nAI: OK", "ja", "sales-ja"),
     ("User: 12345 ?!\nAI: ...", "en", "sales-en")],
    ids=["english", "japanese-with-latin-words", "english-with-a-greeting", "short-japanese", "no-letters"],
)
def test_a_logs_language_picks_the_scenario(text, language, scenario):
    """Kana and kanji among a log's letters make it Japanese; otherwise it is English; each has its scenario."""
    import prompts
    from livetalk.conversation_log import log_language

    assert log_language(parse_log(text)) == language
    assert prompts.scenario_for_language(language).id == scenario
