"""The process-wide services one app instance shares, created lazily.

``create_app`` builds one :class:`Services` and stores it in
``app.extensions["livetalk"]``. Nothing here does I/O at construction: the event
loop thread, the embedded Gemini emulator and the cloud clients start on first use
(or explicitly from gunicorn's ``post_worker_init`` hook and ``python app.py``).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import security
from .config import Settings

if TYPE_CHECKING:
    from google import genai

    from .emulator import Emulator

log = logging.getLogger("livetalk")

DRAIN_WAIT_S = 6.0  # at shutdown, conversations get this long to close and finalise (Cloud Run: 10 s)


class Services:
    """Owns the shared asyncio loop, the google-genai client and the emulator (if any)."""

    def __init__(self, settings: Settings, *, storage: Any = None) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._emulator: Emulator | None = None
        self._client: genai.Client | None = None
        self._storage: Any = storage
        self.draining = threading.Event()
        self.gate = security.SocketGate.from_settings(settings)
        self.ticket_secret = security.ticket_key(settings.ticket_secret)
        self.ticket_limiter = security.RateLimiter(settings.new_sockets_per_ip_per_min, 60.0)
        self.sessions: dict[str, Any] = {}  # session_id -> relay.Conversation, loop-thread owned

    # --- the shared event loop -------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The shared relay event loop (started on first use, in a daemon OS thread)."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._loop_thread = threading.Thread(
                    target=self._run_loop, args=(self._loop, ready), name="livetalk-loop", daemon=True
                )
                self._loop_thread.start()
                ready.wait()
            return self._loop

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def submit(self, coro) -> Future:
        """Run ``coro`` on the shared loop; returns a concurrent Future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # --- Gemini ------------------------------------------------------------------------

    @property
    def emulated(self) -> bool:
        return self.settings.emulated

    def emulator(self) -> Emulator | None:
        """The embedded emulator (started on first call) when no API key is set."""
        if not self.settings.emulated:
            return None
        with self._lock:
            if self._emulator is None:
                from .emulator import Emulator

                self._emulator = Emulator(host="127.0.0.1", port=0).start()
                log.warning(
                    "GEMINI_API_KEY is not set: using the built-in Gemini EMULATOR at %s "
                    "(replies are synthetic; set GEMINI_API_KEY to talk to Gemini)",
                    self._emulator.base_url,
                )
            return self._emulator

    def genai_client(self) -> genai.Client:
        """The shared google-genai client: the real API, or the embedded emulator."""
        with self._lock:
            if self._client is not None:
                return self._client
        client = self._build_client()
        with self._lock:
            if self._client is None:
                self._client = client
            return self._client

    def _build_client(self) -> genai.Client:
        from google import genai
        from google.genai import types

        version = self.settings.gemini_api_version
        emu = self.emulator()
        if emu is None:
            # The SDK reads GOOGLE_GEMINI_BASE_URL and SSL_CERT_FILE itself.
            return genai.Client(
                api_key=self.settings.gemini_api_key, http_options=types.HttpOptions(api_version=version)
            )
        ctx = ssl.create_default_context(cafile=str(emu.ca_file))
        return genai.Client(
            api_key="emulated-no-key",
            http_options=types.HttpOptions(
                base_url=emu.base_url,
                api_version=version,
                async_client_args={"ssl": ctx},
                client_args={"verify": ctx},
            ),
        )

    # --- storage -----------------------------------------------------------------------

    @property
    def storage(self) -> Any:
        """The object store (GCS when a bucket is configured, else ``DATA_DIR``)."""
        with self._lock:
            if self._storage is None:
                from .storage import create_storage

                self._storage = create_storage(self.settings)
            return self._storage

    # --- lifecycle ---------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start what the first conversation would otherwise wait for."""
        _ = self.loop
        self.emulator()
        self.genai_client()

    def begin_drain(self) -> None:
        """Stop taking conversations and end the open ones (safe from a signal handler)."""
        if self.draining.is_set():
            return
        self.draining.set()
        log.warning("draining: %d open conversation(s) are told to reconnect elsewhere", len(self.sessions))
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

    def new_recorder(self, session_id: str, scenario_id: str, *, started_at, segment: int = 0):
        """A recorder for one conversation (no I/O until it receives audio)."""
        from .recording import ConversationRecorder

        return ConversationRecorder(
            self.storage, session_id=session_id, scenario_id=scenario_id,
            started_at=started_at, segment=segment,
        )

    def close(self) -> None:
        """Finish pending storage writes, stop the loop and the emulator (tests, process exit)."""
        from .feedback import shutdown_feedback_pool

        self._drain_sessions(DRAIN_WAIT_S)
        shutdown_feedback_pool(wait=True)
        with self._lock:
            loop, self._loop = self._loop, None
            emu, self._emulator = self._emulator, None
            self._client = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(timeout=5)
        if emu is not None:
            emu.stop()


async def _cancel_all_tasks() -> None:
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current:
            task.cancel()
