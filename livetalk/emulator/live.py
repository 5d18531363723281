"""One emulated Gemini Live session: setup, turn-taking, replies, function calls, faults.

A :class:`LiveSession` reads client messages from a :class:`WsConnection` and
dispatches each top-level key to an ``_on_<kind>`` handler. Every finished user
turn goes through :meth:`LiveSession._on_user_turn`, which stalls the session
(``stall`` fault), calls ``schedule_meeting`` (a proposed meeting, when that
function is declared) or starts a reply. Replies run as a paced task so that user
speech or a new typed turn can interrupt them. Every server message goes through
:meth:`LiveSession._emit`, which adds the session's injected latency (if any)
without reordering messages, and sends nothing once the session has stalled.
"""
from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import orjson

from livetalk.emulator import reply as replies
from livetalk.emulator import tools, triggers
from livetalk.emulator.audio import EnergyVad, VadEvent, duration_ms, echo_reply, samples, sum_squares
from livetalk.emulator.control import MAX_TURN_LOG, Control, Fault, FaultKind, Mode, Moment, SessionStats
from livetalk.emulator.dialogue import JAPANESE, input_transcript, reply_text, scheduling_reply
from livetalk.emulator.errors import QUOTA_CLOSE_REASON, ClientProtocolError
from livetalk.emulator.meeting import Proposal, find_proposal
from livetalk.emulator.reply import CHUNK_MS, UserTurn
from livetalk.emulator.session_config import SessionConfig, parse_setup
from livetalk.emulator.tasks import SessionTasks
from livetalk.emulator.websocket import CLOSE_TIMEOUT_S, WsConnection
from livetalk.emulator.wire import audio_frame, b64decode, clip_reason, has, mime_rate, pick, text_of_parts

logger = logging.getLogger("livetalk.emulator")

TRIGGER_PREFIX = triggers.TRIGGER_PREFIX
DEFAULT_GOAWAY_S = 5.0
STOP_CLOSE_TIMEOUT_S = 0.3  # when the emulator stops, wait this long for each client's close
SESSION_NOT_FOUND = "BidiGenerateContent session not found."
GOAWAY_CLOSE_REASON = "Session ended after goAway (emulated)."
STOPPING_REASON = "Emulator stopping."
MAX_AUDIO_PER_MESSAGE = 512 * 1024  # PCM bytes; keeps each JSON frame well under the SDK's 1 MiB limit
ECHO_RMS_STRIDE = 4  # echo sessions measure input level on every 4th sample
ECHO_HANDLE_EVERY_MS = 1000  # echo sessions asked for resumption get a new handle after this much audio
CLOSING_FAULTS = (FaultKind.CLOSE, FaultKind.DROP, FaultKind.QUOTA)  # faults that end a session at a moment

# Top-level client keys, in both spellings, and the handler kind each maps to.
_CLIENT_KINDS = {
    "setup": "setup",
    "realtime_input": "realtime_input",
    "realtimeInput": "realtime_input",
    "client_content": "client_content",
    "clientContent": "client_content",
    "tool_response": "tool_response",
    "toolResponse": "tool_response",
    "contextUpdate": "context_update",
    "context_update": "context_update",
}


class LiveSession:
    """One Live WebSocket session after its handshake.

    Args:
        ws: the accepted connection.
        control: shared faults/statistics.
        stats: this session's statistics record (already registered).
        faults: faults armed for this session.
        mode: converse or echo.
        refusal: close code and reason to end the session with at once (bad credentials).
    """

    def __init__(
        self,
        ws: WsConnection,
        *,
        control: Control,
        stats: SessionStats,
        faults: list[Fault],
        mode: Mode,
        refusal: tuple[int, str] | None = None,
    ) -> None:
        self._ws = ws
        self._control = control
        self.stats = stats
        self._faults = faults
        self._mode = mode
        self._refusal = refusal
        self._delay_s = sum(f.ms for f in faults if f.kind is FaultKind.DELAY) / 1000
        stall = next((f for f in faults if f.kind is FaultKind.STALL), None)
        self._stall_after: int | None = None if stall is None else stall.after_turns  # turns still answered
        self._stalled = False
        self._loop = asyncio.get_running_loop()
        self._outbox: collections.deque[tuple[float, Callable[[], None]]] = collections.deque()
        self._outbox_task: asyncio.Task[None] | None = None
        self._tasks = SessionTasks(lambda: f"live session {self.stats.id}")
        self._reply_task: asyncio.Task[None] | None = None
        self._closing = False
        self._config: SessionConfig | None = None
        self._vad = EnergyVad()
        self._turn_number = 0
        self._pending_text: list[str] = []
        self._activity_ms: float | None = None  # audio inside a manual activity; None outside one
        self._seen_audio = False
        self._echo_ms = 0.0  # echoed audio since the last handle (echo mode)
        self._handles_offered = 0
        self._heard_next: collections.deque[str] = collections.deque()  # words for the next spoken turns
        self._history: list[dict[str, Any]] = []  # finished turns, inherited ones first (for resumption)
        self._calls = tools.CallLedger(stats.id, stats.tool_calls)
        self._call_timers: dict[str, asyncio.Task[None]] = {}
        self._proposals: dict[str, Proposal] = {}
        self._handlers: dict[str, Callable[[Any], None]] = {
            kind: getattr(self, f"_on_{kind}") for kind in set(_CLIENT_KINDS.values())
        }
        self._triggers: dict[str, Callable[[list[str]], None]] = {
            "goaway": self._trigger_goaway,
            "close": self._trigger_close,
            "drop": lambda args: self._drop(),
            "delay": self._trigger_delay,
            "slow": self._trigger_delay,
            "echo": lambda args: self._set_mode(Mode.ECHO),
            "converse": lambda args: self._set_mode(Mode.CONVERSE),
            "stall": self._trigger_stall,
            "quota": self._trigger_quota,
            "hear": self._trigger_hear,
        }

    # -- lifecycle ------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session until either side closes it."""
        try:
            await self._serve()
        except ClientProtocolError as exc:
            self._close(1007, str(exc))
        except Exception:  # a bug here must not look like a hang to the client
            logger.exception("live session %s failed", self.stats.id)
            self._close(1011, "Internal error encountered.")
        except asyncio.CancelledError:
            self._ws.close(1001, STOPPING_REASON)
            await self._finish(STOP_CLOSE_TIMEOUT_S)
            raise
        await self._finish()

    async def _serve(self) -> None:
        if self._refusal is not None:
            self._close(*self._refusal)
            return
        first = await self._ws.recv()
        if first is None:
            return
        self._on_first(first)
        while not self._closing:
            raw = await self._ws.recv()
            if raw is None:
                return
            self._on_message(raw)
            await self._ws.drain()

    async def _finish(self, close_timeout: float | None = None) -> None:
        """Stop timers and replies, flush delayed messages (unless stopping), end the connection."""
        stopping = close_timeout is not None
        flush = not stopping and self._ws.open
        for task in [*self._tasks, *([self._outbox_task] if not flush and self._outbox_task else [])]:
            task.cancel()
        # Delayed messages still go out when the server ends the session, never after the client
        # closed it: nothing can be sent on a closed connection, and the session ends at once.
        if flush and self._outbox_task is not None and not self._outbox_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._outbox_task), self._delay_s + 1.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
        await self._ws.shutdown(CLOSE_TIMEOUT_S if close_timeout is None else close_timeout)
        self.stats.open = False
        self.stats.close_code = self._ws.close_code
        self.stats.close_reason = self._ws.close_reason
        self.stats.ended_at = time.time()
        self._control.notify()
        logger.info("live session %s ended (%s)", self.stats.id, self.stats.close_code)

    # -- client messages ------------------------------------------------------

    def _on_first(self, raw: bytes) -> None:
        message = _parse(raw)
        if set(message) != {"setup"}:
            raise ClientProtocolError("Invalid argument: the first message must be a setup message.")
        self._on_setup(message["setup"], first=True)

    def _on_message(self, raw: bytes) -> None:
        message = _parse(raw)
        for key, body in message.items():
            kind = _CLIENT_KINDS.get(key)
            if kind is None:
                raise ClientProtocolError(f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')
            self._handlers[kind](body)
            if self._closing:
                return

    def _on_setup(self, body: Any, *, first: bool = False) -> None:
        if not first:
            raise ClientProtocolError("Invalid argument: setup may only be sent once, as the first message.")
        self._count("setup")
        config = parse_setup(body)
        self._config = config
        self.stats.model = config.model
        self.stats.setup = config.summary()
        self.stats.raw_setup = body
        self._vad = EnergyVad(silence_ms=config.silence_ms)
        if config.resume_handle and not self._resume(config.resume_handle):
            return
        if self._fire(Moment.SETUP):
            return
        self._emit(replies.SETUP_COMPLETE)
        self._schedule_faults()
        logger.debug("live session %s set up: model=%s mode=%s", self.stats.id, config.model, self._mode.value)

    def _on_realtime_input(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ClientProtocolError("Invalid JSON payload received: realtime_input must be an object.")
        audio = body.get("audio")
        if audio is not None:
            self._count("audio")
            self._on_audio(audio)
            if len(body) == 1:
                return  # the hot path: one audio chunk per message
        chunks = pick(body, "mediaChunks", [])
        if not isinstance(chunks, list):
            raise ClientProtocolError("Invalid JSON payload received: realtime_input.media_chunks must be a list.")
        for chunk in chunks:
            self._on_media_chunk(chunk)
        if "text" in body:
            self._count("text")
            self._on_typed(body["text"])
        if has(body, "video"):
            self._count("video")
        if pick(body, "audioStreamEnd"):
            self._count("audio_stream_end")
            self._on_audio_stream_end()
        if has(body, "activityStart"):
            self._count("activity_start")
            self._on_activity_start()
        if has(body, "activityEnd"):
            self._count("activity_end")
            self._on_activity_end()

    def _on_client_content(self, body: Any) -> None:
        self._count("client_content")
        turns = pick(body, "turns", [])
        if not isinstance(turns, list):
            raise ClientProtocolError("Invalid JSON payload received: client_content.turns must be a list.")
        for turn in turns:
            if pick(turn, "role", "user") == "user":
                self._pending_text.append(text_of_parts(pick(turn, "parts")))
        if pick(body, "turnComplete"):
            text = "\n".join(t for t in self._pending_text if t)
            self._pending_text.clear()
            self._on_typed(text)

    def _on_tool_response(self, body: Any) -> None:
        self._count("tool_response")
        for response in tools.parse_responses(body):
            self.stats.tool_responses.append(response.as_dict())
            record = self._calls.answer(response)
            if record is None:
                continue  # settled already (cancelled, or a repeated answer): nothing to say
            self._stop_timer(record["id"])
            self._control.notify()
            if not self._silent(record["name"], response.scheduling):
                self._start_scheduling_reply(record)

    def _on_context_update(self, body: Any) -> None:
        self._count("context_update")
        instruction = pick(body, "systemInstruction")
        if instruction is not None:
            self.stats.setup["system_instruction"] = text_of_parts(pick(instruction, "parts"))

    # -- audio and turns ------------------------------------------------------

    def _on_media_chunk(self, chunk: Any) -> None:
        if str(pick(chunk, "mimeType", "")).startswith("audio/"):
            self._count("audio")
            self._on_audio(chunk)
        else:
            self._count("video")

    def _on_audio(self, blob: Any) -> None:
        try:
            pcm = b64decode(pick(blob, "data", ""))
        except ValueError as exc:
            raise ClientProtocolError(f"Invalid value at 'realtime_input.audio.data': {exc}") from None
        mime_type = pick(blob, "mimeType")
        if mime_type is not None and not isinstance(mime_type, str):
            raise ClientProtocolError("Invalid value at 'realtime_input.audio.mime_type': expected a string.")
        rate = mime_rate(mime_type)
        data = samples(pcm)
        stats = self.stats
        stats.audio_chunks += 1
        stats.audio_in_bytes += len(pcm)
        ms = duration_ms(len(pcm), rate)
        stats.audio_in_ms += ms
        stats.audio_rate_hz = rate
        # Echo mode is a benchmark's hot path: estimate its RMS from every 4th sample.
        measured = data[::ECHO_RMS_STRIDE] if self._mode is Mode.ECHO else data
        stats.sum_squares += sum_squares(measured)
        stats.n_samples += len(measured)
        if not self._seen_audio:
            self._seen_audio = True
            if self._fire(Moment.FIRST_AUDIO):
                return
        if self._mode is Mode.ECHO:
            self._echo(pcm, ms)
        else:
            self._listen(data, rate)

    def _echo(self, pcm: bytes, ms: float) -> None:
        """Answer one chunk (``ms`` long) with its echo; offer a handle after each second of echoed audio."""
        echo = echo_reply(pcm)
        self.stats.audio_out_bytes += len(echo)
        for start in range(0, len(echo), MAX_AUDIO_PER_MESSAGE):
            self._emit(audio_frame(echo[start : start + MAX_AUDIO_PER_MESSAGE]))
        # Echo sessions have no turns to offer handles after; without them a relay could not resume one.
        self._echo_ms += ms
        if self._echo_ms >= ECHO_HANDLE_EVERY_MS and self._config is not None and self._config.resumption:
            self._echo_ms %= ECHO_HANDLE_EVERY_MS
            self._offer_handle()

    def _listen(self, data: Any, rate: int) -> None:
        if self._config is not None and not self._config.automatic_activity:
            if self._activity_ms is not None:
                self._activity_ms += len(data) * 1000 / rate
            return
        for event in self._vad.feed(data, rate):
            if event is VadEvent.BARGE_IN:
                self._barge_in()
            elif event is VadEvent.TURN_END:
                self._end_voice_turn(self._vad.turn_ms)

    def _on_audio_stream_end(self) -> None:
        span_ms = self._vad.flush()
        if self._mode is Mode.CONVERSE and span_ms is not None:
            self._end_voice_turn(span_ms)
        else:
            self._on_user_turn(None)

    def _on_activity_start(self) -> None:
        self._activity_ms = 0.0
        self._barge_in()

    def _on_activity_end(self) -> None:
        if self._activity_ms is None or self._mode is Mode.ECHO:
            return
        heard_ms, self._activity_ms = self._activity_ms, None
        self._end_voice_turn(heard_ms)

    def _end_voice_turn(self, span_ms: float) -> None:
        words = self._heard_next.popleft() if self._heard_next else None
        self._on_user_turn(UserTurn("voice", seconds=round(span_ms / 1000, 1), text=words))

    def _on_typed(self, text: Any) -> None:
        if not isinstance(text, str):
            raise ClientProtocolError("Invalid value: text must be a string.")
        if text.startswith(TRIGGER_PREFIX):
            self._on_trigger(text[len(TRIGGER_PREFIX) :].split())
            return
        self.stats.text_turns += 1
        self._on_user_turn(UserTurn("text", text=text) if self._mode is Mode.CONVERSE else None)

    def _barge_in(self) -> None:
        """The user started speaking: stop the reply and give up on unanswered function calls."""
        if self._speaking():
            self._interrupt()
        self._cancel_calls(self._calls.pending(), "user_turn")

    def _on_user_turn(self, turn: UserTurn | None) -> None:
        """A user turn ended (None: one that gets no answer, as audio ending in echo mode)."""
        if self._stall_due(counted=turn is not None):
            self._stall()
            return
        if turn is None:
            return
        self._cancel_calls(self._calls.pending(), "user_turn")
        proposal = self._proposal(turn)
        if proposal is None:
            self._start_reply(turn)
        else:
            self._start_tool_call(turn, proposal)

    # -- replies --------------------------------------------------------------

    def _speaking(self) -> bool:
        return self._reply_task is not None and not self._reply_task.done()

    def _start_reply(self, turn: UserTurn, text: str | None = None) -> None:
        if self._speaking():
            self._interrupt()
        self._reply_task = self._tasks.spawn(self._reply(turn, text))

    def _interrupt(self) -> None:
        assert self._reply_task is not None
        self._reply_task.cancel()
        self._emit(replies.interrupted())
        self.stats.interruptions += 1
        if self.stats.turns:
            self.stats.turns[-1]["interrupted"] = True
        self._control.notify()

    async def _reply(self, turn: UserTurn, text: str | None) -> None:
        """Answer ``turn`` aloud: ``text``, or the stock reply for its turn number."""
        config = self._config
        assert config is not None
        number = self._next_turn()
        heard = self._heard(turn)
        text = text or reply_text(config.wording, number, seconds=turn.seconds, text=turn.text)
        self.stats.turns.append({"n": number, "kind": turn.kind, "input": heard, "reply": text, "interrupted": False})
        if turn.kind == "voice" and config.input_transcription:
            self._emit(replies.input_transcription(heard))
        audio_bytes = await self._speak(text, config)
        self._emit(replies.generation_complete())
        self._emit(replies.turn_complete(turn, text, audio_out_bytes=audio_bytes))
        self.stats.turns_answered += 1
        self._history.append({"n": number, "input": heard, "reply": text})
        if config.resumption:
            self._offer_handle()
        self._control.notify()

    def _heard(self, turn: UserTurn) -> str:
        """What the user said, as transcribed: their words, or a stand-in for speech."""
        if turn.text is not None:
            return turn.text
        assert self._config is not None
        return input_transcript(self._config.wording, turn.seconds)

    def _next_turn(self) -> int:
        number = self._turn_number
        self._turn_number += 1
        return number

    async def _speak(self, text: str, config: SessionConfig) -> int:
        """Send the reply's frames, paced; return the PCM bytes sent."""
        frames = replies.plan_reply(
            text, audio=config.audio_out, combined=config.combined, transcribe=config.output_transcription
        )
        speed = self._control.reply_speed  # read per reply, so it can be changed on open sessions
        interval_s = CHUNK_MS / 1000 / speed if speed > 0 and math.isfinite(speed) else 0.0
        sent = 0
        next_at = self._loop.time()
        for frame in frames:
            self._emit(frame.payload)
            sent += frame.audio_bytes
            self.stats.audio_out_bytes += frame.audio_bytes
            if frame.tick:
                next_at += interval_s
                await asyncio.sleep(max(0.0, next_at - self._loop.time()))
        return sent

    def _offer_handle(self) -> None:
        self._handles_offered += 1
        handle = f"emu-{self.stats.id}-t{self._turn_number}-h{self._handles_offered}"
        history = tuple(self._history[-MAX_TURN_LOG:])  # finished turns are never changed, so they are shared
        self._control.save_handle(handle, {"turns": self._turn_number, "session": self.stats.id, "history": history})
        self.stats.last_handle = handle
        self._emit(replies.resumption_update(handle))

    def _resume(self, handle: str) -> bool:
        state = self._control.resume(handle)
        if state is None:
            self._close(1008, SESSION_NOT_FOUND)
            return False
        self._turn_number = int(state.get("turns", 0))
        self._history = list(state.get("history", ()))
        self.stats.history = list(self._history)
        self.stats.resume_handle = handle
        return True

    # -- function calls -------------------------------------------------------

    def _proposal(self, turn: UserTurn) -> Proposal | None:
        """The meeting the user proposed, when ``schedule_meeting`` is declared; else None."""
        config = self._config
        if config is None or turn.text is None or config.function(tools.SCHEDULE_MEETING) is None:
            return None
        return find_proposal(turn.text, today=datetime.date.today())

    def _start_tool_call(self, turn: UserTurn, proposal: Proposal) -> None:
        """Ask the client to run ``schedule_meeting``; the reply waits for its response."""
        config = self._config
        assert config is not None
        if self._speaking():
            self._interrupt()
        heard = self._heard(turn)
        number = self._next_turn()
        call = self._calls.issue(tools.SCHEDULE_MEETING, proposal.args())
        self._proposals[call["id"]] = proposal
        self.stats.turns.append({"n": number, "kind": turn.kind, "input": heard, "reply": None,
                                 "interrupted": False, "tool_call": call["id"]})
        self._history.append({"n": number, "input": heard, "tool_call": {"name": call["name"], "args": call["args"]}})
        if turn.kind == "voice" and config.input_transcription:
            self._emit(replies.input_transcription(heard))
        self._emit(tools.tool_call(call["id"], call["name"], call["args"]))
        self._call_timers[call["id"]] = self._tasks.spawn(self._expire_call(call["id"], self._control.tool_timeout_s))
        self._control.notify()

    async def _expire_call(self, call_id: str, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)
        self._call_timers.pop(call_id, None)
        self._cancel_calls([call_id], "timeout")

    def _cancel_calls(self, call_ids: list[str], reason: str) -> None:
        """Cancel pending calls and tell the client with ``toolCallCancellation``."""
        cancelled = self._calls.cancel(call_ids, reason)
        for call_id in cancelled:
            self._stop_timer(call_id)
            self._proposals.pop(call_id, None)
        if cancelled:
            self._emit(tools.tool_call_cancellation(cancelled))
            self._control.notify()

    def _stop_timer(self, call_id: str) -> None:
        timer = self._call_timers.pop(call_id, None)
        if timer is not None:
            timer.cancel()

    def _silent(self, name: str, scheduling: str | None) -> bool:
        """Whether a response asks for no spoken follow-up (SILENT, honoured for NON_BLOCKING functions)."""
        declared = self._config.function(name) if self._config is not None else None
        return scheduling == tools.SILENT and declared is not None and declared.non_blocking

    def _start_scheduling_reply(self, call: dict[str, Any]) -> None:
        """Confirm the meeting aloud (or ask for another time when the function failed)."""
        assert self._config is not None
        proposal = self._proposals.pop(call["id"])
        wording = self._config.wording
        when = proposal.spoken(japanese=wording is JAPANESE)
        text = scheduling_reply(wording, when, failed=tools.is_failure(call["response"]))
        self._start_reply(UserTurn("tool", text=call["id"]), text)

    # -- faults and triggers --------------------------------------------------

    def _fire(self, moment: Moment) -> bool:
        """Apply the close/drop fault armed for ``moment``; True when one fired."""
        for fault in self._faults:
            if fault.kind in CLOSING_FAULTS and fault.when is moment:
                self._apply(fault)
                return True
        return False

    def _apply(self, fault: Fault) -> None:
        if fault.kind is FaultKind.DROP:
            self._drop()
        else:
            self._close(fault.code, fault.reason)

    def _schedule_faults(self) -> None:
        for fault in self._faults:
            if fault.kind in CLOSING_FAULTS and fault.when is Moment.AFTER_MS:
                self._tasks.spawn(self._after(fault.after_ms, lambda f=fault: self._apply(f)))
            elif fault.kind is FaultKind.GOAWAY:
                self._tasks.spawn(self._go_away(fault.after_ms, fault.time_left_s, close=fault.close))

    async def _after(self, ms: float, action: Callable[[], None]) -> None:
        await asyncio.sleep(ms / 1000)
        action()

    async def _go_away(self, after_ms: float, time_left_s: float, *, close: bool) -> None:
        await asyncio.sleep(after_ms / 1000)
        self._emit(replies.go_away(time_left_s))
        if close:
            await asyncio.sleep(time_left_s)
            self._close(1000, GOAWAY_CLOSE_REASON)

    def _on_trigger(self, words: list[str]) -> None:
        self._count("trigger")
        triggers.dispatch(self._triggers, words, session=self.stats.id)

    def _trigger_goaway(self, args: list[str]) -> None:
        seconds = float(args[0]) if args else DEFAULT_GOAWAY_S
        self._tasks.spawn(self._go_away(0, seconds, close=True))

    def _trigger_close(self, args: list[str]) -> None:
        code = int(args[0]) if args else 1011
        self._close(code, " ".join(args[1:]) or Fault.reason)

    def _trigger_delay(self, args: list[str]) -> None:
        self._delay_s = max(0, int(args[0])) / 1000

    def _trigger_hear(self, args: list[str]) -> None:
        if not args:
            raise ValueError("hear needs the words the next spoken turn is transcribed as")
        self._heard_next.append(" ".join(args))

    def _trigger_stall(self, args: list[str]) -> None:
        self._stall_after = max(0, int(args[0])) if args else 0

    def _trigger_quota(self, args: list[str]) -> None:
        """``quota``: close now with 1011 RESOURCE_EXHAUSTED; ``quota next [n]``: refuse the next n
        handshakes with 429; ``quota rest [n]``: answer the next n REST calls with 429."""
        target = args[0].lower() if args else "now"
        count = int(args[1]) if len(args) > 1 else 1
        if target == "now":
            self._close(1011, QUOTA_CLOSE_REASON)
        elif target == "next":
            self._control.fault_next(FaultKind.QUOTA, count=count)
        elif target == "rest":
            self._control.fault_next_rest(429, count=count)
        else:
            raise ValueError(f"unknown quota target {target!r}")

    def _stall_due(self, *, counted: bool) -> bool:
        """Whether this user turn is the one the stall fault waits for (counting the turns before it)."""
        if self._stall_after is None:
            return False
        if self._stall_after > 0:
            self._stall_after -= counted
            return False
        return True

    def _stall(self) -> None:
        """Freeze: stop everything this session would send; the socket stays open and answers pings."""
        self._stalled = True
        self.stats.stalled = True
        for task in [*self._tasks, *([self._outbox_task] if self._outbox_task else [])]:
            task.cancel()
        self._outbox.clear()
        self._control.notify()
        logger.info("live session %s stalled (fault)", self.stats.id)

    def _set_mode(self, mode: Mode) -> None:
        if self._speaking():
            self._interrupt()
        self._mode = mode
        self.stats.mode = mode.value

    def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        if self._reply_task is not None:
            self._reply_task.cancel()
        reason = clip_reason(reason)
        self._queue(lambda: self._ws.close(code, reason))

    def _drop(self) -> None:
        self._closing = True
        self._ws.abort()

    # -- sending --------------------------------------------------------------

    def _emit(self, payload: bytes) -> None:
        """Send one server message now, or after the injected delay (keeping order); nothing once stalled."""
        if self._stalled:
            return
        if self._delay_s <= 0 and not self._outbox:
            self._send_now(payload)
        else:
            self._queue(lambda: self._send_now(payload))

    def _send_now(self, payload: bytes) -> None:
        if self._ws.send(payload):
            self.stats.messages_out += 1
            self.stats.bytes_out += len(payload)

    def _queue(self, action: Callable[[], None]) -> None:
        if self._delay_s <= 0 and not self._outbox:
            action()
            return
        self._outbox.append((self._loop.time() + self._delay_s, action))
        if self._outbox_task is None or self._outbox_task.done():
            self._outbox_task = asyncio.create_task(self._drain_outbox())

    async def _drain_outbox(self) -> None:
        while self._outbox:
            due, action = self._outbox[0]
            wait = due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._outbox.popleft()
            action()

    # -- helpers --------------------------------------------------------------

    def _count(self, kind: str) -> None:
        counts = self.stats.client_messages
        counts[kind] = counts.get(kind, 0) + 1


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ClientProtocolError("Invalid JSON payload received.") from None
    if not isinstance(message, dict):
        raise ClientProtocolError("Invalid JSON payload received: expected an object.")
    return message
