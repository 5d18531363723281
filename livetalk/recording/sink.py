"""A recording's storage half, and the small pool of threads that does every recording's storage work.

The pump hands a recording's bytes to its :class:`Sink`; the sink writes them, in order and in pieces of
about :data:`FLUSH_BYTES`, on the :class:`IoPool` shared by all recordings of the process, so a slow store
holds up only its own recordings. At the end it closes the objects and writes ``meta.json`` and the index.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ..storage import ObjectExists, Storage, StorageError, Writer
from ..wav import WAV_HEADER_BYTES
from .layout import AUDIO_NAME, META_NAME, TRANSCRIPT_NAME, index_key

log = logging.getLogger("livetalk.recording")

FLUSH_BYTES = 96 * 1024  # output handed to storage in pieces about this big (~1 s of stereo audio)
IO_THREADS = 4  # storage operations of all recordings in a process, at most this many at once


class Sink:
    """A recording's storage half: gathers the pump's bytes, writes them in order on the I/O pool.

    :meth:`append`, :meth:`publish` and ``handed`` belong to the pump side (one thread at a
    time, under the recorder's lock); the writers and ``written`` to the pool, where this
    recording's tasks run one after another.
    """

    def __init__(self, storage: Storage, prefix: str, session_id: str, pool: IoPool) -> None:
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
        # The pieces are written one by one rather than joined: no large temporary (see timeline).
        pieces = {name: parts for name, parts in self._gathered.items() if parts}
        self._gathered = {AUDIO_NAME: [], TRANSCRIPT_NAME: []}
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

    def _write(self, pieces: dict[str, list[bytes]], size: int) -> None:
        try:
            if not self.failed:
                with self._storage_errors():
                    for name, parts in pieces.items():
                        writer = self._writer(name)
                        for data in parts:
                            writer.write(data)
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


