"""Per-learner limits that bound spend: conversations held at once, and conversation seconds per day.

=========================================  ===========================  ===================================
limit                                      setting                      counted in
=========================================  ===========================  ===================================
conversations one learner holds at once    ``LEARNER_MAX_CONCURRENT``   shared store (one leased slot each)
conversation seconds per learner per day   ``LEARNER_DAILY_SECONDS``    shared store (a sum per UTC day)
=========================================  ===========================  ===================================

The *shared* store is Redis when ``REDIS_URL`` is set, so a learner's limits hold across every
instance; otherwise across the workers of one instance (see :mod:`livetalk.admission`).

How a conversation is counted:

* **Slots** are held by the session id, not by the socket: a conversation resumed on a new socket
  (even while the old one has not noticed it is gone) holds the one slot it already had. Within a
  process a slot is given back when the last socket of its conversation ends.
* **Seconds** are counted when a socket's conversation ends, by the relay's own clock (from the
  moment the relay took the socket to its teardown, reconnects to Gemini included once), and are
  added to the day the socket ended on (UTC). A resumed segment adds only its own seconds, and a resumed
  conversation is one conversation. (A socket whose client vanished without a close counts until the
  relay notices, at most its dead-peer time; if the client resumed meanwhile, that overlap counts twice.)
* A conversation admitted with less than the day's allowance left is capped at what is left
  (the relay's whole-conversation cap), so it ends when the allowance runs out. Conversations held
  at once each get the allowance left when they started, so a learner may overshoot the day by at
  most what was left times ``LEARNER_MAX_CONCURRENT - 1``.

Store calls may wait (Redis: up to its timeout): call these from request threads, never from the
relay's event loop. Redis being down never refuses anyone (:class:`~livetalk.limits.FailOpen`).

Exceptions::

    QuotaExceeded     a learner is over one of their limits; ``message`` says which and when it resets
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from typing import Final

from .limits import LeaseKeeper, LimitStore

DAY_S: Final = 24 * 3600
DAY_KEY_TTL_S: Final = DAY_S + 3600  # a day's sum outlives its day by an hour (clock skew between instances)
CONVERSATIONS_KEY: Final = "learner-conversations"
SECONDS_KEY: Final = "learner-seconds"
SLOTS_KEY: Final = "learner-open"


class QuotaExceeded(Exception):
    """The learner is over a limit; ``message`` is client-safe, ``resets_in_s`` None when it frees on its own."""

    def __init__(self, message: str, *, resets_in_s: float | None) -> None:
        super().__init__(message)
        self.message = message
        self.resets_in_s = resets_in_s


@dataclasses.dataclass(frozen=True)
class Usage:
    """A learner's use of the current day (UTC) and what they hold now."""

    conversations: int  # conversations started today (a resumed one once)
    seconds: float  # conversation seconds counted today (conversations still open are not in yet)
    concurrent: int  # conversations held now
    resets_in_s: float  # until the day's counters start again


class LearnerQuotas:
    """The per-learner limits on one limit store. Thread-safe; see the module docstring.

    Args:
        store: the shared limit store.
        leases: keeps held slots alive (the process' :class:`~livetalk.limits.LeaseKeeper`).
        max_concurrent: conversations one learner may hold at once.
        daily_s: conversation seconds per learner per UTC day.
        clock: wall-clock epoch seconds (names the day).
    """

    def __init__(self, *, store: LimitStore, leases: LeaseKeeper, max_concurrent: int, daily_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        if max_concurrent < 1 or daily_s <= 0:
            raise ValueError("max_concurrent must be at least 1 and daily_s positive")
        self.max_concurrent = max_concurrent
        self.daily_s = daily_s
        self._store = store
        self._leases = leases
        self._clock = clock
        self._lock = threading.Lock()
        self._sockets: dict[tuple[str, str], int] = {}  # (learner, session) -> sockets of it in this process

    def admit(self, learner_id: str, session_id: str, *, resuming: bool) -> float:
        """Take a slot for ``session_id``; the seconds it may last (what is left of today), or :class:`QuotaExceeded`.

        On success give the slot back with :meth:`release` exactly once, and report the seconds
        with :meth:`spend`. A resumed conversation (``resuming``) is not counted as a new one.
        """
        now = self._clock()
        left = self.daily_s - self._store.total(self._day_key(SECONDS_KEY, learner_id, now))
        if left <= 0:
            resets = self.resets_in_s(now)
            raise QuotaExceeded(f"You have used today's {_duration(self.daily_s)} of practice; it resets in "
                                f"{_duration(resets)} (at 00:00 UTC).", resets_in_s=resets)
        if not self._take(learner_id, session_id):
            raise QuotaExceeded(f"You already have {self.max_concurrent} conversation(s) open; end one to start "
                                "another.", resets_in_s=None)
        if not resuming:
            self._store.add(self._day_key(CONVERSATIONS_KEY, learner_id, now), 1, ttl_s=DAY_KEY_TTL_S)
        return left

    def release(self, learner_id: str, session_id: str) -> None:
        """Give back the slot :meth:`admit` took (once the last socket of the conversation in this process ends)."""
        key = (learner_id, session_id)
        with self._lock:
            count = self._sockets.get(key, 0) - 1
            if count > 0:
                self._sockets[key] = count
                return
            self._sockets.pop(key, None)
        self._leases.release(self._store, f"{SLOTS_KEY}:{learner_id}", session_id)

    def spend(self, learner_id: str, seconds: float) -> None:
        """Count ``seconds`` of conversation against today's allowance."""
        if seconds > 0:
            self._store.add(self._day_key(SECONDS_KEY, learner_id, self._clock()), float(seconds),
                            ttl_s=DAY_KEY_TTL_S)

    def usage(self, learner_id: str) -> Usage:
        """What the learner has used today and holds now."""
        now = self._clock()
        return Usage(
            conversations=int(self._store.total(self._day_key(CONVERSATIONS_KEY, learner_id, now))),
            seconds=self._store.total(self._day_key(SECONDS_KEY, learner_id, now)),
            concurrent=self._store.held(f"{SLOTS_KEY}:{learner_id}"),
            resets_in_s=self.resets_in_s(now),
        )

    def resets_in_s(self, now: float | None = None) -> float:
        """Seconds from ``now`` (default: the clock) to the next 00:00 UTC."""
        now = self._clock() if now is None else now
        return DAY_S - now % DAY_S

    def _take(self, learner_id: str, session_id: str) -> bool:
        key = (learner_id, session_id)
        with self._lock:
            if self._sockets.get(key):
                self._sockets[key] += 1
                return True
        if not self._leases.acquire(self._store, f"{SLOTS_KEY}:{learner_id}", session_id,
                                    limit=self.max_concurrent):
            return False
        with self._lock:
            self._sockets[key] = self._sockets.get(key, 0) + 1
        return True

    @staticmethod
    def _day_key(kind: str, learner_id: str, now: float) -> str:
        return f"{kind}:{learner_id}:{time.strftime('%Y%m%d', time.gmtime(now))}"


def _duration(seconds: float) -> str:
    """``1 h 05 min``, ``12 min`` or ``40 s``: rounded up, for people."""
    whole = math.ceil(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes = math.ceil(whole / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
