"""Admission: the limits a new conversation or request must pass, each counted where it holds.

=========================================  ===================================  ==========================
limit                                      setting                              counted in
=========================================  ===================================  ==========================
new sockets per client per minute          ``NEW_SOCKETS_PER_IP_PER_MINUTE``    shared store
open sockets per client                    ``MAX_SOCKETS_PER_IP``               shared store (leased)
conversations at once on this instance     ``MAX_SESSIONS``                     instance store (leased)
conversations at once in one process       ``GUNICORN_THREADS`` less headroom   this process
access tickets per client per minute       ``NEW_SOCKETS_PER_IP_PER_MINUTE``    shared store
``/feedback`` per client per minute        ``FEEDBACK_PER_IP_PER_MINUTE``       shared store
conversations one learner holds at once    ``LEARNER_MAX_CONCURRENT``           shared store (leased)
conversation seconds per learner per day   ``LEARNER_DAILY_SECONDS``            shared store
=========================================  ===================================  ==========================

The last two are a learner's own (:mod:`livetalk.quotas`), checked after the ones here.

The *instance* store is shared by the gunicorn workers of one instance (:mod:`livetalk.limits`), so every
number holds exactly once per instance whatever ``WEB_CONCURRENCY`` is; the *shared* store is Redis when
``REDIS_URL`` is set (every instance counts together) and the instance store otherwise. Redis being
unreachable never refuses anyone: the limits then hold per instance (:class:`~livetalk.limits.FailOpen`).
A client is its address, or its /64 for IPv6 (:func:`~livetalk.origins.limit_key`).

Calls may wait for the store (Redis: up to its timeout), so they run on request threads, never on the
relay's event loop.
"""
from __future__ import annotations

import threading

from .config import Settings
from .limits import LeaseKeeper, LimitStores, RateDecision
from .origins import limit_key
from .protocol import REFUSALS, ErrorCode, Refusal

WINDOW_S = 60.0  # the per-minute limits' sliding window
THREAD_HEADROOM = 10  # request threads of a process kept free of conversations for plain HTTP


class Admission:
    """Every admission limit of the service, on its stores. Thread-safe.

    Args:
        settings: the limits.
        stores: the instance and shared limit stores.
        leases: keeps the conversation slots alive while they are held.
    """

    def __init__(self, settings: Settings, stores: LimitStores, leases: LeaseKeeper) -> None:
        self._settings = settings
        self._stores = stores
        self._leases = leases
        self._process_slots = threading.BoundedSemaphore(max(settings.gunicorn_threads - THREAD_HEADROOM, 1))

    def admit_socket(self, ip: str, holder: str) -> Refusal | None:
        """Admit one conversation socket from ``ip`` for ``holder`` (unique per socket), or say why not.

        Checks, in order: new sockets per minute (a refused attempt still counts, so hammering a full
        server does not pay off), open sockets per client, the instance's capacity, this process' threads.
        On None the socket holds slots; give them back with :meth:`release_socket` exactly once.
        """
        settings, client = self._settings, limit_key(ip)
        shared, instance = self._stores.shared, self._stores.instance
        if not shared.hit(f"sockets-new:{client}", limit=settings.new_sockets_per_ip_per_min,
                          window_s=WINDOW_S).allowed:
            return REFUSALS[ErrorCode.RATE_LIMITED]
        if not self._leases.acquire(shared, f"sockets:{client}", holder, limit=settings.max_sockets_per_ip):
            return REFUSALS[ErrorCode.RATE_LIMITED]
        if not self._leases.acquire(instance, "sessions", holder, limit=settings.max_sessions):
            self._leases.release(shared, f"sockets:{client}", holder)
            return REFUSALS[ErrorCode.CAPACITY]
        if not self._process_slots.acquire(blocking=False):
            self._leases.release(instance, "sessions", holder)
            self._leases.release(shared, f"sockets:{client}", holder)
            return REFUSALS[ErrorCode.CAPACITY]
        return None

    def release_socket(self, ip: str, holder: str) -> None:
        """Give back what :meth:`admit_socket` took for ``holder``."""
        self._process_slots.release()
        self._leases.release(self._stores.instance, "sessions", holder)
        self._leases.release(self._stores.shared, f"sockets:{limit_key(ip)}", holder)

    def allow_ticket(self, ip: str) -> RateDecision:
        """Count one ``POST /session`` from ``ip``; refused beyond the per-minute limit."""
        return self._stores.shared.hit(f"tickets:{limit_key(ip)}", limit=self._settings.new_sockets_per_ip_per_min,
                                       window_s=WINDOW_S)

    def allow_feedback(self, ip: str) -> RateDecision:
        """Count one ``POST /feedback`` from ``ip``; refused beyond the per-minute limit."""
        return self._stores.shared.hit(f"feedback:{limit_key(ip)}", limit=self._settings.feedback_per_ip_per_min,
                                       window_s=WINDOW_S)

    def sessions_on_instance(self) -> int:
        """Conversations open on this instance (every worker)."""
        return self._stores.instance.held("sessions")
