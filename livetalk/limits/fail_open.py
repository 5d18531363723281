"""A shared limit store that never stands between a learner and a conversation.

:class:`FailOpen` answers from its primary (Redis) while that works. When the
primary raises (unreachable, timed out, any error), it answers that call and every
call for the next ``retry_after_s`` seconds from its fallback, the instance-local
store, so each limit still holds per instance; then one call probes the primary
again (a circuit breaker: a dead Redis costs one timeout per cool-down, not one
per request). One WARNING is logged per ``warn_every_s`` while the primary fails,
naming the store by :func:`~livetalk.limits.redis_store.safe_url` (never its
password) and the error's type (never its text).

While the fallback answers, the two stores drift apart: events, leases and sums
recorded in one are unknown to the other. Releases and renewals therefore go to
both stores, so a slot taken during an outage is given back after it; sums added
during an outage are counted per instance only.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from . import store as s
from .store import LimitStore, RateDecision

Clock = Callable[[], float]

RETRY_AFTER_S: Final = 5.0  # cool-down before a failed primary is tried again
WARN_EVERY_S: Final = 30.0  # at most one warning per this many seconds while the primary fails

log = logging.getLogger("livetalk.limits")


class FailOpen:
    """A :class:`~livetalk.limits.store.LimitStore` over ``primary``, falling back to ``fallback``.

    Args:
        primary: the shared store (normally :class:`~livetalk.limits.RedisStore`).
        fallback: the instance-local store answering while the primary fails.
        retry_after_s: seconds the primary rests after a failure before one call probes it.
        warn_every_s: minimum seconds between two warnings.
        clock: monotonic seconds (default ``time.monotonic``).
    """

    kind = "fail-open"

    def __init__(
        self,
        primary: LimitStore,
        fallback: LimitStore,
        *,
        retry_after_s: float = RETRY_AFTER_S,
        warn_every_s: float = WARN_EVERY_S,
        clock: Clock = time.monotonic,
    ) -> None:
        s.check_positive(retry_after_s=retry_after_s, warn_every_s=warn_every_s)
        self.primary = primary
        self.fallback = fallback
        self._retry_after_s = retry_after_s
        self._warn_every_s = warn_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._down = False
        self._probe_at = 0.0  # when the resting primary may be tried again
        self._warn_at = 0.0  # when the next warning may be logged
        self._unwarned = 0  # failures since the last warning

    @property
    def target(self) -> str:
        return f"{self.primary.target} else {self.fallback.target}"

    @property
    def primary_down(self) -> bool:
        """Whether the primary failed last time it was tried (so the fallback is answering)."""
        with self._lock:
            return self._down

    # --- the operations --------------------------------------------------------------

    def hit(self, key: str, *, limit: int, window_s: float) -> RateDecision:
        s.check_hit(key, limit, window_s)
        return self._either("hit", key, limit=limit, window_s=window_s)

    def acquire(self, key: str, holder: str, *, limit: int, lease_s: float) -> bool:
        s.check_acquire(key, holder, limit, lease_s)
        return self._either("acquire", key, holder, limit=limit, lease_s=lease_s)

    def renew(self, key: str, holder: str, *, lease_s: float) -> bool:
        s.check_lease(key, holder, lease_s)
        on_primary = self._either("renew", key, holder, lease_s=lease_s, or_else=False)
        return self.fallback.renew(key, holder, lease_s=lease_s) or on_primary

    def release(self, key: str, holder: str) -> None:
        self._either("release", key, holder, or_else=None)
        self.fallback.release(key, holder)

    def held(self, key: str) -> int:
        return self._either("held", key)

    def add(self, key: str, amount: float, *, ttl_s: float) -> float:
        s.check_add(key, amount, ttl_s)
        return self._either("add", key, amount, ttl_s=ttl_s)

    def total(self, key: str) -> float:
        return self._either("total", key)

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()

    # --- the breaker -----------------------------------------------------------------

    _FALLBACK: Final = object()  # "or_else" default: answer from the fallback store

    def _either(self, op: str, *args: Any, or_else: Any = _FALLBACK, **kwargs: Any) -> Any:
        """``op`` on the primary if it may be tried and answers; else ``or_else`` or the fallback's answer."""
        if self._may_try_primary():
            try:
                result = getattr(self.primary, op)(*args, **kwargs)
            except Exception as exc:  # the boundary: whatever the primary does, the fallback answers
                self._failed(exc)
            else:
                self._succeeded()
                return result
        if or_else is not self._FALLBACK:
            return or_else
        return getattr(self.fallback, op)(*args, **kwargs)

    def _may_try_primary(self) -> bool:
        with self._lock:
            if not self._down:
                return True
            now = self._clock()
            if now < self._probe_at:
                return False
            self._probe_at = now + self._retry_after_s  # one probe per cool-down; other calls stay on the fallback
            return True

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            now = self._clock()
            self._down = True
            self._probe_at = now + self._retry_after_s
            self._unwarned += 1
            if now < self._warn_at:
                return
            self._warn_at = now + self._warn_every_s
            failures, self._unwarned = self._unwarned, 0
        log.warning(
            "limit store %s failed (%s; %d failure(s) since the last warning): "
            "counting in %s instead, retrying every %g s",
            self.primary.target, type(exc.__cause__ or exc).__name__, failures, self.fallback.target,
            self._retry_after_s,
        )

    def _succeeded(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
            self._unwarned = 0
        log.info("limit store %s answers again: limits are shared again", self.primary.target)
