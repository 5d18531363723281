"""The relay end to end: a real server, the real google-genai SDK, the emulator over TLS."""
from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from tests.helpers import UNIT_S, frames, silence, tone, wait_until
from tests.wsclient import RelayClient


def open_client(server, **query) -> RelayClient:
    return RelayClient(server.ws_url, timeout_s=UNIT_S, **query)


def raw_upgrade(server, query: str = "") -> socket.socket:
    """A bare TCP socket upgraded to /ws/realtime by hand (no WebSocket library behind it)."""
    import base64
    import os

    host, port = server.url.removeprefix("http://").split(":")
    raw = socket.create_connection((host, int(port)), timeout=UNIT_S)
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall((f"GET /ws/realtime{query} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    return raw


def newest_session(emu) -> dict:
    return emu.control.sessions()[-1]


def wait_upstream_closed(emu, *, within_s: float) -> dict:
    """Wait until the emulator's newest Live session is closed; returns its stats."""
    return emu.control.wait_for(
        lambda: (s := newest_session(emu)) and not s["open"] and s, timeout=within_s)


# --- conversations ---------------------------------------------------------------------


def test_voice_turn_round_trip(live_server, emu):
    """Speech in 20 ms frames gets a transcribed, spoken reply and a `complete` event."""
    with open_client(live_server) as client:
        ready = client.ready()
        assert ready["input_rate"] == 16000 and ready["output_rate"] == 24000
        assert ready["mode"] == "voice" and ready["emulated"] is False
        client.stream(frames(tone(1.0) + silence(1.2)), frame_s=0.005)
        complete = client.wait_type("complete")
        user_final = client.wait_for(lambda e: e.get("type") == "transcript" and e["role"] == "user" and e["final"])
        model_lines = [e for e in client.of_type("transcript") if e["role"] == "model"]
        assert complete["turn"] == 1 and complete["full_text"]
        assert user_final["text"]
        assert model_lines and model_lines[-1]["final"] and model_lines[-1]["text"] == complete["full_text"]
        assert len(client.audio) > 24000 * 2 * 0.2  # at least 0.2 s of model speech at 24 kHz
        assert len(client.audio) % 2 == 0
    session = newest_session(emu)
    assert session["audio_in_ms"] == pytest.approx(2200, abs=40)
    assert session["setup"]["model"].endswith("gemini-3.8-live")


def test_live_setup_is_built_from_the_scenario(live_server, emu):
    """The server chooses the model, persona, voice and transcription; the client chooses only the scenario."""
    with open_client(live_server, scenario="sales-en") as client:
        assert client.ready()["scenario"] == "sales-en"
    setup = newest_session(emu)["setup"]
    assert "Jordan Lee" in str(setup)
    assert "Puck" in str(setup)


def test_typed_turn_in_voice_mode(live_server, emu):
    """A typed turn is answered with speech and a `complete` carrying the reply text."""
    with open_client(live_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "御社の課題を教えてください。"})
        complete = client.wait_type("complete")
        assert complete["full_text"]
        assert len(client.audio) > 0
    assert newest_session(emu)["text_turns"] == 1


def test_text_mode_streams_chunks_and_no_audio(live_server, emu):
    """In text mode the reply arrives as ordered `chunk`s adding up to `complete.full_text`."""
    with open_client(live_server, mode="text") as client:
        assert client.ready()["mode"] == "text"
        client.send_json({"text": "Hello there"})  # the original app's form, without "type"
        complete = client.wait_type("complete")
        chunks = client.of_type("chunk")
        assert chunks and "".join(c["text"] for c in chunks) == complete["full_text"]
        assert client.audio_frames == 0


def test_ping_is_answered_with_pong(live_server, emu):
    """`ping` echoes `t` in `pong`."""
    with open_client(live_server) as client:
        client.ready()
        client.send_json({"type": "ping", "t": 1234.5})
        assert client.wait_type("pong")["t"] == 1234.5


def test_end_reports_ended_and_closes_normally(live_server, emu):
    """`end` is answered with `ended` and a 1000 close; Gemini's session is closed too."""
    with open_client(live_server) as client:
        session_id = client.ready()["session_id"]
        client.send_json({"type": "end"})
        ended = client.wait_type("ended")
        assert ended["session_id"] == session_id
        assert client.wait_closed().code == 1000
    wait_upstream_closed(emu, within_s=1.0)


# --- bad input -------------------------------------------------------------------------

BAD_FRAMES = [
    ("not json", "bad_request"),
    ('{"type": "fly"}', "bad_request"),
    ('{"type": "text", "text": 5}', "bad_request"),
    ('{"type": "text", "text": ""}', "bad_request"),
    ('{"type": "activity_start"}', "bad_request"),  # the scenario uses automatic VAD
    ("[]", "bad_request"),
    (b"\x01\x02\x03", "bad_request"),  # odd-length audio
    (bytes(64 * 1024 + 2), "too_large"),
    ('{"type": "text", "text": "' + "x" * 4001 + '"}', "too_large"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
def test_bad_frames_get_an_error_and_the_session_lives_on(live_server, emu, frame, code):
    """Each bad frame is answered with a non-fatal error of its code; the session keeps working."""
    with open_client(live_server) as client:
        client.ready()
        client.send_raw(frame)
        error = client.wait_type("error")
        assert error["code"] == code and error["fatal"] is False
        client.send_json({"type": "ping", "t": "still-alive"})
        assert client.wait_type("pong")["t"] == "still-alive"


def test_frame_over_the_protocol_limit_closes_1009(live_server, emu):
    """A frame above 1 MiB is refused at the WebSocket layer with close 1009."""
    with open_client(live_server) as client:
        client.ready()
        client.send_raw(bytes(1024 * 1024 + 2))
        assert client.wait_closed().code == 1009
    wait_upstream_closed(emu, within_s=1.0)


def test_unknown_scenario_is_refused_with_1008(live_server, emu):
    """An unknown scenario id gets `bad_request` and close 1008, and no Gemini session."""
    with open_client(live_server, scenario="nope") as client:
        error = client.wait_type("error")
        assert (error["code"], error["fatal"]) == ("bad_request", True)
        assert client.wait_closed().code == 1008
    assert emu.control.sessions() == []


def test_unknown_mode_is_refused_with_1008(live_server, emu):
    """An unknown mode gets `bad_request` and close 1008."""
    with open_client(live_server, mode="video") as client:
        assert client.wait_type("error")["code"] == "bad_request"
        assert client.wait_closed().code == 1008


# --- upstream failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1007, "Request contains an invalid argument."),
     (1008, "models/gemini-x is not found for API version v1beta"),
     (1011, "Internal error encountered.")],
)
def test_gemini_refusing_the_setup_is_an_upstream_error(live_server, emu, code, reason):
    """Gemini closing the session at setup reaches the client as `upstream_error` with its code and reason."""
    emu.control.fault_next("close", code=code, reason=reason, when="setup")
    with open_client(live_server) as client:
        error = client.wait_type("error")
        assert error["code"] == "upstream_error" and error["fatal"] is True
        assert str(code) in error["message"] and reason[:20] in error["message"]
        assert client.wait_closed().code == 1011


def test_gemini_closing_mid_conversation_is_an_upstream_error(live_server, emu):
    """A close with an error code during the conversation ends it with `upstream_error`."""
    with open_client(live_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "!emu close 1011 Deadline expired"})
        error = client.wait_type("error")
        assert error["code"] == "upstream_error" and "1011" in error["message"]
        assert "Deadline expired" in error["message"]
        assert client.wait_closed().code == 1011


def test_unreachable_gemini_is_upstream_unavailable(make_server, emu, monkeypatch):
    """When nothing listens at Gemini's address the client gets `upstream_unavailable`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"https://127.0.0.1:{dead_port}")
    server = make_server()
    with open_client(server) as client:
        error = client.wait_type("error")
        assert (error["code"], error["fatal"]) == ("upstream_unavailable", True)
        assert client.wait_closed().code == 1011


def test_gemini_that_never_answers_times_out_as_unavailable(make_server, emu):
    """A Gemini that accepts TCP but never completes the handshake is `upstream_unavailable` after the timeout."""
    server = make_server(upstream_connect_timeout_s=0.5)
    emu.control.fault_next("hang")
    with open_client(server) as client:
        error = client.wait_type("error")
        assert error["code"] == "upstream_unavailable"


def test_goaway_resumes_on_a_new_connection(live_server, emu):
    """After GoAway the relay reconnects with the resumption handle; the socket stays open."""
    with open_client(live_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "こんにちは"})
        client.wait_type("complete")
        client.send_json({"type": "text", "text": "!emu goaway 1"})
        client.wait_type("reconnecting")
        client.wait_type("resumed")
        client.send_json({"type": "text", "text": "続けましょう"})
        assert client.wait_type("complete", turn=2)["full_text"]
    sessions = emu.control.sessions()
    assert len(sessions) == 2 and sessions[1]["resume_handle"] == sessions[0]["last_handle"]


def test_goaway_during_a_reply_lets_it_finish_then_hands_over(live_server, emu):
    """A GoAway mid-reply does not cut the reply: it plays out whole, then the next session resumes by handle."""
    with open_client(live_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "こんにちは"})
        client.wait_type("resumable")
        client.send_json({"type": "text", "text": "!emu goaway 30"})
        client.send_json({"type": "text", "text": "御社の課題を教えてください。"})
        complete = client.wait_type("complete", turn=2)
        assert complete["full_text"]
        assert client.wait_type("reconnecting")["reason"] == "go_away"
        client.wait_type("resumed")
        client.send_json({"type": "text", "text": "続けましょう"})
        assert client.wait_type("complete", turn=3)["full_text"]
        order = [(e["type"], e.get("turn")) for e in client.events if e["type"] in ("complete", "reconnecting")]
        assert order.index(("reconnecting", None)) > order.index(("complete", 2))  # handed over after the reply
    first, second = emu.control.sessions()[:2]
    assert [t["input"] for t in first["turns"] if "課題" in str(t["input"])]  # the old session answered it
    assert not any(turn["interrupted"] for turn in first["turns"])
    assert second["resume_handle"] == first["last_handle"]


def test_a_stalled_gemini_is_resumed_and_the_conversation_goes_on(make_server, emu):
    """Gemini falling silent after a turn is noticed: `reconnecting(stall)`, a resumed session, the turn answered."""
    server = make_server(upstream_stall_s=1.0)
    with open_client(server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "こんにちは"})
        client.wait_type("resumable")
        client.send_json({"type": "text", "text": "!emu stall"})
        client.send_json({"type": "text", "text": "予算について伺えますか？"})
        assert client.wait_type("reconnecting")["reason"] == "stall"
        client.wait_type("resumed")
        client.send_json({"type": "text", "text": "予算について伺えますか？"})
        assert client.wait_type("complete")["full_text"]
    stalled, resumed = emu.control.sessions()[:2]
    assert stalled["stalled"] and resumed["resume_handle"] == stalled["last_handle"]


def test_a_stall_is_noticed_though_earlier_model_audio_arrives_after_the_turn(make_server, emu):
    """Model audio already on its way when the user's turn ends is no answer to it: Gemini falling silent
    right after is still noticed as a stall (found by bench/soak.py in echo mode)."""
    server = make_server(upstream_stall_s=1.0)
    emu.control.set_mode("echo", count=2)
    with open_client(server) as client:
        client.ready()
        client.stream(frames(silence(1.1)))  # a second of audio: the echo session offers a handle
        client.wait_type("resumable")
        client.send_json({"type": "text", "text": "!emu stall"})
        client.drain(0.2)
        client.send_raw(struct.pack("<II", 7, 7) + bytes(632))  # its echo comes back after the turn below
        client.send_json({"type": "text", "text": "Are you still there?"})
        assert client.wait_type("reconnecting")["reason"] == "stall"
        client.wait_type("resumed")
    stalled, resumed = emu.control.sessions()[:2]
    assert stalled["stalled"] and resumed["resume_handle"] == stalled["last_handle"]


@pytest.mark.parametrize("when", ["handshake", "after_ms"])
def test_gemini_over_quota_is_upstream_quota(live_server, emu, when):
    """Gemini refusing for quota, at the handshake or mid-way, is `upstream_quota` in plain words, close 1013."""
    emu.control.fault_next("quota", when=when, after_ms=300)
    with open_client(live_server) as client:
        error = client.wait_type("error")
        assert error["code"] == "upstream_quota" and error["fatal"]
        assert "usage limit" in error["message"]
        assert client.wait_closed().code == 1013


@pytest.mark.parametrize(("scenario", "proposal", "details"), [
    ("sales-ja", "12月3日の14時にデモはいかがでしょうか", {"time": "14:00", "topic": "demo"}),
    ("sales-en", "How about a demo on December 3 at 2 pm?", {"time": "14:00", "topic": "demo"}),
])
def test_an_agreed_meeting_reaches_the_client_and_the_recording(live_server, emu, settings, scenario, proposal,
                                                                 details):
    """The customer's schedule_meeting call becomes an `outcome` event, is answered silently and is recorded."""
    with open_client(live_server, scenario=scenario) as client:
        session_id = client.ready()["session_id"]
        client.send_json({"type": "text", "text": proposal})
        outcome = client.wait_type("outcome")
        assert outcome["name"] == "appointment" and not outcome["cancelled"]
        assert outcome["details"]["date"].endswith("-12-03") and details.items() <= outcome["details"].items()
        client.wait_type("complete")  # the customer confirms aloud once the call is answered
        client.send_json({"type": "end"})
        client.wait_type("ended")
    session = newest_session(emu)
    assert session["setup"]["functions"] == [{"name": "schedule_meeting", "non_blocking": False}]
    (call,) = session["tool_calls"]
    assert call["status"] == "answered" and call["scheduling"] == "SILENT"
    meta = json.loads(next(settings.data_dir.glob(f"conversations/*/*/*/{session_id}/meta.json")).read_text())
    assert meta["outcome"] == {"appointment": True, "details": outcome["details"]}


def test_dropped_upstream_without_a_handle_ends_the_conversation(live_server, emu):
    """A TCP drop before Gemini gave a resumption handle ends the conversation with an error."""
    with open_client(live_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "!emu drop"})
        error = client.wait_type("error")
        assert error["code"] in ("upstream_error", "upstream_unavailable") and error["fatal"]
        assert client.wait_closed().code == 1011


# --- teardown --------------------------------------------------------------------------


def test_browser_close_ends_the_gemini_session_within_a_second(live_server, emu):
    """When the browser closes its socket, the upstream Live session is closed within 1 s."""
    client = open_client(live_server)
    client.ready()
    client.stream(frames(tone(0.2)))
    client.close()
    started = time.monotonic()
    wait_upstream_closed(emu, within_s=1.0)
    assert time.monotonic() - started < 1.0


def test_browser_tcp_drop_ends_the_gemini_session_within_a_second(live_server, emu):
    """A browser vanishing without a close frame (TCP reset) also closes upstream within 1 s."""
    client = open_client(live_server)
    client.ready()
    raw = client.ws.socket
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # RST, no close frame
    wait_upstream_closed(emu, within_s=1.0)


def test_gemini_going_away_closes_the_browser_within_a_second(live_server, emu):
    """When Gemini closes, the browser is told and its socket closed within 1 s."""
    with open_client(live_server) as client:
        client.ready()
        client.send_json({"type": "text", "text": "!emu close 1008 Operation is not implemented"})
        started = time.monotonic()
        client.wait_closed(timeout_s=1.0)
        assert time.monotonic() - started < 1.0
    wait_until(lambda: live_server.services.sessions == {})


# --- concurrency -----------------------------------------------------------------------


def test_concurrent_sessions_never_see_each_others_audio(live_server, emu):
    """Eight simultaneous echo sessions each get back only their own tagged audio."""
    n_sessions, n_frames = 8, 25
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            with open_client(live_server) as client:
                client.ready()
                base = len(client.audio)
                for seq in range(n_frames):
                    tag = struct.pack("<II", 0xC0DE0000 + index, seq)
                    client.send_raw(tag + bytes(632))
                deadline = time.monotonic() + UNIT_S
                while len(client.audio) - base < n_frames * 960 and time.monotonic() < deadline:
                    client.drain(0.05)
                echoed = bytes(client.audio[base:])
                tags = [struct.unpack_from("<II", echoed, i) for i in range(0, len(echoed), 960)]
                if tags != [(0xC0DE0000 + index, seq) for seq in range(n_frames)]:
                    errors.append(f"session {index} got {tags[:3]}… ({len(tags)} replies)")
        except Exception as exc:  # reported below with the session index
            errors.append(f"session {index}: {exc!r}")

    emu.control.set_mode("echo", count=n_sessions)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(UNIT_S * 3)
    assert errors == []


# --- limits and lifecycle ---------------------------------------------------------------


def test_server_at_capacity_refuses_with_1013(make_server, emu):
    """Beyond MAX_SESSIONS a new socket gets `capacity` and close 1013."""
    server = make_server(max_sessions=1)
    with open_client(server) as first:
        first.ready()
        with open_client(server) as second:
            assert second.wait_type("error")["code"] == "capacity"
            assert second.wait_closed().code == 1013


def test_idle_conversation_times_out(make_server, emu):
    """A client that sends nothing for IDLE_TIMEOUT_SECONDS gets `idle_timeout`."""
    server = make_server(idle_timeout_s=1.0)
    with open_client(server) as client:
        client.ready()
        error = client.wait_type("error")
        assert (error["code"], error["fatal"]) == ("idle_timeout", True)
        client.wait_closed()


def test_conversation_length_is_capped_with_a_warning(make_server, emu):
    """Before the cap a `warning` arrives; at the cap, `session_limit` ends the conversation."""
    server = make_server(session_max_s=2.5, session_warning_s=1.5)
    with open_client(server) as client:
        client.ready()
        warning = client.wait_type("warning")
        assert warning["code"] == "session_limit" and warning["seconds_left"] <= 1.5
        error = client.wait_type("error")
        assert (error["code"], error["fatal"]) == ("session_limit", True)
        client.wait_closed()


def test_draining_tells_clients_to_reconnect(live_server, emu):
    """When the server drains, open conversations get `shutting_down` and close 1001; /healthz says draining."""
    import urllib.error
    import urllib.request

    with open_client(live_server) as client:
        client.ready()
        live_server.services.begin_drain()
        error = client.wait_type("error")
        assert (error["code"], error["fatal"]) == ("shutting_down", True)
        assert client.wait_closed().code == 1001
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(live_server.url + "/healthz", timeout=UNIT_S)
    assert info.value.code == 503


# --- recording and resumption ----------------------------------------------------------


def test_conversation_is_recorded_and_ended_names_it(live_server, emu, settings):
    """`ended.recording` names the stored conversation: stereo audio and both sides' transcript."""
    import json as _json
    import wave

    with open_client(live_server) as client:
        client.ready()
        client.stream(frames(tone(0.8) + silence(1.2)), frame_s=0.005)
        client.wait_type("complete")
        client.send_json({"type": "end"})
        recording = client.wait_type("ended")["recording"]
    assert recording
    folder = next(settings.data_dir.glob("conversations/*/*/*/*"))
    assert folder.name in recording
    with wave.open(str(folder / "audio.wav")) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 24000, 2)
        assert wav.getnframes() / 24000 >= 2.0
    lines = [_json.loads(line) for line in (folder / "transcript.jsonl").read_text().splitlines()]
    assert {line["role"] for line in lines} == {"user", "model"}


def test_dropped_socket_resumes_with_its_ticket(live_server, emu):
    """A client whose socket dropped continues the same conversation with its latest resume ticket."""
    with open_client(live_server) as client:
        session_id = client.ready()["session_id"]
        client.send_json({"type": "text", "text": "最初の質問です"})
        client.wait_type("complete")
        ticket = client.wait_type("resumable")["resume"]
    wait_upstream_closed(emu, within_s=1.0)
    with open_client(live_server, resume=ticket) as again:
        ready = again.ready()
        assert ready["session_id"] == session_id and ready["resume"]
        again.send_json({"type": "text", "text": "続きです"})
        assert again.wait_type("complete")["full_text"]
    first, second = emu.control.sessions()[-2:]
    assert second["resume_handle"] == first["last_handle"]


@pytest.mark.parametrize("ticket", ["garbage", "e30.AAAA"])
def test_bad_resume_ticket_is_unauthorized(live_server, emu, ticket):
    """A malformed or forged resume ticket is refused with `unauthorized` and 1008."""
    with open_client(live_server, resume=ticket) as client:
        assert client.wait_type("error")["code"] == "unauthorized"
        assert client.wait_closed().code == 1008


def test_silent_peer_is_dropped_when_it_stops_answering_pings(make_server, emu):
    """A client that vanished without closing (no frames, no pongs) is dropped and Gemini closed."""
    live_server = make_server(ping_interval_s=0.4)
    with raw_upgrade(live_server) as raw:
        assert raw.recv(4096).startswith(b"HTTP/1.1 101")
        emu.control.wait_sessions(1, timeout=UNIT_S)
        # Read nothing, answer nothing: like a laptop whose lid was closed.
        wait_upstream_closed(emu, within_s=UNIT_S)
        wait_until(lambda: live_server.services.sessions == {})


def test_browser_leaving_while_gemini_is_slow_cancels_the_setup(live_server, emu):
    """If the browser leaves before Gemini finished the setup, the half-open Live session is closed at once."""
    emu.control.fault_next("delay", ms=3000)
    client = open_client(live_server)
    emu.control.wait_sessions(1, timeout=UNIT_S)
    client.close()
    wait_upstream_closed(emu, within_s=1.0)
    wait_until(lambda: live_server.services.sessions == {})


def test_nothing_follows_the_close_frame_on_the_wire(live_server, emu):
    """After a refusal's close frame the server sends FIN, not the dev server's HTTP response."""
    with raw_upgrade(live_server, "?scenario=nope") as raw:
        data = b""
        while chunk := raw.recv(65536):
            data += chunk
    assert data.endswith(b"\x88\x0d\x03\xf0bad_request")  # close frame: 1008 "bad_request", then EOF
