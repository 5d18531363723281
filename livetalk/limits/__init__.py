"""Counters behind the service's limits, exact however many processes and instances count.

One seam, :class:`LimitStore`, with three backends that keep the same contract
(one test suite runs against all three):

* :class:`MemoryStore`: one process (``python app.py``, tests);
* :class:`SqliteStore`: every process of one machine (the gunicorn workers of one
  Cloud Run instance share a file in a per-instance temp directory);
* :class:`RedisStore`: every instance (Memorystore), with the server's clock;

and :class:`FailOpen`, which answers from a local store while the shared one is
unreachable, so an outage of Redis never refuses a conversation.
:func:`create_limit_stores` composes them from the settings; :class:`LeaseKeeper`
renews the concurrency slots a process holds.

Exceptions::

    LimitStoreError
     └── LimitStoreUnavailable   the backend failed or timed out (FailOpen answers instead)
    ValueError                   a bad argument (empty key, limit < 1, non-positive time)
"""
from __future__ import annotations

import dataclasses
import os

from .fail_open import FailOpen
from .leases import LeaseKeeper
from .memory_store import MemoryStore
from .redis_store import TIMEOUT_S, RedisStore, safe_url
from .sqlite_store import SqliteStore
from .store import LimitStore, LimitStoreError, LimitStoreUnavailable, RateDecision

__all__ = [
    "FailOpen",
    "LeaseKeeper",
    "LimitStore",
    "LimitStoreError",
    "LimitStoreUnavailable",
    "LimitStores",
    "MemoryStore",
    "RateDecision",
    "RedisStore",
    "SqliteStore",
    "create_limit_stores",
    "safe_url",
]


@dataclasses.dataclass(frozen=True)
class LimitStores:
    """The two stores the app counts in.

    ``instance`` counts across the processes of this instance (capacity of this
    machine); ``shared`` across every instance when Redis is configured (limits per
    client or learner), else it is the instance store.
    """

    instance: LimitStore
    shared: LimitStore

    def close(self) -> None:
        """Let go of both stores' connections."""
        self.shared.close()
        if self.instance is not self.shared:
            self.instance.close()


def create_limit_stores(
    *,
    redis_url: str | None = None,
    sqlite_path: str | os.PathLike[str] | None = None,
    redis_timeout_s: float = TIMEOUT_S,
) -> LimitStores:
    """Compose the stores; no I/O happens until the first operation.

    Args:
        redis_url: ``REDIS_URL``; without it nothing is shared between instances.
        sqlite_path: a file every worker process of this instance opens (chosen by
            the gunicorn master before it forks); without it the counters live in
            this process only.
        redis_timeout_s: connect and reply timeout for Redis.
    """
    instance: LimitStore = MemoryStore()
    if sqlite_path is not None:
        instance = FailOpen(SqliteStore(sqlite_path), instance)
    shared = instance
    if redis_url:
        shared = FailOpen(RedisStore(redis_url, timeout_s=redis_timeout_s), instance)
    return LimitStores(instance=instance, shared=shared)
