"""livetalk.quotas: a learner's conversations at once and seconds per day, with when each limit frees up."""
from __future__ import annotations

import pytest

from livetalk.limits import LeaseKeeper, MemoryStore
from livetalk.quotas import DAY_S, LearnerQuotas, QuotaExceeded

MIDNIGHT = 20_000 * DAY_S  # an epoch second that starts a UTC day


class Clock:
    """Wall-clock epoch seconds the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(MIDNIGHT + 10 * 3600)  # 10:00 UTC


@pytest.fixture
def make_quotas(clock):
    """Factory: quotas on one in-process store (its clock the same as the quotas')."""
    keepers = []

    def make(*, max_concurrent: int = 2, daily_s: float = 600.0, store: MemoryStore | None = None) -> LearnerQuotas:
        keeper = LeaseKeeper()
        keepers.append(keeper)
        return LearnerQuotas(store=store or MemoryStore(clock=clock), leases=keeper, max_concurrent=max_concurrent,
                             daily_s=daily_s, clock=clock)

    yield make
    for keeper in keepers:
        keeper.close()


def test_concurrent_conversations_are_limited_per_learner(make_quotas):
    """A learner holds at most the configured number at once; another learner is not affected; ending one frees a slot."""
    quotas = make_quotas(max_concurrent=2)
    quotas.admit("a-1", "s1", resuming=False)
    quotas.admit("a-1", "s2", resuming=False)
    with pytest.raises(QuotaExceeded) as refused:
        quotas.admit("a-1", "s3", resuming=False)
    assert refused.value.resets_in_s is None and "2 conversation" in refused.value.message
    quotas.admit("a-2", "s4", resuming=False)
    quotas.release("a-1", "s1")
    quotas.admit("a-1", "s3", resuming=False)
    assert quotas.usage("a-1").concurrent == 2


def test_a_resumed_conversation_keeps_its_one_slot(make_quotas):
    """A second socket of the same conversation needs no new slot, and the slot stays until its last socket ends."""
    quotas = make_quotas(max_concurrent=1)
    quotas.admit("a-1", "s1", resuming=False)
    quotas.admit("a-1", "s1", resuming=True)  # the old socket has not noticed it is gone yet
    assert quotas.usage("a-1").concurrent == 1 and quotas.usage("a-1").conversations == 1
    quotas.release("a-1", "s1")  # the old socket ends
    with pytest.raises(QuotaExceeded):
        quotas.admit("a-1", "s2", resuming=False)
    quotas.release("a-1", "s1")
    quotas.admit("a-1", "s2", resuming=False)


def test_the_daily_allowance_caps_and_then_refuses_until_midnight(make_quotas, clock):
    """A conversation may last what is left of the day; once used up, refusals say when it resets."""
    quotas = make_quotas(daily_s=600.0)
    assert quotas.admit("a-1", "s1", resuming=False) == pytest.approx(600.0)
    quotas.spend("a-1", 450.0)
    quotas.release("a-1", "s1")
    assert quotas.admit("a-1", "s2", resuming=False) == pytest.approx(150.0)
    quotas.spend("a-1", 150.0)
    quotas.release("a-1", "s2")
    with pytest.raises(QuotaExceeded) as refused:
        quotas.admit("a-1", "s3", resuming=False)
    assert refused.value.resets_in_s == pytest.approx(14 * 3600)
    assert "14 h 00 min" in refused.value.message and "00:00 UTC" in refused.value.message
    usage = quotas.usage("a-1")
    assert (usage.conversations, usage.seconds, usage.concurrent) == (2, 600.0, 0)
    clock.now = MIDNIGHT + DAY_S + 1
    assert quotas.admit("a-1", "s3", resuming=False) == pytest.approx(600.0)
    assert quotas.usage("a-1").conversations == 1


def test_limits_are_shared_by_everything_on_one_store(make_quotas, clock):
    """Two processes (two quota objects) on one store count one learner together."""
    store = MemoryStore(clock=clock)
    first, second = make_quotas(max_concurrent=1, store=store), make_quotas(max_concurrent=1, store=store)
    first.admit("a-1", "s1", resuming=False)
    with pytest.raises(QuotaExceeded):
        second.admit("a-1", "s2", resuming=False)
    first.spend("a-1", 30.0)
    assert second.usage("a-1").seconds == 30.0


@pytest.mark.parametrize(("seconds", "words"), [(40, "40 s"), (61, "2 min"), (3600, "1 h 00 min"),
                                                (5 * 3600 + 59, "5 h 01 min")])
def test_reset_times_are_worded_for_people(make_quotas, clock, seconds, words):
    """The time until the reset is rounded up to whole seconds, minutes, or hours and minutes."""
    quotas = make_quotas(daily_s=1.0)
    quotas.spend("a-1", 1.0)
    clock.now = MIDNIGHT + DAY_S - seconds
    with pytest.raises(QuotaExceeded, match=words):
        quotas.admit("a-1", "s1", resuming=False)
