"""The one seam to Gemini Live: open a session with google-genai, then move frames.

:func:`connect` lets the SDK (``client.aio.live.connect``) build the URL, the
credentials, TLS and the ``setup`` message from a :class:`LiveSetup`. Frames that
repeat 50 times a second are encoded/decoded by :mod:`livetalk.livewire` on the
SDK's own connection (see that module for the measured reason).

Errors (all :class:`UpstreamError`)::

    UpstreamUnavailable   Gemini could not be reached (network, TLS, timeout, HTTP 5xx)
    UpstreamClosed        Gemini refused or closed the session: ``code`` and ``reason``
                          are its WebSocket close code (1007/1008/1011…) or HTTP status
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl

from google.genai import errors as genai_errors
from google.genai import types
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidHandshake

from prompts import Vad

from . import livewire

log = logging.getLogger("livetalk.live")

ABNORMAL_CLOSURE = 1006
MAX_REASON_CHARS = 123
CLOSE_TIMEOUT_S = 0.5  # how long we wait for Gemini's close reply before dropping TCP


class UpstreamError(Exception):
    """Gemini Live failed; subclasses say how."""


class UpstreamUnavailable(UpstreamError):
    """Gemini could not be reached."""


class UpstreamClosed(UpstreamError):
    """Gemini closed (or refused) the session with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason[:MAX_REASON_CHARS]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LiveSetup:
    """What the relay asks of a Live session; the server derives it from a scenario."""

    model: str
    system_instruction: str
    voice: str
    vad: Vad
    resume_handle: str | None = None


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
    )


class LiveConnection:
    """One open Live session. Use :func:`connect`; call :meth:`close` when done."""

    def __init__(self, context, session) -> None:
        self._context = context  # the SDK's async context manager, exited on close
        self._ws = session._ws  # the SDK's websockets connection (see module docstring)
        self._closed = False

    async def send_audio(self, pcm: bytes, rate_hz: int = 16000) -> None:
        await self._send(livewire.encode_audio(pcm, rate_hz))

    async def send_text(self, text: str) -> None:
        await self._send(livewire.encode_text(text).encode())

    async def send_audio_end(self) -> None:
        await self._send(livewire.AUDIO_STREAM_END.encode())

    async def send_activity_start(self) -> None:
        await self._send(livewire.ACTIVITY_START.encode())

    async def send_activity_end(self) -> None:
        await self._send(livewire.ACTIVITY_END.encode())

    async def _send(self, message: bytes) -> None:
        try:
            await self._ws.send(message, text=True)
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None

    async def receive(self) -> list[livewire.LiveEvent]:
        """The events of the next server frame; raises :class:`UpstreamClosed` at the end."""
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

    def abort(self) -> None:
        """Drop the connection now (no closing handshake); safe from any loop callback."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._ws.transport.abort()


async def connect(client, setup: LiveSetup, *, timeout_s: float) -> LiveConnection:
    """Open a Live session for ``setup`` through the SDK; raises :class:`UpstreamError`."""
    context = client.aio.live.connect(model=setup.model, config=build_config(setup))
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
        raise UpstreamClosed(status, f"HTTP {status} at handshake") from None
    except (OSError, ssl.SSLError, InvalidHandshake, ConnectionClosed) as exc:
        raise UpstreamUnavailable(f"cannot reach Gemini ({type(exc).__name__})") from None
    return LiveConnection(context, session)


def _api_error(exc: genai_errors.APIError) -> UpstreamError:
    code = exc.code or ABNORMAL_CLOSURE
    reason = str(exc.details or exc.message or "")
    if code == ABNORMAL_CLOSURE:
        return UpstreamUnavailable("the connection to Gemini was lost")
    return UpstreamClosed(code, reason)


def _closed_error(exc: ConnectionClosed) -> UpstreamClosed:
    rcvd = exc.rcvd
    if rcvd is None:
        return UpstreamClosed(ABNORMAL_CLOSURE, "connection to Gemini lost without a close frame")
    return UpstreamClosed(rcvd.code, rcvd.reason)
