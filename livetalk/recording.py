"""Records a conversation as it happens: one stereo WAV and a turn-aligned transcript.

The relay calls a :class:`ConversationRecorder` from its event-loop thread. Those
calls only timestamp the event and queue it (never blocking, never touching
storage); one background thread per recording places the audio on a common
timeline, writes it to storage in bounded memory, and publishes the files when
:meth:`ConversationRecorder.finalize` is called.

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

Errors: a storage failure during the conversation stops the recording (logged, the
conversation goes on) and ``finalize`` returns None.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import queue
import re
import threading
import time
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
QUEUE_BUDGET_BYTES = 8 * 1024 * 1024  # audio waiting for the writer thread; beyond it, events are dropped
VOICE_PEAK = 1000  # a user chunk peaking above this (of 32767) counts as speech for transcript timing
EVENT_OVERHEAD_BYTES = 64  # what a queued control event is charged against the budget

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


# --- the timeline (writer thread only) --------------------------------------------------------


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


class _Mixer:
    """Places user and model audio on one 24 kHz timeline and hands out committed stereo frames."""

    def __init__(self) -> None:
        self.committed = 0
        self.user, self.model = _Track(USER_WINDOW_S), _Track(MAX_LOOKAHEAD_S + COMMIT_LAG_S + 2 * COMMIT_BLOCK_S)
        self.user_cursor = self.model_cursor = 0
        self.upsample = _Upsampler()
        self.dropped_model = 0  # frames beyond the look-ahead window

    def add_user(self, now: int, pcm16k: bytes) -> tuple[int, int, bool]:
        """Place user audio; returns its (start, end) frames and whether it sounds like speech."""
        samples = self.upsample(np.frombuffer(pcm16k, dtype="<i2"))
        nominal = now - len(samples)
        drift = self.user_cursor - nominal
        start = self.user_cursor
        if drift < -USER_JITTER_S * OUTPUT_RATE or drift > USER_MAX_AHEAD_S * OUTPUT_RATE:
            start = nominal
        start = max(start, self.committed)
        self.user.place(start, samples)
        self.user_cursor = start + len(samples)
        loud = bool(len(samples)) and int(np.abs(samples.astype(np.int32)).max()) >= VOICE_PEAK
        return start, self.user_cursor, loud

    def add_model(self, now: int, pcm24k: bytes) -> int:
        """Schedule model audio; returns the frame where it starts playing."""
        samples = np.frombuffer(pcm24k, dtype="<i2")
        start = max(now, self.model_cursor, self.committed)
        self.dropped_model += self.model.place(start, samples)
        self.model_cursor = start + len(samples)
        return start

    def interrupt(self, now: int) -> None:
        self.model.truncate(now)
        self.model_cursor = min(self.model_cursor, max(now, self.committed))

    def ready(self, now: int) -> Iterator[bytes]:
        """Stereo frames that can no longer change (once a block's worth is due), in bounded blocks."""
        upto = now - int(COMMIT_LAG_S * OUTPUT_RATE)
        if upto - self.committed >= COMMIT_BLOCK_S * OUTPUT_RATE:
            yield from self._blocks(upto)

    def drain(self) -> Iterator[bytes]:
        """Everything still held, up to the end of the last placed sample, in bounded blocks."""
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


# --- the transcript (writer thread only) ------------------------------------------------------


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


_END = "end"


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

    Every method but :meth:`finalize` is non-blocking and meant for the relay's event-loop
    thread. Construction does no I/O.
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
    ) -> None:
        self._storage = storage
        self.session_id = session_id
        self.scenario_id = scenario_id
        self.started_at = started_at if started_at.tzinfo else started_at.replace(tzinfo=dt.timezone.utc)
        self._prefix = conversation_prefix(session_id, self.started_at)
        if segment:
            self._prefix = check_key(f"{self._prefix}/segment-{int(segment)}")
        self.segment = int(segment)
        self._clock = clock
        self._t0 = clock()
        self._queue: queue.SimpleQueue[tuple[str, float, Any, int]] = queue.SimpleQueue()  # kind, time, payload, charge
        self._lock = threading.Lock()
        self._pending = 0  # bytes queued, charged against QUEUE_BUDGET_BYTES
        self._dropped_events = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._result: str | None = None
        self._worker = _RecordingWorker(self)

    @property
    def key_prefix(self) -> str:
        """The conversation's folder, e.g. ``conversations/2025/01/31/<session_id>`` (no trailing slash)."""
        return self._prefix

    @property
    def backlog_bytes(self) -> int:
        """Bytes queued for the writer thread (at most :data:`QUEUE_BUDGET_BYTES`; beyond it events drop)."""
        return self._pending

    # --- called from the relay's event loop: queue and return ------------------------------

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
        charge = size + EVENT_OVERHEAD_BYTES
        with self._lock:
            if self._closed:
                return
            if self._pending + charge > QUEUE_BUDGET_BYTES:
                self._dropped_events += 1
                if self._dropped_events == 1:
                    log.warning("recording %s is falling behind: dropping events", self.session_id)
                return
            self._pending += charge
            self._start_thread()
        self._queue.put((kind, self._clock(), payload, charge))

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"recorder-{self.session_id[:12]}", daemon=True
            )
            self._thread.start()

    def _settle(self, charge: int) -> None:
        with self._lock:
            self._pending -= charge

    # --- the end -----------------------------------------------------------------------------

    def finalize(self, reason: str, timeout: float | None = None) -> str | None:
        """Flush and publish the recording; returns its folder's URI, or None if it could not be stored.

        Blocking (call it from a worker thread). Idempotent: later calls wait for and
        return the first call's result. Events after the first call are ignored. With a
        ``timeout`` (seconds) it returns None if publishing has not finished by then; the
        writer thread still completes it in the background.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
            if first:
                self._start_thread()
        if first:
            self._queue.put((_END, self._clock(), str(reason), 0))
        if not self._done.wait(timeout):
            log.warning("recording %s is still being published", self.session_id)
        return self._result

    def _run(self) -> None:
        worker = self._worker
        while True:
            kind, t, payload, charge = self._queue.get()
            if kind == _END:
                self._result = worker.finish(t, payload, dropped_events=self._dropped_events)
                self._done.set()
                return
            self._settle(charge)
            worker.handle(kind, _frame(t, self._t0), payload)


class _RecordingWorker:
    """The recorder's writer-thread half: timeline, transcript and storage."""

    def __init__(self, rec: ConversationRecorder) -> None:
        self.rec = rec
        self.storage = rec._storage
        self.mixer = _Mixer()
        self.audio: Writer | None = None
        self.lines: Writer | None = None
        self.frames_written = 0
        self.open: dict[str, _Utterance] = {}
        self.turns = {"user": 0, "model": 0}
        self.interruptions = 0
        self.voice: tuple[int, int] | None = None  # user speech heard since their last utterance
        self.failed = False
        self.now = 0

    def key(self, name: str) -> str:
        return f"{self.rec.key_prefix}/{name}"

    # --- events ----------------------------------------------------------------------------

    def handle(self, kind: str, now: int, payload: Any) -> None:
        if self.failed:
            return
        self.now = max(self.now, now)
        try:
            # Commit first: it slides the windows up to "now" before anything is placed.
            for block in self.mixer.ready(self.now):
                self._write_audio(block)
            getattr(self, f"_on_{kind}")(self.now, payload)
        except StorageError:
            self._fail("storage is unavailable")
        except Exception:  # a bug here must not take the conversation down with it
            log.exception("recording %s failed", self.rec.session_id)
            self._fail("internal error")

    def _on_user(self, now: int, pcm: bytes) -> None:
        start, end, loud = self.mixer.add_user(now, pcm)
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
        if utterance is None or self.failed:
            return
        line = utterance.line()
        if not line["text"]:
            return
        self.turns[role] += 1
        if self.lines is None:
            self.lines = self.storage.open_append(self.key(TRANSCRIPT_NAME), "application/jsonl")
        self.lines.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")

    def _write_audio(self, frames: bytes) -> None:
        if not frames or self.failed:
            return
        if self.audio is None:
            self.audio = self.storage.open_append(self.key(AUDIO_NAME), "audio/wav", header_size=WAV_HEADER_BYTES)
        self.audio.write(frames)
        self.frames_written += len(frames) // FRAME_BYTES

    def _fail(self, why: str) -> None:
        if self.failed:
            return
        self.failed = True
        log.error("recording %s stopped: %s", self.rec.session_id, why)
        for writer in (self.audio, self.lines):
            if writer is not None:
                writer.abort()

    # --- finalize --------------------------------------------------------------------------

    def finish(self, t: float, reason: str, *, dropped_events: int) -> str | None:
        """Publish audio, transcript, meta and index; returns the folder URI or None."""
        try:
            if not self.failed:
                for role in ("user", "model"):
                    self._close(role)
                for block in self.mixer.drain():
                    self._write_audio(block)
            if self.failed:
                return None
            return self._publish(t, reason, dropped_events)
        except StorageError:
            self._fail("storage is unavailable")
            return None
        except Exception:
            log.exception("recording %s could not be finalised", self.rec.session_id)
            self._fail("internal error")
            return None

    def _publish(self, t: float, reason: str, dropped_events: int) -> str:
        audio_key = None
        if self.audio is not None:
            self.audio.close(header=wav_header(self.frames_written * FRAME_BYTES,
                                               sample_rate=OUTPUT_RATE, channels=CHANNELS))
            audio_key = self.key(AUDIO_NAME)
        transcript = self.lines or self.storage.open_append(self.key(TRANSCRIPT_NAME), "application/jsonl")
        transcript.close()
        meta = self._meta(t, reason, audio_key, dropped_events)
        self._put_json(self.key(META_NAME), meta)
        index = {k: meta[k] for k in ("session_id", "scenario_id", "started_at", "ended_at")}
        index.update(prefix=self.rec.key_prefix, audio=audio_key, transcript=self.key(TRANSCRIPT_NAME),
                     meta=self.key(META_NAME))
        try:
            if not self.rec.segment:
                self._put_json(index_key(self.rec.session_id), index)
        except ObjectExists:  # e.g. a conversation resumed under the same id: keep the first pointer
            log.warning("session index for %s already exists", self.rec.session_id)
        return self.storage.uri(self.rec.key_prefix) + "/"

    def _meta(self, t: float, reason: str, audio_key: str | None, dropped_events: int) -> dict[str, Any]:
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
            "audio": None if audio_key is None else {
                "key": audio_key, "sample_rate": OUTPUT_RATE, "channels": ["user", "model"],
                "duration_s": round(self.frames_written / OUTPUT_RATE, 3),
            },
            "transcript": self.key(TRANSCRIPT_NAME),
            "dropped": {"events": dropped_events, "model_audio_ms": _ms(self.mixer.dropped_model)},
        }

    def _put_json(self, key: str, value: dict[str, Any]) -> None:
        self.storage.put(key, json.dumps(value, ensure_ascii=False, indent=1).encode(), "application/json")
