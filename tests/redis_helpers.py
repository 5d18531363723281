"""A real Redis for tests: Debian's ``redis-server``, started on a free port in a temp dir.

Persistence is off (no RDB snapshots, no append-only file), so nothing outlives
the test session. A missing binary fails the tests (it never skips them):
``bash scripts/install-redis.sh`` installs it.

:class:`SilentServer` is the other stand-in: a TCP port that accepts connections
and never answers, the way a Redis behind a broken network looks to a client.

Use :func:`redis_server` (session-wide), :func:`redis_prefix` and
:func:`silent_server` as pytest fixtures: import them into a test module.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import stop_process

from tests.gcs_helpers import _free_port as free_port  # noqa: F401  (re-exported)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def redis_binary() -> str:
    """The ``redis-server`` executable; fails the test when it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed: run `bash scripts/install-redis.sh`", pytrace=False)
    return path


def local_url(port: int) -> str:
    """The Redis URL of database 0 on ``port`` of 127.0.0.1."""
    return f"redis://127.0.0.1:{port}/0"


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, without persistence."""

    def __init__(self, work_dir: str | os.PathLike[str] | None = None, *, port: int = 0) -> None:
        self.port = port
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return local_url(self.port)

    @property
    def log_path(self) -> Path:
        return self.work_dir / "redis.log"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING; keeps the same port across restarts."""
        self.port = self.port or free_port()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.work_dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.log_path}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S}s")

    def stop(self) -> None:
        """Stop the server (its data is gone)."""
        process, self.process = self.process, None
        stop_process(process, STOP_TIMEOUT_S)

    def client(self):
        """A plain ``redis.Redis`` client of this server, to look at what the store wrote."""
        import redis

        return redis.Redis.from_url(self.url)


class SilentServer:
    """A TCP listener that accepts connections, counts them, and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return local_url(self.port)

    @property
    def connections(self) -> int:
        """How many connections were accepted so far."""
        with self._lock:
            return len(self._accepted)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # the listener was closed
                return
            with self._lock:
                self._accepted.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self._listener.close()
        self._thread.join(timeout=STOP_TIMEOUT_S)
        with self._lock:
            for conn in self._accepted:
                conn.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One redis-server for the whole test session."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so tests share the server without seeing each other's keys."""
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A port that accepts connections and never answers."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
