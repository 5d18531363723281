"""The emulator's stall, slow, quota and goaway faults, armed through Control, the control route or `!emu`."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets
from google.genai import errors, types

from tests.emulator_helpers import (  # noqa: F401  (emu, fresh_control, client are fixtures)
    API_KEY,
    TIMEOUT_S,
    b64,
    chunks,
    client,
    emu,
    fresh_control,
    http,
    joined,
    live_config,
    newest_session,
    raw_connect,
    receive_turn,
    recv_json,
    recv_until,
    run,
    send_audio,
    silence,
    tone,
)
from livetalk.emulator import Emulator, FaultKind
from livetalk.emulator.control import make_fault
from livetalk.emulator.errors import QUOTA_MESSAGE
from livetalk.emulator.live import GOAWAY_CLOSE_REASON

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
QUOTA_BODY = {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                        "status": "RESOURCE_EXHAUSTED"}}


def resumable(handle: str | None = None) -> types.LiveConnectConfig:
    """A session config asking for resumption (from ``handle``, if given)."""
    return live_config(session_resumption=types.SessionResumptionConfig(handle=handle))


async def turn_and_handle(session: Any, text: str) -> tuple[str, str]:
    """Type ``text``; return what the model said and the resumption handle that follows the turn."""
    await session.send_realtime_input(text=text)
    said = joined(await receive_turn(session), "output_transcription")
    async for message in session.receive():
        if message.session_resumption_update:
            return said, message.session_resumption_update.new_handle
    raise AssertionError("no resumption handle after the turn")


# -- stall ---------------------------------------------------------------------------------------


async def ws_setup(emu: Emulator, *, handle: str | None = None) -> Any:
    """A raw Live connection set up with resumption (English wording)."""
    ws = await raw_connect(emu, **{"x-goog-api-key": API_KEY})
    resumption = {"handle": handle} if handle else {}
    setup = {"model": "models/x", "sessionResumption": resumption, "outputAudioTranscription": {},
             "generationConfig": {"speechConfig": {"languageCode": "en-US"}}}
    await ws.send(json.dumps({"setup": setup}))
    assert await recv_json(ws) == {"setupComplete": {}}
    return ws


async def typed(ws: Any, text: str) -> None:
    await ws.send(json.dumps({"realtimeInput": {"text": text}}))


async def handle_after_turn(ws: Any) -> str:
    """The handle offered after the next complete turn (which must arrive)."""
    await recv_until(ws, "turnComplete")
    return (await recv_json(ws))["sessionResumptionUpdate"]["newHandle"]


async def pong(ws: Any) -> None:
    """A ping answered: the server has read everything sent before it, and sent everything before the pong."""
    await asyncio.wait_for(await ws.ping(), TIMEOUT_S)


async def nothing_buffered(ws: Any) -> bool:
    """Whether no data message is waiting (call after :func:`pong`: TCP keeps the order)."""
    try:
        await asyncio.wait_for(ws.recv(), 0)
    except TimeoutError:
        return True
    return False


@pytest.mark.parametrize("how", ["fault", "route", "trigger"])
def test_stall_freezes_one_connection_and_a_resumed_one_is_healthy(emu, how):
    """After the stalling turn nothing more is sent, pings are answered, and resuming by handle works."""
    if how == "fault":
        emu.control.fault_next("stall", after_turns=1)
    elif how == "route":
        assert http(emu, "POST", "/emulator/v1/faults", {"kind": "stall", "after_turns": 1})[0] == 200

    async def scenario() -> tuple[int, dict[str, Any], bool, str]:
        ws = await ws_setup(emu)
        stalled_id = emu.control.sessions(open_only=True)[-1]["id"]
        if how == "trigger":
            await typed(ws, "!emu stall 1")
        await typed(ws, "first")
        handle = await handle_after_turn(ws)
        sent_before = emu.control.session(stalled_id)["messages_out"]
        await typed(ws, "second")  # the stalling turn
        await ws.send(json.dumps({"realtimeInput": {"audio": {"data": "AAAAAA==", "mimeType": "audio/pcm"}}}))
        await typed(ws, "third")
        await pong(ws)
        again = await ws_setup(emu, handle=handle)
        await typed(again, "after the stall")
        await recv_until(again, "turnComplete")
        await again.close()
        await pong(ws)
        quiet = await nothing_buffered(ws)
        stalled = emu.control.session(stalled_id)
        await ws.close()
        return sent_before, stalled, quiet, handle

    sent_before, stalled, quiet, handle = run(scenario())
    assert stalled["stalled"] and stalled["open"] and quiet
    assert stalled["messages_out"] == sent_before
    assert [t["input"] for t in stalled["turns"]] == ["first"]  # "second" and "third" were never answered
    resumed = newest_session(emu)
    assert resumed["resume_handle"] == handle and resumed["turns_answered"] == 1 and not resumed["stalled"]


@pytest.mark.parametrize("ending", ["typed", "audio_stream_end"])
def test_stall_on_the_first_turn_sends_nothing_after_setup(emu, ending):
    """A stall armed for the first turn (typed, or audio ended by audioStreamEnd): only setupComplete is ever sent."""
    emu.control.fault_next("stall")

    async def scenario() -> bool:
        ws = await ws_setup(emu)
        if ending == "typed":
            await typed(ws, "hello")
        else:
            for piece in chunks(tone(400)):
                await ws.send(json.dumps({"realtimeInput": {"audio": {"data": b64(piece, urlsafe=False, padded=True),
                                                                      "mimeType": "audio/pcm;rate=16000"}}}))
            await ws.send(json.dumps({"realtimeInput": {"audioStreamEnd": True}}))
        await typed(ws, "anyone?")
        await pong(ws)
        quiet = await nothing_buffered(ws)
        await ws.close()
        return quiet

    assert run(scenario())
    stats = newest_session(emu)
    assert stats["stalled"] and stats["messages_out"] == 1 and stats["turns"] == []
    assert stats["close_code"] == 1000  # the client's own close


# -- slow ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["fault", "trigger"])
def test_slow_delays_every_message_of_the_session(emu, client, how):
    """`slow` (the delay fault) holds every outgoing message back by the given milliseconds."""
    delay_s = 0.25
    if how == "fault":
        emu.control.fault_next("slow", ms=int(delay_s * 1000))

    async def scenario() -> tuple[float, float]:
        started = time.monotonic()
        async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
            setup_s = time.monotonic() - started
            if how == "trigger":
                await session.send_realtime_input(text=f"!emu slow {int(delay_s * 1000)}")
            sent = time.monotonic()
            await session.send_realtime_input(text="hi")
            first_s = None
            async for _ in session.receive():  # read the whole turn: an abandoned one makes the SDK's close slow
                first_s = first_s or time.monotonic() - sent
            return setup_s, first_s

    setup_s, first_reply_s = run(scenario())
    assert first_reply_s >= delay_s
    assert setup_s >= delay_s or how == "trigger"  # setupComplete is delayed too when armed before connecting
    assert make_fault("slow", ms=5).kind is FaultKind.DELAY


# -- quota -----------------------------------------------------------------------------------------


def test_quota_at_the_handshake_is_a_429_with_gemini_body(emu, client):
    """A quota fault refuses the Live handshake with HTTP 429 and RESOURCE_EXHAUSTED JSON."""
    emu.control.fault_next("quota")

    async def scenario() -> None:
        async with client.aio.live.connect(model=MODEL, config=live_config()):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as caught:
        run(scenario())
    response = caught.value.response
    assert response.status_code == 429
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == QUOTA_BODY
    assert emu.control.requests()[-1]["fault"] == "quota"


@pytest.mark.parametrize(
    "arm", ["after_ms", "first_audio", "trigger"],
)
def test_quota_mid_session_closes_1011_resource_exhausted(emu, client, arm):
    """Mid-session quota closes with 1011 and a reason starting RESOURCE_EXHAUSTED, at most 123 bytes."""
    if arm == "after_ms":
        emu.control.fault_next("quota", when="after_ms", after_ms=30)
    elif arm == "first_audio":
        emu.control.fault_next("quota", when="first_audio")

    async def scenario() -> None:
        async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
            if arm == "trigger":
                await session.send_realtime_input(text="!emu quota")
            elif arm == "first_audio":
                await send_audio(session, tone(20))
            while True:
                async for _ in session.receive():
                    pass

    with pytest.raises(errors.APIError) as caught:
        run(scenario())
    assert caught.value.code == 1011
    stats = newest_session(emu)
    assert stats["close_reason"].startswith("RESOURCE_EXHAUSTED")
    assert len(stats["close_reason"].encode()) <= 123


def test_quota_triggers_arm_the_next_handshake_and_rest_calls(emu, client):
    """`!emu quota next` refuses the next handshake; `!emu quota rest 2` fails the next two REST calls with 429."""

    async def arm() -> None:
        async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="!emu quota next")
            await session.send_realtime_input(text="!emu quota rest 2")
            await session.send_realtime_input(text="hi")
            await receive_turn(session)

    run(arm())
    with pytest.raises(websockets.exceptions.InvalidStatus):
        run(arm())
    for _ in range(2):
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
        assert caught.value.message == QUOTA_MESSAGE
    assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text


def test_rest_quota_through_control_says_resource_exhausted(emu, client):
    """fault_next_rest(429) answers generateContent like an exhausted quota."""
    emu.control.fault_next_rest(429)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.details == QUOTA_BODY


# -- goaway ----------------------------------------------------------------------------------------


def test_old_connection_keeps_working_after_goaway_until_the_client_closes(emu, client):
    """After goAway (with time left), typed and spoken turns are still answered; the client closes first."""
    emu.control.fault_next("goaway", time_left_s=30)

    async def scenario() -> list[str]:
        async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
            async for message in session.receive():
                if message.go_away:
                    assert message.go_away.time_left == "30s"
                    break
            await session.send_realtime_input(text="still there?")
            typed_reply = joined(await receive_turn(session), "output_transcription")
            await send_audio(session, tone(500) + silence(800))
            spoken = await receive_turn(session)
            return [typed_reply, joined(spoken, "input_transcription"), joined(spoken, "output_transcription")]

    typed_reply, heard, spoken_reply = run(scenario())
    assert '"still there?"' in typed_reply and heard == "(speech 0.5 s)" and spoken_reply.startswith("[emulator]")
    stats = newest_session(emu)
    assert stats["turns_answered"] == 2 and stats["close_reason"] != GOAWAY_CLOSE_REASON


def test_goaway_time_left_runs_out_and_the_server_closes(emu, client):
    """When timeLeft has passed, the server closes the connection itself (1000)."""
    emu.control.fault_next("goaway", time_left="0.2s")

    async def scenario() -> None:
        async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
            while True:
                async for _ in session.receive():
                    pass

    started = time.monotonic()
    with pytest.raises(errors.APIError) as caught:
        run(scenario())
    assert caught.value.code == 1000 and time.monotonic() - started >= 0.2
    assert newest_session(emu)["close_reason"] == GOAWAY_CLOSE_REASON


def test_resuming_by_the_latest_handle_while_the_old_connection_is_open(emu, client):
    """A new connection resuming by the newest handle works and has the history up to it; the old one still works."""

    async def scenario() -> tuple[str, str, str]:
        async with client.aio.live.connect(model=MODEL, config=resumable()) as old:
            await turn_and_handle(old, "first")
            await old.send_realtime_input(text="!emu goaway 30")
            async for message in old.receive():
                if message.go_away:
                    break
            _, latest = await turn_and_handle(old, "second")
            async with client.aio.live.connect(model=MODEL, config=resumable(latest)) as new:
                resumed, _ = await turn_and_handle(new, "third")
            late, _ = await turn_and_handle(old, "fourth")
            return resumed, late, latest

    resumed, late, latest = run(scenario())
    old, new = emu.control.sessions()[-2:]
    assert [t["input"] for t in new["history"]] == ["first", "second"]
    assert [t["reply"] for t in new["history"]] == [t["reply"] for t in old["turns"]][:2]
    assert new["resume_handle"] == latest
    assert resumed.startswith("[emulator] Got it") and '"third"' in resumed  # the third reply of the conversation
    assert '"fourth"' in late and [t["input"] for t in old["turns"]] == ["first", "second", "fourth"]
