"""The recorder: one conversation's events, timestamped on the relay loop, turned into files by the pump.

The relay calls a :class:`ConversationRecorder` from its event-loop thread, about a hundred times a second
per conversation. Those calls only timestamp the event and append it to the recorder's deque: no lock, no
thread wake-up, no storage. The process's :class:`~livetalk.recording.pump.RecordingPump` takes the events
in batches and hands them to the recorder's :class:`_RecordingWorker`, which places the audio on the
:mod:`~livetalk.recording.timeline` and closes transcript lines; the bytes go to its
:class:`~livetalk.recording.sink.Sink`. The output is a function of the events and their timestamps only:
how the pump happens to batch them changes nothing.

Measured as it is written: the worker feeds every stereo block it commits to an
:class:`~livetalk.analytics.StereoVad` and stores who spoke when (``"activity"``) in ``meta.json`` at every
checkpoint and at the end, so grading and history never read the audio again (about 0.01 % of a core per
conversation, on the pump thread). An outcome the AI party reached through a tool call (the customer agreed
to a meeting) is kept in ``meta.json`` (``"outcome"``) and as a transcript line of role ``outcome``.

Errors: a storage failure during the conversation stops the recording (logged, the conversation goes on)
and ``finalize`` returns None.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..analytics import StereoVad
from ..storage import Storage
from ..wav import wav_header
from .layout import AUDIO_NAME, META_NAME, TRANSCRIPT_NAME, conversation_prefix, segment_prefix
from .sink import Sink, Snapshot
from .timeline import CHANNELS, FRAME_BYTES, INPUT_RATE, OUTPUT_RATE, Mixer, frame_at, ms

if TYPE_CHECKING:
    from .pump import RecordingPump

log = logging.getLogger("livetalk.recording")

QUEUE_BUDGET_BYTES = 8 * 1024 * 1024  # events waiting for the pump, per recording; beyond it, they drop
EVENT_OVERHEAD_BYTES = 64  # what a queued control event is charged against the budget
BATCH_BYTES = 32 * 1024  # events processed at once (keeps every temporary array small: see timeline)
IO_BACKLOG_BYTES = 2 * 1024 * 1024  # output handed to storage, not yet written; beyond it the pump waits
CHECKPOINT_S = 30.0  # what has been recorded is made readable this often: a killed process loses at most this


@dataclasses.dataclass
class _Utterance:
    role: str
    start: int  # frame
    end: int
    parts: list[str] = dataclasses.field(default_factory=list)
    interrupted: bool = False

    def line(self) -> dict[str, Any]:
        return {"role": self.role, "text": "".join(self.parts).strip(), "start_ms": ms(self.start),
                "end_ms": ms(max(self.end, self.start)), "interrupted": self.interrupted}


class ConversationRecorder:
    """Streams one conversation's audio and transcript to storage; see the module docstring.

    Args:
        storage: where the files go (a :class:`~livetalk.storage.Storage`).
        session_id: the conversation's id; a safe key segment (letters, digits, ``-``, ``_``).
        scenario_id: the scenario's id, kept in ``meta.json``.
        started_at: when the conversation started (aware datetime; its UTC date names the folder).
        clock: monotonic seconds; the timeline's origin is its value at construction.
        segment: 0 for a conversation's first recording; n > 0 for the n-th continuation of
            the same session (e.g. resumed on another instance), stored in ``segment-<n>/``
            inside the first one's folder so that nothing collides. Only segment 0 is indexed.
        recording_started_at: when this recording started (aware datetime): ``meta.json``'s
            ``started_at``, which places a continuation on the conversation's timeline. Default:
            ``started_at`` for segment 0, the time of construction for a continuation.
        pump: the :class:`~livetalk.recording.pump.RecordingPump` that processes the events (the process's
            own, owned by :class:`~livetalk.services.Services`).
        queue_budget_bytes: events waiting for the pump beyond this are dropped (and counted).
        input_rate: the user audio's sample rate in Hz (16000, or 24000 for an engine that takes that).
        engine: the name of the engine the conversation runs on, kept in ``meta.json``.
        checkpoint_s: seconds of conversation between checkpoints (the audio, transcript and ``meta.json``
            so far, readable in storage, marked ``"complete": false``).
        learner_id: who opened the conversation (see :mod:`livetalk.identity`), kept in ``meta.json`` and
            the session index so that only they can read it back; None: nobody in particular.

    Every method but :meth:`finalize` is non-blocking and meant for the relay's event-loop
    thread (one thread: they are not meant to be called from several at once).
    Construction does no I/O and starts no thread.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        session_id: str,
        scenario_id: str,
        started_at: dt.datetime,
        clock: Callable[[], float] = time.monotonic,
        segment: int = 0,
        pump: RecordingPump,
        queue_budget_bytes: int = QUEUE_BUDGET_BYTES,
        checkpoint_s: float = CHECKPOINT_S,
        input_rate: int = INPUT_RATE,
        engine: str = "gemini",
        learner_id: str | None = None,
        recording_started_at: dt.datetime | None = None,
    ) -> None:
        self.session_id = session_id
        self.learner_id = learner_id
        self.scenario_id = scenario_id
        self.started_at = _aware(started_at)
        if recording_started_at is None:
            recording_started_at = started_at if not segment else dt.datetime.now(dt.timezone.utc)
        self.recording_started_at = _aware(recording_started_at)
        self._prefix = segment_prefix(conversation_prefix(session_id, self.started_at), segment)
        self.segment = int(segment)
        self._clock = clock
        self._t0 = clock()
        self._pump = pump
        self._budget = queue_budget_bytes
        self.checkpoint_s = checkpoint_s
        self.input_rate = input_rate
        self.engine = engine
        # Appended by the relay loop, popped by whoever holds _lock (the pump or finalize).
        self._events: deque[tuple[str, float, Any, int]] = deque()  # kind, time, payload, charge
        self._queued = 0  # bytes ever queued (written by the relay loop only)
        self._taken = 0  # bytes ever taken off the queue (written under _lock only)
        self._dropped_events = 0
        self._registered = False
        self._closed = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: str | None = None
        self._worker = _RecordingWorker(self, Sink(storage, self._prefix, session_id, pump.io))

    @property
    def key_prefix(self) -> str:
        """The conversation's folder, e.g. ``conversations/2025/01/31/<session_id>`` (no trailing slash)."""
        return self._prefix

    @property
    def dropped_events(self) -> int:
        """Events dropped because the pump fell behind (counted in ``meta.json``)."""
        return self._dropped_events

    @property
    def frames_written(self) -> int:
        """Stereo frames of audio handed to storage so far (the recording's length once finalised)."""
        return self._worker.frames_written

    @property
    def backlog_bytes(self) -> int:
        """Bytes queued for the pump (at most :data:`QUEUE_BUDGET_BYTES`; beyond it events drop)."""
        return self._queued - self._taken

    # --- called from the relay's event loop: append and return -------------------------------

    def user_audio(self, pcm: bytes) -> None:
        """User speech as it arrives: PCM s16le mono at the recorder's input rate."""
        self._put("user", bytes(pcm), len(pcm))

    def model_audio(self, pcm24k: bytes) -> None:
        """Model speech as it arrives from upstream: PCM s16le mono 24 kHz."""
        self._put("model", bytes(pcm24k), len(pcm24k))

    def transcript(self, role: str, text: str, final: bool) -> None:
        """A piece of transcription; pieces of one utterance are joined, ``final`` ends it."""
        if role not in ("user", "model") or not isinstance(text, str):
            return
        self._put("text", (role, text, bool(final)), len(text.encode()))

    def turn_complete(self) -> None:
        """The model finished its turn."""
        self._put("turn", None, 0)

    def interrupted(self) -> None:
        """The user barged in: the client dropped its queued model audio now."""
        self._put("interrupt", None, 0)

    def outcome(self, name: str, details: dict[str, Any]) -> None:
        """The AI party reached ``name`` through a tool call, e.g. ``"appointment"`` with
        ``{"date": "YYYY-MM-DD", "time": "HH:MM", "topic": ...}``; replaces an earlier outcome."""
        if not isinstance(name, str) or not name:
            return
        details = dict(details) if isinstance(details, dict) else {}
        self._put("outcome", (name, details), len(name) + len(repr(details)))

    def outcome_cancelled(self, name: str) -> None:
        """The tool call that reached ``name`` was cancelled: the conversation no longer has that outcome."""
        if isinstance(name, str) and name:
            self._put("outcome", (name, None), len(name))

    def _put(self, kind: str, payload: Any, size: int) -> None:
        # No lock: deque.append is atomic, and each counter has a single writer.
        if self._closed:
            return
        charge = size + EVENT_OVERHEAD_BYTES
        if self._queued - self._taken + charge > self._budget:
            self._dropped_events += 1
            if self._dropped_events == 1:
                log.warning("recording %s is falling behind: dropping events", self.session_id)
            return
        self._queued += charge
        self._events.append((kind, self._clock(), payload, charge))
        if not self._registered:
            self._registered = True
            self._pump.add(self)

    # --- called by the pump ------------------------------------------------------------------

    def _pump_once(self) -> bool:
        """Process the queued events unless finalize is at it; False once the recorder is closed."""
        if not self._lock.acquire(blocking=False):
            return True
        try:
            if self._closed:
                return False
            self._drain(final=False)
            return True
        finally:
            self._lock.release()

    def _drain(self, *, final: bool) -> None:
        """Process the events queued so far in batches of about :data:`BATCH_BYTES` (caller holds ``_lock``).

        Unless ``final``, stops while the storage side is more than :data:`IO_BACKLOG_BYTES`
        behind: the events wait in the queue, whose budget bounds memory.
        """
        events, worker = self._events, self._worker
        left = len(events)  # not those appended meanwhile: a round ends even if the producer does not
        while left and (final or worker.sink.backlog <= IO_BACKLOG_BYTES):
            batch, size = [], 0
            while left and size < BATCH_BYTES:
                event = events.popleft()
                batch.append(event)
                size += event[3]
                left -= 1
            self._taken += size
            worker.process(batch)

    # --- the end -----------------------------------------------------------------------------

    def finalize(self, reason: str, timeout: float | None = None) -> str | None:
        """Flush and publish the recording; returns its folder's URI, or None if it could not be stored.

        Blocking (call it from a worker thread): processes the events still queued, then
        waits for the storage side to publish. Idempotent: later calls wait for and return
        the first call's result. Events after the first call are ignored. With a
        ``timeout`` (seconds) it returns None if publishing has not finished by then; the
        I/O pool still completes it in the background.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
            if first:
                t = self._clock()
                self._pump.discard(self)
                self._drain(final=True)
                self._worker.finish(t, str(reason), dropped_events=self._dropped_events, on_done=self._published)
        if not self._done.wait(timeout):
            log.warning("recording %s is still being published", self.session_id)
        return self._result

    def _published(self, uri: str | None) -> None:
        self._result = uri
        self._done.set()


class _RecordingWorker:
    """The recorder's pump-side half: events → timeline and transcript → bytes for the sink."""

    def __init__(self, rec: ConversationRecorder, sink: Sink) -> None:
        self.rec = rec
        self.sink = sink
        self.mixer = Mixer(rec.input_rate)
        self.frames_written = 0
        self.open: dict[str, _Utterance] = {}
        self.turns = {"user": 0, "model": 0}
        self.interruptions = 0
        self.outcome: dict[str, Any] | None = None  # meta.json's "outcome"
        self.vad = StereoVad(OUTPUT_RATE)  # who spoke when, measured on the blocks written
        self.voice: tuple[int, int] | None = None  # user speech heard since their last utterance
        self.now = 0
        self._checkpoint_frames = max(int(rec.checkpoint_s * OUTPUT_RATE), 1)
        self._next_checkpoint = self._checkpoint_frames
        self._handlers: dict[str, Callable[[int, Any], None]] = {
            "user": self._on_user, "model": self._on_model, "text": self._on_text,
            "turn": self._on_turn, "interrupt": self._on_interrupt, "outcome": self._on_outcome,
        }

    # --- events ----------------------------------------------------------------------------

    def process(self, events: list[tuple[str, float, Any, int]]) -> None:
        """Handle a batch of events, in order, as if one at a time."""
        if self.sink.failed:
            return
        try:
            self.mixer.stage_user([payload for kind, _, payload, _ in events if kind == "user"])
            t0, handlers = self.rec._t0, self._handlers
            for kind, t, payload, _ in events:
                handlers[kind](self._advance(frame_at(t, t0)), payload)
            self.mixer.flush()
        except Exception:  # a bug here must not take the conversation down with it
            log.exception("recording %s failed", self.rec.session_id)
            self.sink.fail("internal error")

    def _advance(self, frame: int) -> int:
        """Move "now" to ``frame`` (never back); commit first, so windows slide before anything is placed."""
        if frame > self.now:
            self.now = frame
        if self.mixer.due(self.now):
            for block in self.mixer.ready(self.now):
                self._write_audio(block)
        return self.now

    def _on_user(self, now: int, _pcm: bytes) -> None:
        start, end, loud = self.mixer.add_user(now)  # the staged samples of this chunk
        if loud:
            self.voice = (self.voice[0] if self.voice else start, end)

    def _on_model(self, now: int, pcm: bytes) -> None:
        start = self.mixer.add_model(now, pcm)
        utterance = self._utterance("model", start)
        utterance.end = self.mixer.model_cursor

    def _on_text(self, now: int, payload: tuple[str, str, bool]) -> None:
        role, text, final = payload
        if not text and role not in self.open:
            return  # e.g. the relay closing an utterance this recorder already closed
        if role == "model":
            utterance = self._utterance(role, max(now, self.mixer.model_cursor))
            utterance.end = max(utterance.end, self.mixer.model_cursor)
        else:
            # Transcription lags speech: time the utterance by the speech heard, when there was some.
            start, end = self.voice or (now, now)
            utterance = self._utterance(role, min(start, now))
            utterance.end = max(utterance.end, end)
        utterance.parts.append(text)
        if final:
            self._close(role)

    def _on_turn(self, now: int, _: None) -> None:
        self._close("user")
        self._close("model")

    def _on_interrupt(self, now: int, _: None) -> None:
        self.interruptions += 1
        self.mixer.interrupt(now)
        model = self.open.get("model")
        if model is not None:
            model.interrupted = True
            model.end = min(model.end, self.mixer.model_cursor)
            self._close("model")

    def _on_outcome(self, now: int, payload: tuple[str, dict[str, Any] | None]) -> None:
        name, details = payload
        line = {"role": "outcome", "name": name, "details": details, "cancelled": details is None,
                "start_ms": ms(now), "end_ms": ms(now)}
        if details is not None:
            self.outcome = {name: True, "details": details}
        elif self.outcome is not None and name in self.outcome:  # only the outcome that call reached
            self.outcome = None
        self.sink.add_line(json.dumps(line, ensure_ascii=False, default=str).encode() + b"\n")
        # An agreed meeting is worth more than the audio around it: stored at the next block, not interval.
        self._next_checkpoint = min(self._next_checkpoint, self.mixer.committed + 1)

    def _utterance(self, role: str, start: int) -> _Utterance:
        utterance = self.open.get(role)
        if utterance is None:
            if role == "model":
                self._close("user")  # the model starting to answer ends the user's utterance
            utterance = self.open[role] = _Utterance(role, start, start)
        return utterance

    def _close(self, role: str) -> None:
        utterance = self.open.pop(role, None)
        if role == "user":
            self.voice = None
        if utterance is None or self.sink.failed:
            return
        line = utterance.line()
        if not line["text"]:
            return
        self.turns[role] += 1
        self.sink.add_line(json.dumps(line, ensure_ascii=False).encode() + b"\n")

    def _write_audio(self, frames: bytes) -> None:
        if not frames or self.sink.failed:
            return
        self.sink.append_audio(frames)
        self.vad.feed(frames)
        self.frames_written += len(frames) // FRAME_BYTES
        if self.mixer.committed >= self._next_checkpoint:
            self._next_checkpoint = self.mixer.committed + self._checkpoint_frames
            self.sink.checkpoint(self._snapshot(self.mixer.committed / OUTPUT_RATE, None, self.rec.dropped_events))

    # --- finalize --------------------------------------------------------------------------

    def finish(self, t: float, reason: str, *, dropped_events: int,
               on_done: Callable[[str | None], None]) -> None:
        """Close the utterances, write out the timeline and have the sink publish; ``on_done(uri or None)``."""
        snapshot = None
        try:
            if not self.sink.failed:
                for role in ("user", "model"):
                    self._close(role)
                for block in self.mixer.drain():
                    self._write_audio(block)
                self.vad.finish()
                snapshot = self._snapshot(max(t - self.rec._t0, 0.0), reason, dropped_events)
        except Exception:
            log.exception("recording %s could not be finalised", self.rec.session_id)
            self.sink.fail("internal error")
        self.sink.publish(snapshot, on_done)

    def _snapshot(self, elapsed: float, reason: str | None, dropped_events: int) -> Snapshot:
        """What the files say after ``elapsed`` seconds; ``reason`` None means the conversation goes on."""
        meta = self._meta(elapsed, reason, dropped_events)
        header = wav_header(self.frames_written * FRAME_BYTES, sample_rate=OUTPUT_RATE, channels=CHANNELS)
        return Snapshot(audio_header=header if self.frames_written else None, transcript=self.sink.transcript(),
                        meta=meta, index=self._index(meta))

    def _meta(self, elapsed: float, reason: str | None, dropped_events: int) -> dict[str, Any]:
        rec = self.rec
        return {
            "session_id": rec.session_id,
            "scenario_id": rec.scenario_id,
            "engine": rec.engine,
            "learner_id": rec.learner_id,
            "conversation_started_at": rec.started_at.isoformat(),
            "started_at": rec.recording_started_at.isoformat(),  # this recording's (a continuation's own)
            "ended_at": (rec.recording_started_at + dt.timedelta(seconds=elapsed)).isoformat(),
            "duration_s": round(elapsed, 3),
            "reason": reason,
            "complete": reason is not None,  # False: a checkpoint of a conversation still going on (or cut off)
            "segment": rec.segment,
            "turns": dict(self.turns),
            "interruptions": self.interruptions,
            "outcome": self.outcome,
            "audio": None if not self.frames_written else {
                "key": self.sink.key(AUDIO_NAME), "sample_rate": OUTPUT_RATE, "channels": ["user", "model"],
                "duration_s": round(self.frames_written / OUTPUT_RATE, 3),
            },
            "transcript": self.sink.key(TRANSCRIPT_NAME),
            "dropped": {"events": dropped_events, "model_audio_ms": ms(self.mixer.dropped_model)},
            "activity": self.vad.so_far().to_json(),  # so far: finish() has run at the end
        }

    def _index(self, meta: dict[str, Any]) -> dict[str, Any] | None:
        """The ``sessions/<id>.json`` entry (segment 0 only)."""
        if self.rec.segment:
            return None
        index = {k: meta[k] for k in ("session_id", "scenario_id", "learner_id", "started_at", "ended_at")}
        index.update(prefix=self.rec.key_prefix, audio=meta["audio"] and meta["audio"]["key"],
                     transcript=self.sink.key(TRANSCRIPT_NAME), meta=self.sink.key(META_NAME))
        return index


def _aware(moment: dt.datetime) -> dt.datetime:
    """``moment`` with a time zone (UTC when it has none)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
