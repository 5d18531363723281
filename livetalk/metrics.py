"""The service's Prometheus metrics: conversations, reconnects, upstream errors, recordings, grading, tokens.

:class:`Metrics` owns the metric families and the registry ``GET /metrics`` renders. The relay reports each
conversation through an observer (:meth:`Metrics.observer`, the relay's :class:`~livetalk.relay.Observer`):
its start, then at its end the conversation's :class:`~livetalk.relay.Stats`, end reason and recording.
``/feedback`` reports each grading (:meth:`Metrics.grading_finished`). Every label set is bounded: the engine's
name, the end reason, the reconnect reason and the upstream close code (as a string). Nothing names a
conversation, a session or a client.

Under gunicorn every worker is its own process. The master gives them one directory
(``PROMETHEUS_MULTIPROC_DIR``, see :mod:`livetalk.instance`) before it forks; each worker writes its values
to memory-mapped files there, and whichever worker answers a scrape adds up every worker's files. The
active-conversation gauge is summed over the *live* workers only: gunicorn's ``child_exit`` hook calls
:func:`mark_worker_dead`. Without that directory (one process, e.g. the tests' werkzeug server) the values
live in memory, in a registry of this object's own.

prometheus_client picks memory or files once, when it is first imported, from ``PROMETHEUS_MULTIPROC_DIR``:
this module imports it only where it is used, and :class:`Metrics` refuses a directory the library does not
write to.

Exceptions::

    MetricsError      the multiprocess directory is not the one prometheus_client writes to (it was
                      imported before ``PROMETHEUS_MULTIPROC_DIR`` was set, or the variable changed)
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .relay import NullObserver, Observer

if TYPE_CHECKING:
    from .config import Settings
    from .relay import Conversation

log = logging.getLogger("livetalk.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
FIRST_AUDIO_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
GRADING_BUCKETS_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0)  # grading's deadline is 180 s
CLOSE_CODES = range(100, 5000)  # HTTP statuses and WebSocket close codes; any other number is "other"
OTHER = "other"


class MetricsError(RuntimeError):
    """The multiprocess directory is not where prometheus_client writes; the message says why."""


@dataclasses.dataclass(frozen=True)
class _Families:
    """The metric families (built on first use: in multiprocess mode building them creates files)."""

    active: Any
    conversations: Any
    first_audio: Any
    reconnects: Any
    upstream_errors: Any
    frames_dropped: Any
    tokens: Any
    recordings_stored: Any
    recordings_failed: Any
    grading: Any
    grading_failures: Any


class Metrics:
    """The service's metrics and the registry ``/metrics`` renders.

    Args:
        multiprocess_dir: the directory every gunicorn worker of this instance writes to (it must be the
            ``PROMETHEUS_MULTIPROC_DIR`` prometheus_client was imported with); None: one process, in memory.

    Raises:
        MetricsError: ``multiprocess_dir`` is not where prometheus_client writes.
    """

    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        if multiprocess_dir is not None:
            _check_multiprocess(multiprocess_dir)
        self._dir = multiprocess_dir
        self._lock = threading.Lock()
        self._families: _Families | None = None
        self._registry: Any = None

    def observer(self, *, engine: str) -> Observer:
        """The relay observer for one conversation on ``engine`` (its name labels the series)."""
        return _ConversationObserver(self, engine)

    def grading_finished(self, seconds: float, *, failed: bool) -> None:
        """Count one grading that took ``seconds`` (whether it succeeded or ``failed``)."""
        families = self._built()
        families.grading.observe(seconds)
        if failed:
            families.grading_failures.inc()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for a scraper's ``Accept`` header: ``(body, content type)``."""
        from prometheus_client.exposition import choose_encoder

        encode, content_type = choose_encoder(accept or "")
        return encode(self._exposed()), content_type

    # --- what the observer reports ------------------------------------------------------

    def _started(self, engine: str, conversation: Conversation) -> None:
        self._built().active.labels(engine).inc()

    def _ended(self, engine: str, conversation: Conversation) -> None:
        families, stats = self._built(), conversation.stats
        families.active.labels(engine).dec()
        families.conversations.labels(engine, conversation.end_reason).inc()
        if stats.first_audio_s is not None:
            families.first_audio.labels(engine).observe(stats.first_audio_s)
        for reason, count in stats.reconnect_reasons.items():
            families.reconnects.labels(engine, reason).inc(count)
        for code, count in stats.upstream_codes.items():
            families.upstream_errors.labels(engine, close_code_label(code)).inc(count)
        families.frames_dropped.labels(engine).inc(stats.audio_frames_dropped)
        families.tokens.labels(engine).inc(stats.tokens)
        stored = families.recordings_stored if conversation.recording_uri else families.recordings_failed
        stored.inc()

    def _report(self, record: Callable[[str, Conversation], None], engine: str,
                conversation: Conversation) -> None:
        """The boundary towards the relay: a metric that cannot be recorded never disturbs a conversation."""
        try:
            record(engine, conversation)
        except Exception:
            log.exception("a conversation's metrics could not be recorded")

    # --- families and registries ---------------------------------------------------------

    def _built(self) -> _Families:
        with self._lock:
            if self._families is None:
                self._families = _build_families(None if self._dir else self._own_registry())
            return self._families

    def _exposed(self) -> Any:
        """What a scrape reads: every worker's files, or this process's registry."""
        if self._dir is None:
            self._built()
            return self._own_registry()
        with self._lock:
            if self._registry is None:
                from prometheus_client import CollectorRegistry
                from prometheus_client.multiprocess import MultiProcessCollector

                self._registry = CollectorRegistry(auto_describe=True)
                MultiProcessCollector(self._registry, path=str(self._dir))
            return self._registry

    def _own_registry(self) -> Any:
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=True)
        return self._registry


class _ConversationObserver:
    """The relay's observer for one conversation: forwards its start and end to :class:`Metrics`."""

    __slots__ = ("_metrics", "_engine")

    def __init__(self, metrics: Metrics, engine: str) -> None:
        self._metrics, self._engine = metrics, engine

    def conversation_started(self, conversation: Conversation) -> None:
        self._metrics._report(self._metrics._started, self._engine, conversation)

    def conversation_ended(self, conversation: Conversation) -> None:
        self._metrics._report(self._metrics._ended, self._engine, conversation)


class NullMetrics:
    """Metrics switched off (``METRICS_ENABLED`` unset): records nothing, exposes nothing."""

    def observer(self, *, engine: str) -> Observer:
        return NullObserver()

    def grading_finished(self, seconds: float, *, failed: bool) -> None:
        pass

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        return b"", "text/plain; charset=utf-8"


def create_metrics(settings: Settings) -> Metrics | NullMetrics:
    """The metrics the settings ask for (multiprocess when the gunicorn master made a directory)."""
    if not settings.metrics_enabled:
        return NullMetrics()
    return Metrics(multiprocess_dir=settings.metrics_dir)


def close_code_label(code: int) -> str:
    """An upstream close code or HTTP status as a label value; anything out of range is ``other``."""
    return str(code) if code in CLOSE_CODES else OTHER


def _build_families(registry: Any) -> _Families:
    from prometheus_client import Counter, Gauge, Histogram

    engine, on = ("engine",), {"registry": registry}
    return _Families(
        active=Gauge("livetalk_conversations_active", "Conversations open now.", engine,
                     multiprocess_mode="livesum", **on),
        conversations=Counter("livetalk_conversations", "Conversations ended, by end reason.",
                              (*engine, "end_reason"), **on),
        first_audio=Histogram("livetalk_first_audio_seconds", "From a conversation's start to the model's "
                              "first audio.", engine, buckets=FIRST_AUDIO_BUCKETS_S, **on),
        reconnects=Counter("livetalk_reconnects", "Upstream sessions replaced, by reason (upstream_closed, "
                           "go_away, stall).", (*engine, "reason"), **on),
        upstream_errors=Counter("livetalk_upstream_errors", "Upstream sessions closed under a conversation, "
                                "by close code.", (*engine, "code"), **on),
        frames_dropped=Counter("livetalk_audio_frames_dropped", "User audio frames dropped (before ready, or "
                               "beyond the backlog held while the upstream was replaced).", engine, **on),
        tokens=Counter("livetalk_tokens", "Tokens the engine reported as used.", engine, **on),
        recordings_stored=Counter("livetalk_recordings_stored", "Conversation recordings stored.", **on),
        recordings_failed=Counter("livetalk_recordings_failed", "Conversation recordings that could not be "
                                  "stored.", **on),
        grading=Histogram("livetalk_grading_seconds", "Time to grade a conversation, failures included.",
                          buckets=GRADING_BUCKETS_S, **on),
        grading_failures=Counter("livetalk_grading_failures", "Gradings that failed.", **on),
    )


def _check_multiprocess(directory: Path) -> None:
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        raise MetricsError(f"prometheus_client was imported before {MULTIPROC_ENV} was set: its values "
                           "would stay in this process")
    # The library writes where the variable points; the collector must read the same place.
    if Path(os.environ.get(MULTIPROC_ENV, "")).resolve() != directory.resolve():
        raise MetricsError(f"{MULTIPROC_ENV} does not name the metrics directory {directory}")


# --- the gunicorn master's side ---------------------------------------------------------------


def prepare_multiprocess_dir(directory: Path) -> Path:
    """Create ``directory`` for the workers' files and empty it (a previous run's values are not this one's)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


def mark_worker_dead(pid: int, directory: Path) -> None:
    """A worker exited: its live gauges (open conversations) stop counting; its counters stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(directory))
