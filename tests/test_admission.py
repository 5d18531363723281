"""livetalk.admission: which limit refuses a socket or a request, with which contract code, and what is held."""
from __future__ import annotations

import dataclasses

import pytest

from livetalk.admission import THREAD_HEADROOM, Admission
from livetalk.config import Settings
from livetalk.limits import LeaseKeeper, LimitStores, MemoryStore
from livetalk.protocol import REFUSALS

LIMITS = Settings(new_sockets_per_ip_per_min=3, max_sockets_per_ip=2, max_sessions=3, feedback_per_ip_per_min=2,
                  gunicorn_threads=100)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def admission(clock):
    """Admission over one in-process store (instance and shared alike), with the limits above."""
    store = MemoryStore(clock=clock)
    leases = LeaseKeeper()
    yield Admission(LIMITS, LimitStores(instance=store, shared=store), leases)
    leases.close()


def test_sockets_are_refused_with_the_contract_codes(admission, clock):
    """One client's excess is `rate_limited` (1008); a full instance is `capacity` (1013); refusals hold nothing."""
    assert admission.admit_socket("203.0.113.1", "a1") is None
    assert admission.admit_socket("203.0.113.1", "a2") is None
    refused = admission.admit_socket("203.0.113.1", "a3")  # a third open socket from one address
    assert (refused.code, refused.close, refused.http_status) == ("rate_limited", 1008, 429)
    assert admission.admit_socket("203.0.113.2", "b1") is None
    full = admission.admit_socket("203.0.113.3", "c1")
    assert (full.code, full.close, full.http_status) == ("capacity", 1013, 503)
    assert admission.sessions_on_instance() == 3
    admission.release_socket("203.0.113.2", "b1")
    assert admission.admit_socket("203.0.113.3", "c2") is None
    admission.release_socket("203.0.113.1", "a1")
    assert admission.admit_socket("203.0.113.1", "a4").code == "rate_limited"  # a 4th new socket this minute
    clock.now += 60.0
    assert admission.admit_socket("203.0.113.1", "a5") is None


def test_an_ipv6_subscriber_counts_as_one_client(admission):
    """Addresses of one /64 share the per-client limit."""
    assert admission.admit_socket("2001:db8:1:2::1", "x1") is None
    assert admission.admit_socket("2001:db8:1:2::2", "x2") is None
    assert admission.admit_socket("2001:db8:1:2::3", "x3").code == "rate_limited"


def test_a_process_keeps_threads_free_for_plain_requests(clock):
    """However high MAX_SESSIONS is, one process admits no more conversations than it has threads to spare."""
    settings = dataclasses.replace(LIMITS, max_sessions=1000, max_sockets_per_ip=1000,
                                   new_sockets_per_ip_per_min=1000, gunicorn_threads=THREAD_HEADROOM + 2)
    store = MemoryStore(clock=clock)
    leases = LeaseKeeper()
    admission = Admission(settings, LimitStores(instance=store, shared=store), leases)
    try:
        assert [admission.admit_socket("203.0.113.9", f"h{i}") for i in range(2)] == [None, None]
        assert admission.admit_socket("203.0.113.9", "h2").code == "capacity"
        assert admission.sessions_on_instance() == 2  # the refused one gave its instance slot back
    finally:
        leases.close()


def test_feedback_and_tickets_are_counted_per_client_per_minute(admission, clock):
    """Each per-minute limit admits exactly its number, then says when to come back."""
    assert [admission.allow_feedback("203.0.113.1").allowed for _ in range(3)] == [True, True, False]
    assert admission.allow_feedback("203.0.113.1").retry_after_s == pytest.approx(60.0)
    assert admission.allow_feedback("203.0.113.2").allowed
    assert [admission.allow_ticket("203.0.113.1").allowed for _ in range(4)] == [True, True, True, False]
    clock.now += 60.0
    assert admission.allow_feedback("203.0.113.1").allowed


def test_refusals_match_the_contract():
    """Close codes per the socket contract, statuses per the HTTP contract (extensions included)."""
    assert {code.value: (int(r.close), r.http_status) for code, r in REFUSALS.items()} == {
        "forbidden_origin": (1008, 403),
        "unauthorized": (1008, 401),
        "rate_limited": (1008, 429),
        "capacity": (1013, 503),
        "too_large": (1009, 413),
        "quota_exceeded": (1008, 429),
    }
