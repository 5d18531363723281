"""A recording's storage half, and the small pool of threads that does every recording's storage work.

The pump hands a recording's bytes to its :class:`Sink`; the sink writes them, in order and in pieces of
about :data:`FLUSH_BYTES`, on the :class:`IoPool` shared by all recordings of the process, so a slow store
holds up only its own recordings. At the end it closes the objects and writes ``meta.json`` and the index.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ..storage import Storage, StorageError, Writer
from ..wav import WAV_HEADER_BYTES
from .layout import AUDIO_NAME, META_NAME, TRANSCRIPT_NAME, index_key

log = logging.getLogger("livetalk.recording")

FLUSH_BYTES = 96 * 1024  # output handed to storage in pieces about this big (~1 s of stereo audio)
IO_THREADS = 4  # storage operations of all recordings in a process, at most this many at once


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What a checkpoint or the final publication writes besides the audio: all of it replaces what was there."""

    audio_header: bytes | None  # the WAV header for the audio written so far (None: no audio yet)
    transcript: bytes  # every transcript line so far, JSON Lines
    meta: dict[str, Any]
    index: dict[str, Any] | None  # the sessions/<id>.json pointer (segment 0 only)


class Sink:
    """A recording's storage half: gathers the pump's bytes, writes them in order on the I/O pool.

    The audio is one streamed object (checkpointed, then closed); the transcript lines are kept here and
    written whole, with ``meta.json`` and the index, at each checkpoint and at the end (they are small).
    :meth:`append_audio`, :meth:`add_line`, :meth:`checkpoint`, :meth:`publish` and ``handed`` belong to the
    pump side (one thread at a time, under the recorder's lock); the writer and ``written`` to the pool, where
    this recording's tasks run one after another.
    """

    def __init__(self, storage: Storage, prefix: str, session_id: str, pool: IoPool) -> None:
        self.storage = storage
        self.prefix = prefix
        self.session_id = session_id
        self.failed = False
        self.handed = 0  # bytes handed to the pool
        self.written = 0  # bytes the pool is done with
        self._pool = pool
        self._gathered: list[bytes] = []
        self._gathered_bytes = 0
        self._lines: list[bytes] = []
        self._audio: Writer | None = None
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

    def append_audio(self, data: bytes) -> None:
        """Add ``data`` to the audio; handed to the pool once :data:`FLUSH_BYTES` have gathered."""
        self._gathered.append(data)
        self._gathered_bytes += len(data)
        if self._gathered_bytes >= FLUSH_BYTES:
            self.flush()

    def add_line(self, line: bytes) -> None:
        """One more transcript line (written at the next checkpoint and at the end)."""
        self._lines.append(line)

    def transcript(self) -> bytes:
        """The transcript lines so far."""
        return b"".join(self._lines)

    def flush(self) -> None:
        """Hand the gathered audio to the pool."""
        if not self._gathered_bytes:
            return
        # The pieces are written one by one rather than joined: no large temporary (see timeline).
        pieces, self._gathered = self._gathered, []
        size, self._gathered_bytes = self._gathered_bytes, 0
        self.handed += size
        self._submit(functools.partial(self._write, pieces, size))

    def checkpoint(self, snapshot: Snapshot) -> None:
        """After the writes so far: make them readable, with the transcript, meta and index as they are now."""
        self.flush()
        self._submit(functools.partial(self._checkpoint, snapshot))

    def publish(self, snapshot: Snapshot | None, on_done: Callable[[str | None], None]) -> None:
        """After the writes: close the audio, store the rest; ``on_done(uri or None)`` on the pool.

        ``snapshot`` None (the recording broke) publishes nothing more and reports None.
        """
        self.flush()
        self._submit(functools.partial(self._publish, snapshot, on_done))

    def fail(self, why: str) -> None:
        """Stop the recording (any thread): nothing more is written and nothing more is published."""
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

    def _write(self, pieces: list[bytes], size: int) -> None:
        try:
            if not self.failed:
                with self._storage_errors():
                    writer = self._audio_writer()
                    for data in pieces:
                        writer.write(data)
        finally:
            self.written += size

    def _checkpoint(self, snapshot: Snapshot) -> None:
        if self.failed:
            return
        with self._storage_errors():
            if snapshot.audio_header is not None:
                self._audio_writer().checkpoint(header=snapshot.audio_header)
            self._store_rest(snapshot)

    def _publish(self, snapshot: Snapshot | None, on_done: Callable[[str | None], None]) -> None:
        uri = None
        try:
            if snapshot is not None and not self.failed:
                with self._storage_errors():
                    if snapshot.audio_header is not None:
                        self._audio_writer().close(header=snapshot.audio_header)
                    self._store_rest(snapshot)
                    uri = self.storage.uri(self.prefix) + "/"
        finally:
            on_done(None if self.failed else uri)

    def _store_rest(self, snapshot: Snapshot) -> None:
        self.storage.replace(self.key(TRANSCRIPT_NAME), snapshot.transcript, "application/jsonl")
        self._replace_json(self.key(META_NAME), snapshot.meta)
        if snapshot.index is not None:
            self._replace_json(index_key(self.session_id), snapshot.index)

    def _audio_writer(self) -> Writer:
        if self._audio is None:
            self._audio = self.storage.open_append(self.key(AUDIO_NAME), "audio/wav", header_size=WAV_HEADER_BYTES)
        return self._audio

    def _replace_json(self, key: str, value: dict[str, Any]) -> None:
        self.storage.replace(key, json.dumps(value, ensure_ascii=False, indent=1).encode(), "application/json")

    def _abort(self) -> None:
        writer, self._audio = self._audio, None
        if writer is not None:
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


class IoPool:
    """A few daemon threads running the recordings' storage tasks (started as needed)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
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

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the threads finish the tasks queued so far, then end them."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                task()
            except Exception:  # the sink handles its own errors; this keeps the thread alive regardless
                log.exception("recording storage task failed")


