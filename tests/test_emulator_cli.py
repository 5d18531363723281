"""`python -m livetalk.emulator` as a real subprocess: the ready line, the SDK through it, and how it ends."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from tests.emulator_helpers import LIVE_MODEL, SCALE, TIMEOUT_S, live_config, receive_turn, run
from livetalk.emulator.__main__ import DEFAULT_PORT, parse_args
from livetalk.emulator.certs import client_context

ROOT = Path(__file__).resolve().parent.parent
PARENT_GONE_EXIT_S = 1.5  # "about a second" once the watched process is gone, with room for a busy machine


def emulator_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "livetalk.emulator", "--port", "0", "--ready-json", *extra]


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; any still running afterwards are killed and reaped."""
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT_S)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def start(spawned: list[subprocess.Popen], command: list[str]) -> tuple[subprocess.Popen, dict]:
    """Start ``command`` and return it with the JSON of its first stdout line."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    spawned.append(process)
    return process, json.loads(process.stdout.readline())


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (no longer exists, or is a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout_s: float) -> float:
    """Seconds until ``pid`` has exited; fails after ``timeout_s``."""
    started = time.monotonic()
    while not gone(pid):
        assert time.monotonic() - started < timeout_s, f"process {pid} still running after {timeout_s:g} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_ready_line_is_the_only_stdout_and_the_sdk_connects_with_it(spawned):
    """--ready-json prints one JSON line (base_url, ca_file, pid); the SDK reaches REST and Live through it."""
    process, ready = start(spawned, emulator_command("--reply-speed", "0"))
    assert set(ready) == {"base_url", "ca_file", "pid"} and ready["pid"] == process.pid
    assert ready["base_url"].startswith("https://127.0.0.1:") and os.path.exists(ready["ca_file"])
    context = client_context(ready["ca_file"])
    client = genai.Client(api_key="cli-test-key-not-real", http_options=types.HttpOptions(
        base_url=ready["base_url"], api_version="v1beta", client_args={"verify": context},
        async_client_args={"ssl": context}))
    assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text.startswith("[emulator]")

    async def live() -> bool:
        async with client.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="hi")
            return bool((await receive_turn(session))[-1].server_content.turn_complete)

    assert run(live())
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(TIMEOUT_S) == 0
    assert time.monotonic() - started < PARENT_GONE_EXIT_S * SCALE
    assert process.stdout.read() == ""  # nothing after the ready line
    assert "listening on" in process.stderr.read()  # logs go to stderr


def test_exits_by_itself_once_the_watched_process_is_gone(spawned):
    """With --parent-pid N the emulator exits (status 0) within about a second of process N ending."""
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    spawned.append(watched)
    process, _ = start(spawned, emulator_command("--parent-pid", str(watched.pid)))
    assert process.poll() is None
    watched.kill()
    watched.wait(TIMEOUT_S)
    started = time.monotonic()
    assert process.wait(TIMEOUT_S) == 0
    assert time.monotonic() - started < PARENT_GONE_EXIT_S * SCALE


def test_exits_when_the_parent_that_started_it_dies(spawned):
    """A parent killed with SIGKILL (no chance to clean up) still takes its emulator with it."""
    parent_code = (
        "import subprocess, sys, os, time\n"
        f"child = subprocess.Popen({emulator_command()!r} + ['--parent-pid', str(os.getpid())], "
        "stdout=subprocess.PIPE, text=True)\n"
        "sys.stdout.write(child.stdout.readline()); sys.stdout.flush()\n"
        "time.sleep(600)\n"
    )
    parent, ready = start(spawned, [sys.executable, "-c", parent_code])
    parent.kill()
    parent.wait(TIMEOUT_S)
    assert wait_gone(ready["pid"], TIMEOUT_S) < PARENT_GONE_EXIT_S * SCALE


def test_default_port_is_8765_and_documented_alike():
    """The default port is 8765 in the parser, the --help text and the emulator's README."""
    assert parse_args([]).port == DEFAULT_PORT == 8765
    help_text = subprocess.run([sys.executable, "-m", "livetalk.emulator", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=TIMEOUT_S).stdout
    assert "default 8765" in help_text and "127.0.0.1:8765" in help_text
    assert "--port 8765" in (ROOT / "livetalk" / "emulator" / "README.md").read_text()
