"""A scenario on OpenAI Realtime, through the real server, the unmodified openai SDK and the OpenAI emulator.

The browser protocol is the same as with Gemini: only `ready.engine` and `ready.input_rate` (24 kHz) tell.
"""
from __future__ import annotations

import json
import struct
import threading

import pytest

from tests.helpers import UNIT_S, frames, silence, tone, wait_until

FAKE_OPENAI_KEY = "FAKE-openai-key-not-real-0123456789"
from tests.wsclient import RelayClient

SCENARIO = "sales-ja-openai"
RATE = 24000


def open_client(server, **query) -> RelayClient:
    return RelayClient(server.ws_url, timeout_s=UNIT_S, scenario=SCENARIO, **query)


def openai_sessions(emu) -> list[dict]:
    return [s for s in emu.control.sessions() if s.get("engine") == "openai"]


@pytest.fixture
def openai_server(make_server, emu, monkeypatch):
    """The service with (fake) keys for both engines, the unmodified openai SDK pointed at the emulator through
    its own environment (OPENAI_BASE_URL; SSL_CERT_FILE trusts the emulator, as for Gemini)."""
    monkeypatch.setenv("OPENAI_BASE_URL", emu.openai_base_url)
    return make_server(openai_api_key=FAKE_OPENAI_KEY)


def test_ready_names_the_engine_and_its_rate(openai_server, emu):
    """`ready` says openai and 24 kHz; the session is configured server-side from the scenario."""
    with open_client(openai_server) as client:
        ready = client.ready()
        assert (ready["engine"], ready["input_rate"], ready["output_rate"]) == ("openai", RATE, RATE)
        assert ready["emulated"] is False  # a key is configured: the service believes it talks to OpenAI
    session = wait_until(lambda: openai_sessions(emu))[-1]
    assert "佐藤" in json.dumps(session, ensure_ascii=False)  # the persona came from prompts.py


def test_a_voice_turn_is_answered_in_speech(openai_server, emu):
    """Speech at 24 kHz gets both transcripts, model audio and `complete`, as with Gemini."""
    with open_client(openai_server) as client:
        client.ready()
        client.stream(frames(tone(1.0, rate=RATE) + silence(1.5, rate=RATE), rate=RATE), frame_s=0.005)
        complete = client.wait_type("complete")
        assert complete["full_text"] and len(client.audio) > RATE * 2 * 0.2
        assert client.wait_for(lambda e: e.get("type") == "transcript" and e["role"] == "user" and e["final"])


def test_text_mode_streams_chunks(openai_server, emu):
    """A typed turn in text mode comes back as chunks adding up to `complete.full_text`, with no audio."""
    with open_client(openai_server, mode="text") as client:
        client.ready()
        client.send_json({"type": "text", "text": "御社の課題を教えてください。"})
        complete = client.wait_type("complete")
        assert "".join(c["text"] for c in client.of_type("chunk")) == complete["full_text"]
        assert client.audio_frames == 0


def test_a_barge_in_truncates_the_answer_at_what_was_heard(openai_server, emu):
    """The page's `playback` report after `interrupted` becomes the truncation point of the assistant item."""
    emu.control.reply_speed = 0.5  # a long answer still playing when the user speaks
    with open_client(openai_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "御社の課題について詳しく教えてください。"})
        wait_until(lambda: client.drain(0.05) or len(client.audio) >= RATE * 2 * 0.6)  # 0.6 s of it arrived
        client.stream(frames(tone(0.6, rate=RATE) + silence(1.0, rate=RATE), rate=RATE), frame_s=0.005)
        client.wait_type("interrupted")
        client.send_json({"type": "playback", "played_ms": 400})  # the page played 0.4 s of what it got
        session = wait_until(lambda: [s for s in openai_sessions(emu) if s.get("truncations")])[-1]
        assert session["truncations"][-1]["audio_end_ms"] == 400


def test_an_agreed_meeting_is_an_outcome(openai_server, emu):
    """The customer's schedule_meeting function call becomes an `outcome`, answered with a function output."""
    with open_client(openai_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "12月3日の14時にデモはいかがでしょうか"})
        outcome = client.wait_type("outcome")
        assert outcome["name"] == "appointment" and outcome["details"]["time"] == "14:00"


def test_a_dropped_session_is_reseeded_with_the_conversation(openai_server, emu):
    """OpenAI cannot resume by handle: a new session seeded with the turns so far carries on."""
    with open_client(openai_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "こんにちは"})
        client.wait_type("complete")
        client.wait_type("resumable")
        client.send_json({"type": "text", "text": "!emu drop"})
        client.wait_type("reconnecting")
        client.wait_type("resumed")
        client.send_json({"type": "text", "text": "続けましょう"})
        assert client.wait_type("complete", turn=2)["full_text"]
    first, second = openai_sessions(emu)[-2:]
    assert "こんにちは" in json.dumps(second, ensure_ascii=False)  # the seeded history


@pytest.mark.parametrize(("fault", "code", "close"), [
    ({"kind": "quota"}, "upstream_quota", 1013),
    ({"kind": "close", "code": 1008, "reason": "policy violation"}, "upstream_error", 1011),
])
def test_refusals_map_to_the_contract(openai_server, emu, fault, code, close):
    """OpenAI refusing (quota, a policy close) reaches the client as the contract's codes."""
    emu.control.fault_next(fault.pop("kind"), **fault)
    with open_client(openai_server) as client:
        assert client.wait_type("error")["code"] == code
        assert client.wait_closed().code == close


def test_the_recording_has_the_same_shape_as_a_gemini_one(openai_server, emu, settings):
    """Recording, transcript and meta of an OpenAI conversation: stereo 24 kHz WAV, user and model lines."""
    with open_client(openai_server) as client:
        session_id = client.ready()["session_id"]
        client.stream(frames(tone(0.8, rate=RATE) + silence(1.5, rate=RATE), rate=RATE), frame_s=0.005)
        client.wait_type("complete")
        client.send_json({"type": "end"})
        client.wait_type("ended")
    folder = next(settings.data_dir.glob(f"conversations/*/*/*/{session_id}"))
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["engine"] == "openai" and meta["complete"] is True
    assert meta["audio"]["sample_rate"] == RATE and meta["audio"]["channels"] == ["user", "model"]
    roles = {json.loads(line)["role"] for line in (folder / "transcript.jsonl").read_text().splitlines()}
    assert {"user", "model"} <= roles
    assert meta["activity"]["user"] and meta["activity"]["model"]


def test_concurrent_echo_sessions_each_get_back_exactly_their_own_audio(openai_server, emu):
    """Eight simultaneous OpenAI sessions in echo mode: every 24 kHz frame comes back whole, in order, to its own
    session (the emulator's echo response is mapped to model audio like any spoken answer)."""
    n_sessions, n_frames, frame_bytes = 8, 25, RATE * 2 * 20 // 1000
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            with open_client(openai_server) as client:
                client.ready()
                sent = [struct.pack("<II", 0xC0DE0000 + index, seq) + bytes(frame_bytes - 8) for seq in range(n_frames)]
                for frame in sent:
                    client.send_raw(frame)
                wait_until(lambda: client.drain(0.05) or len(client.audio) >= n_frames * frame_bytes)
                if bytes(client.audio) != b"".join(sent):
                    tags = [struct.unpack_from("<II", client.audio, i) for i in range(0, len(client.audio), frame_bytes)]
                    errors.append(f"session {index} got {tags[:3]}… ({len(client.audio)} bytes)")
        except Exception as exc:  # reported below with the session index
            errors.append(f"session {index}: {exc!r}")

    emu.control.set_mode("echo", count=n_sessions)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(UNIT_S * 3)
    assert errors == []
    assert [s["mode"] for s in openai_sessions(emu)[-n_sessions:]] == ["echo"] * n_sessions
