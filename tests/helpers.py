"""Helpers the tests share (not fixtures): the suite's timeout unit, waiting on a condition, test audio."""
from __future__ import annotations

import math
import os
import struct
import subprocess
import time

# One scalable timeout unit for every wait in the suite (raise it on a slow machine).
UNIT_S = 5.0 * float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))
FAKE_API_KEY = "FAKE-gemini-key-not-real-0123456789abcdef"


def wait_until(predicate, *, timeout_s: float = UNIT_S, interval_s: float = 0.01):
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s:g} s")
        time.sleep(interval_s)


def tone(seconds: float, *, rate: int = 16000, freq: float = 440.0, amplitude: float = 0.3) -> bytes:
    """PCM16 mono sine tone."""
    n = int(seconds * rate)
    peak = amplitude * 32767
    return struct.pack(f"<{n}h", *(int(peak * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


def silence(seconds: float, *, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))


def frames(pcm: bytes, frame_ms: int = 20, rate: int = 16000) -> list[bytes]:
    """Split PCM16 into frames of ``frame_ms``."""
    size = rate * frame_ms // 1000 * 2
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


def stop_process(process: subprocess.Popen | None, timeout_s: float = 5.0) -> None:
    """SIGTERM ``process`` and wait for it; SIGKILL it if it has not exited within ``timeout_s``."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
