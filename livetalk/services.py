"""The process-wide resources of one app instance, owned by one object.

``create_app`` builds one :class:`Services` and keeps it in ``app.extensions["livetalk"]``; gunicorn's
``post_worker_init`` warms it up and ``worker_exit`` closes it. Everything that lives as long as the process
is created, handed out and stopped here: the relay's event loop thread, the Gemini engine (the real API or
the embedded emulator), the object store, the recording pump and its I/O pool, the feedback write pool, the
admission limits, the per-learner limits, the signing key, who-is-calling (the IAP key cache) and the
metrics. Nothing here does I/O at construction: threads, sockets, clients and metric files start on first use.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import uvloop

from .admission import Admission
from .config import Settings
from .engines import Engines
from .grading import Grader
from .identity import AnonymousLearners, Authenticator, AuthMode, IapVerifier, Learner
from .learners import IndexedRecording, LearnerIndex
from .limits import LeaseKeeper, create_limit_stores
from .metrics import create_metrics
from .quotas import LearnerQuotas
from .recording import ConversationRecorder, RecordingPump
from .relay import Policy, Recorder
from .signing import TokenSigner

if TYPE_CHECKING:
    from google import genai

    from .engine import Engine
    from .storage import Storage

log = logging.getLogger("livetalk")

DRAIN_WAIT_S = 6.0  # at shutdown, conversations get this long to close and finalise (Cloud Run: 10 s)
LIMITS_FILE = "limits.sqlite3"  # in the instance's state directory: counters all its workers share
WRITE_THREADS = 8  # feedback uploads being written to storage at once, across all requests
CLOSE_TIMEOUT_S = 5.0  # each thread stopped at close gets this long


class Services:
    """Owns the relay loop, the engine, storage, the recording pump, the write pool, limits, keys and metrics.

    Args:
        settings: the service's settings.
        storage: the object store to use instead of the one the settings name (tests).
        grader: the grader to use instead of the default one for the settings (tests).
        pump: the recording pump to use instead of a new one (tests).
    """

    def __init__(self, settings: Settings, *, storage: Storage | None = None, grader: Grader | None = None,
                 pump: RecordingPump | None = None) -> None:
        self.settings = settings
        self.policy = Policy.from_settings(settings)
        self.engines = Engines(settings)
        self.grader = grader or _default_grader(settings, self.engines.grader_name())
        self.limit_stores = create_limit_stores(
            redis_url=settings.redis_url,
            sqlite_path=settings.instance_dir / LIMITS_FILE if settings.instance_dir else None)
        self.leases = LeaseKeeper()
        self.admission = Admission(settings, self.limit_stores, self.leases)
        self.tokens = TokenSigner.from_settings(settings)
        self.authenticator = _authenticator(settings, self.tokens)
        self.quotas = LearnerQuotas(store=self.limit_stores.shared, leases=self.leases,
                                    max_concurrent=settings.learner_max_concurrent,
                                    daily_s=settings.learner_daily_s)
        self.recording_pump = pump or RecordingPump()
        self.metrics = create_metrics(settings)
        self.draining = threading.Event()
        self.sessions: dict[str, Any] = {}  # session_id -> relay.Conversation, owned by the loop thread
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._storage = storage
        self._writes: ThreadPoolExecutor | None = None

    # --- the relay loop ----------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The relay event loop (started on first use, in a daemon OS thread)."""
        with self._lock:
            if self._loop is None:
                # libuv: a cheaper loop turn per frame (docs/performance.md); EVENT_LOOP=asyncio is the fallback
                uvloop_wanted = self.settings.event_loop == "uvloop"
                self._loop = uvloop.new_event_loop() if uvloop_wanted else asyncio.new_event_loop()
                ready = threading.Event()
                self._loop_thread = threading.Thread(
                    target=_run_loop, args=(self._loop, ready), name="livetalk-loop", daemon=True
                )
                self._loop_thread.start()
                ready.wait()
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future:
        """Run ``coro`` on the relay loop; returns a concurrent Future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # --- the AI services ------------------------------------------------------------------

    @property
    def emulated(self) -> bool:
        """Whether Gemini (conversations of Gemini scenarios and grading) is the built-in emulator."""
        return self.settings.emulated

    def genai_client(self) -> genai.Client:
        """The google-genai client: the real API, or the emulator."""
        return self.engines.genai_client()

    def grading_client(self) -> Any:
        """The client :attr:`grader` calls."""
        return self.engines.grading_client()

    def engine(self, name: str = "gemini") -> Engine:
        """The conversation engine a scenario names."""
        return self.engines.engine(name)

    # --- storage and recording -----------------------------------------------------------

    @property
    def storage(self) -> Storage:
        """The object store (GCS when a bucket is configured, else ``DATA_DIR``)."""
        with self._lock:
            if self._storage is None:
                from .storage import create_storage

                self._storage = create_storage(self.settings)
            return self._storage

    def new_recorder(self, session_id: str, scenario_id: str, *, started_at: dt.datetime,
                     segment: int = 0, input_rate: int = 16000, engine: str = "gemini",
                     learner: Learner | None = None) -> Recorder:
        """A recorder for one conversation (no I/O until it receives audio), filed under ``learner`` when published.

        ``input_rate`` is the user's audio rate (the engine's).
        """
        recorder = ConversationRecorder(self.storage, session_id=session_id, scenario_id=scenario_id,
                                        started_at=started_at, segment=segment, pump=self.recording_pump,
                                        checkpoint_s=self.settings.recording_checkpoint_s, input_rate=input_rate,
                                        engine=engine,
                                        learner_id=learner.id if learner else None)
        if learner is None:
            return recorder
        return IndexedRecording(recorder, self.learner_index(), learner, submit=self.write)

    def learner_index(self) -> LearnerIndex:
        """The learners' own indexes of their conversations, in storage (entries read on the write pool)."""
        return LearnerIndex(self.storage, submit=self.write)

    def write(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run a storage call on the write pool (at most :data:`WRITE_THREADS` at once): feedback uploads,
        a page of index entries read in parallel, a recording filed after a drain."""
        with self._lock:
            if self._writes is None:
                self._writes = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="feedback-write")
            return self._writes.submit(fn, *args)

    # --- lifecycle ---------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start what the first conversation would otherwise wait for."""
        _ = self.loop
        self.engines.genai_client()

    def begin_drain(self) -> None:
        """Stop taking conversations and end the open ones (safe from a signal handler)."""
        if self.draining.is_set():
            return
        self.draining.set()
        level = logging.WARNING if self.sessions else logging.INFO
        log.log(level, "draining: %d open conversation(s) are told to reconnect elsewhere", len(self.sessions))
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._shutdown_sessions)

    def _shutdown_sessions(self) -> None:
        for conversation in list(self.sessions.values()):
            conversation.shutdown()

    def _drain_sessions(self, timeout_s: float) -> None:
        """End open conversations and wait (≤ ``timeout_s``) until they have closed and finalised."""
        loop = self._loop
        if loop is None:
            return
        if self.sessions:
            self.begin_drain()
            deadline = time.monotonic() + timeout_s
            while self.sessions and time.monotonic() < deadline:
                time.sleep(0.02)
        # Whatever is left is cancelled, so no request thread waits on a loop that has stopped.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_cancel_all_tasks(), loop).result(1.0)

    def close(self) -> None:
        """Finish pending storage writes; stop the loop, the pump and the emulator (tests, process exit)."""
        self._drain_sessions(DRAIN_WAIT_S)
        with self._lock:
            writes, self._writes = self._writes, None
            loop, self._loop = self._loop, None
        if writes is not None:
            writes.shutdown(wait=True)
        self.recording_pump.stop(CLOSE_TIMEOUT_S)
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(timeout=CLOSE_TIMEOUT_S)
        self.engines.close()
        self.leases.close()
        self.limit_stores.close()


def _authenticator(settings: Settings, tokens: TokenSigner) -> Authenticator:
    """Who is calling, in the configured ``AUTH_MODE`` (no I/O: IAP's keys are fetched on first use)."""
    mode = AuthMode(settings.auth_mode)
    iap = None
    if mode is AuthMode.IAP:
        iap = IapVerifier(audience=settings.iap_audience or "", keys_url=settings.iap_keys_url)
    return Authenticator(mode=mode, anonymous=AnonymousLearners(tokens), iap=iap)


def _default_grader(settings: Settings, name: str) -> Grader:
    """Gemini Flash when Gemini is there (a key or the emulator); OpenAI when only its key is set."""
    if name == "openai":
        from .grading_openai import OpenAIGrader

        return OpenAIGrader(model=settings.openai_grading_model)
    return Grader(model=settings.gemini_grading_model)


def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


async def _cancel_all_tasks() -> None:
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current:
            task.cancel()
