"""Limit counters in Redis (Memorystore in production): exact across every instance.

Each operation is one Lua script, so it is atomic on the server whatever the
number of clients. Time is the server's ``TIME`` (milliseconds), read inside the
script, so instances whose clocks disagree still count the same window. Every
key carries its own expiry (``PEXPIRE``/``PEXPIREAT``): a sliding window lives
one window past its last event, a lease set as long as its longest lease, a sum
``ttl_s`` past its first addition. Keys are ``<prefix><space>:<key>`` with one
space each for windows (``w``), leases (``l``) and sums (``s``).

The client is built on first use with short socket and connect timeouts and no
retries: a limit check must answer fast, and :class:`~livetalk.limits.FailOpen`
decides what happens when Redis does not. Every ``redis`` error is raised as
:class:`~livetalk.limits.store.LimitStoreUnavailable`, whose text never holds
the URL (it may carry a password).
"""
from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from . import store as s
from .store import LimitStoreUnavailable, RateDecision

if TYPE_CHECKING:
    import redis

TIMEOUT_S: Final = 0.25  # connect and per-reply timeout; Memorystore answers in about a millisecond
MAX_CONNECTIONS: Final = 32  # per process; a request waits up to TIMEOUT_S for a free one
KEY_PREFIX: Final = "livetalk:limits:"

# Milliseconds since the epoch by the server's clock (13 digits: exact in a Lua number and in
# its %.14g string form). A lease set lives until its longest lease ends.
_PRELUDE: Final = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function expire_with_last_lease(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', key, math.ceil(tonumber(last[2]))) end
end
"""

# KEYS: window set. ARGV: limit, window_ms, member. Returns {allowed 0|1, retry_after_ms}.
_HIT: Final = _PRELUDE + """
local key, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, math.max(0, tonumber(oldest[2]) + window - now)}
end
redis.call('ZADD', key, now, ARGV[3])
redis.call('PEXPIRE', key, window)
return {1, 0}
"""

# KEYS: lease set. ARGV: holder, limit, lease_ms. Returns 1 when the holder holds a slot.
_ACQUIRE: Final = _PRELUDE + """
local key, holder = KEYS[1], ARGV[1]
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, holder) and redis.call('ZCARD', key) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', key, now + tonumber(ARGV[3]), holder)
expire_with_last_lease(key)
return 1
"""

# KEYS: lease set. ARGV: holder, lease_ms. Returns 1 when the holder still held its slot.
_RENEW: Final = _PRELUDE + """
local key, holder = KEYS[1], ARGV[1]
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, holder) then return 0 end
redis.call('ZADD', key, 'XX', now + tonumber(ARGV[2]), holder)
expire_with_last_lease(key)
return 1
"""

# KEYS: lease set. Returns the number of unexpired leases.
_HELD: Final = _PRELUDE + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms(), '+inf')
"""

# KEYS: sum. ARGV: amount, ttl_ms. Returns the new total (a string: Lua numbers would be truncated).
_ADD: Final = """
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
"""


def _ms(seconds: float) -> int:
    """Seconds as whole milliseconds, at least 1 (Redis expiries are integers and must be positive)."""
    return max(1, round(seconds * 1000))


def safe_url(url: str) -> str:
    """``url`` reduced to scheme, host, port and database, for logs: never a user name or password.

    Anything else (unparsable, another scheme) becomes a fixed text,
    since a malformed URL may hold its password anywhere.
    """
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return "redis (URL not shown)"
    db = parts.path if re.fullmatch(r"/\d*", parts.path) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{db}"


class RedisStore:
    """A :class:`~livetalk.limits.store.LimitStore` shared by every client of one Redis.

    Args:
        url: ``redis://[:password@]host:port/db`` (or ``rediss://`` for TLS); never logged.
        timeout_s: connect timeout, reply timeout and wait for a free pooled connection.
        max_connections: connections this process may open.
        prefix: prepended to every key, so several services can share one Redis.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        prefix: str = KEY_PREFIX,
    ) -> None:
        s.check_positive(timeout_s=timeout_s)
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self._url = url
        self.target = safe_url(url)
        self.prefix = prefix
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._handle: tuple[redis.Redis, dict[str, Any]] | None = None  # (client, its scripts by name)

    # --- the operations --------------------------------------------------------------

    def hit(self, key: str, *, limit: int, window_s: float) -> RateDecision:
        s.check_hit(key, limit, window_s)
        allowed, retry_ms = self._run("hit", self._key("w", key), limit, _ms(window_s), secrets.token_hex(8))
        return RateDecision(bool(allowed), int(retry_ms) / 1000)

    def acquire(self, key: str, holder: str, *, limit: int, lease_s: float) -> bool:
        s.check_acquire(key, holder, limit, lease_s)
        return bool(self._run("acquire", self._key("l", key), holder, limit, _ms(lease_s)))

    def renew(self, key: str, holder: str, *, lease_s: float) -> bool:
        s.check_lease(key, holder, lease_s)
        return bool(self._run("renew", self._key("l", key), holder, _ms(lease_s)))

    def release(self, key: str, holder: str) -> None:
        with _redis_errors():
            self.client().zrem(self._key("l", key), holder)

    def held(self, key: str) -> int:
        return int(self._run("held", self._key("l", key)))

    def add(self, key: str, amount: float, *, ttl_s: float) -> float:
        s.check_add(key, amount, ttl_s)
        return float(self._run("add", self._key("s", key), repr(float(amount)), _ms(ttl_s)))

    def total(self, key: str) -> float:
        with _redis_errors():
            value = self.client().get(self._key("s", key))
        return float(value) if value is not None else 0.0

    def close(self) -> None:
        """Close the pooled connections; the next operation builds a new client."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail; it is gone either way
                handle[0].close()

    # --- the client ------------------------------------------------------------------

    def client(self) -> redis.Redis:
        """The ``redis.Redis`` client (built on first call; it connects on first command)."""
        return self._client_and_scripts()[0]

    def _client_and_scripts(self) -> tuple[redis.Redis, dict[str, Any]]:
        with self._lock:
            if self._handle is None:
                client = self._build_client()
                self._handle = client, {name: client.register_script(lua) for name, lua in _SCRIPTS.items()}
            return self._handle

    def _build_client(self) -> redis.Redis:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        with _redis_errors():
            pool = redis.BlockingConnectionPool.from_url(
                self._url,
                max_connections=self._max_connections,
                timeout=self._timeout_s,
                socket_timeout=self._timeout_s,
                socket_connect_timeout=self._timeout_s,
                retry=Retry(NoBackoff(), 0),  # a retried hit could count twice; FailOpen handles failures
            )
            return redis.Redis.from_pool(pool)

    def _key(self, space: str, key: str) -> str:
        return f"{self.prefix}{space}:{s.check_key(key)}"

    def _run(self, script: str, key: str, *args: Any) -> Any:
        client, scripts = self._client_and_scripts()
        with _redis_errors():
            return scripts[script](keys=[key], args=args, client=client)


_SCRIPTS: Final = {"hit": _HIT, "acquire": _ACQUIRE, "renew": _RENEW, "held": _HELD, "add": _ADD}


@contextlib.contextmanager
def _redis_errors() -> Iterator[None]:
    import redis

    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise LimitStoreUnavailable(f"the shared limit store failed ({type(exc).__name__})") from exc
