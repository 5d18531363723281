"""Reading a WAV file from a binary stream in bounded memory, as s16le blocks.

:func:`open_wav` reads the header (RIFF chunks up to ``data``, skipping others in
pieces, so the stream need not be seekable); :meth:`WavReader.blocks` then yields the
samples as interleaved s16le bytes, a bounded number of frames at a time. Integer PCM
of 8, 16, 24 or 32 bits and IEEE float of 32 or 64 bits are read; other encodings
(A-law, µ-law, ADPCM, …) are :class:`UnsupportedWav`.

A ``data`` chunk whose size is 0 or 0xFFFFFFFF (what streaming writers leave before
they know the size) is read to the end of the stream; one shorter than its header says
(a file cut short) is read as far as it goes and :attr:`WavReader.truncated` says so.

Exceptions::

    AudioFormatError      the bytes cannot be measured as a WAV
     ├─ NotWav            they do not start like a WAV file (RIFF … WAVE)
     ├─ CorruptWav        they start like one but their structure is broken
     └─ UnsupportedWav    a well-formed WAV in an encoding this module does not read
"""
from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

RIFF_HEADER_BYTES = 12  # "RIFF", size, "WAVE"
CHUNK_HEADER_BYTES = 8  # id, size
MAX_FMT_BYTES = 1024  # a fmt chunk is 16, 18 or 40 bytes; anything huge is not one
SKIP_PIECE_BYTES = 64 * 1024  # other chunks are skipped by reading this much at a time
BLOCK_FRAMES = 48_000  # frames per block from WavReader.blocks (2 s at 24 kHz)
UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # data sizes that mean "until the end"
MIN_RATE_HZ, MAX_RATE_HZ = 1000, 768_000
PCM, IEEE_FLOAT, EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
INT_BITS = (8, 16, 24, 32)
FLOAT_BITS = (32, 64)


class AudioFormatError(Exception):
    """The audio cannot be measured; the message is safe to show to the client."""


class NotWav(AudioFormatError):
    """The bytes are not a WAV file at all."""


class CorruptWav(AudioFormatError):
    """The bytes claim to be a WAV file but their structure is broken."""


class UnsupportedWav(AudioFormatError):
    """A well-formed WAV whose encoding is not read here."""


@dataclasses.dataclass(frozen=True)
class WavFormat:
    """What a WAV header says: frames per second, channels, bits per sample, ``"pcm"`` or ``"float"``."""

    sample_rate: int
    channels: int
    bits: int
    encoding: str

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame (one sample of every channel)."""
        return self.channels * self.bits // 8


def open_wav(stream: BinaryIO) -> WavReader:
    """Read the header of the WAV at the stream's position; the reader is left at the samples.

    Raises :class:`NotWav`, :class:`CorruptWav` or :class:`UnsupportedWav`.
    """
    head = _read_exactly(stream, RIFF_HEADER_BYTES)
    if len(head) < RIFF_HEADER_BYTES or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise NotWav("the audio is not a WAV file")
    fmt = None
    while True:
        chunk = _read_exactly(stream, CHUNK_HEADER_BYTES)
        if len(chunk) < CHUNK_HEADER_BYTES:
            raise CorruptWav("the WAV file has no data chunk")
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"data":
            if fmt is None:
                raise CorruptWav("the WAV file's data chunk comes before its fmt chunk")
            return WavReader(stream, fmt, None if size in UNKNOWN_SIZES else size)
        if name == b"fmt ":
            fmt = _parse_fmt(_read_chunk(stream, size))
        else:
            _skip(stream, size + (size & 1))


class WavReader:
    """The samples of a WAV whose header :func:`open_wav` has read; use :meth:`blocks` once.

    Attributes:
        format: the :class:`WavFormat`.
        data_bytes: the size of the samples as the header declares it (None: until the end of the stream).
        truncated: set once :meth:`blocks` found fewer data bytes than the header declared.
    """

    def __init__(self, stream: BinaryIO, fmt: WavFormat, data_bytes: int | None) -> None:
        self._stream = stream
        self.format = fmt
        self.data_bytes = data_bytes
        self._left = data_bytes  # None: until the end of the stream
        self.truncated = False

    def blocks(self, *, block_frames: int = BLOCK_FRAMES) -> Iterator[bytes]:
        """The samples as interleaved s16le bytes, at most ``block_frames`` frames per block.

        A trailing incomplete frame is dropped.
        """
        size = max(1, block_frames) * self.format.frame_bytes
        carry = b""
        while True:
            want = size if self._left is None else min(size, self._left)
            piece = _read_exactly(self._stream, want) if want else b""
            if self._left is not None:
                self._left -= len(piece)
                self.truncated = len(piece) < want
            data = carry + piece
            whole = len(data) - len(data) % self.format.frame_bytes
            carry = data[whole:]
            if whole:
                yield _to_s16(data[:whole], self.format)
            if len(piece) < want or not want:
                return


def _parse_fmt(body: bytes) -> WavFormat:
    if len(body) < 16:
        raise CorruptWav("the WAV file's fmt chunk is too short")
    tag, channels, rate, _byte_rate, align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == EXTENSIBLE:
        if len(body) < 26:
            raise CorruptWav("the WAV file's extensible fmt chunk is too short")
        tag = struct.unpack("<H", body[24:26])[0]  # the first two bytes of the sub-format GUID
    if channels < 1 or not MIN_RATE_HZ <= rate <= MAX_RATE_HZ or bits < 1 or align != channels * bits // 8:
        raise CorruptWav("the WAV file's fmt chunk is inconsistent (channels, rate, bits, block size)")
    if tag == PCM and bits in INT_BITS:
        return WavFormat(rate, channels, bits, "pcm")
    if tag == IEEE_FLOAT and bits in FLOAT_BITS:
        return WavFormat(rate, channels, bits, "float")
    raise UnsupportedWav(f"WAV encoding {tag:#06x} with {bits}-bit samples is not supported "
                         "(integer PCM 8/16/24/32-bit and float 32/64-bit are)")


def _to_s16(data: bytes, fmt: WavFormat) -> bytes:
    """Interleaved samples of any supported encoding → s16le bytes (narrower ones keep their top bits)."""
    if fmt.encoding == "float":
        values = np.frombuffer(data, dtype=f"<f{fmt.bits // 8}")
        return np.clip(np.rint(np.nan_to_num(values) * 32768.0), -32768, 32767).astype("<i2").tobytes()
    if fmt.bits == 16:
        return data
    if fmt.bits == 8:  # unsigned, 128 is zero
        return ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype("<i2").tobytes()
    if fmt.bits == 24:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
        return raw[:, 1:].copy().tobytes()  # the top two bytes of each little-endian sample
    return (np.frombuffer(data, dtype="<i4") >> 16).astype("<i2").tobytes()


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream (a raw stream may return short reads)."""
    pieces, got = [], 0
    while got < n:
        piece = stream.read(n - got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def _read_chunk(stream: BinaryIO, size: int) -> bytes:
    if size > MAX_FMT_BYTES:
        raise CorruptWav("the WAV file's fmt chunk is implausibly large")
    body = _read_exactly(stream, size + (size & 1))
    if len(body) < size:
        raise CorruptWav("the WAV file ends inside its fmt chunk")
    return body[:size]


def _skip(stream: BinaryIO, size: int) -> None:
    while size:
        piece = _read_exactly(stream, min(size, SKIP_PIECE_BYTES))
        if not piece:
            raise CorruptWav("the WAV file ends inside a chunk, before its data")
        size -= len(piece)
