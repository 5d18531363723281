"""Process plumbing shared by the benchmarks: the emulator and the production server as child processes.

Everything here runs what an operator runs: ``python -m livetalk.emulator`` and the production server command
``gunicorn -c gunicorn.conf.py app:app``, configured through the environment only.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
START_TIMEOUT_S = 30.0


def start_emulator(mode: str = "echo") -> tuple[subprocess.Popen, str, str]:
    """The Gemini emulator as a child process; returns (process, base_url, ca_file)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "livetalk.emulator", "--port", "0", "--mode", mode],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    base_url = ca_file = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not (base_url and ca_file):
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.search(r"GOOGLE_GEMINI_BASE_URL=(\S+)", line):
            base_url = m.group(1)
        if m := re.search(r"SSL_CERT_FILE=(\S+)", line):
            ca_file = m.group(1)
    if not (base_url and ca_file):
        proc.kill()
        raise SystemExit("the emulator did not start")
    return proc, base_url, ca_file


def start_server(port: int, base_url: str, ca_file: str, workers: int, *, cwd: Path = ROOT,
                 **env_overrides: str) -> subprocess.Popen:
    """The production server command, configured as an operator would, against the emulator at ``base_url``.

    ``cwd`` is the checkout to serve (another one compares two versions of the code side by side).
    """
    env = dict(os.environ, PORT=str(port), GEMINI_API_KEY="bench-fake-key", GOOGLE_GEMINI_BASE_URL=base_url,
               SSL_CERT_FILE=ca_file, WEB_CONCURRENCY=str(workers), LOG_LEVEL="WARNING",
               MAX_SOCKETS_PER_IP="1000", NEW_SOCKETS_PER_IP_PER_MINUTE="100000",
               DATA_DIR=str(Path("/tmp") / f"livetalk-bench-{os.getpid()}"), NO_PROXY="127.0.0.1,localhost")
    env.update(env_overrides)
    proc = subprocess.Popen(["gunicorn", "-c", "gunicorn.conf.py", "app:app"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def stop(server: subprocess.Popen, *others: subprocess.Popen) -> None:
    """SIGTERM the server's process group and the other children; wait for all of them."""
    os.killpg(server.pid, signal.SIGTERM)
    for proc in others:
        proc.terminate()
    server.wait(15)
    for proc in others:
        proc.wait(5)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (the gunicorn workers of a master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def workers(pid: int) -> list[int]:
    """The gunicorn workers of master ``pid`` (not the emulator a demo-mode instance may have started)."""
    return [child for child in children(pid)
            if b"livetalk.emulator" not in Path(f"/proc/{child}/cmdline").read_bytes()]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its workers (gunicorn master and workers; a demo-mode emulator is not the server's cost)."""
    return [pid, *workers(pid)]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes together, in bytes."""
    return sum(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE for pid in pids)
