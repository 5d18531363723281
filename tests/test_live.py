"""The Gemini engine adapter: a real session through google-genai, and the one reach into the SDK's internals."""
from __future__ import annotations

import asyncio

import google.genai
import pytest
import websockets

from livetalk import live
from livetalk.engine import LiveSetup, UpstreamClosed, Vad
from livetalk.services import Services

SETUP = LiveSetup(model="gemini-3.8-live", system_instruction="Be brief.", voice="Kore", vad=Vad())


def test_the_installed_sdk_is_the_one_the_adapter_was_checked_against():
    """An upgraded google-genai fails here first: re-check live.sdk_websocket, then update CHECKED_SDK_VERSION."""
    assert google.genai.__version__ == live.CHECKED_SDK_VERSION, (
        f"google-genai {google.genai.__version__} is installed; livetalk/live.py reaches into AsyncSession._ws, "
        f"checked against {live.CHECKED_SDK_VERSION}")


@pytest.fixture
def engine(settings, emu):
    """The Gemini engine of a service configured for the emulator."""
    services = Services(settings)
    yield services.engine()
    services.close()


def test_a_live_session_exposes_the_sdk_connection(engine, emu):
    """Through the real SDK, the adapter finds the session's websockets connection and relays a typed turn."""

    async def converse() -> list:
        upstream = await engine.connect(SETUP, timeout_s=5)
        try:
            assert isinstance(upstream._ws, websockets.ClientConnection)
            await upstream.send_text("こんにちは")
            events = []
            while not any(type(e).__name__ == "TurnComplete" for e in events):
                events += await asyncio.wait_for(upstream.receive(), 5)
            return events
        finally:
            await upstream.close()

    events = asyncio.run(converse())
    assert any(type(e).__name__ == "ModelAudio" for e in events)


def test_the_adapter_refuses_an_sdk_without_the_connection():
    """If a future SDK moves its connection, the adapter says so plainly instead of failing per frame."""

    class MovedSession:
        pass

    with pytest.raises(RuntimeError, match="_ws"):
        live.sdk_websocket(MovedSession())


@pytest.mark.parametrize(
    ("code", "reason", "recoverable"),
    [(1000, "bye", True), (1001, "going away", True), (1006, "", True), (1011, "The service is currently unavailable.", True),
     (1011, "Internal error encountered.", False), (1007, "Request contains an invalid argument.", False),
     (1008, "models/x is not found", False)],
)
def test_which_closes_a_new_connection_may_continue(code, reason, recoverable):
    """Normal, abnormal and 'unavailable' closes are worth resuming; argument and policy errors are not."""
    error = live._closed(code, reason)
    assert isinstance(error, UpstreamClosed) and error.recoverable is recoverable


def test_audio_written_at_once_keeps_its_place_among_awaited_sends(engine, emu):
    """Frames written at once (send_audio_now) and awaited ones reach Gemini as one stream, in the order sent:
    the echo emulator answers each frame with its own first bytes, so the replies name the frames."""
    emu.control.set_mode("echo")
    frames = [i.to_bytes(8, "little") + bytes(632) for i in range(1, 41)]

    async def stream() -> list[int]:
        upstream = await engine.connect(SETUP, timeout_s=5)
        try:
            for i, frame in enumerate(frames):
                if i % 3 == 0 or not upstream.send_audio_now(frame):
                    await upstream.send_audio(frame)
            echoed = b""
            while len(echoed) < len(frames) * 960:
                for event in await asyncio.wait_for(upstream.receive(), 5):
                    if type(event).__name__ == "ModelAudio":
                        echoed += event.pcm
            return [int.from_bytes(echoed[k:k + 8], "little") for k in range(0, len(echoed), 960)]
        finally:
            await upstream.close()

    assert asyncio.run(stream()) == list(range(1, 41))


def test_nothing_is_written_at_once_on_a_closed_connection(engine, emu):
    """Once the session is closed, send_audio_now declines (False) instead of writing into a dead socket."""

    async def closed_then_write() -> bool:
        upstream = await engine.connect(SETUP, timeout_s=5)
        await upstream.close()
        return upstream.send_audio_now(bytes(640))

    assert asyncio.run(closed_then_write()) is False
