"""What the browser tests share: timeouts, the fake microphone's speech, page helpers, a scripted relay.

Fixtures live in conftest.py; this module holds the plain code they and the tests use.
"""
from __future__ import annotations

import array
import dataclasses
import json
import math
import re
import shutil
import subprocess
import time
import wave
from pathlib import Path

from playwright.sync_api import Page, WebSocketRoute, expect

from tests.helpers import UNIT_S  # the suite's one scalable timeout unit

UNIT_MS = UNIT_S * 1000

CAPTURE_RATE_HZ = 48000  # the fake microphone's file rate (what a laptop microphone gives)
SPEECH_LEVEL_DB = -1.0  # peak level of the speech: loud enough that Chrome's AGC adds little
VAD_FRAME_MS = 10  # the emulator's speech detector: 10 ms frames above -40 dBFS are speech
VAD_THRESHOLD_DBFS = -40.0

TRANSCRIPT = '[data-testid="transcript"] > li'
BYTES_PER_MS_IN = 32  # 16 kHz PCM16
BYTES_PER_MS_OUT = 48  # 24 kHz PCM16


# --- the fake microphone's speech ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpeechWav:
    """A mono PCM16 WAV for the fake microphone, and what it holds.

    ``speech_start_s``/``speech_end_s`` bound the frames the emulator's detector calls speech;
    ``energy`` is Σx² over the file in full-scale units, divided by the rate (FS²·s).
    """

    path: Path
    rate_hz: int
    duration_s: float
    speech_start_s: float
    speech_end_s: float
    energy: float

    @property
    def speech_s(self) -> float:
        return self.speech_end_s - self.speech_start_s


def make_speech_wav(path: Path, *, text: str, lead_s: float, tail_s: float) -> SpeechWav:
    """Write ``lead_s`` of silence, ``text`` spoken, then ``tail_s`` of silence, at 48 kHz.

    espeak-ng speaks it when it is installed (its Japanese voice reads kana); otherwise a
    voice-like stand-in (voiced syllables with a moving pitch) is synthesised, so the tests
    never depend on a download.
    """
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak and sox:
        raw = path.with_suffix(".espeak.wav")
        subprocess.run([espeak, "-v", "ja", "-s", "160", "-w", str(raw), text], check=True)
        subprocess.run([sox, str(raw), "-r", str(CAPTURE_RATE_HZ), "-c", "1", "-b", "16", str(path),
                        "gain", "-n", str(SPEECH_LEVEL_DB), "pad", str(lead_s), str(tail_s)], check=True)
    else:
        _write_wav(path, _voice_like(lead_s, tail_s, syllables=max(4, len(text) // 2)))
    return describe_wav(path)


def make_silence_wav(path: Path, *, seconds: float) -> Path:
    """Write ``seconds`` of digital silence at 48 kHz: a microphone in a quiet room."""
    _write_wav(path, array.array("h", bytes(2 * int(seconds * CAPTURE_RATE_HZ))))
    return path


def _voice_like(lead_s: float, tail_s: float, *, syllables: int) -> array.array:
    rate = CAPTURE_RATE_HZ
    peak = 32767 * 10 ** (SPEECH_LEVEL_DB / 20)
    out = array.array("h", bytes(2 * int(lead_s * rate)))
    for k in range(syllables):
        n = int(0.16 * rate)
        pitch = 140 + 40 * math.sin(k)
        for i in range(n):
            env = math.sin(math.pi * i / n) ** 2
            t = i / rate
            x = sum(a * math.sin(2 * math.pi * pitch * h * t) for h, a in ((1, 0.6), (2, 0.3), (3, 0.15), (5, 0.05)))
            out.append(int(peak * env * x / 1.1))
        out.extend(array.array("h", bytes(2 * int(0.04 * rate))))
    out.extend(array.array("h", bytes(2 * int(tail_s * rate))))
    return out


def _write_wav(path: Path, samples: array.array) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(CAPTURE_RATE_HZ)
        w.writeframes(samples.tobytes())


def describe_wav(path: Path) -> SpeechWav:
    """Measure a mono PCM16 WAV the way the emulator measures what it hears."""
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, "mono PCM16 expected"
        rate = w.getframerate()
        samples = array.array("h", w.readframes(w.getnframes()))
    step = rate * VAD_FRAME_MS // 1000
    threshold_sq = (32768 * 10 ** (VAD_THRESHOLD_DBFS / 20)) ** 2
    loud = [i for i in range(0, len(samples), step)
            if sum(x * x for x in samples[i:i + step]) > threshold_sq * len(samples[i:i + step])]
    if not loud:
        raise AssertionError(f"{path} has no speech")
    energy = sum(x * x for x in samples) / 32768**2 / rate
    return SpeechWav(path=path, rate_hz=rate, duration_s=len(samples) / rate, speech_start_s=loud[0] / rate,
                     speech_end_s=(loud[-1] + step) / rate, energy=energy)


# --- page helpers --------------------------------------------------------------------------------


def stats(page: Page) -> dict:
    return page.evaluate("window.liveTalk.stats()")


def wait_stats(page: Page, condition: str, timeout_ms: float = 2 * UNIT_MS) -> dict:
    """Wait until ``condition`` (JS over ``s``, the stats) holds; return the stats then."""
    # A function, not an expression: the page's CSP forbids eval, which Playwright uses for expressions.
    page.wait_for_function(f"() => {{ const s = window.liveTalk.stats(); return {condition}; }}",
                           timeout=timeout_ms, polling=20)
    return stats(page)


def expect_state(page: Page, state: str, timeout_ms: float = 2 * UNIT_MS) -> None:
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", state, timeout=timeout_ms)


def expect_error(page: Page, code: str, timeout_ms: float = 2 * UNIT_MS) -> None:
    error = page.get_by_test_id("error")
    expect(error).to_have_attribute("data-code", code, timeout=timeout_ms)
    expect(error).not_to_be_empty()


def utterances(page: Page, role: str, *, final: bool | None = None):
    selector = f'{TRANSCRIPT}[data-role="{role}"]'
    if final is not None:
        selector += f'[data-final="{str(final).lower()}"]'
    return page.locator(selector)


def session_ids(emulator) -> set[str]:
    return {s["id"] for s in emulator.control.sessions()}


def new_session(emulator, before: set[str]) -> dict:
    sessions = [s for s in emulator.control.sessions() if s["id"] not in before]
    assert len(sessions) == 1, f"expected one new Gemini session, got {len(sessions)}"
    return sessions[0]


def start(page: Page, *, mode: str = "voice") -> None:
    page.get_by_test_id(f"mode-{mode}").check()
    page.get_by_test_id("start").click()


class ScriptedRelay:
    """Stands in for /ws/realtime inside the browser (Playwright routes the socket here)."""

    def __init__(self, page: Page) -> None:
        self.sockets: list[WebSocketRoute] = []
        self.received: list[list[dict]] = []
        page.route_web_socket(re.compile(r".*/ws/realtime.*"), self._accept)

    def _accept(self, ws: WebSocketRoute) -> None:
        messages: list[dict] = []
        self.sockets.append(ws)
        self.received.append(messages)
        ws.on_message(lambda m: messages.append(json.loads(m)) if isinstance(m, str) else None)

    def wait_socket(self, n: int, page: Page) -> WebSocketRoute:
        deadline = time.monotonic() + 2 * UNIT_S
        while len(self.sockets) < n and time.monotonic() < deadline:
            page.wait_for_timeout(20)
        assert len(self.sockets) >= n, f"the page opened {len(self.sockets)} sockets, expected {n}"
        return self.sockets[n - 1]

    def wait_message(self, n: int, kind: str, page: Page) -> dict:
        deadline = time.monotonic() + 2 * UNIT_S
        while time.monotonic() < deadline:
            found = [m for m in self.received[n - 1] if m.get("type") == kind]
            if found:
                return found[0]
            page.wait_for_timeout(20)
        raise AssertionError(f"the page never sent {kind!r}")

    @staticmethod
    def send(ws: WebSocketRoute, **event) -> None:
        ws.send(json.dumps(event))


