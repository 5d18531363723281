"""Audio file facts without decoding: a PCM WAV header, and sniffing a container by its magic bytes.

Pure functions, no I/O. :func:`sniff_audio` trusts the bytes, never a file name or a
client-declared content type.
"""
from __future__ import annotations

import dataclasses
import struct

WAV_HEADER_BYTES = 44
SNIFF_BYTES = 64  # how much of a file sniff_audio needs to see


@dataclasses.dataclass(frozen=True)
class AudioType:
    """A recognised audio container: short name, file extension and MIME type."""

    name: str
    ext: str
    mime: str


WAV = AudioType("wav", "wav", "audio/wav")
WEBM = AudioType("webm", "webm", "audio/webm")
OGG = AudioType("ogg", "ogg", "audio/ogg")
MP3 = AudioType("mp3", "mp3", "audio/mpeg")
FLAC = AudioType("flac", "flac", "audio/flac")


def wav_header(data_bytes: int, *, sample_rate: int, channels: int, sample_bits: int = 16) -> bytes:
    """The 44-byte header of a PCM WAV file whose sample data is ``data_bytes`` long."""
    block_align = channels * sample_bits // 8
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_bytes, b"WAVE",
        b"fmt ", 16, 1, channels, sample_rate, sample_rate * block_align, block_align, sample_bits,
        b"data", data_bytes,
    )


def sniff_audio(head: bytes) -> AudioType | None:
    """The container type of a file starting with ``head`` (its first :data:`SNIFF_BYTES`), or None."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return WEBM if b"webm" in head[:SNIFF_BYTES] else None  # other Matroska files are video
    if head[:4] == b"OggS":
        return OGG
    if head[:4] == b"fLaC":
        return FLAC
    if head[:3] == b"ID3" or _is_mpeg_audio_frame(head):
        return MP3
    return None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG-1/2 Layer I–III frame header (sync word, valid layer, bitrate and rate fields)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0b11
    # layer 0 is AAC's ADTS sync, version 1 is reserved; bitrate 15 and rate 3 are invalid.
    return version != 0b01 and layer != 0 and bitrate != 0b1111 and rate != 0b11
