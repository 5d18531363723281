"""One emulated OpenAI Realtime session: client events, server VAD, the conversation, faults and triggers.

A :class:`RealtimeSession` sends ``session.created``, then reads client events and
dispatches each ``type`` to an ``_on_<type>`` handler (dots become underscores).
A client event the real service would refuse raises
:class:`~livetalk.emulator.openai.errors.RealtimeEventError` inside its handler and
becomes one ``error`` event; the session carries on. Responses are produced by the
:class:`~livetalk.emulator.openai.responses.Responder`; every event leaves through
the :class:`~livetalk.emulator.openai.sender.EventSender` (injected latency, stall).

Server VAD is the Gemini emulator's energy VAD at 24 kHz: speech starts after
100 ms of continuous sound above the threshold, and ends after the configured
silence; a user turn needs 100 ms of speech in all. In echo mode there is no VAD:
every appended chunk goes straight back as model audio (the Responder's echo
response), the counterpart of the Gemini side's echo.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from livetalk.emulator.audio import BARGE_IN_SPEECH_MS, EnergyVad, VadEvent, duration_ms, samples, sum_squares
from livetalk.emulator import triggers
from livetalk.emulator.control import Control, Fault, FaultKind, Mode, Moment
from livetalk.emulator.dialogue import input_transcript, transcript_pieces
from livetalk.emulator.live import ECHO_RMS_STRIDE, STOP_CLOSE_TIMEOUT_S, STOPPING_REASON
from livetalk.emulator.openai import errors, events
from livetalk.emulator.openai.config import (
    RATE_HZ,
    RealtimeConfig,
    VadSettings,
    apply_update,
    check_response_options,
    default_session,
)
from livetalk.emulator.openai.conversation import Conversation, client_item, text_of
from livetalk.emulator.openai.errors import RealtimeEventError
from livetalk.emulator.openai.events import Ids
from livetalk.emulator.openai.responses import Responder
from livetalk.emulator.openai.sender import EventSender
from livetalk.emulator.openai.stats import RealtimeStats
from livetalk.emulator.reply import UserTurn
from livetalk.emulator.tasks import SessionTasks
from livetalk.emulator.wire import b64decode
from livetalk.emulator.websocket import CLOSE_TIMEOUT_S, WsConnection

logger = logging.getLogger("livetalk.emulator")

SESSION_LIFETIME_S = 60 * 60  # expires_at of the session object
MIN_COMMIT_MS = 100.0  # a manual commit needs this much audio in the buffer
FLUSH_MARGIN_S = 1.0  # on a server-side end, delayed events get their delay plus this long to leave
INTERNAL_ERROR = "Internal error encountered."
QUOTA_CLOSE_REASON = "insufficient_quota"
CLOSING_FAULTS = (FaultKind.CLOSE, FaultKind.DROP, FaultKind.QUOTA)
BAD_AUDIO = "Invalid 'audio'. Expected base64-encoded audio bytes (mono PCM16 at 24kHz) but got an invalid value."

# Client event type → (keys it may carry besides type and event_id, keys it must carry).
CLIENT_EVENTS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "session.update": (frozenset({"session"}), ("session",)),
    "input_audio_buffer.append": (frozenset({"audio"}), ("audio",)),
    "input_audio_buffer.commit": (frozenset(), ()),
    "input_audio_buffer.clear": (frozenset(), ()),
    "output_audio_buffer.clear": (frozenset(), ()),
    "conversation.item.create": (frozenset({"item", "previous_item_id"}), ("item",)),
    "conversation.item.truncate": (frozenset({"item_id", "content_index", "audio_end_ms"}),
                                   ("item_id", "content_index", "audio_end_ms")),
    "conversation.item.delete": (frozenset({"item_id"}), ("item_id",)),
    "conversation.item.retrieve": (frozenset({"item_id"}), ("item_id",)),
    "response.create": (frozenset({"response"}), ()),
    "response.cancel": (frozenset({"response_id"}), ()),
}
_STRING_FIELDS = frozenset({"audio", "item_id", "previous_item_id", "response_id"})
_COUNT_FIELDS = frozenset({"content_index", "audio_end_ms"})


class RealtimeSession:
    """One Realtime WebSocket session after its handshake.

    Args:
        ws: the accepted connection.
        control: shared faults and statistics.
        stats: this session's statistics record (already registered).
        faults: the faults armed for this session.
        model: the model named in the URL.
        mode: converse (server VAD and replies) or echo (every audio chunk sent straight back).
        refusal: an error to send at once, and the close that follows it (bad credentials).
    """

    def __init__(self, ws: WsConnection, *, control: Control, stats: RealtimeStats, faults: list[Fault], model: str,
                 mode: Mode = Mode.CONVERSE, refusal: tuple[RealtimeEventError, int, str] | None = None) -> None:
        self._ws = ws
        self._mode = mode
        self._control = control
        self.stats = stats
        self._faults = faults
        self._refusal = refusal
        self._tasks = SessionTasks(lambda: f"realtime session {self.stats.id}",
                                   lambda: self._close(1011, INTERNAL_ERROR))
        self._closing = False
        delay_s = sum(fault.ms for fault in faults if fault.kind is FaultKind.DELAY) / 1000
        self._sender = EventSender(ws, stats, delay_s=delay_s)
        self._ids = Ids(stats.id)
        self._session = default_session(session_id=f"sess_{stats.id}", model=model,
                                        expires_at=int(time.time()) + SESSION_LIFETIME_S)
        self._config = RealtimeConfig(self._session)
        self._conversation = Conversation()
        self._responder = Responder(sender=self._sender, stats=stats, conversation=self._conversation, ids=self._ids,
                                    control=control, spawn=self._tasks.spawn, changed=self._changed)
        self._vad: EnergyVad | None = None
        self._vad_settings: VadSettings | None = None
        self._vad_origin_ms = 0.0  # session audio clock when the current VAD started
        self._speech_item: str | None = None  # the id the speech in progress will get as an item
        self._buffer_ms = 0.0  # uncommitted input audio
        self._seen_audio = False
        self._trigger_pending = False  # a trigger was typed: the response.create that follows is swallowed
        self._heard_next: collections.deque[str] = collections.deque()
        stall = next((fault for fault in faults if fault.kind is FaultKind.STALL), None)
        self._stall_after: int | None = None if stall is None else stall.after_turns
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            kind: getattr(self, "_on_" + kind.replace(".", "_")) for kind in CLIENT_EVENTS
        }
        self._triggers: dict[str, Callable[[list[str]], None]] = {
            "close": self._trigger_close, "drop": lambda args: self._drop(), "delay": self._trigger_delay,
            "slow": self._trigger_delay, "stall": self._trigger_stall, "quota": self._trigger_quota,
            "ratelimit": self._trigger_rate_limit, "server_error": lambda args: self._server_error(),
            "hear": self._trigger_hear, "echo": lambda args: self._set_mode(Mode.ECHO),
            "converse": lambda args: self._set_mode(Mode.CONVERSE),
        }
        self._configure_vad()
        stats.model = model
        stats.setup = self._config.summary()

    # -- lifecycle ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session until either side closes it."""
        try:
            await self._serve()
        except Exception:  # a bug here must not look like a hang to the client
            logger.exception("realtime session %s failed", self.stats.id)
            self._close(1011, INTERNAL_ERROR)
        except asyncio.CancelledError:
            self._ws.close(1001, STOPPING_REASON)
            await self._finish(stopping=True)
            raise
        await self._finish()

    async def _serve(self) -> None:
        if self._refusal is not None:
            error, code, reason = self._refusal
            self._error(error)
            self._close(code, reason)
            return
        if self._fire(Moment.SETUP, CLOSING_FAULTS):
            return
        self._sender.send(events.session_created(self._session))
        self._fire(Moment.SETUP, (FaultKind.SERVER_ERROR,))
        self._schedule_faults()
        while not self._closing:
            raw = await self._ws.recv()
            if raw is None:
                return
            self._on_message(raw)
            await self._ws.drain()

    async def _finish(self, *, stopping: bool = False) -> None:
        """Stop responses and timers, let delayed events leave (unless stopping or the client left), close."""
        self._tasks.cancel()
        if stopping or not self._ws.open:
            self._sender.cancel()
        else:
            await self._sender.flush(self._sender.delay_s + FLUSH_MARGIN_S)
        await self._ws.shutdown(STOP_CLOSE_TIMEOUT_S if stopping else CLOSE_TIMEOUT_S)
        stats = self.stats
        stats.open = False
        stats.close_code, stats.close_reason = self._ws.close_code, self._ws.close_reason
        stats.ended_at = time.time()
        self._control.notify()
        logger.info("realtime session %s ended (%s)", stats.id, stats.close_code)

    # -- client events ------------------------------------------------------------------------------

    def _on_message(self, raw: bytes) -> None:
        event: Any = None
        try:
            event = _parse(raw)
            self._count(str(event.get("type")))
            kind = _check_event(event)
            self._handlers[kind](event)
        except RealtimeEventError as exc:
            self._error(exc, event)

    def _on_session_update(self, event: dict[str, Any]) -> None:
        session = apply_update(self._session, event["session"], audio_sent=self._responder.audio_sent)
        self._session, self._config = session, RealtimeConfig(session)
        self._configure_vad()
        self.stats.model = self._config.model
        self.stats.setup = self._config.summary()
        self.stats.raw_setup = event["session"]
        self._sender.send(events.session_updated(session))
        self._control.notify()

    def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            pcm = b64decode(event["audio"])
        except ValueError:
            raise RealtimeEventError(BAD_AUDIO, code="invalid_value", param="audio") from None
        data = samples(pcm)
        echo = self._mode is Mode.ECHO
        self._measure(pcm, data, echo=echo)
        if not self._seen_audio:
            self._seen_audio = True
            if self._fire(Moment.FIRST_AUDIO, CLOSING_FAULTS):
                return
            self._fire(Moment.FIRST_AUDIO, (FaultKind.SERVER_ERROR,))
        if echo:
            self._echo(pcm)
        elif self._vad is not None:
            self._listen(data)

    def _measure(self, pcm: bytes, data: Any, *, echo: bool) -> None:
        """Count an appended chunk into the statistics and the uncommitted buffer."""
        # Echo mode is a benchmark's hot path: estimate its RMS from every 4th sample.
        measured = data[::ECHO_RMS_STRIDE] if echo else data
        stats = self.stats
        chunk_ms = duration_ms(len(pcm), RATE_HZ)
        stats.audio_chunks += 1
        stats.audio_in_bytes += len(pcm)
        stats.audio_in_ms += chunk_ms
        stats.audio_rate_hz = RATE_HZ
        stats.sum_squares += sum_squares(measured)
        stats.n_samples += len(measured)
        self._buffer_ms += chunk_ms

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if self._buffer_ms < MIN_COMMIT_MS:
            raise RealtimeEventError(
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but "
                f"buffer only has {self._buffer_ms:.2f}ms of audio.", code="input_audio_buffer_commit_empty")
        item_id, self._speech_item = self._speech_item or self._ids.next("item"), None
        if self._vad is not None:
            self._vad.reset_turn()
        self._commit(item_id, self._buffer_ms / 1000)

    def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self._buffer_ms = 0.0
        self._speech_item = None
        if self._vad is not None:
            self._vad.reset_turn()
        self._sender.send(events.cleared())

    def _on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        """WebRTC and SIP only: over a WebSocket the client holds the output buffer, so nothing happens."""

    def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = client_item(event["item"], new_id=self._ids.next("item"))
        previous = self._conversation.add(item, after=event.get("previous_item_id"))
        if item["type"] == "function_call_output":
            try:
                self._responder.note_output(item)
            except RealtimeEventError:
                self._conversation.delete(item["id"])
                raise
        self._sender.send(events.item_added(item, previous))
        self._sender.send(events.item_done(item, previous))
        if item["type"] == "message":
            self._on_message_item(item)
        self._changed()

    def _on_message_item(self, item: dict[str, Any]) -> None:
        text, role = text_of(item), item["role"]
        words = triggers.trigger_words(text) if role == "user" else None
        if words is not None:
            self._trigger_pending = True
            self._count("trigger")
            triggers.dispatch(self._triggers, words, session=self.stats.id)
            return
        self.stats.history.append({"id": item["id"], "role": role, "text": text})
        if role == "user":
            self._trigger_pending = False
            self.stats.text_turns += 1
            self._responder.note_user(item["id"], UserTurn("text", text=text))
        elif role == "assistant":
            self._responder.note_assistant()

    def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        record = self._responder.truncate(event["item_id"], event["content_index"], event["audio_end_ms"])
        self._sender.send(events.item_truncated(item_id=record["item_id"], content_index=record["content_index"],
                                                audio_end_ms=record["audio_end_ms"]))
        self._changed()

    def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        if not self._conversation.delete(event["item_id"]):
            raise _no_item(event["item_id"])
        self._sender.send(events.item_deleted(event["item_id"]))
        self._changed()

    def _on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        item = self._conversation.get(event["item_id"])
        if item is None:
            raise _no_item(event["item_id"])
        self._sender.send(events.item_retrieved(item))

    def _on_response_create(self, event: dict[str, Any]) -> None:
        options = check_response_options(event.get("response"))
        active = self._responder.active
        if active is not None:
            raise RealtimeEventError(
                f"Conversation already has an active response in progress: {active.id}. Wait until the response "
                "is finished before creating a new one.", code="conversation_already_has_active_response")
        if self._trigger_pending:
            self._trigger_pending = False  # the typed trigger is not a turn: no answer
            return
        self._respond("client", options)

    def _on_response_cancel(self, event: dict[str, Any]) -> None:
        active = self._responder.active
        wanted = event.get("response_id")
        if active is None or (wanted is not None and wanted != active.id):
            raise RealtimeEventError("Cancellation failed: no active response found",
                                     code="response_cancel_not_active")
        self._responder.cancel("client_cancelled")

    # -- audio and turns ----------------------------------------------------------------------------

    def _configure_vad(self) -> None:
        """(Re)start server VAD when its settings change, keeping the session's audio clock."""
        settings = self._config.vad
        if settings == self._vad_settings:
            return
        self._vad_settings = settings
        self._vad_origin_ms = self.stats.audio_in_ms
        self._speech_item = None
        self._vad = None if settings is None else EnergyVad(
            silence_ms=settings.silence_ms, threshold_dbfs=settings.threshold_dbfs, min_speech_ms=BARGE_IN_SPEECH_MS)

    def _listen(self, data: Any) -> None:
        vad = self._vad
        assert vad is not None
        for vad_event in vad.feed(data, RATE_HZ):
            if vad_event is VadEvent.BARGE_IN and vad.speech_start_ms is not None:
                self._speech_started(vad.speech_start_ms)
            elif vad_event is VadEvent.TURN_END:
                self._speech_ended(vad)

    def _speech_started(self, start_ms: float) -> None:
        """Speech began ``start_ms`` into the current VAD's audio: announce it, and barge in on a response."""
        settings = self._vad_settings
        if self._speech_item is not None or settings is None:
            return
        self._speech_item = self._ids.next("item")
        audio_start_ms = max(0.0, self._vad_origin_ms + start_ms - settings.prefix_padding_ms)
        self._sender.send(events.speech_started(audio_start_ms=audio_start_ms, item_id=self._speech_item))
        if settings.interrupt_response:
            self._responder.cancel("turn_detected")

    def _speech_ended(self, vad: EnergyVad) -> None:
        settings = self._vad_settings
        assert settings is not None
        self._speech_started(vad.turn_start_ms)  # no-op unless the speech never ran 100 ms unbroken
        item_id, self._speech_item = self._speech_item, None
        assert item_id is not None
        audio_end_ms = self._vad_origin_ms + vad.turn_start_ms + vad.turn_ms + settings.silence_ms
        self._sender.send(events.speech_stopped(audio_end_ms=audio_end_ms, item_id=item_id))
        self._commit(item_id, vad.turn_ms / 1000)
        if settings.create_response and self._responder.active is None:
            self._respond("server_vad")

    def _commit(self, item_id: str, seconds: float) -> None:
        """Turn the buffered audio into a user message (transcribed when transcription is on)."""
        self._buffer_ms = 0.0
        self._trigger_pending = False  # new input: a later response.create answers it
        words = self._heard_next.popleft() if self._heard_next else None
        turn = UserTurn("voice", seconds=round(seconds, 1), text=words)
        item = events.user_audio_item(item_id)
        previous = self._conversation.add(item)
        self._sender.send(events.committed(item_id=item_id, previous_item_id=previous))
        self._sender.send(events.item_added(item, previous))
        self._sender.send(events.item_done(item, previous))
        self._responder.note_user(item_id, turn)
        if self._config.transcription is not None:
            self._transcribe(item, turn)
        self._changed()

    def _transcribe(self, item: dict[str, Any], turn: UserTurn) -> None:
        transcript = turn.text if turn.text is not None else input_transcript(self._config.wording, turn.seconds)
        for _, piece in transcript_pieces(transcript):
            self._sender.send(events.transcription_delta(item_id=item["id"], delta=piece))
        item["content"] = [{"type": "input_audio", "transcript": transcript}]
        self._sender.send(events.transcription_completed(item_id=item["id"], transcript=transcript,
                                                         seconds=turn.seconds))

    def _respond(self, trigger: str, options: Mapping[str, Any] | None = None) -> None:
        if self._stall_due():
            self._stall()
            return
        self._responder.start(trigger=trigger, config=self._config, options=options or {})

    def _echo(self, pcm: bytes) -> None:
        """Echo mode: ``pcm`` back as model audio at once; a new echo response counts as a response for the stall
        fault."""
        if self._sender.frozen:
            return
        if not self._responder.echoing and self._stall_due():
            self._stall()
            return
        self._responder.echo(pcm, config=self._config)

    def _set_mode(self, mode: Mode) -> None:
        """``!emu echo`` / ``!emu converse``: this session's mode from now on (an echo response ends at once)."""
        if mode is not Mode.ECHO:
            self._responder.end_echo()
        self._mode = mode
        self.stats.mode = mode.value
        self._control.notify()

    # -- faults and triggers ------------------------------------------------------------------------

    def _fire(self, moment: Moment, kinds: tuple[FaultKind, ...]) -> bool:
        """Apply the faults of ``kinds`` armed for ``moment``; True when one ended the session."""
        return any(self._apply(fault) for fault in self._faults if fault.kind in kinds and fault.when is moment)

    def _apply(self, fault: Fault) -> bool:
        """Apply a moment fault; True when it ended the session."""
        if fault.kind is FaultKind.SERVER_ERROR:
            self._server_error()
            return False
        if fault.kind is FaultKind.DROP:
            self._drop()
        elif fault.kind is FaultKind.QUOTA:
            self._quota()
        else:
            self._close(fault.code, fault.reason)
        return True

    def _schedule_faults(self) -> None:
        for fault in self._faults:
            if fault.kind in (*CLOSING_FAULTS, FaultKind.SERVER_ERROR) and fault.when is Moment.AFTER_MS:
                self._tasks.spawn(self._after(fault.after_ms, fault))
            elif fault.kind is FaultKind.GOAWAY:
                logger.info("realtime session %s: goaway faults do not apply to OpenAI Realtime", self.stats.id)

    async def _after(self, ms: float, fault: Fault) -> None:
        await asyncio.sleep(ms / 1000)
        self._apply(fault)

    def _server_error(self) -> None:
        """An ``error`` event of type ``server_error``; a response in progress fails with it."""
        error = errors.server_error(f"sess_{self.stats.id}")
        self._error(error)
        self._responder.fail(error)

    def _quota(self) -> None:
        self._error(errors.quota_exhausted())
        self._close(1011, QUOTA_CLOSE_REASON)

    def _trigger_close(self, args: list[str]) -> None:
        self._close(int(args[0]) if args else 1011, " ".join(args[1:]) or Fault.reason)

    def _trigger_delay(self, args: list[str]) -> None:
        self._sender.delay_s = max(0, int(args[0])) / 1000

    def _trigger_stall(self, args: list[str]) -> None:
        self._stall_after = max(0, int(args[0])) if args else 0

    def _trigger_hear(self, args: list[str]) -> None:
        if not args:
            raise ValueError("hear needs the words the next spoken turn is transcribed as")
        self._heard_next.append(" ".join(args))

    def _trigger_quota(self, args: list[str]) -> None:
        """``quota``: error event and close now; ``quota next [n]``: refuse the next n handshakes with 429
        ``insufficient_quota``; ``quota rest [n]``: the next n REST calls get 429."""
        target, count = (args[0].lower() if args else "now"), (int(args[1]) if len(args) > 1 else 1)
        actions = {"now": self._quota, "next": lambda: self._control.fault_next(FaultKind.QUOTA, count=count),
                   "rest": lambda: self._control.fault_next_rest(429, count=count)}
        if target not in actions:
            raise ValueError(f"unknown quota target {target!r}")
        actions[target]()

    def _trigger_rate_limit(self, args: list[str]) -> None:
        """``ratelimit [n]``: refuse the next n handshakes with 429 ``rate_limit_exceeded``."""
        self._control.fault_next(FaultKind.REJECT, status=429, count=int(args[0]) if args else 1)

    def _stall_due(self) -> bool:
        """Whether the response about to start is the one the stall fault waits for."""
        if self._stall_after is None:
            return False
        if self._stall_after > 0:
            self._stall_after -= 1
            return False
        return True

    def _stall(self) -> None:
        """Freeze: nothing more is sent; the socket stays open and answers pings."""
        self._sender.freeze()
        self._tasks.cancel()
        self.stats.stalled = True
        self._control.notify()
        logger.info("realtime session %s stalled (fault)", self.stats.id)

    def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._tasks.cancel(sparing=asyncio.current_task())
        self._sender.close(code, reason)

    def _drop(self) -> None:
        self._closing = True
        self._ws.abort()

    # -- helpers ------------------------------------------------------------------------------------

    def _error(self, error: RealtimeEventError, client_event: Any = None) -> None:
        client_id = client_event.get("event_id") if isinstance(client_event, Mapping) else None
        body = error.body(client_id)
        self._sender.send(events.error(body))
        self.stats.errors.append(body)
        self._control.notify()

    def _changed(self) -> None:
        self.stats.conversation = self._conversation.summary()
        self._control.notify()

    def _count(self, kind: str) -> None:
        counts = self.stats.client_messages
        counts[kind] = counts.get(kind, 0) + 1


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.invalid_json(str(exc)) from None
    if not isinstance(event, dict):
        raise errors.invalid_json(f"expected an object, got {errors.json_type(event)}")
    return event


def _check_event(event: dict[str, Any]) -> str:
    """The event's type, once its keys and their JSON types are what the service accepts."""
    kind = event.get("type")
    if kind is None:
        raise errors.missing_parameter("type")
    if not isinstance(kind, str):
        raise errors.invalid_type("type", kind, "a string")
    if kind not in CLIENT_EVENTS:
        raise errors.invalid_value("type", kind, tuple(CLIENT_EVENTS))
    allowed, required = CLIENT_EVENTS[kind]
    for name, value in event.items():
        if name in ("type", "event_id"):
            continue
        if name not in allowed:
            raise errors.unknown_parameter(name)
        if value is not None or name in required:
            _check_field(name, value)
    for name in required:
        if name not in event:
            raise errors.missing_parameter(name)
    return kind


def _check_field(name: str, value: Any) -> None:
    if name in _STRING_FIELDS and not isinstance(value, str):
        raise errors.invalid_type(name, value, "a string")
    if name in _COUNT_FIELDS and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise errors.invalid_type(name, value, "a non-negative integer")


def _no_item(item_id: str) -> RealtimeEventError:
    return RealtimeEventError(f"Conversation item '{item_id}' not found.", code="invalid_value", param="item_id")
