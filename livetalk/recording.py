"""Records a conversation as it happens: one stereo WAV and a turn-aligned transcript.

The relay calls a :class:`ConversationRecorder` from its event-loop thread, about a
hundred times a second per conversation. Those calls only timestamp the event and
append it to the recorder's deque: no lock, no thread wake-up, no storage. One
:class:`RecordingPump` thread per process wakes every :data:`PUMP_INTERVAL_S`, takes
every open recorder's events in one go and places each batch's audio on a common
timeline with a few numpy calls. The bytes it produces are written to storage, in
order per recording and in pieces of about :data:`FLUSH_BYTES`, by a small pool of
:data:`IO_THREADS` threads, so a slow store holds up only its own recordings.
:meth:`ConversationRecorder.finalize` processes what is left and has that pool
publish the files.

Threads::

    relay loop ──append──▶ recorder._events ──every 250 ms──▶ pump thread (timeline, transcript)
                                                                   │ FLUSH_BYTES pieces, in order
    finalize (executor) ── drains the rest, then waits ──▶ I/O pool (writes, publish)

Objects, under ``conversations/<yyyy>/<mm>/<dd>/<session_id>/``:

``audio.wav``
    24 kHz, 16-bit, stereo: the user on the left (upsampled from 16 kHz), the model
    on the right, on one timeline that starts when the recorder is created.
``transcript.jsonl``
    One line per utterance: ``{"role", "text", "start_ms", "end_ms", "interrupted"}``.
``meta.json``
    Session id, scenario, start and end, duration, why it ended, turn counts.

and ``sessions/<session_id>.json`` pointing at that folder, so the conversation can be
found by id whatever day it was recorded on (:func:`find_recording`).

Placement. User audio arrives in real time: a chunk is placed so that it ends at
its arrival time, back to back with the previous chunk unless that leaves a gap or
overlap beyond the jitter allowance. Model audio arrives in bursts faster than real
time and the client plays it sequentially, so a chunk starts at
``max(arrival, end of the previous model chunk)``. Audio is committed to storage
:data:`COMMIT_LAG_S` behind "now"; model audio scheduled later stays in memory (up
to :data:`MAX_LOOKAHEAD_S`) so that :meth:`~ConversationRecorder.interrupted` can
drop what the client never played.

The output is a function of the events and their timestamps only: how the pump
happens to batch them changes nothing.

Errors: a storage failure during the conversation stops the recording (logged, the
conversation goes on) and ``finalize`` returns None.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .storage import ObjectExists, ObjectNotFound, Storage, StorageError, Writer, check_key
from .wav import WAV_HEADER_BYTES, wav_header

log = logging.getLogger("livetalk.recording")

INPUT_RATE = 16000  # Hz, user audio from the browser
OUTPUT_RATE = 24000  # Hz, model audio and the recording
CHANNELS = 2  # left: user, right: model
FRAME_BYTES = 2 * CHANNELS  # one stereo s16le frame

COMMIT_LAG_S = 1.0  # audio older than now - this is final and written out
COMMIT_BLOCK_S = 0.5  # write in blocks at least this long
MAX_BLOCK_S = 5.0  # ... and at most this long (a long silence is written in pieces)
USER_JITTER_S = 0.25  # a user chunk this early/late still continues the previous one
USER_MAX_AHEAD_S = 1.0  # a user stream running further ahead than this is re-anchored on arrival time
USER_WINDOW_S = 8.0  # user audio held in memory (commit lag + jitter + one 2 s frame, with room)
MAX_LOOKAHEAD_S = 30.0  # unplayed model audio held in memory; later audio is dropped (and counted)
QUEUE_BUDGET_BYTES = 8 * 1024 * 1024  # events waiting for the pump, per recording; beyond it, they drop
VOICE_PEAK = 1000  # a user chunk peaking above this (of 32767) counts as speech for transcript timing
EVENT_OVERHEAD_BYTES = 64  # what a queued control event is charged against the budget

PUMP_INTERVAL_S = 0.25  # the pump processes every recorder's queued events this often
BATCH_BYTES = 128 * 1024  # events processed at once (bounds the batch's temporary arrays)
FLUSH_BYTES = 128 * 1024  # output handed to storage in pieces about this big (~1.4 s of stereo audio)
IO_BACKLOG_BYTES = 2 * 1024 * 1024  # output handed to storage, not yet written; beyond it the pump waits
IO_THREADS = 4  # storage operations of all recordings in a process, at most this many at once

_LAG = int(COMMIT_LAG_S * OUTPUT_RATE)  # the same limits in frames
_BLOCK = int(COMMIT_BLOCK_S * OUTPUT_RATE)
_JITTER = int(USER_JITTER_S * OUTPUT_RATE)
_MAX_AHEAD = int(USER_MAX_AHEAD_S * OUTPUT_RATE)

CONVERSATIONS = "conversations"
SESSIONS = "sessions"
AUDIO_NAME = "audio.wav"
TRANSCRIPT_NAME = "transcript.jsonl"
META_NAME = "meta.json"
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def check_session_id(session_id: str) -> str:
    """Return ``session_id`` if it is 1–128 letters, digits, ``-`` or ``_`` (starting alphanumeric), else ValueError."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise ValueError("session_id must be 1-128 letters, digits, '-' or '_'")
    return session_id


def conversation_prefix(session_id: str, started_at: dt.datetime) -> str:
    """``conversations/<yyyy>/<mm>/<dd>/<session_id>`` (UTC date), validated as a storage key."""
    check_session_id(session_id)
    day = started_at.astimezone(dt.timezone.utc) if started_at.tzinfo else started_at
    return check_key(f"{CONVERSATIONS}/{day:%Y/%m/%d}/{session_id}")


def index_key(session_id: str) -> str:
    """Where the pointer to a session's folder lives."""
    return check_key(f"{SESSIONS}/{check_session_id(session_id)}.json")


def find_recording(storage: Storage, session_id: str) -> dict[str, Any] | None:
    """The index entry of a finalised recording (keys: prefix, audio, transcript, meta, …), or None.

    Raises ValueError for an unsafe id and
    :class:`~livetalk.storage.StorageUnavailable` when the store cannot be read.
    """
    try:
        return json.loads(storage.read(index_key(session_id)))
    except ObjectNotFound:
        return None


# --- the timeline (pump side) -----------------------------------------------------------------


class _Track:
    """One channel's samples from the commit point on, in a fixed-size int16 window."""

    def __init__(self, window_s: float) -> None:
        self.buf = np.zeros(int(window_s * OUTPUT_RATE), dtype=np.int16)  # pages are touched lazily
        self.base = 0  # absolute frame of buf[0]
        self.end = 0  # samples written so far, relative to base

    def place(self, start: int, samples: np.ndarray) -> int:
        """Write ``samples`` at absolute frame ``start`` (overwriting); returns how many did not fit."""
        off = start - self.base
        if off < 0:
            samples, off = samples[-off:], 0
        fit = samples[:max(len(self.buf) - off, 0)]
        if len(fit):
            self.buf[off:off + len(fit)] = fit
            self.end = max(self.end, off + len(fit))
        return len(samples) - len(fit)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples (silence where none were placed); the window slides by ``n``."""
        out = np.zeros(n, dtype=np.int16)
        k = min(n, self.end)
        out[:k] = self.buf[:k]
        rest = max(self.end - n, 0)
        if rest:
            self.buf[:rest] = self.buf[n:n + rest]
        self.buf[rest:self.end] = 0
        self.end, self.base = rest, self.base + n
        return out

    def truncate(self, at: int) -> int:
        """Silence everything from absolute frame ``at`` on; returns how many samples were dropped."""
        off = max(at - self.base, 0)
        dropped = max(self.end - off, 0)
        self.buf[off:self.end] = 0
        self.end = min(self.end, off)
        return dropped


class _Upsampler:
    """16 kHz → 24 kHz by linear interpolation, continuous across chunks."""

    def __init__(self) -> None:
        self.seen = 0  # input samples so far
        self.made = 0  # output samples so far
        self.last = 0.0  # the previous chunk's last input sample

    def counts(self, lengths: list[int]) -> list[int]:
        """How many output samples each of these next input chunks (in samples) yields, in order."""
        out, seen, made = [], self.seen, self.made
        for n in lengths:
            seen += n
            upto = 3 * (seen - 1) // 2 + 1 if seen else 0
            out.append(upto - made)
            made = upto
        return out

    def __call__(self, pcm16k: np.ndarray) -> np.ndarray:
        if not len(pcm16k):
            return pcm16k
        first = self.seen - 1  # input index of buf[0]
        buf = np.concatenate(([self.last if self.seen else float(pcm16k[0])], pcm16k.astype(np.float64)))
        self.seen += len(pcm16k)
        upto = 3 * (self.seen - 1) // 2  # last output index whose input position 2n/3 is known
        n = np.arange(self.made, upto + 1)
        self.made = upto + 1
        self.last = float(pcm16k[-1])
        y = np.interp(n * (2.0 / 3.0) - first, np.arange(len(buf)), buf)
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def _frame(t: float, t0: float) -> int:
    return max(int(round((t - t0) * OUTPUT_RATE)), 0)


def _ms(frame: int) -> int:
    return frame * 1000 // OUTPUT_RATE


def _samples(pcm: bytes) -> int:
    if len(pcm) & 1:
        raise ValueError("PCM16 audio must be a whole number of samples")
    return len(pcm) >> 1


class _Mixer:
    """Places user and model audio on one 24 kHz timeline and hands out committed stereo frames.

    Placement is decided per chunk (plain integers); the sample copies are deferred and
    done per run of back-to-back chunks (:meth:`flush`), before anything reads the tracks.
    """

    def __init__(self) -> None:
        self.committed = 0
        self.user, self.model = _Track(USER_WINDOW_S), _Track(MAX_LOOKAHEAD_S + COMMIT_LAG_S + 2 * COMMIT_BLOCK_S)
        self.user_cursor = self.model_cursor = 0
        self.upsample = _Upsampler()
        self.dropped_model = 0  # frames beyond the look-ahead window
        self._staged = np.zeros(0, dtype=np.int16)  # this batch's user audio, upsampled
        self._chunks: Iterator[tuple[int, bool]] = iter(())  # (samples, loud) per staged user chunk
        self._offset = 0  # where the next user chunk starts in _staged
        self._user_runs: list[list[int]] = []  # [start frame, offset in _staged, length]
        self._model_runs: list[tuple[int, list[bytes]]] = []  # (start frame, back-to-back chunks)
        self._model_run_end = -1

    def stage_user(self, chunks: list[bytes]) -> None:
        """Upsample a batch's user chunks in one go; :meth:`add_user` then takes them in order."""
        if not chunks:
            return
        counts = self.upsample.counts([_samples(c) for c in chunks])
        self._staged = self.upsample(np.frombuffer(b"".join(chunks), dtype="<i2"))
        self._offset = 0
        starts = np.cumsum([0] + counts[:-1])
        voiced = [i for i, n in enumerate(counts) if n]
        loud = [False] * len(counts)
        if voiced:
            at = starts[voiced]
            peaks = np.maximum.reduceat(self._staged, at) >= VOICE_PEAK
            dips = np.minimum.reduceat(self._staged, at) <= -VOICE_PEAK
            for i, hit in zip(voiced, (peaks | dips).tolist()):
                loud[i] = hit
        self._chunks = iter(zip(counts, loud))

    def add_user(self, now: int) -> tuple[int, int, bool]:
        """Place the next staged user chunk, heard until ``now``: its (start, end) frames, whether it is speech."""
        n, loud = next(self._chunks)
        offset, self._offset = self._offset, self._offset + n
        nominal = now - n
        drift = self.user_cursor - nominal
        start = self.user_cursor
        if drift < -_JITTER or drift > _MAX_AHEAD:
            start = nominal
        start = max(start, self.committed)
        if n:
            last = self._user_runs[-1] if self._user_runs else None
            if last is not None and last[0] + last[2] == start and last[1] + last[2] == offset:
                last[2] += n
            else:
                self._user_runs.append([start, offset, n])
        self.user_cursor = start + n
        return start, self.user_cursor, loud

    def add_model(self, now: int, pcm24k: bytes) -> int:
        """Schedule model audio; returns the frame where it starts playing."""
        start = max(now, self.model_cursor, self.committed)
        if start == self._model_run_end:
            self._model_runs[-1][1].append(pcm24k)
        else:
            self._model_runs.append((start, [pcm24k]))
        self.model_cursor = self._model_run_end = start + _samples(pcm24k)
        return start

    def flush(self) -> None:
        """Copy the placed chunks into the tracks."""
        for start, offset, n in self._user_runs:
            self.user.place(start, self._staged[offset:offset + n])
        for start, pieces in self._model_runs:
            self.dropped_model += self.model.place(start, np.frombuffer(b"".join(pieces), dtype="<i2"))
        self._user_runs.clear()
        self._model_runs.clear()
        self._model_run_end = -1

    def interrupt(self, now: int) -> None:
        self.flush()
        self.model.truncate(now)
        self.model_cursor = min(self.model_cursor, max(now, self.committed))

    def due(self, now: int) -> bool:
        """Whether a block's worth of frames can no longer change."""
        return now - _LAG - self.committed >= _BLOCK

    def ready(self, now: int) -> Iterator[bytes]:
        """Stereo frames that can no longer change (once a block's worth is due), in bounded blocks."""
        if self.due(now):
            self.flush()
            yield from self._blocks(now - _LAG)

    def drain(self) -> Iterator[bytes]:
        """Everything still held, up to the end of the last placed sample, in bounded blocks."""
        self.flush()
        yield from self._blocks(max(self.user.base + self.user.end, self.model.base + self.model.end))

    def _blocks(self, upto: int) -> Iterator[bytes]:
        while self.committed < upto:
            yield self._take(min(upto - self.committed, int(MAX_BLOCK_S * OUTPUT_RATE)))

    def _take(self, n: int) -> bytes:
        if not n:
            return b""
        stereo = np.empty((n, CHANNELS), dtype="<i2")
        stereo[:, 0], stereo[:, 1] = self.user.take(n), self.model.take(n)
        self.committed += n
        return stereo.tobytes()


# --- the transcript (pump side) ---------------------------------------------------------------


@dataclasses.dataclass
class _Utterance:
    role: str
    start: int  # frame
    end: int
    parts: list[str] = dataclasses.field(default_factory=list)
    interrupted: bool = False

    def line(self) -> dict[str, Any]:
        return {"role": self.role, "text": "".join(self.parts).strip(), "start_ms": _ms(self.start),
                "end_ms": _ms(max(self.end, self.start)), "interrupted": self.interrupted}


# --- the recorder ---------------------------------------------------------------------------


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
        pump: the :class:`RecordingPump` that processes the events; by default the process's own.

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
        pump: RecordingPump | None = None,
    ) -> None:
        self.session_id = session_id
        self.scenario_id = scenario_id
        self.started_at = started_at if started_at.tzinfo else started_at.replace(tzinfo=dt.timezone.utc)
        self._prefix = conversation_prefix(session_id, self.started_at)
        if segment:
            self._prefix = check_key(f"{self._prefix}/segment-{int(segment)}")
        self.segment = int(segment)
        self._clock = clock
        self._t0 = clock()
        self._pump = pump or default_pump()
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
        self._worker = _RecordingWorker(self, _Sink(storage, self._prefix, session_id, self._pump.io))

    @property
    def key_prefix(self) -> str:
        """The conversation's folder, e.g. ``conversations/2025/01/31/<session_id>`` (no trailing slash)."""
        return self._prefix

    @property
    def backlog_bytes(self) -> int:
        """Bytes queued for the pump (at most :data:`QUEUE_BUDGET_BYTES`; beyond it events drop)."""
        return self._queued - self._taken

    # --- called from the relay's event loop: append and return -------------------------------

    def user_audio(self, pcm16k: bytes) -> None:
        """User speech as it arrives: PCM s16le mono 16 kHz."""
        self._put("user", bytes(pcm16k), len(pcm16k))

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

    def _put(self, kind: str, payload: Any, size: int) -> None:
        # No lock: deque.append is atomic, and each counter has a single writer.
        if self._closed:
            return
        charge = size + EVENT_OVERHEAD_BYTES
        if self._queued - self._taken + charge > QUEUE_BUDGET_BYTES:
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

    def __init__(self, rec: ConversationRecorder, sink: _Sink) -> None:
        self.rec = rec
        self.sink = sink
        self.mixer = _Mixer()
        self.frames_written = 0
        self.open: dict[str, _Utterance] = {}
        self.turns = {"user": 0, "model": 0}
        self.interruptions = 0
        self.voice: tuple[int, int] | None = None  # user speech heard since their last utterance
        self.now = 0
        self._handlers: dict[str, Callable[[int, Any], None]] = {
            "user": self._on_user, "model": self._on_model, "text": self._on_text,
            "turn": self._on_turn, "interrupt": self._on_interrupt,
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
                handlers[kind](self._advance(_frame(t, t0)), payload)
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
        self.sink.append(TRANSCRIPT_NAME, json.dumps(line, ensure_ascii=False).encode() + b"\n")

    def _write_audio(self, frames: bytes) -> None:
        if not frames or self.sink.failed:
            return
        self.sink.append(AUDIO_NAME, frames)
        self.frames_written += len(frames) // FRAME_BYTES

    # --- finalize --------------------------------------------------------------------------

    def finish(self, t: float, reason: str, *, dropped_events: int,
               on_done: Callable[[str | None], None]) -> None:
        """Close the utterances, write out the timeline and have the sink publish; ``on_done(uri or None)``."""
        meta = None
        try:
            if not self.sink.failed:
                for role in ("user", "model"):
                    self._close(role)
                for block in self.mixer.drain():
                    self._write_audio(block)
                meta = self._meta(t, reason, dropped_events)
        except Exception:
            log.exception("recording %s could not be finalised", self.rec.session_id)
            self.sink.fail("internal error")
        header = wav_header(self.frames_written * FRAME_BYTES, sample_rate=OUTPUT_RATE, channels=CHANNELS)
        self.sink.publish(header if self.frames_written else None, meta, self._index(meta), on_done)

    def _meta(self, t: float, reason: str, dropped_events: int) -> dict[str, Any]:
        rec = self.rec
        elapsed = max(t - rec._t0, 0.0)
        return {
            "session_id": rec.session_id,
            "scenario_id": rec.scenario_id,
            "started_at": rec.started_at.isoformat(),
            "ended_at": (rec.started_at + dt.timedelta(seconds=elapsed)).isoformat(),
            "duration_s": round(elapsed, 3),
            "reason": reason,
            "segment": rec.segment,
            "turns": dict(self.turns),
            "interruptions": self.interruptions,
            "audio": None if not self.frames_written else {
                "key": self.sink.key(AUDIO_NAME), "sample_rate": OUTPUT_RATE, "channels": ["user", "model"],
                "duration_s": round(self.frames_written / OUTPUT_RATE, 3),
            },
            "transcript": self.sink.key(TRANSCRIPT_NAME),
            "dropped": {"events": dropped_events, "model_audio_ms": _ms(self.mixer.dropped_model)},
        }

    def _index(self, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        """The ``sessions/<id>.json`` entry (segment 0 only)."""
        if meta is None or self.rec.segment:
            return None
        index = {k: meta[k] for k in ("session_id", "scenario_id", "started_at", "ended_at")}
        index.update(prefix=self.rec.key_prefix, audio=meta["audio"] and meta["audio"]["key"],
                     transcript=self.sink.key(TRANSCRIPT_NAME), meta=self.sink.key(META_NAME))
        return index


# --- the storage side (I/O pool) ------------------------------------------------------------


class _Sink:
    """A recording's storage half: gathers the pump's bytes, writes them in order on the I/O pool.

    :meth:`append`, :meth:`publish` and ``handed`` belong to the pump side (one thread at a
    time, under the recorder's lock); the writers and ``written`` to the pool, where this
    recording's tasks run one after another.
    """

    def __init__(self, storage: Storage, prefix: str, session_id: str, pool: _IoPool) -> None:
        self.storage = storage
        self.prefix = prefix
        self.session_id = session_id
        self.failed = False
        self.handed = 0  # bytes handed to the pool
        self.written = 0  # bytes the pool is done with
        self._pool = pool
        self._gathered: dict[str, list[bytes]] = {AUDIO_NAME: [], TRANSCRIPT_NAME: []}
        self._gathered_bytes = 0
        self._writers: dict[str, Writer] = {}
        self._tasks: deque[Callable[[], None]] = deque()
        self._busy = False
        self._lock = threading.Lock()

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    @property
    def backlog(self) -> int:
        """Bytes gathered or handed over and not yet written."""
        return self._gathered_bytes + self.handed - self.written

    # --- pump side -------------------------------------------------------------------------

    def append(self, name: str, data: bytes) -> None:
        """Add ``data`` to object ``name``; handed to the pool once :data:`FLUSH_BYTES` have gathered."""
        self._gathered[name].append(data)
        self._gathered_bytes += len(data)
        if self._gathered_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Hand what has gathered to the pool."""
        if not self._gathered_bytes:
            return
        pieces = {name: b"".join(parts) for name, parts in self._gathered.items() if parts}
        for parts in self._gathered.values():
            parts.clear()
        size, self._gathered_bytes = self._gathered_bytes, 0
        self.handed += size
        self._submit(functools.partial(self._write, pieces, size))

    def publish(self, audio_header: bytes | None, meta: dict[str, Any] | None, index: dict[str, Any] | None,
                on_done: Callable[[str | None], None]) -> None:
        """After the writes: close the objects, store meta and index; ``on_done(uri or None)`` on the pool."""
        self.flush()
        self._submit(functools.partial(self._publish, audio_header, meta, index, on_done))

    def fail(self, why: str) -> None:
        """Stop the recording (any thread): nothing more is written and nothing is published."""
        with self._lock:
            if self.failed:
                return
            self.failed = True
        log.error("recording %s stopped: %s", self.session_id, why)
        self._submit(self._abort)

    def _submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            self._tasks.append(task)
            if self._busy:
                return
            self._busy = True
        self._pool.submit(self._run)

    # --- pool side -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._tasks:
                    self._busy = False
                    return
                task = self._tasks.popleft()
            task()

    def _write(self, pieces: dict[str, bytes], size: int) -> None:
        try:
            if not self.failed:
                with self._storage_errors():
                    for name, data in pieces.items():
                        self._writer(name).write(data)
        finally:
            self.written += size

    def _publish(self, audio_header: bytes | None, meta: dict[str, Any] | None, index: dict[str, Any] | None,
                 on_done: Callable[[str | None], None]) -> None:
        uri = None
        try:
            with self._storage_errors():
                uri = self._store(audio_header, meta, index)
        finally:
            on_done(uri)

    def _store(self, audio_header: bytes | None, meta: dict[str, Any] | None,
               index: dict[str, Any] | None) -> str | None:
        if self.failed or meta is None:
            return None
        if audio_header is not None:
            self._writer(AUDIO_NAME).close(header=audio_header)
        self._writer(TRANSCRIPT_NAME).close()
        self._put_json(self.key(META_NAME), meta)
        try:
            if index is not None:
                self._put_json(index_key(self.session_id), index)
        except ObjectExists:  # e.g. a conversation resumed under the same id: keep the first pointer
            log.warning("session index for %s already exists", self.session_id)
        return self.storage.uri(self.prefix) + "/"

    def _writer(self, name: str) -> Writer:
        writer = self._writers.get(name)
        if writer is None:
            if name == AUDIO_NAME:
                writer = self.storage.open_append(self.key(name), "audio/wav", header_size=WAV_HEADER_BYTES)
            else:
                writer = self.storage.open_append(self.key(name), "application/jsonl")
            self._writers[name] = writer
        return writer

    def _put_json(self, key: str, value: dict[str, Any]) -> None:
        self.storage.put(key, json.dumps(value, ensure_ascii=False, indent=1).encode(), "application/json")

    def _abort(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.abort()

    @contextlib.contextmanager
    def _storage_errors(self) -> Iterator[None]:
        try:
            yield
        except StorageError:
            self.fail("storage is unavailable")
        except Exception:
            log.exception("recording %s could not be stored", self.session_id)
            self.fail("internal error")


# --- the pump ---------------------------------------------------------------------------------


class _IoPool:
    """A few daemon threads running the recordings' storage tasks (started as needed)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> None:
        self._queue.put(task)
        if len(self._threads) < self.size:
            with self._lock:
                if len(self._threads) < self.size:
                    thread = threading.Thread(target=self._run, name=f"recording-io-{len(self._threads)}",
                                              daemon=True)
                    self._threads.append(thread)
                    thread.start()

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            try:
                task()
            except Exception:  # the sink handles its own errors; this keeps the thread alive regardless
                log.exception("recording storage task failed")


class RecordingPump:
    """Processes the queued events of every open recorder from one daemon thread.

    The thread starts with the first recorder that receives an event and sleeps while
    no recorder is open. Storage work goes to ``io_threads`` daemon threads.

    Args:
        interval_s: seconds between rounds; None starts no thread (call :meth:`run_once`).
        io_threads: storage operations of all recordings, at most this many at once.
    """

    def __init__(self, *, interval_s: float | None = PUMP_INTERVAL_S, io_threads: int = IO_THREADS) -> None:
        self.interval_s = interval_s
        self.io = _IoPool(io_threads)
        self._recorders: dict[ConversationRecorder, None] = {}  # an ordered set
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def open_recorders(self) -> int:
        """Recorders the pump is processing (registered on their first event, removed by finalize)."""
        return len(self._recorders)

    def add(self, recorder: ConversationRecorder) -> None:
        with self._lock:
            self._recorders[recorder] = None
            if self._thread is None and self.interval_s is not None:
                self._thread = threading.Thread(target=self._run, name="recording-pump", daemon=True)
                self._thread.start()
        self._wake.set()

    def discard(self, recorder: ConversationRecorder) -> None:
        with self._lock:
            self._recorders.pop(recorder, None)

    def run_once(self) -> None:
        """Process every open recorder's queued events now."""
        with self._lock:
            recorders = list(self._recorders)
        for recorder in recorders:
            if not recorder._pump_once():
                self.discard(recorder)
            time.sleep(0)  # hand the GIL to the relay loop between recorders, should it be waiting

    def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self._recorders:
                self._wake.wait()
            time.sleep(self.interval_s)
            try:
                self.run_once()
            except Exception:  # never let the one pump thread die
                log.exception("recording pump round failed")


_default_pump: RecordingPump | None = None
_default_lock = threading.Lock()


def default_pump() -> RecordingPump:
    """The process's pump (created on first use; a forked child gets a fresh one)."""
    global _default_pump
    with _default_lock:
        if _default_pump is None:
            _default_pump = RecordingPump()
        return _default_pump


def _forget_default_pump() -> None:
    global _default_pump, _default_lock
    _default_pump, _default_lock = None, threading.Lock()  # the parent's threads do not exist here


os.register_at_fork(after_in_child=_forget_default_pump)
