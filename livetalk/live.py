"""The Gemini Live engine: open a session with google-genai, then move frames on its connection.

:class:`GeminiEngine` lets the SDK (``client.aio.live.connect``) build the URL, the credentials, TLS and the
``setup`` message from a :class:`~livetalk.engine.LiveSetup`. Frames that repeat 50 times a second are
encoded/decoded by :mod:`livetalk.livewire` on the SDK's own connection (see that module for the measured
reason); :func:`sdk_websocket` is the one place that reaches into the SDK for it.

Errors are the engine seam's (:mod:`livetalk.engine`): :class:`~livetalk.engine.UpstreamUnavailable` when
Gemini cannot be reached, :class:`~livetalk.engine.UpstreamClosed` with Gemini's close code (1007/1008/1011…)
or HTTP status and reason when it refuses or closes the session.
"""
from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from google.genai import errors as genai_errors
from google.genai import types
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from . import livewire
from .engine import (ABNORMAL_CLOSURE, Event, LiveSetup, UpstreamClosed, UpstreamError, UpstreamQuota,
                     UpstreamUnavailable, received_close)

CHECKED_SDK_VERSION = "3.6.1"  # the google-genai release sdk_websocket was checked against (tests/test_live.py)
INPUT_RATE_HZ = 16000
OUTPUT_RATE_HZ = 24000
CLOSE_TIMEOUT_S = 0.5  # how long we wait for Gemini's close reply before dropping TCP
HTTP_TOO_MANY_REQUESTS = 429
_RECOVERABLE_CLOSES = frozenset({1000, 1001, ABNORMAL_CLOSURE})
_QUOTA_MARKS = ("RESOURCE_EXHAUSTED", "QUOTA")  # how Gemini's closes say the project is over its limits


def build_config(setup: LiveSetup) -> types.LiveConnectConfig:
    """The SDK config: audio out, both transcriptions, resumption, sliding-window context."""
    vad = setup.vad
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction=types.Content(role="user", parts=[types.Part(text=setup.system_instruction)]),
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=setup.voice))
        ),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=not vad.automatic,
                start_of_speech_sensitivity=types.StartSensitivity(vad.start_sensitivity),
                end_of_speech_sensitivity=types.EndSensitivity(vad.end_sensitivity),
                prefix_padding_ms=vad.prefix_ms,
                silence_duration_ms=vad.silence_ms,
            ),
            activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
        ),
        session_resumption=types.SessionResumptionConfig(handle=setup.resume_handle),
        context_window_compression=types.ContextWindowCompressionConfig(
            sliding_window=types.SlidingWindow(),
        ),
        tools=[types.Tool(function_declarations=[
            types.FunctionDeclaration(name=tool.name, description=tool.description,
                                      parameters_json_schema=tool.parameters)
            for tool in setup.tools
        ])] if setup.tools else None,
    )


def write_now(ws: Any, message: bytes) -> bool:
    """Send ``message`` (UTF-8) as one text frame on the websockets connection ``ws`` at once, when that needs no
    waiting: the connection is open, no fragmented message is being sent and the transport is not pushing back.

    This is ``ws.send(message, text=True)`` without its coroutine: the frame goes through the connection's own
    sans-I/O protocol and ``send_data`` in the same order as ``send`` would write it. False: nothing was written;
    use ``send``, which waits.
    """
    if ws.protocol.state is not State.OPEN or ws.send_in_progress is not None or ws.paused:
        return False
    ws.protocol.send_text(message)
    ws.send_data()
    return True


def sdk_websocket(session: Any) -> Any:
    """The websockets connection under an SDK ``AsyncSession`` (google-genai 3.6.x keeps it as ``_ws``).

    The only reach into the SDK's private state; tests/test_live.py pins it to the SDK version, so an upgrade
    that moves it fails one clear test instead of every conversation.
    """
    ws = getattr(session, "_ws", None)
    if ws is None or not hasattr(ws, "recv") or not hasattr(ws, "send"):
        raise RuntimeError("google-genai's AsyncSession no longer keeps its connection in _ws")
    return ws


class LiveConnection:
    """One open Gemini Live session (an :class:`~livetalk.engine.Upstream`). Close it when done."""

    def __init__(self, context: Any, session: Any) -> None:
        self._context = context  # the SDK's async context manager, exited on close
        self._session = session  # for the rare messages the SDK encodes itself (tool results)
        self._ws = sdk_websocket(session)
        self._closed = False

    async def send_audio(self, pcm: bytes) -> None:
        await self._send(livewire.encode_audio(pcm, INPUT_RATE_HZ))

    def send_audio_now(self, pcm: bytes) -> bool:
        return write_now(self._ws, livewire.encode_audio(pcm, INPUT_RATE_HZ))

    async def send_text(self, text: str) -> None:
        await self._send(livewire.encode_text(text).encode())

    async def send_audio_end(self) -> None:
        await self._send(livewire.AUDIO_STREAM_END.encode())

    async def send_activity_start(self) -> None:
        await self._send(livewire.ACTIVITY_START.encode())

    async def send_activity_end(self) -> None:
        await self._send(livewire.ACTIVITY_END.encode())

    async def send_tool_result(self, call_id: str, name: str, result: dict) -> None:
        """Answer a function call with scheduling SILENT: the model goes on talking without announcing it."""
        response = types.FunctionResponse(id=call_id, name=name, response=result,
                                          scheduling=types.FunctionResponseScheduling.SILENT)
        try:
            await self._session.send_tool_response(function_responses=[response])
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None

    async def send_playback(self, played_ms: int) -> None:
        """Nothing to do: Gemini cuts its own memory of an interrupted answer."""

    async def _send(self, message: bytes) -> None:
        try:
            await self._ws.send(message, text=True)
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None

    async def receive(self) -> list[Event]:
        """The events of the next server frame; raises :class:`~livetalk.engine.UpstreamClosed` at the end."""
        try:
            raw = await self._ws.recv(decode=False)
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None
        return livewire.parse_server_message(raw)

    async def close(self) -> None:
        """Close the session (normal closure); never raises."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._context.__aexit__(None, None, None), CLOSE_TIMEOUT_S)
        with contextlib.suppress(Exception):
            self._ws.transport.abort()  # no-op once closed; ends a peer that never answered


class GeminiEngine:
    """The :class:`~livetalk.engine.Engine` for Gemini Live through a google-genai client."""

    name = "gemini"
    label = "Gemini"
    input_rate = INPUT_RATE_HZ
    output_rate = OUTPUT_RATE_HZ

    def __init__(self, client: Any) -> None:
        self._client = client

    async def connect(self, setup: LiveSetup, *, timeout_s: float) -> LiveConnection:
        """Open a Live session for ``setup`` through the SDK; raises :class:`~livetalk.engine.UpstreamError`."""
        context = self._client.aio.live.connect(model=setup.model, config=build_config(setup))
        try:
            session = await asyncio.wait_for(context.__aenter__(), timeout_s)
        except asyncio.TimeoutError:
            raise UpstreamUnavailable(f"Gemini did not answer within {timeout_s:g} s") from None
        except genai_errors.APIError as exc:
            raise _api_error(exc) from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status >= 500:
                raise UpstreamUnavailable(f"Gemini refused the connection (HTTP {status})") from None
            raise _closed(status, f"HTTP {status} at handshake") from None
        except (OSError, ssl.SSLError, InvalidHandshake, ConnectionClosed) as exc:
            raise UpstreamUnavailable(f"cannot reach Gemini ({type(exc).__name__})") from None
        return LiveConnection(context, session)


def _api_error(exc: genai_errors.APIError) -> UpstreamError:
    code = exc.code or ABNORMAL_CLOSURE
    reason = str(exc.details or exc.message or "")
    if code == ABNORMAL_CLOSURE:
        return UpstreamUnavailable("the connection to Gemini was lost")
    return _closed(code, reason)


def _closed_error(exc: ConnectionClosed) -> UpstreamClosed:
    return _closed(*received_close(exc, "Gemini"))


def _closed(code: int, reason: str) -> UpstreamClosed:
    if code == HTTP_TOO_MANY_REQUESTS or any(mark in reason.upper() for mark in _QUOTA_MARKS):
        return UpstreamQuota(code, reason)
    recoverable = code in _RECOVERABLE_CLOSES or "unavailable" in reason.lower()
    return UpstreamClosed(code, reason, recoverable=recoverable)
