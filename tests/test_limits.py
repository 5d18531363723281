"""The limit stores: MemoryStore, SqliteStore and RedisStore (a real redis-server) keep one contract.

Time passes by hand for the memory and SQLite stores (an injected clock); Redis
keeps its own clock, so its tests use short real windows and wait on a condition.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from livetalk.limits import FailOpen, MemoryStore, RateDecision, RedisStore, SqliteStore, create_limit_stores
from tests.helpers import UNIT_S, wait_until

REAL_WINDOW_S = 0.5  # a window or lease that really passes, for Redis and the SIGKILL tests
FORK = multiprocessing.get_context("fork")  # children inherit the store object, as gunicorn workers would


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Backend:
    """A store under test and the way time passes for it."""

    name: str
    store: object
    clock: FakeClock | None  # None: the store keeps real time (Redis)

    def elapse(self, seconds: float, until: Callable[[], object]) -> None:
        """Let ``seconds`` pass, then require ``until()`` (polled until true under real time)."""
        if self.clock is not None:
            self.clock.now += seconds
            assert until()
        else:
            wait_until(until, timeout_s=seconds + UNIT_S)

    def window(self, seconds: float) -> float:
        """``seconds`` for a hand-driven clock; a short real window for Redis."""
        return seconds if self.clock is not None else REAL_WINDOW_S


def _redis_store(request) -> RedisStore:
    server = request.getfixturevalue("redis_server")
    store = RedisStore(server.url, prefix=request.getfixturevalue("redis_prefix"), timeout_s=UNIT_S)
    request.addfinalizer(store.close)
    return store


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request, tmp_path) -> Backend:
    """Each backend in turn, empty."""
    clock = FakeClock()
    if request.param == "memory":
        return Backend("memory", MemoryStore(clock=clock), clock)
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "limits.sqlite3", clock=clock)
        request.addfinalizer(store.close)
        return Backend("sqlite", store, clock)
    return Backend("redis", _redis_store(request), None)


@pytest.fixture(params=["sqlite", "redis"])
def shared_backend(request, tmp_path) -> Backend:
    """Each backend that several processes share, on real time, with a connection already open."""
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "limits.sqlite3")
        request.addfinalizer(store.close)
    else:
        store = _redis_store(request)
    store.held("warm-up")  # the parent's connection exists before the fork, as in gunicorn's master
    return Backend(request.param, store, None)


# --- sliding windows ---------------------------------------------------------------------


def test_rapid_hits_admit_exactly_the_limit(backend):
    """Of ten rapid hits against a limit of seven, the first seven pass and the rest are refused."""
    decisions = [backend.store.hit("ip:203.0.113.9", limit=7, window_s=60) for _ in range(10)]
    assert [d.allowed for d in decisions] == [True] * 7 + [False] * 3
    assert all(d.retry_after_s == 0 for d in decisions[:7])
    assert all(0 < d.retry_after_s <= 60 for d in decisions[7:])


def test_the_window_slides_and_a_refused_hit_takes_nothing(backend):
    """Once the window has passed the admitted hits, a hit passes again, however many were refused meanwhile."""
    store, window = backend.store, backend.window(60)
    assert all(store.hit("k", limit=3, window_s=window).allowed for _ in range(3))
    assert not any(store.hit("k", limit=3, window_s=window).allowed for _ in range(20))
    backend.elapse(window, until=lambda: store.hit("k", limit=3, window_s=window).allowed)


def test_keys_count_apart(backend):
    """A full key does not limit another key."""
    assert backend.store.hit("a", limit=1, window_s=60).allowed
    assert not backend.store.hit("a", limit=1, window_s=60).allowed
    assert backend.store.hit("b", limit=1, window_s=60).allowed


@pytest.fixture(params=["memory", "sqlite"])
def clocked(request, tmp_path) -> Backend:
    """The backends whose clock a test drives by hand."""
    clock = FakeClock()
    if request.param == "memory":
        return Backend("memory", MemoryStore(clock=clock), clock)
    store = SqliteStore(tmp_path / "limits.sqlite3", clock=clock)
    request.addfinalizer(store.close)
    return Backend("sqlite", store, clock)


def test_window_counts_each_event_for_exactly_window_seconds(clocked):
    """Events at t=0, 10, 20 under 3 per 60 s: refused until t=60, then one slot per event leaving."""
    store, clock = clocked.store, clocked.clock
    start = clock.now

    def hit_at(t: float) -> RateDecision:
        clock.now = start + t
        return store.hit("k", limit=3, window_s=60)

    assert [hit_at(t).allowed for t in (0, 10, 20)] == [True, True, True]
    assert hit_at(59.5) == RateDecision(False, pytest.approx(0.5))
    assert hit_at(60).allowed  # the event of t=0 has left
    assert hit_at(60.5) == RateDecision(False, pytest.approx(9.5))
    assert hit_at(70).allowed
    assert RateDecision(False, 9.2).retry_after_whole_s == 10


# --- leases ------------------------------------------------------------------------------


def test_acquire_admits_exactly_the_limit_and_release_frees(backend):
    """Two slots go to the first two holders; a release lets the third in; release is idempotent."""
    store = backend.store
    assert store.acquire("room", "a", limit=2, lease_s=60)
    assert store.acquire("room", "b", limit=2, lease_s=60)
    assert not store.acquire("room", "c", limit=2, lease_s=60)
    assert store.held("room") == 2
    store.release("room", "a")
    store.release("room", "a")
    store.release("room", "never-held")
    assert store.held("room") == 1
    assert store.acquire("room", "c", limit=2, lease_s=60)
    assert store.held("room") == 2


def test_a_holder_acquiring_again_keeps_its_one_slot(backend):
    """Acquiring again as the same holder succeeds even when full and takes no second slot."""
    store = backend.store
    assert store.acquire("room", "a", limit=1, lease_s=60)
    assert store.acquire("room", "a", limit=1, lease_s=60)
    assert store.held("room") == 1
    assert not store.acquire("room", "b", limit=1, lease_s=60)


def test_an_unrenewed_lease_expires(backend):
    """A slot whose lease runs out unrenewed is free again; renewing it then reports the loss."""
    store, lease = backend.store, backend.window(30)
    assert store.acquire("room", "gone", limit=1, lease_s=lease)
    assert not store.acquire("room", "next", limit=1, lease_s=lease)
    backend.elapse(lease, until=lambda: store.held("room") == 0)
    assert not store.renew("room", "gone", lease_s=lease)
    assert store.acquire("room", "next", limit=1, lease_s=60)


def test_renew_extends_a_lease(clocked):
    """A lease renewed before it ends lasts lease_s from the renewal."""
    store, clock = clocked.store, clocked.clock
    assert store.acquire("room", "a", limit=1, lease_s=10)
    clock.now += 8
    assert store.renew("room", "a", lease_s=10)
    clock.now += 9  # 17 s after acquiring, 9 s after renewing
    assert store.held("room") == 1
    clock.now += 1
    assert store.held("room") == 0


def test_redis_renew_extends_the_key_expiry(redis_server, redis_prefix):
    """In Redis, renewing a short lease with a long one keeps the holder and pushes the key's expiry out."""
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    assert store.acquire("room", "a", limit=1, lease_s=1)
    assert store.renew("room", "a", lease_s=120)
    assert not store.renew("room", "stranger", lease_s=120)
    assert store.held("room") == 1
    assert redis_server.client().pttl(f"{redis_prefix}l:room") > 60_000
    store.close()


# --- sums --------------------------------------------------------------------------------


def test_add_accumulates_and_total_reads(backend):
    """Amounts add up per key; an absent key totals 0."""
    store = backend.store
    assert store.total("learner:1:day") == 0
    assert store.add("learner:1:day", 12.5, ttl_s=86_400) == 12.5
    assert store.add("learner:1:day", 30, ttl_s=86_400) == 42.5
    assert store.total("learner:1:day") == 42.5
    assert store.total("learner:2:day") == 0


def test_a_sum_expires_ttl_after_its_first_add(backend):
    """The sum is forgotten ttl_s after the add that created it, not after the latest add."""
    store, ttl = backend.store, backend.window(100)
    store.add("s", 5, ttl_s=ttl)
    store.add("s", 5, ttl_s=ttl * 1000)  # a later add does not extend the life of the sum
    backend.elapse(ttl, until=lambda: store.total("s") == 0)
    assert store.add("s", 1, ttl_s=ttl) == 1


def test_a_sum_lives_until_its_ttl(clocked):
    """Just before ttl_s the sum is still there."""
    clocked.store.add("s", 5, ttl_s=100)
    clocked.clock.now += 99.9
    assert clocked.store.total("s") == 5


def test_the_three_kinds_of_counter_do_not_collide(backend):
    """One key name used as a window, a lease set and a sum keeps three separate counters."""
    store = backend.store
    assert store.hit("same", limit=1, window_s=60).allowed
    assert store.acquire("same", "h", limit=1, lease_s=60)
    assert store.add("same", 2, ttl_s=60) == 2
    assert store.held("same") == 1
    assert store.total("same") == 2


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("hit", ("", {"limit": 1, "window_s": 1})),
        ("hit", ("k", {"limit": 0, "window_s": 1})),
        ("hit", ("k", {"limit": 1, "window_s": 0})),
        ("hit", ("k" * 300, {"limit": 1, "window_s": 1})),
        ("acquire", ("k", "", {"limit": 1, "lease_s": 1})),
        ("acquire", ("k", "h", {"limit": 1, "lease_s": -1})),
        ("renew", ("k", "h", {"lease_s": float("inf")})),
        ("add", ("k", float("nan"), {"ttl_s": 1})),
        ("add", ("k", 1, {"ttl_s": 0})),
    ],
)
def test_bad_arguments_are_value_errors(backend, call, args):
    """Empty or huge keys, limits below 1 and non-positive or non-finite times are refused before any I/O."""
    *positional, options = args
    with pytest.raises(ValueError):
        getattr(backend.store, call)(*positional, **options)


# --- contention --------------------------------------------------------------------------


def test_threads_racing_for_hits_get_exactly_the_limit(backend):
    """Of 160 hits from 16 threads against a limit of 50, exactly 50 pass."""
    barrier = threading.Barrier(16)

    def hammer(_: int) -> int:
        barrier.wait()
        return sum(backend.store.hit("hot", limit=50, window_s=600).allowed for _ in range(10))

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(hammer, range(16))) == 50


def test_threads_racing_for_slots_get_exactly_the_limit(backend):
    """Of 32 threads racing for 8 slots, exactly 8 win and 8 are held."""
    barrier = threading.Barrier(32)

    def take(i: int) -> bool:
        barrier.wait()
        return backend.store.acquire("room", f"t{i}", limit=8, lease_s=600)

    with ThreadPoolExecutor(32) as pool:
        assert sum(pool.map(take, range(32))) == 8
    assert backend.store.held("room") == 8


def _race(store, barrier, results, index: int, attempts: int) -> None:
    """In a child process: wait for the others, then try for slots and hits; report the wins."""
    barrier.wait()
    slots = sum(store.acquire("room", f"p{index}-{i}", limit=8, lease_s=600) for i in range(attempts))
    hits = sum(store.hit("door", limit=15, window_s=600).allowed for _ in range(attempts))
    results.put((slots, hits))


def test_processes_racing_get_exactly_the_limit(shared_backend):
    """Four forked processes racing for 8 slots and 15 hits win exactly 8 and 15 between them."""
    barrier, results = FORK.Barrier(4), FORK.Queue()
    workers = [FORK.Process(target=_race, args=(shared_backend.store, barrier, results, i, 6)) for i in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=UNIT_S * 4) for _ in workers]
    for worker in workers:
        worker.join(timeout=UNIT_S)
        assert worker.exitcode == 0
    assert sum(slots for slots, _ in outcomes) == 8
    assert sum(hits for _, hits in outcomes) == 15
    assert shared_backend.store.held("room") == 8


def _hold_until_killed(store, ready) -> None:
    """In a child process: take the only slot, say so, and hang (never releasing)."""
    if store.acquire("room", f"pid-{os.getpid()}", limit=1, lease_s=REAL_WINDOW_S * 2):
        ready.set()
    threading.Event().wait()


def test_a_killed_holders_slot_frees_after_its_lease(shared_backend):
    """A worker SIGKILLed while holding a slot loses it when its lease runs out."""
    store, ready = shared_backend.store, FORK.Event()
    holder = FORK.Process(target=_hold_until_killed, args=(store, ready))
    holder.start()
    try:
        assert ready.wait(UNIT_S)
        assert not store.acquire("room", "parent", limit=1, lease_s=60)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(UNIT_S)
    assert holder.exitcode == -signal.SIGKILL
    wait_until(lambda: store.acquire("room", "parent", limit=1, lease_s=60), timeout_s=REAL_WINDOW_S * 2 + UNIT_S)
    assert store.held("room") == 1


# --- housekeeping ------------------------------------------------------------------------


def test_memory_forgets_expired_keys(clocked_memory):
    """After every window, lease and sum has expired, the next sweep leaves no key behind."""
    store, clock = clocked_memory
    for i in range(50):
        store.hit(f"w{i}", limit=1, window_s=60)
        store.acquire(f"l{i}", "h", limit=1, lease_s=60)
        store.add(f"s{i}", 1, ttl_s=60)
    assert store.key_count() == 150
    clock.now += 61
    store.total("anything")
    assert store.key_count() == 0


def test_memory_caps_its_keys(clocked_memory):
    """Past max_keys distinct keys, the least recently used are forgotten."""
    store, _ = clocked_memory
    for i in range(1000):
        store.hit(f"ip{i}", limit=1, window_s=60)
    assert store.key_count() == 100
    assert store.hit("ip999", limit=1, window_s=60) == RateDecision(False, 60)


@pytest.fixture
def clocked_memory() -> tuple[MemoryStore, FakeClock]:
    """A MemoryStore of at most 100 keys per kind, sweeping every 10 s of its hand-driven clock."""
    clock = FakeClock()
    return MemoryStore(clock=clock, max_keys=100, sweep_interval_s=10), clock


def test_sqlite_sweeps_expired_rows(tmp_path):
    """Expired events, leases and sums are deleted from the file by the next sweep."""
    clock, path = FakeClock(), tmp_path / "limits.sqlite3"
    store = SqliteStore(path, clock=clock, sweep_interval_s=10)
    for i in range(20):
        store.hit(f"w{i}", limit=1, window_s=60)
        store.acquire(f"l{i}", "h", limit=1, lease_s=60)
        store.add(f"s{i}", 1, ttl_s=60)
    clock.now += 61
    store.total("anything")
    with sqlite3.connect(path) as db:
        assert [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("hits", "leases", "sums")] == [0] * 3
    store.close()


def _count_own_connections(store: SqliteStore, results) -> None:
    """In a child process: use the inherited store, then report how many descriptors hold its file."""
    store.hit("k", limit=100, window_s=60)
    results.put(sum(_fd_target(fd) == str(store.path) for fd in os.listdir("/proc/self/fd")))


def _fd_target(fd: str) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:  # the descriptor listdir itself used, closed by now
        return None


def test_sqlite_forked_child_opens_its_own_connection(tmp_path):
    """A forked child does not use its parent's connection (SQLite forbids it): it opens the file itself."""
    store = SqliteStore(tmp_path / "limits.sqlite3")
    store.hit("k", limit=100, window_s=60)
    results = FORK.Queue()
    child = FORK.Process(target=_count_own_connections, args=(store, results))
    child.start()
    assert results.get(timeout=UNIT_S) == 2  # the inherited one, left alone, and its own
    child.join(UNIT_S)
    store.close()


def test_sqlite_construction_does_no_io(tmp_path):
    """Constructing a SqliteStore creates no file; the first operation does."""
    path = tmp_path / "dir" / "limits.sqlite3"
    store = SqliteStore(path)
    assert not path.parent.exists()
    assert store.hit("k", limit=1, window_s=1).allowed
    assert path.exists()
    store.close()


def test_redis_keys_are_prefixed_and_expire_on_their_own(redis_server, redis_prefix):
    """Every key the Redis store writes carries the prefix and an expiry no longer than its window, lease or ttl."""
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    store.hit("k", limit=5, window_s=30)
    store.acquire("k", "h", limit=5, lease_s=20)
    store.add("k", 1, ttl_s=10)
    client = redis_server.client()
    ttls = {key.decode(): client.pttl(key) for key in client.scan_iter(f"{redis_prefix}*")}
    assert ttls.keys() == {f"{redis_prefix}w:k", f"{redis_prefix}l:k", f"{redis_prefix}s:k"}
    assert 0 < ttls[f"{redis_prefix}w:k"] <= 30_000
    assert 0 < ttls[f"{redis_prefix}l:k"] <= 20_000
    assert 0 < ttls[f"{redis_prefix}s:k"] <= 10_000
    store.close()


def test_redis_construction_does_no_io():
    """Constructing a RedisStore for an address where nothing listens raises nothing."""
    RedisStore("redis://:secret-password@127.0.0.1:1/0")


# --- composition -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("redis", "sqlite", "instance", "shared"),
    [
        (False, False, "memory", "memory"),
        (False, True, "sqlite else memory", "sqlite else memory"),
        (True, False, "memory", "redis else memory"),
        (True, True, "sqlite else memory", "redis else sqlite else memory"),
    ],
)
def test_create_limit_stores_follows_the_configuration(tmp_path, redis, sqlite, instance, shared):
    """Without Redis both limits count in the instance store; with it the shared store falls back to that one."""
    stores = create_limit_stores(redis_url="redis://127.0.0.1:1/0" if redis else None,
                                 sqlite_path=tmp_path / "l.sqlite3" if sqlite else None)
    assert (_layers(stores.instance), _layers(stores.shared)) == (instance, shared)
    assert stores.shared is stores.instance or stores.shared.fallback is stores.instance
    stores.close()


def _layers(store) -> str:
    """A store's kind, or for FailOpen its primary's and fallback's, outermost first."""
    if isinstance(store, FailOpen):
        return f"{_layers(store.primary)} else {_layers(store.fallback)}"
    return store.kind
