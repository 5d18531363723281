"""One conversation: the browser socket ⇄ one (replaceable) Gemini Live session.

Runs entirely on the shared relay event loop. The browser side is a
:class:`~livetalk.wsio.BrowserSocket` whose callbacks arrive here synchronously;
frames for Gemini go through a small queue drained by one sender task; one
receiver task per upstream connection turns Gemini's events into browser frames.
The relay moves data and keeps the lifecycle; it decides little.

Lifecycle (:class:`Phase`)::

    CONNECTING ─ready→ LIVE ⇄ RECONNECTING (GoAway / dropped upstream, resumed by handle)
         └──────────────┴──→ ENDING (end, limit, drain, failure) ─→ CLOSED

Whichever side goes away, the other is closed at once (browser: close frame, then
TCP dropped after 0.5 s; Gemini: close frame, dropped after 0.5 s).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from . import engine as ev
from . import protocol as wire
from .engine import Engine, LiveSetup, Upstream, UpstreamClosed, UpstreamError
from .protocol import Close, ErrorCode, Mode
from .signing import ResumeState, TokenSigner
from .wsio import BrowserSocket, attach, wait_closed

log = logging.getLogger("livetalk.relay")

PING_INTERVAL_S = 20.0  # browser pings; no frame and no pong for 2.5 intervals means the peer is gone
DEAD_PEER_INTERVALS = 2.5
MAX_TICK_S = 1.0  # limit checks at least this often
PENDING_AUDIO_S = 10.0  # user audio held while the upstream reconnects
MAX_RECONNECTS = 3
SHUTDOWN_FINALIZE_S = 4.0  # when draining, stop waiting for the recording's upload after this


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """The limits and timings of a conversation, in seconds unless named otherwise."""

    session_max_s: float = 15 * 60.0  # whole-conversation cap
    session_warning_s: float = 60.0  # `session_limit` warning this long before the cap
    idle_timeout_s: float = 120.0  # no client frame for this long ends it
    connect_timeout_s: float = 10.0  # opening an upstream session
    ping_interval_s: float = PING_INTERVAL_S
    max_reconnects: int = MAX_RECONNECTS
    shutdown_finalize_s: float = SHUTDOWN_FINALIZE_S

    @property
    def dead_peer_s(self) -> float:
        """No frame and no pong for this long: the browser is gone."""
        return DEAD_PEER_INTERVALS * self.ping_interval_s

    @property
    def tick_s(self) -> float:
        """How often limits and keepalive are checked."""
        return min(MAX_TICK_S, self.ping_interval_s / 4)

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        """The policy for a :class:`~livetalk.config.Settings`."""
        return cls(session_max_s=settings.session_max_s, session_warning_s=settings.session_warning_s,
                   idle_timeout_s=settings.idle_timeout_s, connect_timeout_s=settings.upstream_connect_timeout_s,
                   ping_interval_s=settings.ping_interval_s)


class Phase(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDING = "ending"
    CLOSED = "closed"


class Recorder(Protocol):
    """What the relay tells the recording (see :mod:`livetalk.recording`). Never blocks."""

    def user_audio(self, pcm16k: bytes) -> None: ...
    def model_audio(self, pcm24k: bytes) -> None: ...
    def transcript(self, role: str, text: str, final: bool) -> None: ...
    def turn_complete(self) -> None: ...
    def interrupted(self) -> None: ...
    def finalize(self, reason: str, timeout: float | None = None) -> str | None: ...  # blocking


class NullRecorder:
    """Records nothing (recording disabled)."""

    def user_audio(self, pcm16k: bytes) -> None: ...
    def model_audio(self, pcm24k: bytes) -> None: ...
    def transcript(self, role: str, text: str, final: bool) -> None: ...
    def turn_complete(self) -> None: ...
    def interrupted(self) -> None: ...

    def finalize(self, reason: str, timeout: float | None = None) -> str | None:
        return None


@dataclasses.dataclass
class Stats:
    """Per-conversation counters for the summary log line."""

    started: float = dataclasses.field(default_factory=time.monotonic)
    first_audio_s: float | None = None
    turns: int = 0
    interruptions: int = 0
    upstream_errors: int = 0
    reconnects: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    audio_frames_dropped: int = 0
    tokens: int = 0
    bad_frames: int = 0


@dataclasses.dataclass
class Utterance:
    """The current utterance of one side, as the client has seen it so far."""

    text: str = ""
    open: bool = False


class Conversation:
    """One browser conversation relayed to an upstream engine. Create on the loop; ``await run()``."""

    def __init__(
        self,
        *,
        session_id: str,
        setup: LiveSetup,
        mode: Mode,
        scenario_id: str,
        engine: Engine,
        policy: Policy,
        emulated: bool,
        recorder: Recorder | None = None,
        tokens: TokenSigner | None = None,
        started_at: float | None = None,
        segment: int = 0,
    ) -> None:
        self.session_id = session_id
        self.setup = setup
        self.mode = mode
        self.scenario_id = scenario_id
        self.phase = Phase.CONNECTING
        self.stats = Stats()
        self.end_reason = "unknown"
        self._engine = engine
        self._policy = policy
        self._max_pending_audio = int(PENDING_AUDIO_S * engine.input_rate * 2)
        self._emulated = emulated
        self._recorder: Recorder = recorder or NullRecorder()
        self._browser: BrowserSocket | None = None
        self._upstream: Upstream | None = None
        self._outbox: collections.deque[tuple[str, Any]] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._pending_audio = 0
        self._tasks: set[asyncio.Task] = set()
        self._done = asyncio.Event()
        self._resume_handle: str | None = setup.resume_handle
        self._user = Utterance()
        self._model = Utterance()
        self._turn_text = ""  # the model's whole turn so far, for `complete`
        self._last_client_frame = time.monotonic()
        self._warned_limit = False
        self._recording_uri: str | None = None
        self._finalize_timeout: float | None = None
        self._close_code = Close.NORMAL
        self._connecting: asyncio.Task | None = None
        self._tokens = tokens
        self._started_at = started_at if started_at is not None else time.time()
        self._segment = segment
        self._resume_ticket: str | None = self._mint_resume_ticket()

    # --- entry points ----------------------------------------------------------------

    def browser_protocol(self) -> BrowserSocket:
        """The asyncio protocol to attach the upgraded browser socket to."""
        self._browser = BrowserSocket(self._on_browser_message, self._on_browser_closed)
        return self._browser

    async def run(self) -> None:
        """Connect upstream, relay until either side ends, then tear everything down."""
        try:
            if await self._open_upstream():
                self._start_live()
                await self._done.wait()
        finally:
            await self._teardown()

    def shutdown(self, message: str = "the server is restarting; reconnect to continue") -> None:
        """Drain: tell the client to reconnect elsewhere and end the conversation."""
        self._finalize_timeout = self._policy.shutdown_finalize_s
        self._finish(ErrorCode.SHUTTING_DOWN, message, Close.GOING_AWAY)

    # --- upstream lifecycle ----------------------------------------------------------

    async def _open_upstream(self) -> bool:
        self._connecting = asyncio.ensure_future(
            self._engine.connect(self.setup, timeout_s=self._policy.connect_timeout_s))
        try:
            self._upstream = await self._connecting
        except asyncio.CancelledError:
            if self._done.is_set():  # the conversation ended while Gemini was still being reached
                return False
            raise
        except UpstreamError as exc:
            self._upstream_failed(exc)
            return False
        return not self._done.is_set()

    def _stop_connecting(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()

    def _start_live(self) -> None:
        self.phase = Phase.LIVE
        self._browser.send_text(wire.ready(
            session_id=self.session_id, scenario=self.scenario_id, mode=self.mode,
            resume=self._resume_ticket, emulated=self._emulated, engine=self._engine.name,
            input_rate=self._engine.input_rate, output_rate=self._engine.output_rate,
        ))
        self._spawn(self._sender())
        self._spawn(self._receiver(self._upstream))
        self._spawn(self._ticker())

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sender(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox and self.phase is Phase.LIVE:
                kind, payload = self._outbox.popleft()
                if kind == "audio":
                    self._pending_audio -= len(payload)
                try:
                    await _SENDERS[kind](self._upstream, payload)
                except UpstreamClosed:
                    break  # the receiver sees the same close and decides

    async def _receiver(self, conn: Upstream) -> None:
        handlers = self._handlers
        while True:
            try:
                events = await conn.receive()
            except UpstreamClosed as exc:
                if conn is self._upstream and self.phase is not Phase.ENDING:
                    await self._upstream_closed(exc)
                return
            for event in events:
                handlers[type(event)](event)

    async def _upstream_closed(self, exc: UpstreamClosed) -> None:
        self.stats.upstream_errors += 1
        if exc.recoverable and self._resume_handle and self.stats.reconnects < self._policy.max_reconnects:
            await self._reconnect("upstream_closed")
        else:
            self._upstream_failed(exc)

    async def _reconnect(self, reason: str) -> None:
        """Replace the upstream connection, resuming the same Gemini session by handle."""
        if self.phase is not Phase.LIVE:
            return
        self.phase = Phase.RECONNECTING
        self.stats.reconnects += 1
        self._browser.send_text(wire.reconnecting(reason))
        old = self._upstream
        setup = dataclasses.replace(self.setup, resume_handle=self._resume_handle)
        try:
            new = await self._engine.connect(setup, timeout_s=self._policy.connect_timeout_s)
        except UpstreamError as exc:
            self.phase = Phase.LIVE
            self._upstream_failed(exc)
            return
        self._upstream = new
        if old is not None:
            self._spawn(old.close())
        if self.phase is not Phase.RECONNECTING:  # ended while reconnecting
            await new.close()
            return
        self.phase = Phase.LIVE
        self._browser.send_text(wire.resumed(reason))
        self._spawn(self._receiver(new))
        self._outbox_ready.set()

    def _upstream_failed(self, exc: UpstreamError) -> None:
        log.warning("upstream failure: %s", exc, extra={"fields": {"session_id": self.session_id}})
        if isinstance(exc, UpstreamClosed):
            message = f"Gemini closed the session: {exc.code} {exc.reason}".strip()
            self._finish(ErrorCode.UPSTREAM_ERROR, message, Close.INTERNAL)
        else:
            self._finish(ErrorCode.UPSTREAM_UNAVAILABLE, f"cannot reach Gemini: {exc}", Close.INTERNAL)

    # --- browser → Gemini --------------------------------------------------------------

    def _on_browser_message(self, data: bytes | str) -> None:
        self._last_client_frame = time.monotonic()
        try:
            if isinstance(data, bytes):
                self._on_audio(data)
            else:
                self._on_client_message(wire.parse_text_frame(data))
        except wire.ProtocolError as exc:
            self.stats.bad_frames += 1
            self._send_error(exc.code, exc.message, fatal=False)

    def _on_audio(self, pcm: bytes) -> None:
        wire.check_audio_frame(pcm)
        if self.mode is Mode.TEXT:
            raise wire.ProtocolError(ErrorCode.BAD_REQUEST, "audio frames are not accepted in text mode")
        if self.phase is Phase.CONNECTING:
            self.stats.audio_frames_dropped += 1
            return
        if self._pending_audio + len(pcm) > self._max_pending_audio:
            self.stats.audio_frames_dropped += 1
            return
        self.stats.bytes_up += len(pcm)
        self._pending_audio += len(pcm)
        self._recorder.user_audio(pcm)
        self._enqueue("audio", pcm)

    def _on_client_message(self, msg: wire.ClientMessage) -> None:
        _CLIENT_HANDLERS[type(msg)](self, msg)

    def _on_text(self, msg: wire.TextTurn) -> None:
        self._close_utterance("model")
        self._recorder.transcript("user", msg.text, True)
        self._enqueue("text", msg.text)

    def _on_audio_end(self, _msg: wire.AudioEnd) -> None:
        self._enqueue("audio_end", None)

    def _on_activity_start(self, _msg: wire.ActivityStart) -> None:
        self._require_manual_vad()
        self._enqueue("activity_start", None)

    def _on_activity_end(self, _msg: wire.ActivityEnd) -> None:
        self._require_manual_vad()
        self._enqueue("activity_end", None)

    def _require_manual_vad(self) -> None:
        if self.setup.vad.automatic:
            raise wire.ProtocolError(
                ErrorCode.BAD_REQUEST, "this scenario detects speech automatically; activity_start/end are not used"
            )

    def _on_ping(self, msg: wire.Ping) -> None:
        self._browser.send_text(wire.pong(msg.t))

    def _on_end(self, _msg: wire.End) -> None:
        self._finish(None, "", Close.NORMAL, reason="end")

    def _enqueue(self, kind: str, payload: Any) -> None:
        self._outbox.append((kind, payload))
        self._outbox_ready.set()

    def _on_browser_closed(self) -> None:
        if self.phase is not Phase.ENDING:
            self.end_reason = "client_gone"
        self.phase = Phase.ENDING
        self._done.set()
        self._stop_connecting()

    # --- Gemini → browser --------------------------------------------------------------

    def _on_model_audio(self, event: ev.ModelAudio) -> None:
        if self.stats.first_audio_s is None:
            self.stats.first_audio_s = time.monotonic() - self.stats.started
        self._close_utterance("user")
        self._model.open = True
        self.stats.bytes_down += len(event.pcm)
        self._recorder.model_audio(event.pcm)
        if self.mode is Mode.VOICE:
            self._browser.send_bytes(event.pcm)

    def _on_model_text(self, event: ev.ModelText) -> None:
        self._on_transcription(ev.Transcription("model", event.text, False))

    def _on_transcription(self, event: ev.Transcription) -> None:
        if event.role == "model":
            self._close_utterance("user")
            if self.mode is Mode.TEXT and event.text:
                self._browser.send_text(wire.chunk(event.text))
        utterance = self._user if event.role == "user" else self._model
        utterance.text += event.text
        if event.role == "model":
            self._turn_text += event.text
        utterance.open = True
        self._recorder.transcript(event.role, event.text, False)
        if event.finished:
            self._close_utterance(event.role)
        elif event.text and (self.mode is Mode.VOICE or event.role == "user"):
            self._browser.send_text(wire.transcript(event.role, utterance.text, False))

    def _close_utterance(self, role: str) -> None:
        utterance = self._user if role == "user" else self._model
        if not utterance.open:
            return
        utterance.open = False
        self._recorder.transcript(role, "", True)
        if utterance.text and (self.mode is Mode.VOICE or role == "user"):
            self._browser.send_text(wire.transcript(role, utterance.text, True))
        utterance.text = ""

    def _on_interrupted(self, _event: ev.Interrupted) -> None:
        self.stats.interruptions += 1
        self._recorder.interrupted()
        self._browser.send_text(wire.INTERRUPTED)
        self._close_utterance("model")
        self._turn_text = ""

    def _on_turn_complete(self, event: ev.TurnComplete) -> None:
        self.stats.turns += 1
        self._add_usage(event.usage)
        self._close_utterance("user")
        self._close_utterance("model")
        self._recorder.turn_complete()
        self._browser.send_text(wire.complete(self._turn_text, self.stats.turns))
        self._turn_text = ""

    def _on_usage(self, event: ev.Usage) -> None:
        self._add_usage(event.usage)

    def _add_usage(self, usage: dict | None) -> None:
        if usage:
            self.stats.tokens += int(usage.get("totalTokenCount") or 0)

    def _on_resumption(self, event: ev.Resumption) -> None:
        if event.resumable and event.handle and event.handle != self._resume_handle:
            self._resume_handle = event.handle
            self._resume_ticket = self._mint_resume_ticket()
            if self._resume_ticket:
                self._browser.send_text(wire.resumable(self._resume_ticket))

    def _mint_resume_ticket(self) -> str | None:
        """A ticket to continue this conversation on a new socket, once Gemini gave a handle."""
        if not (self._tokens and self._resume_handle):
            return None
        state = ResumeState(
            session_id=self.session_id, scenario=self.scenario_id, mode=self.mode.value,
            handle=self._resume_handle, started_at=self._started_at, segment=self._segment + 1,
        )
        return self._tokens.mint_resume(state, now=time.time())

    def _on_go_away(self, event: ev.GoAway) -> None:
        log.info("Gemini GoAway (time left %s s): resuming on a new connection", event.time_left_s,
                 extra={"fields": {"session_id": self.session_id}})
        if self._resume_handle:
            self._spawn(self._reconnect("go_away"))

    def _on_server_error(self, event: ev.ServerError) -> None:
        self.stats.upstream_errors += 1
        self._send_error(ErrorCode.UPSTREAM_ERROR, f"Gemini reported an error: {event.code} {event.message}", fatal=False)

    def _on_generation_complete(self, _event: ev.GenerationComplete) -> None:
        pass

    @property
    def _handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            ev.ModelAudio: self._on_model_audio,
            ev.ModelText: self._on_model_text,
            ev.Transcription: self._on_transcription,
            ev.Interrupted: self._on_interrupted,
            ev.GenerationComplete: self._on_generation_complete,
            ev.TurnComplete: self._on_turn_complete,
            ev.Usage: self._on_usage,
            ev.Resumption: self._on_resumption,
            ev.GoAway: self._on_go_away,
            ev.ServerError: self._on_server_error,
        }

    # --- limits ------------------------------------------------------------------------

    async def _ticker(self) -> None:
        policy = self._policy
        next_ping = time.monotonic() + policy.ping_interval_s
        while not self._done.is_set():
            await asyncio.sleep(policy.tick_s)
            now = time.monotonic()
            age = now - self.stats.started
            if age >= policy.session_max_s:
                self._finish(ErrorCode.SESSION_LIMIT, "the maximum conversation length was reached", Close.NORMAL)
            elif not self._warned_limit and age >= policy.session_max_s - policy.session_warning_s:
                self._warned_limit = True
                left = policy.session_max_s - age
                self._browser.send_text(wire.warning(
                    ErrorCode.SESSION_LIMIT, f"the conversation will end in {left:.0f} s", left))
            elif now - self._last_client_frame >= policy.idle_timeout_s:
                self._finish(ErrorCode.IDLE_TIMEOUT, "nothing was received for too long", Close.NORMAL)
            elif now - max(self._last_client_frame, self._browser.last_pong) >= policy.dead_peer_s:
                log.info("browser stopped answering pings", extra={"fields": {"session_id": self.session_id}})
                self._browser.abort()  # connection_lost ends the conversation as client_gone
            elif now >= next_ping:
                next_ping = now + policy.ping_interval_s
                self._browser.ping()

    # --- ending ------------------------------------------------------------------------

    def _finish(self, code: ErrorCode | None, message: str, close: Close, *, reason: str | None = None) -> None:
        """End the conversation: optional fatal error to the client, then teardown."""
        if self.phase in (Phase.ENDING, Phase.CLOSED):
            return
        self.phase = Phase.ENDING
        self.end_reason = reason or (code.value if code else "end")
        if code is not None:
            self._send_error(code, message, fatal=True)
        self._close_code = close
        self._done.set()
        self._stop_connecting()

    async def _teardown(self) -> None:
        self.phase = Phase.ENDING
        for task in list(self._tasks):
            task.cancel()
        upstream, self._upstream = self._upstream, None
        closing = asyncio.ensure_future(upstream.close()) if upstream is not None else None
        self._close_utterance("user")
        self._close_utterance("model")
        self._recording_uri = await self._finalize_recording()
        if self.end_reason == "end":
            self._browser.send_text(wire.ended(self.session_id, self._recording_uri))
        self._browser.close(self._close_code, "")
        if closing is not None:
            with contextlib.suppress(Exception):
                await closing
        self.phase = Phase.CLOSED
        self._log_summary()

    async def _finalize_recording(self) -> str | None:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self._recorder.finalize, self.end_reason,
                                              self._finalize_timeout)
        except Exception:
            log.exception("recording could not be finalised", extra={"fields": {"session_id": self.session_id}})
            return None

    def _send_error(self, code: ErrorCode, message: str, *, fatal: bool) -> None:
        if self._browser is not None:
            self._browser.send_text(wire.error(code, message, fatal=fatal))

    def _log_summary(self) -> None:
        s = self.stats
        log.info("conversation ended", extra={"fields": {
            "session_id": self.session_id,
            "scenario": self.scenario_id,
            "mode": self.mode.value,
            "end_reason": self.end_reason,
            "duration_s": round(time.monotonic() - s.started, 3),
            "first_audio_s": None if s.first_audio_s is None else round(s.first_audio_s, 3),
            "turns": s.turns,
            "interruptions": s.interruptions,
            "upstream_errors": s.upstream_errors,
            "reconnects": s.reconnects,
            "bytes_up": s.bytes_up,
            "bytes_down": s.bytes_down,
            "bad_frames": s.bad_frames,
            "audio_frames_dropped": s.audio_frames_dropped,  # before ready, or beyond the reconnect backlog
            "tokens": s.tokens,
            "recording": self._recording_uri,
        }})


async def _send_audio(conn: Upstream, pcm: bytes) -> None:
    await conn.send_audio(pcm)


async def _send_text(conn: Upstream, text: str) -> None:
    await conn.send_text(text)


async def _send_audio_end(conn: Upstream, _payload: None) -> None:
    await conn.send_audio_end()


async def _send_activity_start(conn: Upstream, _payload: None) -> None:
    await conn.send_activity_start()


async def _send_activity_end(conn: Upstream, _payload: None) -> None:
    await conn.send_activity_end()


_SENDERS = {
    "audio": _send_audio,
    "text": _send_text,
    "audio_end": _send_audio_end,
    "activity_start": _send_activity_start,
    "activity_end": _send_activity_end,
}

_CLIENT_HANDLERS: dict[type, Callable[[Conversation, Any], None]] = {
    wire.TextTurn: Conversation._on_text,
    wire.AudioEnd: Conversation._on_audio_end,
    wire.ActivityStart: Conversation._on_activity_start,
    wire.ActivityEnd: Conversation._on_activity_end,
    wire.Ping: Conversation._on_ping,
    wire.End: Conversation._on_end,
}


async def serve(sock, conversation: Conversation) -> None:
    """Run ``conversation`` on an upgraded browser socket until it is over and the socket closed."""
    browser = await attach(sock, conversation.browser_protocol)
    try:
        await conversation.run()
    finally:
        await wait_closed(browser)


async def refuse(sock, code: ErrorCode, message: str, close: Close) -> None:
    """Refuse a conversation on an upgraded socket: one fatal ``error`` frame, then close."""
    browser = await attach(sock, lambda: BrowserSocket(_ignore, _nothing))
    browser.send_text(wire.error(code, message, fatal=True))
    browser.close(close, code.value)
    await wait_closed(browser)


def _ignore(_data: bytes | str) -> None:
    pass


def _nothing() -> None:
    pass
