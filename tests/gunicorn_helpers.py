"""The production server as a test stand: ``gunicorn -c gunicorn.conf.py app:app`` in a subprocess.

It runs from the repository with its own config (2 workers of ``RelayWorker``, 100 threads
each), on a free port, against the Gemini emulator over TLS, and writes its JSON log lines
to a file that tests can read. Use :func:`gunicorn_server` (one per test module) or
:func:`make_gunicorn` (a server per test, with its own environment) as pytest fixtures: import
them into a test module or ``conftest.py``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_COMMAND = ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
STOP_TIMEOUT_S = 15.0  # gunicorn's graceful_timeout (8 s) and some room


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_pids(master: int) -> list[int]:
    """The process ids of ``master``'s children (gunicorn's workers), read from /proc."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if parent == master:
                pids.append(int(entry.name))
    return pids


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float) -> dict:
    """Poll ``url`` (``/healthz``) until it answers; its JSON body. Fails if ``process`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited during start-up"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} not healthy within {timeout_s} s")


def server_env(port: int, *, emulator, data_dir: Path, api_key: str) -> dict[str, str]:
    """The environment Cloud Run gives the container (K_SERVICE: JSON logs), pointed at the emulator."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GCS_", "PYTEST_"))}
    env.update(PORT=str(port), GEMINI_API_KEY=api_key, DATA_DIR=str(data_dir), LOG_LEVEL="INFO",
               K_SERVICE="livetalk-test",
               GOOGLE_GEMINI_BASE_URL=emulator.base_url, SSL_CERT_FILE=str(emulator.ca_file),
               NO_PROXY="127.0.0.1,localhost", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    return env


@dataclasses.dataclass
class GunicornServer:
    """A running production server: ``url`` is ``http://127.0.0.1:PORT``; its output goes to ``log_path``."""

    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_size(self) -> int:
        """Where the log ends now (pass it to :meth:`log_lines` to read only what follows)."""
        return self.log_path.stat().st_size

    def log_lines(self, since: int = 0) -> list[dict]:
        """The JSON log lines written after byte offset ``since``."""
        with self.log_path.open("rb") as log_file:
            log_file.seek(since)
            text = log_file.read().decode(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if gunicorn has not exited in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def running_gunicorn(base: Path, emulator, **extra_env: str) -> Iterator[GunicornServer]:
    """``gunicorn -c gunicorn.conf.py app:app`` against the emulator, ``extra_env`` on top; stopped at the end."""
    from tests.helpers import FAKE_API_KEY, UNIT_S

    port = free_port()
    env = server_env(port, emulator=emulator, data_dir=base / "data", api_key=FAKE_API_KEY)
    env.update(extra_env)
    log_path = base / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(START_COMMAND, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = GunicornServer(port=port, process=process, log_path=log_path)
    try:
        wait_healthy(server.url + "/healthz", process, 6 * UNIT_S)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory, emulator) -> Iterator[GunicornServer]:
    """``gunicorn -c gunicorn.conf.py app:app`` with the default config, against the Gemini emulator."""
    with running_gunicorn(tmp_path_factory.mktemp("gunicorn"), emulator) as server:
        yield server


@pytest.fixture()
def make_gunicorn(tmp_path_factory, emulator):
    """Factory: ``make_gunicorn(VARIABLE="value", ...)`` starts the production server with that environment."""
    with contextlib.ExitStack() as stack:
        def start(**env: str) -> GunicornServer:
            return stack.enter_context(running_gunicorn(tmp_path_factory.mktemp("gunicorn"), emulator, **env))

        yield start
