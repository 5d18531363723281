"""Browser fixtures: a speech WAV for the fake microphone → Debian's Chromium → pages on the real server.

The server side comes from ``tests/conftest.py`` (``emulator``, ``live_server``, ``make_server``);
this adds the browser. Chromium is the system one (``/usr/bin/chromium``, installed by
``scripts/install-browser.sh``), never a Playwright download. Its fake microphone plays a WAV
in a loop, so each WAV gets its own browser. Screenshots go to ``artifacts/screenshots/``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .browserkit import UNIT_MS, UNIT_S, SpeechWav, make_silence_wav, make_speech_wav

if TYPE_CHECKING:
    from tests.gunicorn_helpers import GunicornServer

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
from tests.helpers import FAKE_API_KEY  # the emulator takes any key

BROWSER_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
)


@pytest.fixture(scope="session")
def speech_once(tmp_path_factory) -> SpeechWav:
    """One utterance after 1 s of quiet, then a long quiet: the page is live before it starts."""
    return make_speech_wav(tmp_path_factory.mktemp("wav") / "once.wav",
                           text="もしもし、こんにちは。よろしく おねがいします。", lead_s=1.0, tail_s=12.0)


@pytest.fixture(scope="session")
def speech_loop(tmp_path_factory) -> SpeechWav:
    """A short utterance every 3.5 s: each one lands while the emulator is still answering the last."""
    return make_speech_wav(tmp_path_factory.mktemp("wav") / "loop.wav",
                           text="もしもし、こんにちは。", lead_s=0.3, tail_s=1.9)


@pytest.fixture(scope="session")
def silence(tmp_path_factory) -> Path:
    """A microphone in a quiet room: no turn is ever detected."""
    return make_silence_wav(tmp_path_factory.mktemp("wav") / "quiet.wav", seconds=10.0)


# --- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright_driver():
    """Playwright's driver for these tests (the browser itself is Debian's).

    Package scope, not session: while the sync driver runs, the main thread counts as running
    an asyncio loop, and the rest of the suite calls ``asyncio.run()``.
    """
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed: "
                                   "run scripts/install-browser.sh")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-browser.sh")
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser_for(playwright_driver) -> Iterator[Callable[..., object]]:
    """Factory: a Chromium whose fake microphone plays ``wav`` (None: a silent beep source).

    ``auto_allow=False`` leaves out --use-fake-ui-for-media-stream and denies permission
    prompts, so a page's microphone request is refused as if the user had said no.
    """
    browsers: dict[tuple, object] = {}

    def launch(wav: SpeechWav | Path | None = None, *, auto_allow: bool = True):
        path = wav.path if isinstance(wav, SpeechWav) else wav
        key = (path, auto_allow)
        if key not in browsers:
            args = list(BROWSER_ARGS)
            args.append("--use-fake-ui-for-media-stream" if auto_allow else "--deny-permission-prompts")
            if path is not None:
                args.append(f"--use-file-for-fake-audio-capture={path}")
            browsers[key] = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        return browsers[key]

    yield launch
    for browser in browsers.values():
        browser.close()


@dataclasses.dataclass
class PageProblems:
    """What went wrong in a page that no assertion looked at: console errors, uncaught exceptions."""

    console_errors: list[str] = dataclasses.field(default_factory=list)
    page_errors: list[str] = dataclasses.field(default_factory=list)


CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture()
def open_page(browser_for) -> Iterator[Callable[..., object]]:
    """Factory: a fresh browser context and a page open at ``url`` (None: blank), in Japanese by default."""
    contexts = []

    def open_(url: str | None, *, wav: SpeechWav | Path | None = None, auto_allow: bool = True, locale: str = "ja-JP",
              viewport: dict | None = None):
        browser = browser_for(wav, auto_allow=auto_allow)
        context = browser.new_context(locale=locale, viewport=viewport or {"width": 1280, "height": 900})
        context.set_default_timeout(2 * UNIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.problems = PageProblems()
        page.on("console", lambda m: m.type == "error" and page.problems.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.problems.page_errors.append(str(e)))
        page.add_init_script(CSP_WATCH)
        if url is not None:
            page.goto(url)
            page.wait_for_function("() => window.liveTalk !== undefined")
        return page

    yield open_
    problems = [_problems_of(page) for context in contexts for page in context.pages]
    for context in contexts:
        context.close()
    problems = [p for p in problems if p]
    assert not problems, f"uncaught page errors or CSP violations: {problems}"


def _problems_of(page) -> list[str]:
    """Uncaught exceptions and Content-Security-Policy violations seen by one page."""
    found = list(page.problems.page_errors)
    if not page.is_closed() and page.url.startswith("http"):
        found += [f"CSP: {v}" for v in page.evaluate("window.__cspViolations || []")]
    return found


@pytest.fixture()
def snap(request) -> Callable[[object, str], Path]:
    """Save a screenshot as artifacts/screenshots/<name>.png (a test artifact; gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


# --- a server in a process of its own (for tests that kill it) ------------------------------


@pytest.fixture()
def server_process(gemini_env, tmp_path) -> Iterator[Callable[[], "ServerProcess"]]:
    """Factory: the app in its own process against the emulator; ``kill()`` stops it dead."""
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        env = {**os.environ, "GEMINI_API_KEY": FAKE_API_KEY, "DATA_DIR": str(tmp_path / "data"),
               "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("app_process.py"))], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path)
        server = ServerProcess(proc)
        started.append(server)
        server.url = server.wait_listening(timeout_s=4 * UNIT_S)
        return server

    yield start
    for server in started:
        server.kill()


class ServerProcess:
    """A server process started by :func:`server_process`."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.url = ""

    def wait_listening(self, *, timeout_s: float) -> str:
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            self.kill()
            raise AssertionError("the server process did not start listening")
        line = self.proc.stdout.readline().strip()
        assert line.startswith("LISTENING "), f"unexpected server output: {line!r}"
        return line.split(" ", 1)[1]

    def kill(self) -> None:
        """SIGKILL: every socket of the process is closed by the kernel, as in a crash."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=UNIT_S)


# --- the production server, for tests that kill its workers -------------------------------------


@pytest.fixture()
def crashable_server(emulator, tmp_path) -> Iterator["GunicornServer"]:
    """``gunicorn -c gunicorn.conf.py app:app`` against the emulator, checkpointing recordings every second.

    ``data_dir`` is its store; kill its workers with :func:`tests.gunicorn_helpers.worker_pids` and SIGKILL
    (gunicorn's master starts new ones, as after an OOM kill).
    """
    from tests.gunicorn_helpers import ROOT as REPO, START_COMMAND, GunicornServer, free_port, server_env, wait_healthy

    port = free_port()
    env = server_env(port, emulator=emulator, data_dir=tmp_path / "data", api_key=FAKE_API_KEY)
    env.update(RECORDING_CHECKPOINT_SECONDS="1", LOG_LEVEL="WARNING")
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(START_COMMAND, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = GunicornServer(port=port, process=process, log_path=log_path)
    server.data_dir = tmp_path / "data"
    try:
        wait_healthy(server.url + "/healthz", process, 6 * UNIT_S)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(3 * UNIT_S)
