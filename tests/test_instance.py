"""One instance, several workers: what the gunicorn master sets up once for all of them (livetalk/instance.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.gunicorn_helpers import ROOT, START_COMMAND, free_port, wait_healthy
from tests.helpers import UNIT_S, wait_until
from tests.wsclient import RelayClient

RESUMES = 6  # with two workers, the chance that all of them land on one worker is 1 in 32


@pytest.fixture
def demo_server(tmp_path):
    """The production command with no configuration at all (demo mode), 2 workers, text logs to a file."""
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("GEMINI_", "GOOGLE_GEMINI_", "SSL_CERT", "GCS_", "K_SERVICE", "PYTEST_"))}
    env.update(PORT=str(port), DATA_DIR=str(tmp_path / "data"), WEB_CONCURRENCY="2", PYTHONUNBUFFERED="1")
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(START_COMMAND, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", process, 6 * UNIT_S)
        yield port, process, log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)


def emulators_of(master_pid: int) -> list[int]:
    """The emulator processes whose parent is ``master_pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(stat[1]) == master_pid and b"livetalk.emulator" in cmdline:
            found.append(int(entry.name))
    return found


def test_demo_mode_runs_one_emulator_for_every_worker(demo_server):
    """The master starts one emulator, announces it once, and it stops with the master."""
    port, process, log_path = demo_server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=UNIT_S) as response:
        assert b'"emulated"' in response.read()
    emulators = emulators_of(process.pid)
    assert len(emulators) == 1
    announcements = [line for line in log_path.read_text().splitlines() if "EMULATOR" in line]
    assert len(announcements) == 1 and "WARNING" in announcements[0]
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(15)
    wait_until(lambda: not Path(f"/proc/{emulators[0]}").exists())


def test_a_conversation_resumes_on_whichever_worker_takes_it(demo_server):
    """Resume tickets work however the kernel spreads the sockets over the workers: they share one emulator."""
    port, _process, _log = demo_server
    url = f"ws://127.0.0.1:{port}/ws/realtime"
    with RelayClient(url, timeout_s=UNIT_S) as first:
        session_id = first.ready()["session_id"]
        first.send_json({"type": "text", "text": "こんにちは"})
        ticket = first.wait_type("resumable")["resume"]
    for _ in range(RESUMES):
        with RelayClient(url, timeout_s=UNIT_S, resume=ticket) as again:
            ready = again.ready()
            assert ready["session_id"] == session_id
            again.send_json({"type": "text", "text": "続けましょう"})
            assert again.wait_type("complete")["full_text"]
            ticket = again.wait_type("resumable")["resume"]
