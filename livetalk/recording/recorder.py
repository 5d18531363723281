"""The recorder: one conversation's events, timestamped on the relay loop, turned into files by the pump.

The relay calls a :class:`ConversationRecorder` from its event-loop thread, about a hundred times a second
per conversation. Those calls only timestamp the event and append it to the recorder's deque: no lock, no
thread wake-up, no storage. The process's :class:`~livetalk.recording.pump.RecordingPump` takes the events
in batches and hands them to the recorder's :class:`RecordingWorker`, which places the audio on the
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

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..storage import Storage
from .layout import conversation_prefix, segment_prefix
from .sink import Sink
from .timeline import INPUT_RATE
from .worker import RecordingWorker

if TYPE_CHECKING:
    from .pump import RecordingPump

log = logging.getLogger("livetalk.recording")

QUEUE_BUDGET_BYTES = 8 * 1024 * 1024  # events waiting for the pump, per recording; beyond it, they drop
EVENT_OVERHEAD_BYTES = 64  # what a queued control event is charged against the budget
BATCH_BYTES = 32 * 1024  # events processed at once (keeps every temporary array small: see timeline)
IO_BACKLOG_BYTES = 2 * 1024 * 1024  # output handed to storage, not yet written; beyond it the pump waits
CHECKPOINT_S = 30.0  # what has been recorded is made readable this often: a killed process loses at most this


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
        self._worker = RecordingWorker(self, Sink(storage, self._prefix, session_id, pump.io))

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


def _aware(moment: dt.datetime) -> dt.datetime:
    """``moment`` with a time zone (UTC when it has none)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
