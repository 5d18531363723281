"""The contract every limit store keeps, and the checks all backends share.

A limit store holds three kinds of counter, each in its own key space (the same
key name may be used by all three without collision):

* **windows** (:meth:`LimitStore.hit`): a sliding-window log of admitted events;
* **leases** (:meth:`LimitStore.acquire`): concurrency slots, each held by a named
  holder until released or until its lease runs out unrenewed;
* **sums** (:meth:`LimitStore.add`): an accumulated amount that expires a fixed
  time after its first addition.

Times are seconds (floats). Each backend reads time from one clock that every
participant agrees on: an injected clock for the in-process and single-machine
stores, the Redis server's ``TIME`` for the shared one.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Final, Protocol

MAX_KEY_CHARS: Final = 256  # keys are built by the app (an address, a learner id); longer is a bug
MAX_HOLDER_CHARS: Final = 128


class LimitStoreError(Exception):
    """Base of the limit-store errors."""


class LimitStoreUnavailable(LimitStoreError):
    """The backend could not answer (unreachable, timed out, locked); the message holds no secret."""


@dataclasses.dataclass(frozen=True)
class RateDecision:
    """The answer to one :meth:`LimitStore.hit`.

    ``retry_after_s`` is 0 when allowed, else the seconds until the oldest event
    in the window leaves it (when the next hit can succeed).
    """

    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_whole_s(self) -> int:
        """``retry_after_s`` rounded up to whole seconds (for a ``Retry-After`` header)."""
        return math.ceil(self.retry_after_s)


class LimitStore(Protocol):
    """Counters that enforce limits; every method is atomic on its key."""

    kind: str  # "memory" | "sqlite" | "redis" | "fail-open"
    target: str  # where the counters live, safe to log (no password)

    def hit(self, key: str, *, limit: int, window_s: float) -> RateDecision:
        """Record one event unless ``limit`` events were admitted in the last ``window_s`` seconds.

        A refused hit records nothing. Use one ``window_s`` per key.
        """

    def acquire(self, key: str, holder: str, *, limit: int, lease_s: float) -> bool:
        """Take a slot of ``key`` for ``holder`` for ``lease_s`` seconds; False (nothing taken) when full.

        A holder that already holds a slot keeps it (its lease is extended) and gets True.
        """

    def renew(self, key: str, holder: str, *, lease_s: float) -> bool:
        """Extend ``holder``'s lease to ``lease_s`` seconds from now; False if it no longer holds a slot."""

    def release(self, key: str, holder: str) -> None:
        """Give back ``holder``'s slot; releasing one not held does nothing."""

    def held(self, key: str) -> int:
        """How many holders of ``key`` have an unexpired lease."""

    def add(self, key: str, amount: float, *, ttl_s: float) -> float:
        """Add ``amount`` to the sum under ``key`` and return the new total.

        The sum is forgotten ``ttl_s`` seconds after the addition that created it.
        """

    def total(self, key: str) -> float:
        """The current sum under ``key`` (0 when absent or expired)."""

    def close(self) -> None:
        """Let go of connections; the store reopens them if used again."""


def check_key(key: str, *, what: str = "key", max_chars: int = MAX_KEY_CHARS) -> str:
    """``key`` if it is a non-empty string of at most ``max_chars`` characters, else ValueError."""
    if not isinstance(key, str) or not key or len(key) > max_chars:
        raise ValueError(f"a limit {what} must be a non-empty string of at most {max_chars} characters")
    return key


def check_positive(**values: float) -> None:
    """ValueError naming the first of ``values`` that is not a positive finite number."""
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def check_limit(limit: int) -> None:
    """ValueError unless ``limit`` is an integer of at least 1."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")


def check_hit(key: str, limit: int, window_s: float) -> None:
    check_key(key)
    check_limit(limit)
    check_positive(window_s=window_s)


def check_acquire(key: str, holder: str, limit: int, lease_s: float) -> None:
    check_lease(key, holder, lease_s)
    check_limit(limit)


def check_lease(key: str, holder: str, lease_s: float) -> None:
    check_key(key)
    check_key(holder, what="holder", max_chars=MAX_HOLDER_CHARS)
    check_positive(lease_s=lease_s)


def check_add(key: str, amount: float, ttl_s: float) -> None:
    check_key(key)
    check_positive(ttl_s=ttl_s)
    if not (isinstance(amount, (int, float)) and math.isfinite(amount)):
        raise ValueError(f"amount must be a finite number, got {amount!r}")
