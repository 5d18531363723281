"""Keeping the slots this process holds alive: one thread renews every lease.

A slot taken with :meth:`LimitStore.acquire` lasts ``lease_s`` unless renewed, so
a process killed without warning (SIGKILL, an OOM kill, a crashed instance)
gives its slots back within ``lease_s``. While the process lives,
:class:`LeaseKeeper` renews each slot it holds every ``renew_every_s``. It calls
the stores from its own thread, because a store call may block for a network
timeout and must never run on the relay's event loop.

A lease found lost at renewal (the process stalled past ``lease_s``, or Redis
forgot it) is taken again if there is room; a conversation already running is
never stopped for it.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Final

from . import store as s
from .store import LimitStore

LEASE_S: Final = 30.0  # how long a slot outlives a process that stopped renewing it
RENEW_FRACTION: Final = 3  # renew this many times per lease, so one missed renewal costs nothing

log = logging.getLogger("livetalk.limits")


@dataclasses.dataclass(frozen=True)
class _Held:
    store: LimitStore
    key: str
    holder: str
    limit: int


class LeaseKeeper:
    """Takes slots and renews them from one daemon thread (started on first use) until released.

    Args:
        lease_s: the lease of every slot taken through this keeper.
        renew_every_s: seconds between renewals (default ``lease_s / 3``).
    """

    def __init__(self, *, lease_s: float = LEASE_S, renew_every_s: float | None = None) -> None:
        renew_every_s = lease_s / RENEW_FRACTION if renew_every_s is None else renew_every_s
        s.check_positive(lease_s=lease_s, renew_every_s=renew_every_s)
        if renew_every_s >= lease_s:
            raise ValueError("renew_every_s must be shorter than lease_s")
        self.lease_s = lease_s
        self._renew_every_s = renew_every_s
        self._lock = threading.Lock()
        self._held: set[_Held] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0  # renewal rounds completed (for tests and metrics)

    def acquire(self, store: LimitStore, key: str, holder: str, *, limit: int) -> bool:
        """Take a slot of ``key`` for ``holder`` in ``store`` and keep it alive; False when full."""
        if not store.acquire(key, holder, limit=limit, lease_s=self.lease_s):
            return False
        with self._lock:
            self._held.add(_Held(store, key, holder, limit))
            self._start()
        return True

    def release(self, store: LimitStore, key: str, holder: str) -> None:
        """Stop renewing ``holder``'s slot and give it back (idempotent)."""
        with self._lock:
            self._held = {h for h in self._held if (h.store, h.key, h.holder) != (store, key, holder)}
        store.release(key, holder)

    def held(self) -> int:
        """How many slots this keeper renews."""
        with self._lock:
            return len(self._held)

    def renew_all(self) -> None:
        """One round: renew every slot held (retaking a lost one when there is room)."""
        with self._lock:
            held = list(self._held)
        for h in held:
            self._renew(h)
        with self._lock:
            self.rounds += 1

    def close(self) -> None:
        """Stop the renewing thread; slots not released expire after their lease."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self._renew_every_s + 1.0)

    def _renew(self, h: _Held) -> None:
        try:
            if h.store.renew(h.key, h.holder, lease_s=self.lease_s):
                return
            if not h.store.acquire(h.key, h.holder, limit=h.limit, lease_s=self.lease_s):
                log.warning("a lease of %s was lost and the limit is full again; the conversation goes on",
                            h.store.kind)
        except Exception:  # the boundary of the renewing thread: one failed renewal must not end it
            log.exception("renewing a lease of %s failed", h.store.kind)

    def _start(self) -> None:
        """Start the renewing thread if it is not running (called with the lock held)."""
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="livetalk-leases", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._renew_every_s):
            self.renew_all()
