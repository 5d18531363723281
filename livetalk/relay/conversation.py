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
import dataclasses
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
from .turns import TurnTracker
from .upstream import UpstreamLink

log = logging.getLogger("livetalk.relay")


class Phase(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDING = "ending"
    CLOSED = "closed"


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
        self._user = Utterance()
        self._model = Utterance()
        self._turn_text = ""  # the model's whole turn so far, for `complete`
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
            ev.ToolCall: self._on_tool_call,
            ev.ToolCallCancellation: self._on_tool_call_cancellation,
            ev.ServerError: self._on_server_error,
        }
        self._tools = {tool.name: tool for tool in setup.tools}
        self._outcomes: dict[str, str] = {}  # call id -> the outcome it recorded

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
        self._close_utterance("model")
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
            self._turn_text += event.text
            if self.mode is Mode.TEXT and event.text:
                self._browser.send_text(wire.chunk(event.text))
        utterance = self._user if event.role == "user" else self._model
        utterance.text += event.text
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

    def _on_tool_call(self, event: ev.ToolCall) -> None:
        for call in event.calls:
            tool = self._tools.get(call.name)
            if tool is None:  # only declared functions are ever answered with success
                self._link.send("tool_result", (call.id, call.name, {"error": f"unknown function {call.name}"}))
                continue
            if tool.outcome:
                details = {key: value for key, value in call.args.items() if isinstance(value, (str, int, float))}
                self._outcomes[call.id] = tool.outcome
                self._recorder.outcome(tool.outcome, details)
                self._browser.send_text(wire.outcome(tool.outcome, details))
                log.info("outcome reached: %s", tool.outcome, extra={"fields": {"session_id": self.session_id}})
            self._link.send("tool_result", (call.id, call.name, {"result": "ok"}))

    def _on_tool_call_cancellation(self, event: ev.ToolCallCancellation) -> None:
        for call_id in event.ids:
            name = self._outcomes.pop(call_id, None)
            if name is not None:
                self._recorder.outcome_cancelled(name)
                self._browser.send_text(wire.outcome(name, {}, cancelled=True))

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
        closing = asyncio.ensure_future(self._link.close())
        self._close_utterance("user")
        self._close_utterance("model")
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
        s = self.stats
        log.info("conversation ended", extra={"fields": {
            "session_id": self.session_id,
            "scenario": self.scenario_id,
            "mode": self.mode.value,
            "engine": self._engine.name,
            "end_reason": self.end_reason,
            "duration_s": round(s.duration_s, 3),
            "first_audio_s": None if s.first_audio_s is None else round(s.first_audio_s, 3),
            "turns": s.turns,
            "interruptions": s.interruptions,
            "upstream_errors": s.upstream_errors,
            "reconnects": s.reconnects,
            "reconnect_reasons": dict(s.reconnect_reasons) or None,
            "bytes_up": s.bytes_up,
            "bytes_down": s.bytes_down,
            "bad_frames": s.bad_frames,
            "audio_frames_dropped": s.audio_frames_dropped,
            "tokens": s.tokens,
            "recording": self.recording_uri,
        }})


_CLIENT_HANDLERS: dict[type, Callable[[Conversation, Any], None]] = {
    wire.TextTurn: Conversation._on_text,
    wire.AudioEnd: Conversation._on_audio_end,
    wire.ActivityStart: Conversation._on_activity_start,
    wire.ActivityEnd: Conversation._on_activity_end,
    wire.Ping: Conversation._on_ping,
    wire.End: Conversation._on_end,
}
