"""The :class:`Emulator`: the server on its own event loop in a daemon thread."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from livetalk.emulator.certs import CertFiles, client_context, make_certificates
from livetalk.emulator.control import DEFAULT_TOOL_TIMEOUT_S, Control, Mode
from livetalk.emulator.server import EmulatorServer

logger = logging.getLogger("livetalk.emulator")

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 2.0
DEFAULT_REPLY_SPEED = 2.0  # reply audio goes out twice as fast as it plays
DEFAULT_MAX_FILE_BYTES = 200 * 2**20


class Emulator:
    """A Gemini Live + REST and OpenAI Realtime emulator on one TLS port. The constructor does no I/O.

    Args:
        host: address to bind (``0.0.0.0`` binds all; URLs then use 127.0.0.1).
        port: port to bind; 0 picks a free one.
        mode: ``"converse"`` (default) or ``"echo"`` for new sessions of either engine.
        reply_speed: how many times faster than real time reply audio is sent
            (0 or ``inf``: as fast as possible); see ``control.reply_speed``.
        api_key: when set, the only API key accepted; by default any key is.
        max_file_bytes: memory cap for uploaded files (bytes).
        tool_timeout_s: how long a Live session waits for a function response before it
            cancels the call (seconds); see ``control.tool_timeout_s``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        mode: Mode | str = Mode.CONVERSE,
        reply_speed: float = DEFAULT_REPLY_SPEED,
        api_key: str | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._api_key = api_key
        self.control = Control(
            mode=mode, reply_speed=reply_speed, max_file_bytes=max_file_bytes, tool_timeout_s=tool_timeout_s
        )
        self.port: int | None = None
        self._certs: CertFiles | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: EmulatorServer | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> Emulator:
        """Make the certificate, bind, and serve in a daemon thread; a no-op when running.

        Raises:
            OSError: the port cannot be bound.
        """
        with self._lock:
            if self._thread is not None:
                return self
            self._tmpdir = tempfile.TemporaryDirectory(prefix="livetalk-emulator-")
            self._certs = make_certificates(Path(self._tmpdir.name), host=self.host)
            ready = threading.Event()
            failure: list[BaseException] = []
            self._thread = threading.Thread(
                target=self._serve, args=(ready, failure), name="livetalk-emulator", daemon=True
            )
            self._thread.start()
            if not ready.wait(START_TIMEOUT_S):
                failure.append(TimeoutError("emulator did not start in time"))
            if failure:
                self._thread.join(STOP_TIMEOUT_S)
                self._reset_runtime()
                raise failure[0]
        logger.info("gemini and openai emulator listening on %s (mode %s)", self.base_url, self.control.mode.value)
        return self

    def stop(self) -> None:
        """Close every session and the server, and join the thread (about a second at most)."""
        with self._lock:
            if self._thread is None or self._loop is None or self._server is None:
                return
            future = asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop)
            try:
                future.result(STOP_TIMEOUT_S)
            except (TimeoutError, RuntimeError):
                logger.warning("gemini emulator did not stop cleanly")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_S)
            self._reset_runtime()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        assert self._certs is not None
        server = EmulatorServer(
            host=self.host, port=self._requested_port, ssl_context=self._certs.server_context(),
            control=self.control, api_key=self._api_key,
        )
        try:
            self.port = loop.run_until_complete(server.start())
        except BaseException as exc:  # reported to start()'s caller
            failure.append(exc)
            ready.set()
            loop.close()
            return
        self._loop, self._server = loop, server
        ready.set()
        try:
            loop.run_forever()
        finally:
            _cancel_leftovers(loop)
            loop.close()

    def _reset_runtime(self) -> None:
        self._thread = self._loop = self._server = None
        self.port = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
        self._tmpdir = self._certs = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what clients need ----------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server thread is up."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:<port>`` (the SDK rewrites it to ``wss://`` for Live)."""
        return f"https://{_url_host(self.host)}:{self._bound_port()}"

    @property
    def ca_file(self) -> str:
        """Path of the CA certificate (PEM) clients must trust."""
        if self._certs is None:
            raise RuntimeError("the emulator is not started")
        return str(self._certs.ca_file)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client SSL context that trusts this emulator's CA only."""
        return client_context(self.ca_file)

    @property
    def openai_base_url(self) -> str:
        """``https://127.0.0.1:<port>/v1``: the openai SDK's ``base_url`` (Realtime at ``wss://…/v1/realtime``)."""
        return f"{self.base_url}/v1"

    def env(self) -> dict[str, str]:
        """The environment that points an unmodified google-genai or openai SDK here."""
        return {"GOOGLE_GEMINI_BASE_URL": self.base_url, "SSL_CERT_FILE": self.ca_file,
                "OPENAI_BASE_URL": self.openai_base_url}

    def _bound_port(self) -> int:
        if self.port is None:
            raise RuntimeError("the emulator is not started")
        return self.port


def _url_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "127.0.0.1"
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{host}]" if address.version == 6 else host


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
