"""Checks and measures the audio a generateContent request carries. Pure: bytes in, seconds out.

The real API refuses audio it cannot decode with 400 INVALID_ARGUMENT; the
emulator does the same for the containers it can check: WAV is parsed chunk by
chunk (its ``fmt`` fields must make sense and a ``data`` chunk must follow), raw
PCM is measured from its rate, and Ogg, FLAC, WebM and MP3 must at least start
with their magic bytes. Other audio types are accepted unmeasured.
"""
from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

from livetalk.emulator.audio import duration_ms
from livetalk.emulator.wire import mime_rate

WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
PCM_TYPES = frozenset({"audio/pcm", "audio/l16"})
WAV_FORMATS = frozenset({1, 3, 6, 7, 0xFFFE})  # PCM, IEEE float, A-law, µ-law, extensible
WAV_SAMPLE_BITS = frozenset({8, 16, 24, 32, 64})
MAX_CHANNELS = 16
MAX_RATE_HZ = 768_000
FMT_BYTES = 16  # the fields every fmt chunk has


class InvalidAudio(ValueError):
    """The bytes cannot be audio of the declared type."""


@dataclasses.dataclass(frozen=True)
class WavFormat:
    """The fields of a WAV ``fmt`` chunk the duration depends on."""

    tag: int
    channels: int
    rate_hz: int
    block_align: int
    sample_bits: int

    def check(self) -> None:
        """Raise InvalidAudio unless the fields describe playable audio."""
        if self.tag not in WAV_FORMATS or not 1 <= self.channels <= MAX_CHANNELS:
            raise InvalidAudio("unsupported WAV format")
        if not 1 <= self.rate_hz <= MAX_RATE_HZ or self.sample_bits not in WAV_SAMPLE_BITS:
            raise InvalidAudio("bad WAV sample rate or sample size")
        if self.block_align != self.channels * self.sample_bits // 8:
            raise InvalidAudio("bad WAV block alignment")


def _is_mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


_MAGIC: dict[str, Callable[[bytes], bool]] = {
    "audio/ogg": lambda data: data[:4] == b"OggS",
    "audio/flac": lambda data: data[:4] == b"fLaC",
    "audio/x-flac": lambda data: data[:4] == b"fLaC",
    "audio/webm": lambda data: data[:4] == b"\x1a\x45\xdf\xa3",
    "audio/mpeg": _is_mp3,
    "audio/mp3": _is_mp3,
}


def audio_seconds(data: bytes, mime_type: str) -> float:
    """How long the audio lasts (seconds; 0.0 when the type is not measured).

    Raises:
        InvalidAudio: the bytes are not audio of ``mime_type``.
    """
    kind = mime_type.split(";")[0].strip().lower()
    if kind in WAV_TYPES:
        return wav_seconds(data)
    if kind in PCM_TYPES:
        return duration_ms(len(data), mime_rate(mime_type)) / 1000
    looks_right = _MAGIC.get(kind)
    if looks_right is not None and not looks_right(data):
        raise InvalidAudio(f"the bytes are not {kind}")
    return 0.0


def wav_seconds(data: bytes) -> float:
    """The duration of a RIFF/WAVE file (a data chunk longer than the file counts what is there).

    Raises:
        InvalidAudio: not RIFF/WAVE, a malformed chunk, a nonsensical fmt chunk, or no data chunk.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidAudio("not a RIFF/WAVE file")
    position, fmt = 12, None
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (size,) = struct.unpack_from("<I", data, position + 4)
        body = position + 8
        if not all(0x20 <= byte <= 0x7E for byte in chunk_id):
            raise InvalidAudio("malformed WAV chunk")
        if chunk_id == b"fmt ":
            fmt = _read_fmt(data, body, size)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidAudio("WAV data before its fmt chunk")
            return min(size, len(data) - body) // fmt.block_align / fmt.rate_hz
        position = body + size + (size & 1)
    raise InvalidAudio("WAV without a data chunk")


def _read_fmt(data: bytes, body: int, size: int) -> WavFormat:
    if size < FMT_BYTES or body + FMT_BYTES > len(data):
        raise InvalidAudio("truncated WAV fmt chunk")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
    fmt = WavFormat(tag=tag, channels=channels, rate_hz=rate, block_align=block_align, sample_bits=bits)
    fmt.check()
    return fmt
