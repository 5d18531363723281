"""The recording pump: one thread per process that processes every open recorder's queued events.

Threads::

    relay loop ──append──▶ recorder._events ──every 250 ms──▶ pump thread (timeline, transcript)
                                                                   │ FLUSH_BYTES pieces, in order
    finalize (executor) ── drains the rest, then waits ──▶ I/O pool (writes, publish)

The pump and its I/O pool belong to :class:`~livetalk.services.Services`, which creates one per process and
stops it on shutdown.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from .sink import IO_THREADS, IoPool

if TYPE_CHECKING:
    from .recorder import ConversationRecorder

log = logging.getLogger("livetalk.recording")

PUMP_INTERVAL_S = 0.25  # the pump processes every recorder's queued events this often


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
        self.io = IoPool(io_threads)
        self._recorders: dict[ConversationRecorder, None] = {}  # an ordered set
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def open_recorders(self) -> int:
        """Recorders the pump is processing (registered on their first event, removed by finalize)."""
        return len(self._recorders)

    def add(self, recorder: ConversationRecorder) -> None:
        """Process ``recorder``'s events from now on (starts the thread on first use)."""
        with self._lock:
            self._recorders[recorder] = None
            if self._thread is None and self.interval_s is not None:
                self._thread = threading.Thread(target=self._run, name="recording-pump", daemon=True)
                self._thread.start()
        self._wake.set()

    def discard(self, recorder: ConversationRecorder) -> None:
        """Stop processing ``recorder`` (its finalize drains the rest itself)."""
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

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the pump thread and the I/O pool once the work handed to them is done (process exit, tests)."""
        with self._lock:
            self._stopping, thread = True, self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout_s)
        self.io.stop(timeout_s)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            if not self._recorders:
                self._wake.wait()
            time.sleep(self.interval_s)
            try:
                self.run_once()
            except Exception:  # never let the one pump thread die
                log.exception("recording pump round failed")
