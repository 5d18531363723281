"""The relay's state machine against an in-memory engine and browser: the whole lifecycle in milliseconds."""
from __future__ import annotations

import asyncio
import functools

import pytest

from livetalk import engine as ev
from livetalk import relay
from livetalk.engine import UpstreamClosed, UpstreamQuota, UpstreamUnavailable
from livetalk.protocol import Mode
from tests.fake_engine import WAIT_S, Harness


def in_loop(test):
    """Run an async test body in a fresh event loop."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 5 * WAIT_S))
    return run


@in_loop
async def test_ready_names_the_engine_and_its_rates():
    """`ready` carries the engine's name and the audio rates the client must use."""
    async with Harness() as h:
        ready = await h.browser.event("ready")
        assert (ready["engine"], ready["input_rate"], ready["output_rate"]) == ("fake", 16000, 24000)


@pytest.mark.parametrize("direct", [True, False], ids=["written-at-once", "through-the-sender"])
@in_loop
async def test_user_audio_reaches_the_upstream_in_order(direct):
    """Microphone frames are sent upstream unchanged and in order, whether the engine can take a frame at once
    or every frame goes through the relay's sender."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.direct = direct
        frames = [bytes([i]) * 640 for i in range(20)]
        for frame in frames:
            await h.browser.send_bytes(frame)
        await h.browser.send_json({"type": "ping", "t": 1})
        await h.browser.event("pong")
        assert upstream.audio_sent() == frames


@in_loop
async def test_audio_never_overtakes_a_frame_the_upstream_is_still_taking():
    """While a typed turn is still being sent (a slow upstream), later microphone frames wait behind it."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.gate = asyncio.Event()
        await h.browser.send_json({"type": "text", "text": "hello"})
        await h.browser.send_json({"type": "ping", "t": 0})
        await h.browser.event("pong")  # by now the sender has taken the text and waits on the upstream
        frames = [bytes([i]) * 640 for i in range(1, 6)]
        for frame in frames:
            await h.browser.send_bytes(frame)
        await h.browser.send_json({"type": "ping", "t": 1})
        await h.browser.event("pong")
        assert upstream.sent == []  # nothing went past the text still being sent
        upstream.gate.set()
        await sent_to(upstream, 5)
        assert upstream.sent == [("text", "hello"), *(("audio", f) for f in frames)]


@in_loop
async def test_a_model_turn_reaches_the_browser():
    """Model audio is relayed as binary frames; transcripts are cumulative; `complete` ends the turn."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.push(ev.ModelAudio(b"\x01\x00" * 480), ev.Transcription("model", "Hello", False))
        upstream.push(ev.Transcription("model", " there", False))
        upstream.push(ev.TurnComplete({"totalTokenCount": 12}))
        assert await h.browser.next() == b"\x01\x00" * 480
        first = await h.browser.event("transcript")
        second = await h.browser.event("transcript")
        assert (first["text"], second["text"]) == ("Hello", "Hello there")
        complete = await h.browser.event("complete")
        assert (complete["full_text"], complete["turn"]) == ("Hello there", 1)


@in_loop
async def test_interruption_is_forwarded():
    """A barge-in upstream tells the browser to drop its queued audio."""
    async with Harness() as h:
        await h.browser.event("ready")
        h.engine.sessions[0].push(ev.Interrupted())
        assert (await h.browser.event("interrupted"))["type"] == "interrupted"


@in_loop
async def test_a_recoverable_close_resumes_with_the_latest_handle():
    """A dropped upstream with a handle is replaced: `reconnecting`, `resumed`, the new session has the handle."""
    async with Harness() as h:
        await h.browser.event("ready")
        first = h.engine.sessions[0]
        first.push(ev.Resumption("handle-2", True))
        await h.browser.event("resumable")
        first.fail(1006, "lost", recoverable=True)
        assert (await h.browser.event("reconnecting"))["reason"] == "upstream_closed"
        await h.browser.event("resumed")
        second = await h.engine.next_session(2)
        assert second.setup.resume_handle == "handle-2" and first.closed
        await h.browser.send_bytes(b"\x02" * 640)
        await h.browser.send_json({"type": "ping"})
        await h.browser.event("pong")
        assert second.audio_sent() == [b"\x02" * 640]


@in_loop
async def test_an_unrecoverable_close_ends_the_conversation():
    """An error close is reported as a fatal `upstream_error` with its code, then the socket closes 1011."""
    async with Harness() as h:
        await h.browser.event("ready")
        h.engine.sessions[0].fail(1007, "Request contains an invalid argument.")
        error = await h.browser.event("error")
        assert error["code"] == "upstream_error" and error["fatal"] and "1007" in error["message"]
        assert await h.browser.closed() == 1011


@in_loop
async def test_an_unreachable_engine_is_upstream_unavailable():
    """When the engine cannot be reached the browser is told `upstream_unavailable` and the socket closes 1011."""
    h = Harness()
    h.engine.refusals.append(UpstreamUnavailable("no route"))
    async with h:
        error = await h.browser.event("error")
        assert error["code"] == "upstream_unavailable" and error["fatal"]
        assert await h.browser.closed() == 1011


@in_loop
async def test_a_refused_session_is_an_upstream_error():
    """An engine refusing the setup reaches the browser as `upstream_error` with the engine's code."""
    h = Harness()
    h.engine.refusals.append(UpstreamClosed(1008, "models/x is not found"))
    async with h:
        error = await h.browser.event("error")
        assert error["code"] == "upstream_error" and "1008" in error["message"]


@in_loop
async def test_end_is_answered_and_closes_both_sides():
    """`end` gets `ended`, a 1000 close, and the upstream session is closed."""
    async with Harness() as h:
        ready = await h.browser.event("ready")
        await h.browser.send_json({"type": "end"})
        ended = await h.browser.event("ended")
        assert ended["session_id"] == ready["session_id"]
        assert await h.browser.closed() == 1000
        assert h.engine.sessions[0].closed


@in_loop
async def test_a_closed_model_line_starts_afresh_within_the_turn():
    """After a model utterance is closed mid-turn, the next transcript starts a new line; `complete` has the turn."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.push(ev.Transcription("model", "Hello.", True))
        upstream.push(ev.Transcription("model", " More", False))
        upstream.push(ev.TurnComplete(None))
        first, second, last = [await h.browser.event("transcript") for _ in range(3)]
        assert (first["text"], first["final"]) == ("Hello.", True)
        assert (second["text"], second["final"]) == (" More", False)
        assert (last["text"], last["final"]) == (" More", True)
        assert (await h.browser.event("complete"))["full_text"] == "Hello. More"


@in_loop
async def test_model_text_parts_stream_as_chunks_in_text_mode():
    """In text mode, model text parts arrive as ordered `chunk`s and `complete` carries them all."""
    async with Harness(mode=Mode.TEXT) as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.push(ev.ModelText("Good "), ev.ModelText("morning."))
        upstream.push(ev.TurnComplete(None))
        assert [(await h.browser.event("chunk"))["text"] for _ in range(2)] == ["Good ", "morning."]
        assert (await h.browser.event("complete"))["full_text"] == "Good morning."


# --- replacing the upstream session --------------------------------------------------------


async def sent_to(upstream, count: int) -> list[bytes]:
    """Wait until ``upstream`` has received ``count`` audio frames; those frames."""
    async def enough() -> None:
        while len(upstream.audio_sent()) < count:
            await asyncio.sleep(0.001)
    await asyncio.wait_for(enough(), WAIT_S)
    return upstream.audio_sent()


@in_loop
async def test_goaway_at_rest_hands_over_at_once_without_losing_a_frame():
    """A GoAway while nobody speaks opens the new session now; every frame reaches one session, in order."""
    async with Harness() as h:
        await h.browser.event("ready")
        old = h.engine.sessions[0]
        old.push(ev.Resumption("h-1", True))
        await h.browser.event("resumable")
        frames = [i.to_bytes(2, "little") * 320 for i in range(1, 41)]  # quiet: nobody is speaking
        for frame in frames[:20]:
            await h.browser.send_bytes(frame)
        await sent_to(old, 20)
        old.push(ev.GoAway(50.0))
        for frame in frames[20:]:
            await h.browser.send_bytes(frame)
        assert (await h.browser.event("reconnecting"))["reason"] == "go_away"
        await h.browser.event("resumed")
        new = await h.engine.next_session(2)
        assert new.setup.resume_handle == "h-1" and old.closed
        received = old.audio_sent() + await sent_to(new, 40 - len(old.audio_sent()))
        assert received == frames
        assert h.conversation.stats.audio_frames_dropped == 0


@in_loop
async def test_goaway_mid_reply_waits_for_the_next_resumable_point():
    """A GoAway during a reply lets the reply finish on the old session, then resumes by the newer handle."""
    async with Harness() as h:
        await h.browser.event("ready")
        old = h.engine.sessions[0]
        old.push(ev.Resumption("h-1", True))
        old.push(ev.ModelAudio(b"\x01\x00" * 480))
        old.push(ev.GoAway(50.0))
        old.push(ev.ModelAudio(b"\x02\x00" * 480), ev.Transcription("model", "still talking", False))
        assert await h.browser.audio() == b"\x01\x00" * 480
        assert await h.browser.audio() == b"\x02\x00" * 480  # not cut by the GoAway
        assert len(h.engine.sessions) == 1
        old.push(ev.TurnComplete(None))
        old.push(ev.Resumption("h-2", True))
        await h.browser.event("complete")
        assert (await h.browser.event("reconnecting"))["reason"] == "go_away"
        await h.browser.event("resumed")
        assert (await h.engine.next_session(2)).setup.resume_handle == "h-2"


@in_loop
async def test_goaway_without_a_resumable_point_hands_over_before_the_time_is_up():
    """When no resumable point comes, the handover happens anyway, a margin before the connection closes."""
    async with Harness() as h:
        await h.browser.event("ready")
        old = h.engine.sessions[0]
        old.push(ev.Resumption("h-1", True), ev.ModelAudio(b"\x01\x00" * 480))
        old.push(ev.GoAway(5.2))  # the handover is due 5 s before: 0.2 s from now
        assert (await h.browser.event("reconnecting"))["reason"] == "go_away"
        await h.browser.event("resumed")
        assert (await h.engine.next_session(2)).setup.resume_handle == "h-1"


@in_loop
async def test_a_frame_taken_when_the_session_dropped_is_sent_on_the_next_one():
    """Frames the sender held when the old session closed under it reach the new session; none is lost."""
    async with Harness() as h:
        await h.browser.event("ready")
        old = h.engine.sessions[0]
        old.push(ev.Resumption("h-1", True))
        await h.browser.event("resumable")
        old.fail(1006, "lost", recoverable=True)  # sends fail from now on; the receiver sees the close too
        frames = [i.to_bytes(2, "little") * 320 for i in range(1, 11)]
        for frame in frames:
            await h.browser.send_bytes(frame)
        await h.browser.event("resumed")
        new = await h.engine.next_session(2)
        assert await sent_to(new, 10) == frames and old.audio_sent() == []
        assert h.conversation.stats.audio_frames_dropped == 0


@in_loop
async def test_a_stalled_upstream_is_resumed_on_a_new_session():
    """Nothing from the engine for `stall_s` after a typed turn: `reconnecting(stall)`, a new session, counted."""
    async with Harness(policy=relay.Policy(stall_s=0.3)) as h:
        await h.browser.event("ready")
        old = h.engine.sessions[0]
        old.push(ev.Resumption("h-1", True))
        await h.browser.event("resumable")
        await h.browser.send_json({"type": "text", "text": "hello?"})
        assert (await h.browser.event("reconnecting"))["reason"] == "stall"
        await h.browser.event("resumed")
        assert (await h.engine.next_session(2)).setup.resume_handle == "h-1"
        assert h.conversation.stats.reconnect_reasons == {"stall": 1}


async def typed_to(upstream, text: str) -> None:
    """Wait until ``upstream`` has received the typed turn ``text``."""
    async def arrived() -> None:
        while ("text", text) not in upstream.sent:
            await asyncio.sleep(0.001)
    await asyncio.wait_for(arrived(), WAIT_S)


@in_loop
async def test_an_engine_falling_silent_in_mid_answer_is_a_stall():
    """Model audio is not the end of the answer: silence for `stall_s` before the turn is complete is a stall."""
    async with Harness(policy=relay.Policy(stall_s=0.3)) as h:
        await h.browser.event("ready")
        old = h.engine.sessions[0]
        old.push(ev.Resumption("h-1", True))
        await h.browser.event("resumable")
        await h.browser.send_json({"type": "text", "text": "hello?"})
        await typed_to(old, "hello?")
        old.push(ev.ModelAudio(b"\x01\x00" * 480))
        assert (await h.browser.event("reconnecting"))["reason"] == "stall"


@pytest.mark.parametrize("answer_over", [ev.TurnComplete(None), ev.Interrupted()], ids=["complete", "interrupted"])
@in_loop
async def test_an_answered_turn_is_not_a_stall(answer_over):
    """Once the answer is over (turn complete, or interrupted), the engine's silence is no stall."""
    async with Harness(policy=relay.Policy(stall_s=0.3)) as h:
        await h.browser.event("ready")
        old = h.engine.sessions[0]
        old.push(ev.Resumption("h-1", True))
        await h.browser.event("resumable")
        await h.browser.send_json({"type": "text", "text": "hello?"})
        await typed_to(old, "hello?")
        old.push(ev.ModelAudio(b"\x01\x00" * 480), answer_over)
        await asyncio.sleep(1.0)
        assert h.conversation.stats.reconnects == 0


@in_loop
async def test_the_end_of_spoken_turn_starts_the_stall_clock():
    """Speech followed by the scenario's silence counts as a finished turn the engine must answer."""
    async with Harness(policy=relay.Policy(stall_s=0.3)) as h:
        await h.browser.event("ready")
        h.engine.sessions[0].push(ev.Resumption("h-1", True))
        await h.browser.event("resumable")
        for _ in range(25):  # 0.5 s of speech, then 1 s of silence (the setup's VAD waits 0.7 s)
            await h.browser.send_bytes(b"\x00\x10" * 320)
        for _ in range(50):
            await h.browser.send_bytes(bytes(640))
        assert (await h.browser.event("reconnecting"))["reason"] == "stall"


@in_loop
async def test_a_stall_without_a_handle_ends_the_conversation():
    """A stalled engine that gave no resumption handle cannot be resumed: `upstream_unavailable`, close 1011."""
    async with Harness(policy=relay.Policy(stall_s=0.3)) as h:
        await h.browser.event("ready")
        await h.browser.send_json({"type": "text", "text": "hello?"})
        error = await h.browser.event("error")
        assert error["code"] == "upstream_unavailable" and error["fatal"]
        assert await h.browser.closed() == 1011


@in_loop
async def test_quota_at_setup_is_upstream_quota_and_try_again_later():
    """The engine refusing for quota is `upstream_quota`, in plain words, closed with 1013."""
    h = Harness()
    h.engine.refusals.append(UpstreamQuota(429, "HTTP 429 at handshake"))
    async with h:
        error = await h.browser.event("error")
        assert error["code"] == "upstream_quota" and error["fatal"]
        assert "usage limit" in error["message"] and "429" not in error["message"]
        assert await h.browser.closed() == 1013


@in_loop
async def test_quota_mid_conversation_is_upstream_quota():
    """A session closed mid-way for quota ends the conversation with `upstream_quota` and 1013, not a resume."""
    async with Harness() as h:
        await h.browser.event("ready")
        h.engine.sessions[0].push(ev.Resumption("h-1", True))
        h.engine.sessions[0]._inbox.put_nowait(UpstreamQuota(1011, "RESOURCE_EXHAUSTED: quota"))
        assert (await h.browser.event("error"))["code"] == "upstream_quota"
        assert await h.browser.closed() == 1013
        assert len(h.engine.sessions) == 1


# --- tool calls: the outcome of the role-play ------------------------------------------------


@in_loop
async def test_an_outcome_tool_call_is_answered_recorded_and_announced():
    """The customer's schedule_meeting call gets a result for its id, an `outcome` event and a recorded outcome."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.push(ev.ToolCall((ev.FunctionCall("fc-1", "schedule_meeting",
                                                   {"date": "2026-12-03", "time": "14:00", "topic": "demo"}),)))
        outcome = await h.browser.event("outcome")
        assert (outcome["name"], outcome["details"], outcome["cancelled"]) == (
            "appointment", {"date": "2026-12-03", "time": "14:00", "topic": "demo"}, False)
        await h.browser.send_json({"type": "ping"})
        await h.browser.event("pong")
        assert ("tool_result", ("fc-1", "schedule_meeting", {"result": "ok"})) in upstream.sent
        assert h.recorder.calls == [("outcome", "appointment", {"date": "2026-12-03", "time": "14:00",
                                                                "topic": "demo"})]


@in_loop
async def test_an_undeclared_function_gets_an_error_and_no_outcome():
    """A call to a function the server never declared is answered with an error and changes nothing else."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.push(ev.ToolCall((ev.FunctionCall("fc-9", "transfer_money", {"amount": 1000}),)))
        await h.browser.send_json({"type": "ping"})
        await h.browser.event("pong")
        results = [payload for kind, payload in upstream.sent if kind == "tool_result"]
        assert results == [("fc-9", "transfer_money", {"error": "unknown function transfer_money"})]
        assert h.recorder.calls == []


@in_loop
async def test_a_cancelled_call_withdraws_its_outcome():
    """When the AI party cancels the call, the outcome is withdrawn: an `outcome` event with cancelled, recorded."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.push(ev.ToolCall((ev.FunctionCall("fc-1", "schedule_meeting", {"date": "2026-12-03"}),)))
        await h.browser.event("outcome")
        upstream.push(ev.ToolCallCancellation(("fc-1", "fc-unknown")))
        withdrawn = await h.browser.event("outcome")
        assert (withdrawn["name"], withdrawn["cancelled"]) == ("appointment", True)
        assert h.recorder.calls[-1] == ("outcome_cancelled", "appointment")


# --- barge-in: what the user heard ---------------------------------------------------------


@in_loop
async def test_the_pages_playback_report_tells_the_engine_what_was_heard():
    """After a barge-in the page's `playback` report reaches the engine, which forgets the unplayed rest."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.push(ev.ModelAudio(bytes(48000)))  # 1 s of model audio sent
        upstream.push(ev.Interrupted())
        await h.browser.event("interrupted")
        await h.browser.send_json({"type": "playback", "played_ms": 420})
        await h.browser.send_json({"type": "ping"})
        await h.browser.event("pong")
        assert [p for kind, p in upstream.sent if kind == "playback"] == [420]


@in_loop
async def test_without_a_report_the_engine_hears_what_was_sent():
    """A page that never reports gets the relay's own count: the model audio sent in the interrupted turn."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        upstream.push(ev.ModelAudio(bytes(48000)), ev.ModelAudio(bytes(24000)))  # 1.5 s sent
        upstream.push(ev.Interrupted())
        await h.browser.event("interrupted")

        async def reported() -> list:
            while not [p for kind, p in upstream.sent if kind == "playback"]:
                await asyncio.sleep(0.01)
            return [p for kind, p in upstream.sent if kind == "playback"]
        assert await asyncio.wait_for(reported(), WAIT_S) == [1500]
