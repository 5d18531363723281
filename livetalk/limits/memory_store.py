"""Limit counters in this process's memory: exact for one process, shared by its threads.

Memory stays bounded: a key whose events, leases or sum have all expired is
forgotten (a key when it is next used, every key on a sweep every ``sweep_interval_s``),
and each key space keeps at most ``max_keys`` keys, forgetting the least recently
used beyond that, so a flood of distinct addresses cannot grow it without end.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from . import store as s
from .store import RateDecision

Clock = Callable[[], float]
V = TypeVar("V")

DEFAULT_MAX_KEYS: Final = 10_000  # per key space (windows, leases, sums)
SWEEP_INTERVAL_S: Final = 10.0  # how often every key is checked for expiry


class _Space(Generic[V]):
    """One key space: an LRU map whose values say themselves whether they are empty."""

    def __init__(self, max_keys: int, is_empty: Callable[[V, float], bool]) -> None:
        self.items: OrderedDict[str, V] = OrderedDict()
        self._max_keys = max_keys
        self._is_empty = is_empty

    def get(self, key: str, now: float) -> V | None:
        value = self.items.get(key)
        if value is not None and self._is_empty(value, now):
            del self.items[key]
            return None
        return value

    def put(self, key: str, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self._max_keys:
            self.items.popitem(last=False)

    def drop(self, key: str) -> None:
        self.items.pop(key, None)

    def sweep(self, now: float) -> None:
        for key in [k for k, v in self.items.items() if self._is_empty(v, now)]:
            del self.items[key]


class _Window:
    """Admitted event times of one key, oldest first, and the window they were counted in."""

    __slots__ = ("times", "window_s")

    def __init__(self, window_s: float) -> None:
        self.times: deque[float] = deque()
        self.window_s = window_s

    def prune(self, now: float) -> None:
        while self.times and self.times[0] <= now - self.window_s:
            self.times.popleft()


def _window_empty(window: _Window, now: float) -> bool:
    window.prune(now)
    return not window.times


def _leases_empty(leases: dict[str, float], now: float) -> bool:
    for holder in [h for h, expires in leases.items() if expires <= now]:
        del leases[holder]
    return not leases


def _sum_empty(entry: tuple[float, float], now: float) -> bool:
    return entry[1] <= now


class MemoryStore:
    """A :class:`~livetalk.limits.store.LimitStore` for one process; every method takes one lock.

    Args:
        clock: seconds, monotonic (default ``time.monotonic``); tests pass a hand-driven one.
        max_keys: keys kept per key space before the least recently used is forgotten.
        sweep_interval_s: seconds between checks of every key for expiry.
    """

    kind = "memory"
    target = "this process's memory"

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        s.check_positive(sweep_interval_s=sweep_interval_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: _Space[_Window] = _Space(max_keys, _window_empty)
        self._leases: _Space[dict[str, float]] = _Space(max_keys, _leases_empty)
        self._sums: _Space[tuple[float, float]] = _Space(max_keys, _sum_empty)  # (total, expires)
        self._sweep_interval_s = sweep_interval_s
        self._next_sweep = 0.0

    def hit(self, key: str, *, limit: int, window_s: float) -> RateDecision:
        s.check_hit(key, limit, window_s)
        with self._lock:
            now = self._tick()
            window = self._windows.get(key, now) or _Window(window_s)
            window.window_s = window_s
            window.prune(now)
            if len(window.times) >= limit:
                decision = RateDecision(False, window.times[0] + window_s - now)
            else:
                window.times.append(now)
                decision = RateDecision(True)
            if window.times:
                self._windows.put(key, window)
            return decision

    def acquire(self, key: str, holder: str, *, limit: int, lease_s: float) -> bool:
        s.check_acquire(key, holder, limit, lease_s)
        with self._lock:
            now = self._tick()
            leases = self._leases.get(key, now) or {}
            if holder not in leases and len(leases) >= limit:
                return False
            leases[holder] = now + lease_s
            self._leases.put(key, leases)
            return True

    def renew(self, key: str, holder: str, *, lease_s: float) -> bool:
        s.check_lease(key, holder, lease_s)
        with self._lock:
            now = self._tick()
            leases = self._leases.get(key, now)
            if not leases or holder not in leases:
                return False
            leases[holder] = now + lease_s
            return True

    def release(self, key: str, holder: str) -> None:
        with self._lock:
            now = self._tick()
            leases = self._leases.get(key, now)
            if leases is not None:
                leases.pop(holder, None)
                if not leases:
                    self._leases.drop(key)

    def held(self, key: str) -> int:
        with self._lock:
            return len(self._leases.get(key, self._tick()) or ())

    def add(self, key: str, amount: float, *, ttl_s: float) -> float:
        s.check_add(key, amount, ttl_s)
        with self._lock:
            now = self._tick()
            total, expires = self._sums.get(key, now) or (0.0, now + ttl_s)
            total += amount
            self._sums.put(key, (total, expires))
            return total

    def total(self, key: str) -> float:
        with self._lock:
            entry = self._sums.get(key, self._tick())
            return entry[0] if entry else 0.0

    def close(self) -> None:
        """Nothing to let go of."""

    def key_count(self) -> int:
        """Keys held across all key spaces (for tests and metrics)."""
        with self._lock:
            return len(self._windows.items) + len(self._leases.items) + len(self._sums.items)

    def _tick(self) -> float:
        """The current time; every ``sweep_interval_s``, first forget every expired key."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval_s
            for space in (self._windows, self._leases, self._sums):
                space.sweep(now)
        return now
