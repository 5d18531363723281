"""The OpenAI Realtime emulator's faults through the unmodified ``openai`` SDK: close, drop, refused and hanging
handshakes, quota, latency, stall and server errors, armed through Control, the control route or `!emu`."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from livetalk.emulator.openai.errors import QUOTA_MESSAGE
from tests.emulator_helpers import SCALE, TIMEOUT_S, emu, fresh_control, http, newest_session, run  # noqa: F401
from tests.openai_emulator_helpers import (
    configure,
    connect,
    error_of,
    of_type,
    opened,
    pcm_silence,
    pcm_tone,
    recv,
    say,
    send_audio,
    types_of,
    until,
    until_count,
)


async def closed_after(conn: Any) -> tuple[list[Any], ConnectionClosedError]:
    """The events received until the connection fails, and how it failed."""
    seen = []
    with pytest.raises(ConnectionClosedError) as failure:
        while True:
            seen.append(await recv(conn))
    return seen, failure.value


def arm(emu: Any, how: str, fault: dict[str, Any]) -> None:
    """Arm ``fault`` through Control (``how`` = fault) or the HTTP control route (``route``)."""
    if how == "fault":
        emu.control.fault_next(**fault)
    else:
        assert http(emu, "POST", "/emulator/v1/faults", fault)[0] == 200


def refusal(emu: Any) -> InvalidStatus:
    """How the SDK's connect fails when the handshake is refused."""

    async def scenario() -> None:
        async with connect(emu):
            pass

    with pytest.raises(InvalidStatus) as refused:
        run(scenario())
    return refused.value


# -- close and drop -----------------------------------------------------------------------------


CLOSE_FAULT = {"kind": "close", "code": 1011, "reason": "Internal error encountered.", "when": "first_audio"}
QUOTA_FAULT = {"kind": "quota", "when": "first_audio"}


@pytest.mark.parametrize("how, fault, errors, reason", [
    ("fault", CLOSE_FAULT, [], "Internal error encountered."),
    ("route", CLOSE_FAULT, [], "Internal error encountered."),
    ("fault", QUOTA_FAULT, ["insufficient_quota"], "insufficient_quota"),
])
def test_closing_faults_on_first_audio_end_the_session_with_1011(emu, how, fault, errors, reason):
    """close 1011, or quota (an insufficient_quota error event first), at the first appended audio: the SDK's
    iteration ends in ConnectionClosedError 1011."""
    arm(emu, how, fault)

    async def scenario() -> tuple[list[Any], ConnectionClosedError]:
        async with connect(emu) as conn:
            await opened(conn)
            await send_audio(conn, pcm_tone(200))
            return await closed_after(conn)

    seen, closed = run(scenario())
    assert [error_of(event)["code"] for event in seen] == errors
    assert closed.rcvd.code == 1011 and closed.rcvd.reason == reason
    stats = newest_session(emu)
    assert stats["close_code"] == 1011 and stats["faults"] == [fault["kind"]] and stats["engine"] == "openai"
    assert [error["type"] for error in stats["errors"]] == errors


def test_drop_fault_cuts_tcp_without_a_close_frame(emu):
    """drop after 200 ms: no close frame reaches the SDK (1006)."""
    emu.control.fault_next("drop", after_ms=200)

    async def scenario() -> ConnectionClosedError:
        async with connect(emu) as conn:
            await opened(conn)
            return (await closed_after(conn))[1]

    closed = run(scenario())
    assert closed.rcvd is None and closed.sent is None
    assert newest_session(emu)["close_code"] == 1006


@pytest.mark.parametrize("words, code, reason", [
    ("!emu close 4000 bye for now", 4000, "bye for now"),
    ("!emu quota", 1011, "insufficient_quota"),
    ("!emu drop", None, None),
])
def test_close_triggers_end_the_session_at_once(emu, words, code, reason):
    """`!emu close <code> <reason>`, `!emu quota` and `!emu drop` typed in a user item end the session after its
    item events (drop: without a close frame)."""

    async def scenario() -> tuple[list[Any], ConnectionClosedError]:
        async with connect(emu) as conn:
            await opened(conn)
            await say(conn, words)
            return await closed_after(conn)

    seen, closed = run(scenario())
    assert (closed.rcvd.code, closed.rcvd.reason) == (code, reason) if code else closed.rcvd is None
    assert types_of(seen)[:2] == ["conversation.item.added", "conversation.item.done"]
    if code == 1011:
        assert error_of(seen[-1]) == {"type": "insufficient_quota", "code": "insufficient_quota",
                                      "message": QUOTA_MESSAGE, "param": None, "event_id": None}


# -- refused handshakes and quota ---------------------------------------------------------------


@pytest.mark.parametrize("arm, status, error_type, code", [
    (lambda control: control.fault_next("quota"), 429, "insufficient_quota", "insufficient_quota"),
    (lambda control: control.fault_next("reject"), 429, "requests", "rate_limit_exceeded"),
    (lambda control: control.fault_next("reject", status=503), 503, "server_error", None),
])
def test_refused_handshakes_carry_openai_error_bodies(emu, arm, status, error_type, code):
    """quota at the handshake and reject answer the upgrade with an HTTP error and OpenAI's JSON error body."""
    arm(emu.control)
    refused = refusal(emu)
    body = json.loads(refused.response.body)
    assert refused.response.status_code == status
    assert (body["error"]["type"], body["error"]["code"], body["error"]["param"]) == (error_type, code, None)
    assert emu.control.requests()[-1]["engine"] == "openai" and emu.control.sessions() == []
    assert emu.control.pending_faults() == []


@pytest.mark.parametrize("trigger, code", [("!emu quota next", "insufficient_quota"),
                                           ("!emu ratelimit", "rate_limit_exceeded")])
def test_handshake_refusal_triggers_refuse_the_next_connection_only(emu, trigger, code):
    """`!emu quota next` and `!emu ratelimit` make the next handshake a 429; the one after is accepted."""

    async def arm() -> None:
        async with connect(emu) as conn:
            await opened(conn)
            await say(conn, trigger)
            await until(conn, "conversation.item.done")

    run(arm())
    emu.control.wait_for(lambda: emu.control.pending_faults(), TIMEOUT_S)
    refused = refusal(emu)
    assert refused.response.status_code == 429 and json.loads(refused.response.body)["error"]["code"] == code

    async def again() -> Any:
        async with connect(emu) as conn:
            return await opened(conn)

    assert run(again()).type == "session.created"


def test_hang_fault_never_answers_the_handshake(emu):
    """hang: TLS is accepted, the upgrade is never answered, the SDK's connect times out."""
    emu.control.fault_next("hang")

    async def scenario() -> None:
        async with connect(emu, open_timeout=0.5 * SCALE):
            pass

    with pytest.raises(TimeoutError):
        run(scenario())
    assert emu.control.requests()[-1]["fault"] == "hang" and emu.control.sessions() == []


# -- latency, stall, server errors --------------------------------------------------------------


@pytest.mark.parametrize("how", ["fault", "trigger"])
def test_slow_holds_every_event_back_and_keeps_their_order(emu, how):
    """slow 300 ms (fault or `!emu slow 300`): a typed turn's first event comes ≥ 300 ms after response.create,
    and the events are those of an unhurried session, in the same order."""
    if how == "fault":
        emu.control.fault_next("slow", ms=300)

    async def scenario() -> tuple[float, list[Any]]:
        async with connect(emu) as conn:
            await opened(conn)
            if how == "trigger":
                await say(conn, "!emu slow 300")
                await until(conn, "conversation.item.done")
            await say(conn, "hello", respond=False)
            await until(conn, "conversation.item.done")
            started = time.monotonic()
            await conn.response.create()
            first = await recv(conn)
            waited = time.monotonic() - started
            return waited, [first, *await until(conn, "response.done")]

    waited, events = run(scenario())
    assert waited >= 0.3 and events[0].type == "response.created"
    assert types_of(events)[-3:] == ["response.output_item.done", "conversation.item.done", "response.done"]


@pytest.mark.parametrize("how", ["fault", "trigger"])
def test_stall_freezes_the_session_at_a_response_and_leaves_the_socket_open(emu, how):
    """stall after one answered turn: the next response never starts and nothing more is sent (not even answers
    to later events), while the session stays open; a new session is healthy."""
    if how == "fault":
        emu.control.fault_next("stall", after_turns=1)

    async def scenario() -> tuple[dict[str, Any], int, Any]:
        async with connect(emu) as conn:
            await opened(conn)
            stalled_id = emu.control.sessions(open_only=True)[-1]["id"]
            if how == "trigger":
                await say(conn, "!emu stall 1")
                await until(conn, "conversation.item.done")
            await say(conn, "first")
            await until(conn, "response.done")
            await say(conn, "second", respond=False)
            item = (await until(conn, "conversation.item.done"))[-1].item
            sent = emu.control.session(stalled_id)["messages_out"]
            await conn.response.create()  # the stalling turn
            await conn.conversation.item.retrieve(item_id=item.id)
            await conn.response.cancel()
            emu.control.wait_for(
                lambda: emu.control.session(stalled_id)["client_messages"].get("response.cancel"), TIMEOUT_S)
            stalled = emu.control.session(stalled_id)
            async with connect(emu) as other:
                await opened(other)
                await say(other, "after the stall")
                healthy = (await until(other, "response.done"))[-1]
            return stalled, sent, healthy

    stalled, sent, healthy = run(scenario())
    assert stalled["stalled"] and stalled["open"] and stalled["messages_out"] == sent
    assert len(stalled["responses"]) == 1 and healthy.response.status == "completed"
    assert not newest_session(emu)["stalled"]


def test_stall_in_echo_mode_freezes_the_session_at_an_echo_response(emu):
    """In echo mode each echo response counts for the stall fault: after one, the next never starts and the
    echoes stop, while the session stays open."""
    emu.control.set_mode("echo", count=1)
    emu.control.fault_next("stall", after_turns=1)

    async def scenario() -> tuple[list[Any], dict[str, Any], int]:
        async with connect(emu) as conn:
            await opened(conn)
            stalled_id = emu.control.sessions(open_only=True)[-1]["id"]
            await send_audio(conn, pcm_tone(100), chunk_ms=20)
            echoed = await until(conn, "response.done")
            sent = emu.control.session(stalled_id)["messages_out"]
            await send_audio(conn, pcm_tone(100), chunk_ms=20)
            emu.control.wait_for(lambda: emu.control.session(stalled_id)["audio_chunks"] == 10, TIMEOUT_S)
            return echoed, emu.control.session(stalled_id), sent

    echoed, stalled, sent = run(scenario())
    assert len(of_type(echoed, "response.output_audio.delta")) == 5
    assert stalled["stalled"] and stalled["open"] and stalled["messages_out"] == sent
    assert [r["trigger"] for r in stalled["responses"]] == ["echo"]


@pytest.mark.parametrize("how", ["fault", "route"])
def test_server_error_fault_is_an_error_event_and_the_session_goes_on(emu, how):
    """server_error at the first audio: an error event of type server_error naming the session; the turn is
    still answered."""
    arm(emu, how, {"kind": "server_error", "when": "first_audio"})

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            await send_audio(conn, pcm_tone(600) + pcm_silence(600))
            return await until(conn, "response.done")

    events = run(scenario())
    error = error_of(events[0])
    assert (error["type"], error["code"], error["param"]) == ("server_error", None, None)
    assert f"sess_{newest_session(emu)['id']}" in error["message"]
    assert events[-1].response.status == "completed"


def test_server_error_during_a_reply_fails_the_response(emu):
    """`!emu server_error` typed while a reply plays: an error event, then response.done failed with that error."""
    emu.control.reply_speed = 2.0

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await say(conn, "hello")
            events = await until_count(conn, "response.output_audio.delta", 2)
            await say(conn, "!emu server_error", respond=False)
            return events + await until(conn, "response.done")

    events = run(scenario())
    assert error_of(of_type(events, "error")[0])["type"] == "server_error"
    done = events[-1].response
    assert done.status == "failed" and done.status_details.error.type == "server_error"
    assert done.output[0].status == "incomplete"
