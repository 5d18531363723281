"""Shared fixtures: settings → emulator → app → a real server on an ephemeral port → clients.

Every end-to-end test talks to a real server (werkzeug on port 0, or gunicorn as
a subprocess) that reaches the Gemini emulator over TLS through the unmodified
google-genai SDK, configured exactly as an operator would: ``GEMINI_API_KEY``,
``GOOGLE_GEMINI_BASE_URL`` and ``SSL_CERT_FILE``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from livetalk.config import Settings  # noqa: E402
from livetalk.storage import LocalStorage  # noqa: E402
from tests.gcs_helpers import gcs_env, gcs_server, gcs_storage  # noqa: E402,F401  (fixtures)
from tests.helpers import FAKE_API_KEY  # noqa: E402
from tests.redis_helpers import redis_prefix, redis_server, silent_server  # noqa: E402,F401  (fixtures)
from tests.iap_helpers import iap_clock, iap_key, iap_verifier, key_server  # noqa: E402,F401  (fixtures)
from tests.gunicorn_helpers import gunicorn_server, make_gunicorn  # noqa: E402,F401  (fixtures)

# --- storage ---------------------------------------------------------------------------


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path):
    """Each storage backend in turn, empty: a local directory, then a bucket in fake-gcs-server."""
    if request.param == "local":
        return LocalStorage(tmp_path / "data")
    return request.getfixturevalue("gcs_storage")


@pytest.fixture()
def local_store(tmp_path):
    """An empty local store."""
    return LocalStorage(tmp_path / "data")


@pytest.fixture()
def recording_pump():
    """A recording pump of its own (a thread every 10 ms), stopped after the test."""
    from livetalk.recording import RecordingPump

    pump = RecordingPump(interval_s=0.01)
    yield pump
    pump.stop()


# --- emulator --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def emulator():
    """One Gemini emulator (TLS) for the whole test session."""
    from livetalk.emulator import Emulator

    emu = Emulator(host="127.0.0.1", port=0).start()
    yield emu
    emu.stop()


@pytest.fixture()
def emu(emulator):
    """The shared emulator with no faults queued and empty session and request logs."""
    emulator.control.reset()
    yield emulator
    emulator.control.reset()


@pytest.fixture()
def gemini_env(emulator, monkeypatch):
    """Point the unmodified SDK at the emulator through its own environment variables."""
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("SSL_CERT_FILE", str(emulator.ca_file))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return emulator


@pytest.fixture()
def settings(gemini_env, tmp_path) -> Settings:
    """Settings of a service configured with a (fake) key, reaching the emulator."""
    return Settings(gemini_api_key=FAKE_API_KEY, data_dir=tmp_path / "data", log_level="INFO",
                    max_sockets_per_ip=50, new_sockets_per_ip_per_min=1000)


# --- a real server ---------------------------------------------------------------------


@dataclasses.dataclass
class LiveServer:
    """A running server: ``url`` is ``http://127.0.0.1:PORT``."""

    url: str
    app: object
    stop: callable

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/realtime"

    @property
    def services(self):
        return self.app.extensions["livetalk"]


@contextlib.contextmanager
def serve_app(app) -> Iterator[LiveServer]:
    """Serve ``app`` with werkzeug's threaded server on an ephemeral port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-server", daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            server.shutdown()
            server.server_close()

    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app, stop=stop)
    finally:
        stop()
        app.extensions["livetalk"].close()


@pytest.fixture()
def make_server(settings):
    """Factory: start a server for (optionally modified) settings; all stopped at teardown."""
    from app import create_app

    stack = contextlib.ExitStack()

    def start(**overrides) -> LiveServer:
        app = create_app(dataclasses.replace(settings, **overrides))
        return stack.enter_context(serve_app(app))

    with stack:
        yield start


@pytest.fixture()
def live_server(make_server) -> LiveServer:
    """The service with default settings, against the emulator."""
    return make_server()
