"""One conversation: the browser socket ⇄ the engine's upstream session(s), with its lifecycle and limits.

Runs entirely on the relay event loop. The browser side is a :class:`~livetalk.wsio.BrowserSocket` whose
callbacks arrive here synchronously; the engine side is an :class:`~livetalk.relay.upstream.UpstreamLink`
that hands each upstream message's events to the ``_on_<event>`` handlers below. The conversation moves data
and keeps the lifecycle; it decides little.

Lifecycle (:class:`Phase`)::

    CONNECTING ─ready→ LIVE ⇄ RECONNECTING (dropped, GoAway or stalled upstream, resumed by handle)
         └──────────────┴──→ ENDING (end, limit, drain, failure) ─→ CLOSED

Whichever side goes away, the other is closed at once (browser: close frame, then TCP dropped after 0.5 s;
upstream: close frame, dropped after 0.5 s).
"""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import Any

from .. import engine as ev
from .. import protocol as wire
from ..engine import Engine, LiveSetup, UpstreamClosed, UpstreamError, UpstreamQuota
from ..protocol import Close, ErrorCode, Mode
from ..signing import ResumeState, TokenSigner
from ..wsio import BrowserSocket
from .parts import NullObserver, NullRecorder, Observer, Policy, Recorder, Stats
from .tools import ToolDesk
from .transcripts import Transcripts
from .turns import TurnTracker
from .upstream import UpstreamLink

log = logging.getLogger("livetalk.relay")

PLAYBACK_REPORT_WAIT_S = 0.5  # after a barge-in, the page's `playback` report is awaited this long


class Phase(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDING = "ending"
    CLOSED = "closed"


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
        observer: Observer | None = None,
        tokens: TokenSigner | None = None,
        started_at: float | None = None,
        segment: int = 0,
    ) -> None:
        self.session_id = session_id
        self.mode = mode
        self.scenario_id = scenario_id
        self.phase = Phase.CONNECTING
        self.stats = Stats()
        self.end_reason = "unknown"
        self.recording_uri: str | None = None
        self._engine = engine
        self._policy = policy
        self._emulated = emulated
        self._recorder: Recorder = recorder or NullRecorder()
        self._observer: Observer = observer or NullObserver()
        self._link = UpstreamLink(engine, setup, policy, self.stats, on_events=self._on_events,
                                  on_failure=self._upstream_failed, on_replacing=self._on_replacing,
                                  on_replaced=self._on_replaced)
        self._turns = TurnTracker(silence_s=setup.vad.silence_ms / 1000, rate_hz=engine.input_rate)
        self._browser: BrowserSocket | None = None
        self._done = asyncio.Event()
        self._ticker_task: asyncio.Task | None = None
        self._words = Transcripts(mode, self._recorder, lambda text: self._browser.send_text(text))
        self._turn_audio_bytes = 0  # model audio of this turn sent to the browser
        self._playback_due: asyncio.TimerHandle | None = None  # waiting for the page's `playback` report
        self._last_client_frame = time.monotonic()
        self._warned_limit = False
        self._finalize_timeout: float | None = None
        self._close_code = Close.NORMAL
        self._connecting: asyncio.Task | None = None
        self._tokens = tokens
        self._started_at = started_at if started_at is not None else time.time()
        self._segment = segment
        self._resume_ticket: str | None = self._mint_resume_ticket()
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.ModelAudio: self._on_model_audio,
            ev.ModelText: self._on_model_text,
            ev.Transcription: self._on_transcription,
            ev.Interrupted: self._on_interrupted,
            ev.GenerationComplete: self._on_nothing,
            ev.TurnComplete: self._on_turn_complete,
            ev.Usage: self._on_usage,
            ev.Resumption: self._on_resumption,
            ev.GoAway: self._on_nothing,  # the link hands over by itself
            ev.ToolCall: self._desk_call,
            ev.ToolCallCancellation: self._desk_cancel,
            ev.ServerError: self._on_server_error,
        }
        self._desk = ToolDesk(setup.tools, answer=lambda result: self._link.send("tool_result", result),
                              recorder=self._recorder, tell=lambda text: self._browser.send_text(text),
                              session_id=session_id)

    @property
    def setup(self) -> LiveSetup:
        """What the current upstream session was opened with."""
        return self._link.setup

    # --- entry points ----------------------------------------------------------------

    def browser_protocol(self) -> BrowserSocket:
        """The asyncio protocol to attach the upgraded browser socket to."""
        self._browser = BrowserSocket(self._on_browser_message, self._on_browser_closed)
        return self._browser

    async def run(self) -> None:
        """Connect upstream, relay until either side ends, then tear everything down."""
        self._observer.conversation_started(self)
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
        self._connecting = asyncio.ensure_future(self._link.open())
        try:
            await self._connecting
        except asyncio.CancelledError:
            if self._done.is_set():  # the conversation ended while the engine was still being reached
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
        self._link.start()
        self._ticker_task = asyncio.get_running_loop().create_task(self._ticker())

    def _on_replacing(self, reason: str) -> None:
        log.info("replacing the upstream session (%s)", reason, extra={"fields": {"session_id": self.session_id}})
        if self.phase is Phase.LIVE:
            self.phase = Phase.RECONNECTING
        self._browser.send_text(wire.reconnecting(reason))

    def _on_replaced(self, reason: str) -> None:
        if self.phase is Phase.RECONNECTING:
            self.phase = Phase.LIVE
        self._browser.send_text(wire.resumed(reason))

    def _upstream_failed(self, exc: UpstreamError) -> None:
        log.warning("upstream failure: %s", exc, extra={"fields": {"session_id": self.session_id}})
        label = self._engine.label
        if isinstance(exc, UpstreamQuota):
            self._finish(ErrorCode.UPSTREAM_QUOTA, f"{label} is at its usage limit for this service right now; "
                         "please try again in a few minutes", Close.TRY_AGAIN_LATER)
        elif isinstance(exc, UpstreamClosed):
            message = f"{label} closed the session: {exc.code} {exc.reason}".strip()
            self._finish(ErrorCode.UPSTREAM_ERROR, message, Close.INTERNAL)
        else:
            self._finish(ErrorCode.UPSTREAM_UNAVAILABLE, f"cannot reach {label}: {exc}", Close.INTERNAL)

    # --- browser → upstream --------------------------------------------------------------

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
        if self.phase is Phase.CONNECTING or not self._link.send("audio", pcm):
            self.stats.audio_frames_dropped += 1
            return
        self.stats.bytes_up += len(pcm)
        self._recorder.user_audio(pcm)
        speaking, turn_ended = self._turns.feed(pcm)
        if speaking:
            self._link.user_spoke()
        elif turn_ended:
            self._link.user_turn_ended()

    def _on_client_message(self, msg: wire.ClientMessage) -> None:
        _CLIENT_HANDLERS[type(msg)](self, msg)

    def _on_text(self, msg: wire.TextTurn) -> None:
        self._words.close("model")
        self._recorder.transcript("user", msg.text, True)
        self._link.send("text", msg.text)
        self._link.user_turn_ended()

    def _on_audio_end(self, _msg: wire.AudioEnd) -> None:
        self._link.send("audio_end")

    def _on_activity_start(self, _msg: wire.ActivityStart) -> None:
        self._require_manual_vad()
        self._link.send("activity_start")

    def _on_activity_end(self, _msg: wire.ActivityEnd) -> None:
        self._require_manual_vad()
        self._link.send("activity_end")
        self._link.user_turn_ended()

    def _require_manual_vad(self) -> None:
        if self.setup.vad.automatic:
            raise wire.ProtocolError(
                ErrorCode.BAD_REQUEST, "this scenario detects speech automatically; activity_start/end are not used"
            )

    def _on_ping(self, msg: wire.Ping) -> None:
        self._browser.send_text(wire.pong(msg.t))

    def _on_playback(self, msg: wire.Playback) -> None:
        """The page says how much of the interrupted turn it played: the engine forgets the rest."""
        if self._playback_due is not None:
            self._playback_due.cancel()
            self._playback_due = None
            self._link.send("playback", msg.played_ms)

    def _on_end(self, _msg: wire.End) -> None:
        self._finish(None, "", Close.NORMAL, reason="end")

    def _on_browser_closed(self) -> None:
        if self.phase is not Phase.ENDING:
            self.end_reason = "client_gone"
        self.phase = Phase.ENDING
        self._done.set()
        self._stop_connecting()

    # --- upstream → browser ----------------------------------------------------------------

    def _on_events(self, events: list[ev.Event]) -> None:
        handlers = self._handlers
        for event in events:
            handlers[type(event)](event)

    def _on_model_audio(self, event: ev.ModelAudio) -> None:
        if self.stats.first_audio_s is None:
            self.stats.first_audio_s = time.monotonic() - self.stats.started
        self._words.model_speaking()
        self.stats.bytes_down += len(event.pcm)
        self._turn_audio_bytes += len(event.pcm)
        self._recorder.model_audio(event.pcm)
        if self.mode is Mode.VOICE:
            self._browser.send_bytes(event.pcm)

    def _on_model_text(self, event: ev.ModelText) -> None:
        self._on_transcription(ev.Transcription("model", event.text, False))

    def _on_transcription(self, event: ev.Transcription) -> None:
        self._words.add(event.role, event.text, event.finished)

    def _on_interrupted(self, _event: ev.Interrupted) -> None:
        self.stats.interruptions += 1
        self._recorder.interrupted()
        self._browser.send_text(wire.INTERRUPTED)
        self._words.close("model")
        self._words.take_turn()
        # Until the page reports what it played, what was sent is the best estimate of what was heard.
        sent_ms = self._turn_audio_bytes * 1000 // (2 * self._engine.output_rate)
        if self._playback_due is not None:
            self._playback_due.cancel()
        self._playback_due = asyncio.get_running_loop().call_later(
            PLAYBACK_REPORT_WAIT_S, self._playback_unreported, sent_ms)
        self._turn_audio_bytes = 0

    def _playback_unreported(self, sent_ms: int) -> None:
        self._playback_due = None
        self._link.send("playback", sent_ms)

    def _on_turn_complete(self, event: ev.TurnComplete) -> None:
        self.stats.turns += 1
        self._add_usage(event.usage)
        self._words.close_both()
        self._recorder.turn_complete()
        self._browser.send_text(wire.complete(self._words.take_turn(), self.stats.turns))
        self._turn_audio_bytes = 0

    def _on_usage(self, event: ev.Usage) -> None:
        self._add_usage(event.usage)

    def _add_usage(self, usage: dict | None) -> None:
        if usage:
            self.stats.tokens += int(usage.get("totalTokenCount") or 0)

    def _on_resumption(self, event: ev.Resumption) -> None:
        if event.resumable and event.handle:
            self._resume_ticket = self._mint_resume_ticket()
            if self._resume_ticket:
                self._browser.send_text(wire.resumable(self._resume_ticket))

    def _mint_resume_ticket(self) -> str | None:
        """A ticket to continue this conversation on a new socket, once the engine gave a handle."""
        handle = self._link.handle
        if not (self._tokens and handle):
            return None
        state = ResumeState(
            session_id=self.session_id, scenario=self.scenario_id, mode=self.mode.value,
            handle=handle, started_at=self._started_at, segment=self._segment + 1,
        )
        return self._tokens.mint_resume(state, now=time.time())

    def _desk_call(self, event: ev.ToolCall) -> None:
        self._desk.on_call(event)

    def _desk_cancel(self, event: ev.ToolCallCancellation) -> None:
        self._desk.on_cancel(event)

    def _on_server_error(self, event: ev.ServerError) -> None:
        self.stats.upstream_errors += 1
        self._send_error(ErrorCode.UPSTREAM_ERROR,
                         f"{self._engine.label} reported an error: {event.code} {event.message}", fatal=False)

    def _on_nothing(self, _event: Any) -> None:
        pass

    # --- limits ------------------------------------------------------------------------

    async def _ticker(self) -> None:
        policy = self._policy
        next_ping = time.monotonic() + policy.ping_interval_s
        while not self._done.is_set():
            await asyncio.sleep(policy.tick_s)
            now = time.monotonic()
            age = now - self.stats.started
            self._link.check(now)
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
        if self._ticker_task is not None:
            self._ticker_task.cancel()
        if self._playback_due is not None:
            self._playback_due.cancel()
        closing = asyncio.ensure_future(self._link.close())
        self._words.close_both()
        self.recording_uri = await self._finalize_recording()
        if self.end_reason == "end":
            self._browser.send_text(wire.ended(self.session_id, self.recording_uri))
        self._browser.close(self._close_code, "")
        try:
            await closing
        except Exception:  # the upstream is going away anyway; its close must not stop the teardown
            log.exception("closing the upstream failed")
        self.phase = Phase.CLOSED
        self._log_summary()
        self._observer.conversation_ended(self)

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
        log.info("conversation ended", extra={"fields": {
            "session_id": self.session_id, "scenario": self.scenario_id, "mode": self.mode.value,
            "engine": self._engine.name, "end_reason": self.end_reason, **self.stats.summary(),
            "recording": self.recording_uri,
        }})


_CLIENT_HANDLERS: dict[type, Callable[[Conversation, Any], None]] = {
    wire.TextTurn: Conversation._on_text,
    wire.AudioEnd: Conversation._on_audio_end,
    wire.ActivityStart: Conversation._on_activity_start,
    wire.ActivityEnd: Conversation._on_activity_end,
    wire.Ping: Conversation._on_ping,
    wire.End: Conversation._on_end,
    wire.Playback: Conversation._on_playback,
}
