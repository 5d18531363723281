"""What the gunicorn master sets up once per instance, before it forks its workers.

* A state directory the workers share (``INSTANCE_STATE_DIR``): the limit counters live in a SQLite file
  there, so every limit holds once per instance whatever ``WEB_CONCURRENCY`` is.
* In demo mode (no ``GEMINI_API_KEY``), one Gemini emulator for every worker (``EMULATOR_URL``,
  ``EMULATOR_CA_FILE``): a conversation resumed on another worker finds its session, and the emulator is
  announced once. It runs as a child process (``python -m livetalk.emulator --ready-json``) that exits by
  itself if the master dies.
* With ``METRICS_ENABLED``, a ``metrics`` folder in the state directory (``PROMETHEUS_MULTIPROC_DIR``) where
  every worker writes its metric values, emptied at each start; :meth:`Instance.worker_exited` (gunicorn's
  ``child_exit``) stops a dead worker's open conversations from counting (:mod:`livetalk.metrics`).

The workers inherit the variables; :class:`~livetalk.config.Settings` reads them like any other.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import Settings

log = logging.getLogger("livetalk")

EMULATOR_START_TIMEOUT_S = 20.0
EMULATOR_STOP_TIMEOUT_S = 3.0
METRICS_SUBDIR = "metrics"


class Instance:
    """The master's per-instance resources; :meth:`start` before forking, :meth:`stop` at exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir: Path | None = None
        self.emulator: subprocess.Popen[str] | None = None
        self.metrics_dir: Path | None = None

    def start(self, environ: dict[str, str] | os._Environ[str] = os.environ) -> Instance:
        """Create the shared state and (in demo mode) start the emulator; publish both in ``environ``."""
        log.info("Live Talk is starting: open http://localhost:%d in a browser", self.settings.port)
        if not self.settings.instance_dir:
            self.state_dir = Path(tempfile.mkdtemp(prefix="livetalk-instance-"))
            environ["INSTANCE_STATE_DIR"] = str(self.state_dir)
        if self.settings.metrics_enabled:
            self._share_metrics(environ)
        if self.settings.emulated and not self.settings.emulator_url:
            base_url, ca_file = self._start_emulator()
            environ["EMULATOR_URL"], environ["EMULATOR_CA_FILE"] = base_url, ca_file
            log.warning("GEMINI_API_KEY is not set: conversations and grading use the built-in Gemini EMULATOR "
                        "at %s (replies are synthetic; set GEMINI_API_KEY to talk to Gemini)", base_url)
        return self

    def _share_metrics(self, environ: dict[str, str] | os._Environ[str]) -> None:
        """Give the workers one empty metrics directory; the variable must be set before they import the library."""
        from .metrics import MULTIPROC_ENV, prepare_multiprocess_dir

        state_dir = self.settings.instance_dir or self.state_dir
        self.metrics_dir = prepare_multiprocess_dir(state_dir / METRICS_SUBDIR)
        environ[MULTIPROC_ENV] = str(self.metrics_dir)

    def worker_exited(self, pid: int) -> None:
        """A worker process is gone (any cause): its open conversations no longer count as active."""
        if self.metrics_dir is not None:
            from .metrics import mark_worker_dead

            mark_worker_dead(pid, self.metrics_dir)

    def _start_emulator(self) -> tuple[str, str]:
        command = [sys.executable, "-m", "livetalk.emulator", "--host", "127.0.0.1", "--port", "0",
                   "--ready-json", "--parent-pid", str(os.getpid()), "--log-level", "WARNING"]
        self.emulator = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                         cwd=Path(__file__).resolve().parent.parent)
        line = _read_line(self.emulator, EMULATOR_START_TIMEOUT_S)
        try:
            ready = json.loads(line)
            return ready["base_url"], ready["ca_file"]
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise RuntimeError("the built-in Gemini emulator did not start") from None

    def stop(self) -> None:
        """Stop the emulator and remove the state directory."""
        emulator, self.emulator = self.emulator, None
        if emulator is not None and emulator.poll() is None:
            emulator.terminate()
            try:
                emulator.wait(EMULATOR_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                emulator.kill()
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The first line ``process`` prints, or "" if it exits or stays silent for ``timeout_s``."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return process.stdout.readline()
