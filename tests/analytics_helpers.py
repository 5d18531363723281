"""Builders of synthetic stereo recordings with known speech, for the analytics tests.

A recording is a list of :class:`Burst` (a tone, or the emulator's own synthesised
speech, on the user's or the model's channel) over optional white noise at a known
level; :func:`render` turns it into int16 stereo samples, :func:`wav_bytes` into a file.
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np

from livetalk.emulator.audio import OUTPUT_RATE_HZ, synthesize

RATE = 24000  # the relay's recording rate
FULL_SCALE = 32768.0
CHANNEL = {"user": 0, "model": 1}


@dataclasses.dataclass(frozen=True)
class Burst:
    """A tone on one side from ``start_s`` to ``end_s``, RMS ``level_dbfs``."""

    role: str
    start_s: float
    end_s: float
    level_dbfs: float = -20.0
    freq_hz: float = 220.0

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


@dataclasses.dataclass(frozen=True)
class Speech:
    """The emulator's synthesised speech of ``text`` on one side, starting at ``start_s``."""

    role: str
    start_s: float
    text: str

    def samples(self, rate: int) -> np.ndarray:
        pcm = np.frombuffer(synthesize(self.text)[0], dtype="<i2")
        if rate != OUTPUT_RATE_HZ:
            positions = np.arange(int(len(pcm) * rate / OUTPUT_RATE_HZ)) * OUTPUT_RATE_HZ / rate
            pcm = np.interp(positions, np.arange(len(pcm)), pcm).astype(np.int16)
        return pcm

    def voiced_span(self, rate: int = RATE) -> tuple[float, float]:
        """From the first sounding sample to the last, in seconds (the truth the detector should find)."""
        loud = np.flatnonzero(self.samples(rate))
        return self.start_s + loud[0] / rate, self.start_s + (loud[-1] + 1) / rate


def render(parts, *, duration_s: float, rate: int = RATE, noise_dbfs: float | None = None,
           seed: int = 0) -> np.ndarray:
    """int16 samples of shape (n, 2): the bursts and speech on their channels, plus white noise (RMS dBFS)."""
    n = int(round(duration_s * rate))
    out = np.zeros((n, 2))
    t = np.arange(n) / rate
    for part in parts:
        channel = CHANNEL[part.role]
        if isinstance(part, Burst):
            i, j = int(round(part.start_s * rate)), int(round(part.end_s * rate))
            amplitude = FULL_SCALE * 10 ** (part.level_dbfs / 20) * np.sqrt(2)  # a sine's RMS is peak/√2
            out[i:j, channel] += amplitude * np.sin(2 * np.pi * part.freq_hz * t[i:j])
        else:
            pcm = part.samples(rate)
            i = int(round(part.start_s * rate))
            out[i:i + len(pcm), channel] += pcm[: n - i]
    if noise_dbfs is not None:
        out += np.random.default_rng(seed).standard_normal((n, 2)) * FULL_SCALE * 10 ** (noise_dbfs / 20)
    return np.clip(np.rint(out), -32768, 32767).astype("<i2")


def wav_bytes(data: bytes, *, rate: int, channels: int, bits: int = 16, tag: int = 1,
              extensible: bool = False, extra_chunks: bytes = b"", data_size: int | None = None) -> bytes:
    """A WAV file around ``data`` (already encoded), with optional chunks before ``data``."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits)
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
            + b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def encode(stereo: np.ndarray, *, bits: int, encoding: str = "pcm") -> bytes:
    """int16 samples as another WAV sample format (the top bits carry the same values)."""
    x = stereo.astype(np.int32)
    if encoding == "float":
        return (x / FULL_SCALE).astype(f"<f{bits // 8}").tobytes()
    if bits == 8:
        return ((x >> 8) + 128).astype(np.uint8).tobytes()
    if bits == 24:
        wide = (x << 8).astype("<i4").view(np.uint8).reshape(-1, 4)
        return wide[:, :3].tobytes()
    if bits == 32:
        return (x << 16).astype("<i4").tobytes()
    return stereo.astype("<i2").tobytes()


class TrickleStream:
    """A non-seekable binary stream that returns at most ``most`` bytes per read (like a socket)."""

    def __init__(self, data: bytes, most: int = 7) -> None:
        self._data, self._pos, self._most = data, 0, most

    def read(self, n: int = -1) -> bytes:
        n = self._most if n < 0 else min(n, self._most)
        piece = self._data[self._pos:self._pos + n]
        self._pos += len(piece)
        return piece
