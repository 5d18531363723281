"""FailOpen: a shared store that fails or hangs never refuses a conversation, and is tried again later.

The primary is a real RedisStore aimed at a port where nothing listens, at a port
that accepts and never answers, or at a real redis-server; the fallback is a
MemoryStore. The breaker's clock is driven by hand.
"""
from __future__ import annotations

import logging
import time

import pytest

from livetalk.limits import FailOpen, MemoryStore, RedisStore, safe_url
from tests.helpers import UNIT_S
from tests.redis_helpers import RedisServer, free_port, local_url
from tests.test_limits import FakeClock

TIMEOUT_S = 0.25  # the RedisStore default: what one call to a hanging Redis costs
RETRY_AFTER_S = 5.0
WARN_EVERY_S = 30.0
PASSWORD = "FAKE-redis-password-0123"


def fail_open(url: str, clock: FakeClock, *, prefix: str = "t:") -> FailOpen:
    """FailOpen over a RedisStore at ``url`` (its password included) with a MemoryStore fallback."""
    primary = RedisStore(url.replace("redis://", f"redis://:{PASSWORD}@"), timeout_s=TIMEOUT_S, prefix=prefix)
    return FailOpen(primary, MemoryStore(), retry_after_s=RETRY_AFTER_S, warn_every_s=WARN_EVERY_S, clock=clock)


def warnings_of(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "livetalk.limits" and r.levelno == logging.WARNING]


@pytest.fixture
def dead_url() -> str:
    """A Redis URL whose port has no server."""
    return local_url(free_port())


def test_an_unreachable_primary_falls_back_and_warns_once(dead_url, caplog):
    """With Redis down, calls raise nothing, the fallback enforces the limit, and one WARNING is logged."""
    caplog.set_level(logging.INFO, logger="livetalk.limits")
    store = fail_open(dead_url, FakeClock())
    decisions = [store.hit("ip", limit=3, window_s=60).allowed for _ in range(5)]
    assert decisions == [True, True, True, False, False]
    assert store.acquire("room", "a", limit=1, lease_s=60)
    assert not store.acquire("room", "b", limit=1, lease_s=60)
    assert store.held("room") == 1
    assert store.add("day", 7, ttl_s=60) == 7 and store.total("day") == 7
    assert store.renew("room", "a", lease_s=60)
    store.release("room", "a")
    assert store.held("room") == 0
    assert store.primary_down
    assert len(warnings_of(caplog)) == 1
    assert PASSWORD not in caplog.text
    assert "127.0.0.1" in caplog.text  # the operator learns which store failed


def test_a_hanging_primary_costs_one_timeout_per_cool_down(silent_server):
    """After one call times out, later calls answer from the fallback at once until the cool-down ends."""
    clock = FakeClock()
    store = fail_open(silent_server.url, clock)
    started = time.monotonic()
    assert store.hit("ip", limit=100, window_s=60).allowed
    assert time.monotonic() - started >= TIMEOUT_S * 0.9  # it really waited on the silent server
    started = time.monotonic()
    for _ in range(50):
        store.hit("ip", limit=100, window_s=60)
    assert time.monotonic() - started < TIMEOUT_S  # fifty calls cost less than one timeout
    assert silent_server.connections == 1
    clock.now += RETRY_AFTER_S
    store.hit("ip", limit=100, window_s=60)  # the probe
    store.hit("ip", limit=100, window_s=60)  # back on the fallback
    assert silent_server.connections == 2


def test_warnings_are_rate_limited(dead_url, caplog):
    """While the primary keeps failing, at most one WARNING per warn interval is logged."""
    clock = FakeClock()
    store = fail_open(dead_url, clock)
    for _ in range(5):  # five probes, one per cool-down, within one warn interval
        store.hit("ip", limit=100, window_s=60)
        clock.now += RETRY_AFTER_S
    assert len(warnings_of(caplog)) == 1
    clock.now += WARN_EVERY_S
    store.hit("ip", limit=100, window_s=60)
    assert len(warnings_of(caplog)) == 2
    assert "5 failure(s)" in warnings_of(caplog)[-1].getMessage()  # the four unwarned probes and this one


def test_the_primary_is_used_again_when_it_comes_back(tmp_path, redis_prefix, caplog):
    """Once Redis answers again, the first call after the cool-down goes to it and the next ones stay there."""
    caplog.set_level(logging.INFO, logger="livetalk.limits")
    clock, port = FakeClock(), free_port()
    store = fail_open(local_url(port), clock, prefix=redis_prefix)
    assert store.acquire("room", "during-outage", limit=5, lease_s=60)
    assert store.primary_down
    server = RedisServer(tmp_path, port=port).start()
    try:
        server.client().config_set("requirepass", PASSWORD)
        store.hit("ip", limit=5, window_s=60)  # still resting: answered by the fallback
        clock.now += RETRY_AFTER_S
        assert store.hit("ip", limit=5, window_s=60).allowed
        assert store.hit("ip", limit=5, window_s=60).allowed
        assert not store.primary_down
        client = RedisStore(server.url.replace("redis://", f"redis://:{PASSWORD}@"), prefix=redis_prefix)
        # Both count in Redis: two hits there already, so each refuses a third within the minute.
        assert not client.hit("ip", limit=2, window_s=60).allowed
        assert not store.hit("ip", limit=2, window_s=60).allowed
        store.release("room", "during-outage")  # given back where it was taken, though Redis is back
        assert store.fallback.held("room") == 0
        client.close()
    finally:
        store.close()
        server.stop()
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_misconfigured_url_falls_back_too(caplog):
    """A REDIS_URL the client cannot parse is a failing primary, not a refused conversation."""
    store = FailOpen(RedisStore("not-a-redis-url"), MemoryStore(), clock=FakeClock())
    assert store.hit("ip", limit=1, window_s=60).allowed
    assert not store.hit("ip", limit=1, window_s=60).allowed
    assert len(warnings_of(caplog)) == 1


def test_bad_arguments_still_raise(dead_url):
    """A programming error is not swallowed by the fallback."""
    store = fail_open(dead_url, FakeClock())
    with pytest.raises(ValueError):
        store.hit("ip", limit=0, window_s=60)
    assert not store.primary_down  # the primary was never asked


def test_a_healthy_primary_answers_and_the_fallback_stays_empty(redis_server, redis_prefix):
    """While Redis works, every answer comes from it and nothing is counted in the fallback."""
    store = FailOpen(RedisStore(redis_server.url, prefix=redis_prefix, timeout_s=UNIT_S), MemoryStore())
    assert store.hit("ip", limit=1, window_s=60).allowed
    assert store.acquire("room", "a", limit=1, lease_s=60)
    assert store.add("day", 3, ttl_s=60) == 3
    assert isinstance(store.fallback, MemoryStore) and store.fallback.key_count() == 0
    assert redis_server.client().exists(f"{redis_prefix}w:ip", f"{redis_prefix}l:room", f"{redis_prefix}s:day") == 3
    store.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{PASSWORD}@10.0.0.3:6379/0", "redis://10.0.0.3:6379/0"),
        (f"rediss://user:{PASSWORD}@redis.internal", "rediss://redis.internal"),
        (f"redis://10.0.0.3/0?password={PASSWORD}", "redis://10.0.0.3/0"),
        (f"redis://10.0.0.3/{PASSWORD}", "redis://10.0.0.3"),
        (f":{PASSWORD}@10.0.0.3:6379", "redis (URL not shown)"),
        (f"redis://:{PASSWORD}@10.0.0.3:99999/0", "redis (URL not shown)"),
    ],
)
def test_safe_url_never_shows_a_password(url, shown):
    """The store's name in logs keeps scheme, host, port and database, and drops everything else."""
    assert safe_url(url) == shown
    assert RedisStore(url).target == shown
