"""LeaseKeeper: the slots a process holds stay taken while it lives and free up once it stops renewing."""
from __future__ import annotations

import logging

import pytest

from livetalk.limits import LeaseKeeper, MemoryStore, RedisStore
from tests.helpers import UNIT_S, wait_until
from tests.test_limits import FakeClock


@pytest.fixture
def keeper():
    """A keeper of 10 s leases whose thread would renew only after 60 s, so tests renew by hand."""
    keeper = LeaseKeeper(lease_s=10, renew_every_s=9.9)
    yield keeper
    keeper.close()


def test_renewal_keeps_a_slot_past_its_lease(keeper):
    """A slot renewed every few seconds is still held long after one lease has run out."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    assert keeper.acquire(store, "room", "conv-1", limit=1)
    for _ in range(5):
        clock.now += 8
        keeper.renew_all()
    assert store.held("room") == 1
    assert not store.acquire("room", "conv-2", limit=1, lease_s=10)


def test_release_gives_back_and_stops_renewing(keeper):
    """A released slot is free at once and is not renewed back to life."""
    store = MemoryStore(clock=FakeClock())
    assert keeper.acquire(store, "room", "conv-1", limit=1)
    keeper.release(store, "room", "conv-1")
    keeper.renew_all()
    assert (keeper.held(), store.held("room")) == (0, 0)


def test_a_full_limit_takes_nothing(keeper):
    """When the store refuses the slot, the keeper holds nothing."""
    store = MemoryStore(clock=FakeClock())
    assert store.acquire("room", "other", limit=1, lease_s=10)
    assert not keeper.acquire(store, "room", "conv-1", limit=1)
    assert keeper.held() == 0


def test_a_lost_lease_is_retaken_when_there_is_room(keeper, caplog):
    """A lease that ran out before its renewal is taken again; when the room is full meanwhile, it warns and goes on."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    assert keeper.acquire(store, "room", "conv-1", limit=1)
    clock.now += 11
    keeper.renew_all()
    assert store.held("room") == 1
    clock.now += 11
    assert store.acquire("room", "intruder", limit=1, lease_s=10)
    keeper.renew_all()
    assert [r.levelno for r in caplog.records if r.name == "livetalk.limits"] == [logging.WARNING]


def test_the_thread_renews_until_closed(redis_server, redis_prefix):
    """Against Redis, the keeper's thread keeps a short lease alive over many leases; after close it expires."""
    store = RedisStore(redis_server.url, prefix=redis_prefix, timeout_s=UNIT_S)
    keeper = LeaseKeeper(lease_s=0.5, renew_every_s=0.1)
    try:
        assert keeper.acquire(store, "room", "conv-1", limit=1)
        wait_until(lambda: keeper.rounds >= 10)  # at least a second: two leases' worth
        assert store.held("room") == 1
    finally:
        keeper.close()
    wait_until(lambda: store.held("room") == 0)
    store.close()


@pytest.mark.parametrize(("lease_s", "renew_every_s"), [(0, None), (10, 10), (10, -1)])
def test_renewal_must_come_before_the_lease_ends(lease_s, renew_every_s):
    """A keeper whose renewals could not keep up with its lease is refused."""
    with pytest.raises(ValueError):
        LeaseKeeper(lease_s=lease_s, renew_every_s=renew_every_s)
