"""The OpenAI Realtime engine: open a session with the ``openai`` SDK, configure it once, then move events.

:class:`OpenAIEngine` opens ``client.realtime.connect(model=…)`` (the GA surface: the SDK builds the URL,
the ``Authorization`` header and TLS), sends one ``session.update`` built from the
:class:`~livetalk.engine.LiveSetup` (:func:`session_config`) and waits for ``session.updated``. The
resulting :class:`OpenAIConnection` is an :class:`~livetalk.engine.Upstream`: audio appends and every
server event go through :mod:`livetalk.openaiwire` on the SDK's public ``send_raw`` / ``recv_bytes`` (see
that module for the measured reason); the rare client events go through the SDK's typed methods.

Session configuration (``setup.model`` names a Gemini model: the engine's own ``model`` is used instead):

=====================================  =========================================================================
``setup.system_instruction``           ``instructions``
``setup.voice``                        ``audio.output.voice`` when it is an OpenAI voice (``marin``…) or a custom
                                       voice id (``voice_…``); any other name (a Gemini voice) → ``default_voice``
``setup.tools``                        ``tools`` (``type`` function, name, description, JSON-schema parameters)
audio                                  PCM16 24 kHz in and out; input transcription on (``transcription_model``)
``vad.automatic`` False                ``turn_detection`` null: push-to-talk commits at ``activity_end``
``vad.start_sensitivity``              ``server_vad`` ``threshold``: HIGH 0.4 (quieter speech starts a turn),
                                       LOW 0.6 (noise less likely to), anything else 0.5 (the service default)
``vad.prefix_ms``                      ``prefix_padding_ms`` as given
``vad.silence_ms`` / end sensitivity   ``silence_duration_ms``: ``silence_ms``, × 0.75 for END_SENSITIVITY_HIGH
                                       (turns end sooner; at least 200 ms); the service has no separate knob
(always)                               ``create_response`` and ``interrupt_response`` true
=====================================  =========================================================================

**Resumption.** OpenAI sessions cannot be resumed by handle: after each response the connection emits a
:class:`~livetalk.engine.Resumption` whose handle *is* the conversation (format:
:func:`livetalk.openaiwire.encode_handle`), and :meth:`OpenAIEngine.connect` with ``setup.resume_handle``
seeds the new session with those messages (user ``input_text``, assistant ``output_text`` items) without
asking for a response.

**Barge-in.** Speech (server VAD) while the model's audio is still being generated or played — a playout
clock over the audio forwarded — becomes :class:`~livetalk.engine.Interrupted`; so does a typed turn or a
push-to-talk start, which also cancel the active response. The interrupted item's late audio is dropped;
:meth:`OpenAIConnection.send_playback` then truncates it to what the user heard, so the model forgets the
rest.

Errors are the engine seam's (:mod:`livetalk.engine`): :class:`~livetalk.engine.UpstreamUnavailable` for
network, TLS, timeouts and HTTP 5xx at the handshake; :class:`~livetalk.engine.UpstreamQuota` for a 429
(``insufficient_quota``, ``rate_limit_exceeded``) or a close that names the quota;
:class:`~livetalk.engine.UpstreamClosed` otherwise, ``recoverable`` for closes a new session may continue
(1000, 1001, 1006, 1011–1014), not for refusals (HTTP 401/403, close 3000, a refused configuration or an
unusable resume handle).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from openai import AsyncOpenAI, OpenAIError
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from . import openaiwire
from .engine import (
    ABNORMAL_CLOSURE,
    Event,
    LiveSetup,
    UpstreamClosed,
    UpstreamError,
    UpstreamQuota,
    UpstreamUnavailable,
    Vad,
    received_close,
)
from .openaiwire import BYTES_PER_MS, QUIET_EVENT_PREFIX, RATE_HZ, History, SessionState

log = logging.getLogger("livetalk.openai")

OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"})
DEFAULT_VOICE = "marin"
TRANSCRIPTION_MODEL = "gpt-live-transcribe"
CLOSE_TIMEOUT_S = 0.5  # how long we wait for OpenAI's close reply before dropping TCP
MIN_COMMIT_MS = 100  # the service refuses to commit less audio than this
MIN_SILENCE_MS = 200
THRESHOLDS = types.MappingProxyType({"START_SENSITIVITY_HIGH": 0.4, "START_SENSITIVITY_LOW": 0.6})
DEFAULT_THRESHOLD = 0.5
HIGH_END_SILENCE_FACTOR = 0.75
INVALID_PAYLOAD = 1007  # our close code for a session OpenAI refused to configure, or an unusable handle
HTTP_TOO_MANY_REQUESTS = 429
SETUP_EVENT_ID = "lt_setup"
SEED_ITEM_ID = "lt_seed_{n}"
_RECOVERABLE_CLOSES = frozenset({1000, 1001, ABNORMAL_CLOSURE, 1011, 1012, 1013, 1014})
_QUOTA_MARKS = ("insufficient_quota", "rate_limit")
_CANCEL_EVENT = QUIET_EVENT_PREFIX + "cancel"  # the response may end on its own meanwhile
_FLUSH_COMMIT_EVENT = QUIET_EVENT_PREFIX + "commit"  # server VAD may commit the same audio meanwhile
_FLUSH_RESPONSE_EVENT = QUIET_EVENT_PREFIX + "respond"  # …and start its own response
_TRUNCATE_EVENT = QUIET_EVENT_PREFIX + "truncate"


def session_config(setup: LiveSetup, *, voice: str | dict, transcription_model: str = TRANSCRIPTION_MODEL,
                   modality: str = "audio") -> dict[str, Any]:
    """The GA ``session`` object of the one ``session.update`` (see the module doc for the mapping)."""
    pcm = {"type": "audio/pcm", "rate": RATE_HZ}
    session: dict[str, Any] = {
        "type": "realtime",
        "instructions": setup.system_instruction,
        "output_modalities": [modality],
        "audio": {
            "input": {"format": pcm, "transcription": {"model": transcription_model},
                      "turn_detection": turn_detection(setup.vad)},
            "output": {"format": pcm, "voice": voice},
        },
    }
    if setup.tools:
        session["tools"] = [{"type": "function", "name": tool.name, "description": tool.description,
                             "parameters": tool.parameters} for tool in setup.tools]
        session["tool_choice"] = "auto"
    return session


def turn_detection(vad: Vad) -> dict[str, Any] | None:
    """``server_vad`` tuned from the scenario's VAD, or None (push-to-talk)."""
    if not vad.automatic:
        return None
    silence_ms = vad.silence_ms
    if vad.end_sensitivity == "END_SENSITIVITY_HIGH":
        silence_ms = max(MIN_SILENCE_MS, round(silence_ms * HIGH_END_SILENCE_FACTOR))
    return {"type": "server_vad", "threshold": THRESHOLDS.get(vad.start_sensitivity, DEFAULT_THRESHOLD),
            "prefix_padding_ms": vad.prefix_ms, "silence_duration_ms": silence_ms,
            "create_response": True, "interrupt_response": True}


class OpenAIConnection:
    """One open Realtime session (an :class:`~livetalk.engine.Upstream`). Close it when done.

    Args:
        conn: the SDK's open ``AsyncRealtimeConnection``.
        state: what the client knows of the session (its conversation so far included).
        manual: push-to-talk (no server VAD): the client commits the user's turns.
        backlog: server events read while the session was configured, for :meth:`receive` to give first.
        close_timeout_s: :meth:`close` gives up waiting for the close handshake after about twice this.
        clock: monotonic seconds (the playout clock of the model's audio).
    """

    def __init__(self, conn: AsyncRealtimeConnection, state: SessionState, *, manual: bool, backlog: list[bytes] | None = None,
                 close_timeout_s: float = CLOSE_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._conn = conn
        self._state = state
        self._manual = manual
        self._backlog = backlog or []
        self._close_timeout_s = close_timeout_s
        self._clock = clock
        self._closed = False

    async def send_audio(self, pcm: bytes) -> None:
        self._state.appended_bytes += len(pcm)
        try:
            await self._conn.send_raw(openaiwire.encode_append(pcm))
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None

    def send_audio_now(self, pcm: bytes) -> bool:
        return False  # every append goes through the SDK's send_raw

    async def send_text(self, text: str) -> None:
        """A typed user turn: it takes the turn over the model, then asks for a response."""
        await self._take_turn()
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self._call(self._conn.conversation.item.create(item=item))
        await self._call(self._conn.response.create())

    async def send_audio_end(self) -> None:
        """The microphone stopped mid-utterance (server VAD heard speech start, not its end): commit and answer."""
        if self._manual or not self._state.speaking or self._state.appended_bytes < MIN_COMMIT_MS * BYTES_PER_MS:
            return
        await self._commit_and_respond(quiet=True)

    async def send_activity_start(self) -> None:
        """Push-to-talk pressed: the user takes the turn; audio appended before it is discarded."""
        if not self._manual:
            return
        await self._take_turn()
        await self._clear()

    async def send_activity_end(self) -> None:
        """Push-to-talk released: commit what was said and ask for a response (too little audio is discarded)."""
        if not self._manual:
            return
        if self._state.appended_bytes >= MIN_COMMIT_MS * BYTES_PER_MS:
            await self._commit_and_respond(quiet=False)
        elif self._state.appended_bytes:
            await self._clear()

    async def send_tool_result(self, call_id: str, name: str, result: dict) -> None:
        """Answer a function call (``name`` is not needed by OpenAI); no response is asked for: the model goes on
        at the user's next turn."""
        item = {"type": "function_call_output", "call_id": call_id, "output": json.dumps(result, ensure_ascii=False)}
        await self._call(self._conn.conversation.item.create(item=item))

    async def send_playback(self, played_ms: int) -> None:
        """After a barge-in: truncate the interrupted answer to the ``played_ms`` the user heard."""
        cut = self._state.take_truncation(played_ms)
        if cut is None:
            return
        item_id, audio_end_ms = cut
        await self._call(self._conn.conversation.item.truncate(
            item_id=item_id, content_index=0, audio_end_ms=audio_end_ms, event_id=_TRUNCATE_EVENT))

    async def receive(self) -> list[Event]:
        """The events of the next server event; raises :class:`~livetalk.engine.UpstreamClosed` at the end."""
        if self._backlog:
            return self._state.read(self._backlog.pop(0), self._clock())
        try:
            raw = await self._conn.recv_bytes()
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None
        return self._state.read(raw, self._clock())

    async def close(self) -> None:
        """Close the session (normal closure) within about twice ``close_timeout_s``; never raises."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._conn.close(), 2 * self._close_timeout_s)

    async def _take_turn(self) -> None:
        """The user takes the turn: model audio still playing is interrupted (muted before anything else is
        read), and a response being generated is cancelled, so the user's turn gets the next one."""
        now = self._clock()
        active = self._state.response_active
        if self._state.playing(now):
            self._state.interrupt(now)
        if active:
            await self._call(self._conn.response.cancel(event_id=_CANCEL_EVENT))

    async def _commit_and_respond(self, *, quiet: bool) -> None:
        self._state.appended_bytes = 0
        self._state.speaking = False
        await self._call(self._conn.input_audio_buffer.commit(event_id=_FLUSH_COMMIT_EVENT if quiet else None))
        await self._call(self._conn.response.create(event_id=_FLUSH_RESPONSE_EVENT if quiet else None))

    async def _clear(self) -> None:
        self._state.appended_bytes = 0
        await self._call(self._conn.input_audio_buffer.clear())

    async def _call(self, sending: Awaitable[None]) -> None:
        try:
            await sending
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None


class OpenAIEngine:
    """The :class:`~livetalk.engine.Engine` for OpenAI Realtime through an ``AsyncOpenAI`` client.

    Args:
        client: the SDK client (its ``base_url`` and key decide where sessions go).
        model: the Realtime model, e.g. ``gpt-realtime-2``.
        default_voice: used when the setup's voice is not an OpenAI voice.
        transcription_model: transcribes the user's audio.
        modality: ``"audio"`` (spoken answers with transcripts) or ``"text"`` (written answers).
        websocket_options: extra ``websockets`` connect options (an ``ssl`` context for a stand-in…).
        close_timeout_s: how long a close waits for OpenAI's close reply before dropping TCP.
    """

    name = "openai"
    label = "OpenAI"
    input_rate = RATE_HZ
    output_rate = RATE_HZ

    def __init__(self, client: AsyncOpenAI, *, model: str, default_voice: str = DEFAULT_VOICE,
                 transcription_model: str = TRANSCRIPTION_MODEL, modality: str = "audio",
                 websocket_options: Mapping[str, Any] | None = None,
                 close_timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        if modality not in ("audio", "text"):
            raise ValueError(f"modality must be 'audio' or 'text', not {modality!r}")
        self._client = client
        self._model = model
        self._default_voice = default_voice
        self._transcription_model = transcription_model
        self._modality = modality
        self._websocket_options = {"close_timeout": close_timeout_s, **(websocket_options or {})}
        self._close_timeout_s = close_timeout_s

    async def connect(self, setup: LiveSetup, *, timeout_s: float) -> OpenAIConnection:
        """Open and configure a session for ``setup`` (seeded from ``setup.resume_handle`` when given) within
        ``timeout_s`` seconds; raises :class:`~livetalk.engine.UpstreamError`."""
        seeds = _seeds(setup.resume_handle)
        session = session_config(setup, voice=self.voice_for(setup.voice),
                                 transcription_model=self._transcription_model, modality=self._modality)
        opened: list[OpenAIConnection] = []  # filled by _open as soon as there is a connection to close
        try:
            return await asyncio.wait_for(self._open(setup, session, seeds, opened), timeout_s)
        except BaseException as exc:
            if opened:
                await opened[0].close()
            if isinstance(exc, _CONNECT_ERRORS):
                raise _connect_error(exc, timeout_s) from None
            raise

    def voice_for(self, name: str) -> str | dict:
        """The OpenAI voice for a scenario's voice name (see the module doc)."""
        if name.lower() in OPENAI_VOICES:
            return name.lower()
        if name.startswith("voice_"):
            return {"id": name}
        return self._default_voice

    async def _open(self, setup: LiveSetup, session: dict[str, Any], seeds: list[tuple[str, str]],
                    opened: list[OpenAIConnection]) -> OpenAIConnection:
        conn = await self._client.realtime.connect(
            model=self._model, websocket_connection_options=self._websocket_options).enter()
        manual = not setup.vad.automatic
        connection = OpenAIConnection(conn, SessionState(History(seeds), server_commits=not manual,
                                                         on_quiet_error=_log_quiet_error),
                                      manual=manual, close_timeout_s=self._close_timeout_s)
        opened.append(connection)
        await conn.session.update(session=session, event_id=SETUP_EVENT_ID)
        for n, (role, text) in enumerate(seeds):
            await conn.conversation.item.create(item=_seed_item(n, role, text), event_id=SEED_ITEM_ID.format(n=n))
        connection._backlog = await _until_configured(conn, len(seeds))
        return connection


_CONNECT_ERRORS = (UpstreamError, InvalidStatus, ConnectionClosed, OSError, ssl.SSLError, InvalidHandshake,
                   OpenAIError)  # OSError includes TimeoutError (asyncio's too)


def _connect_error(exc: BaseException, timeout_s: float) -> UpstreamError:
    """The engine error for a failed connect (one of ``_CONNECT_ERRORS``)."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamUnavailable(f"OpenAI did not answer within {timeout_s:g} s")
    if isinstance(exc, InvalidStatus):
        return _refused(exc.response.status_code, exc.response.body)
    if isinstance(exc, ConnectionClosed):
        return _closed_error(exc)
    return UpstreamUnavailable(f"cannot reach OpenAI ({type(exc).__name__})")


def _seeds(handle: str | None) -> list[tuple[str, str]]:
    if not handle:
        return []
    try:
        return openaiwire.decode_handle(handle)
    except ValueError:
        raise UpstreamClosed(INVALID_PAYLOAD, "the resume handle is not an OpenAI conversation handle") from None


def _seed_item(n: int, role: str, text: str) -> dict[str, Any]:
    """A message of a resumed conversation, as the service takes it (no response is asked for)."""
    if role == "user":
        return {"type": "message", "role": "user", "id": SEED_ITEM_ID.format(n=n),
                "content": [{"type": "input_text", "text": text}]}
    return {"type": "message", "role": "assistant", "id": SEED_ITEM_ID.format(n=n),
            "content": [{"type": "output_text", "text": text}]}


async def _until_configured(conn: AsyncRealtimeConnection, seeded: int) -> list[bytes]:
    """Read until ``session.updated`` and every seeded item's ``conversation.item.added``; return the other
    ``error`` events met meanwhile (the session goes on; a close may follow, which the caller maps).

    An ``error`` answering the update or a seed refuses the session.
    """
    waiting = {SEED_ITEM_ID.format(n=n) for n in range(seeded)}
    updated = False
    others: list[bytes] = []
    while not updated or waiting:
        raw = await conn.recv_bytes()
        event = _parsed(raw)
        kind = event.get("type")
        if kind == "session.updated":
            updated = True
        elif kind == "conversation.item.added":
            waiting.discard((event.get("item") or {}).get("id"))
        elif kind == "error":
            error = event.get("error") or {}
            event_id = str(error.get("event_id") or "")
            if event_id == SETUP_EVENT_ID or event_id in waiting:
                raise UpstreamClosed(INVALID_PAYLOAD, f"OpenAI refused the session: {error.get('code') or 'error'}")
            others.append(raw)
    return others


def _parsed(raw: bytes) -> dict[str, Any]:
    """A server event as a dict ({} for a frame that is not a JSON object)."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}


def _log_quiet_error(error: dict) -> None:
    log.info("OpenAI refused a client event that raced the server (%s)", error.get("code"))


def _refused(status: int, body: bytes | None) -> UpstreamError:
    """The error for a refused handshake (HTTP ``status`` with OpenAI's JSON error ``body``)."""
    code = _error_code(body)
    if status == HTTP_TOO_MANY_REQUESTS:
        return UpstreamQuota(status, code or "rate limited")
    if status >= 500:
        return UpstreamUnavailable(f"OpenAI refused the connection (HTTP {status})")
    return UpstreamClosed(status, f"HTTP {status} at handshake{': ' + code if code else ''}")


def _error_code(body: bytes | None) -> str | None:
    """``error.code`` (or ``error.type``) of OpenAI's JSON error body; never its message."""
    error = _parsed(body or b"").get("error")
    if not isinstance(error, dict):
        return None
    code = error.get("code") or error.get("type")
    return str(code)[:60] if code else None


def _closed_error(exc: ConnectionClosed) -> UpstreamClosed:
    return _closed(*received_close(exc, "OpenAI"))


def _closed(code: int, reason: str) -> UpstreamClosed:
    if code == HTTP_TOO_MANY_REQUESTS or any(mark in reason.lower() for mark in _QUOTA_MARKS):
        return UpstreamQuota(code, reason)
    return UpstreamClosed(code, reason, recoverable=code in _RECOVERABLE_CLOSES)
