"""The relay's state machine against an in-memory engine and browser: the whole lifecycle in milliseconds."""
from __future__ import annotations

import asyncio
import functools

from livetalk import engine as ev
from livetalk.engine import UpstreamClosed, UpstreamUnavailable
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


@in_loop
async def test_user_audio_reaches_the_upstream_in_order():
    """Microphone frames are sent upstream unchanged and in order."""
    async with Harness() as h:
        await h.browser.event("ready")
        upstream = h.engine.sessions[0]
        frames = [bytes([i]) * 640 for i in range(20)]
        for frame in frames:
            await h.browser.send_bytes(frame)
        await h.browser.send_json({"type": "ping", "t": 1})
        await h.browser.event("pong")
        assert upstream.audio_sent() == frames


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
