"""Pieces of stored objects, literal bytes and runs of zeros, read as one seekable binary file.

What joins a resumed conversation's recordings under one WAV header, with silence between them, for a
reader that wants a file (the google-genai SDK uploads a seekable file object): nothing is copied to
memory or disk beforehand; a read takes the bytes from the piece it falls in, opening at most one stored
object at a time (:meth:`~livetalk.storage.Storage.open_read`, seeked to the offset).

Exceptions: reads raise what the backend's reader raises (``OSError`` when an object is shorter than
its piece says).
"""
from __future__ import annotations

import bisect
import dataclasses
import io
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, Union

if TYPE_CHECKING:
    from .base import Storage

BUFFER_BYTES = 256 * 1024  # a resumable upload sends multiples of 256 KiB: one read per upload chunk piece


@dataclasses.dataclass(frozen=True)
class Span:
    """``length`` bytes of the stored object ``key`` from byte ``offset``."""

    key: str
    offset: int
    length: int


@dataclasses.dataclass(frozen=True)
class Zeros:
    """``length`` zero bytes (silence in PCM), never held in memory whole."""

    length: int


Piece = Union[bytes, Span, Zeros]


def piece_length(piece: Piece) -> int:
    """How many bytes ``piece`` stands for."""
    return len(piece) if isinstance(piece, bytes) else piece.length


def open_joined(storage: Storage, pieces: Sequence[Piece]) -> BinaryIO:
    """The pieces laid end to end as one buffered, seekable, read-only binary file (close it when done)."""
    return io.BufferedReader(_JoinedRaw(storage, pieces), buffer_size=BUFFER_BYTES)  # type: ignore[return-value]


class _JoinedRaw(io.RawIOBase):
    """The raw side of :func:`open_joined`: each read is served from the one piece it starts in."""

    def __init__(self, storage: Storage, pieces: Sequence[Piece]) -> None:
        self._storage = storage
        self._pieces = [piece for piece in pieces if piece_length(piece)]
        self._starts = [0, *itertools.accumulate(piece_length(piece) for piece in self._pieces)]
        self._position = 0
        self._reader: tuple[int, BinaryIO] | None = None  # (piece index, open object)

    @property
    def length(self) -> int:
        return self._starts[-1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer (memoryview, bytearray)
        if self._position >= self.length or not len(buffer):
            return 0
        index = bisect.bisect_right(self._starts, self._position) - 1
        inside = self._position - self._starts[index]
        n = min(len(buffer), piece_length(self._pieces[index]) - inside)
        view = memoryview(buffer).cast("B")
        view[:n] = self._bytes(index, inside, n)
        self._position += n
        return n

    def _bytes(self, index: int, inside: int, n: int) -> bytes:
        piece = self._pieces[index]
        if isinstance(piece, bytes):
            return piece[inside:inside + n]
        if isinstance(piece, Zeros):
            return bytes(n)
        reader = self._reader_for(index)
        reader.seek(piece.offset + inside)
        chunks, got = [], 0
        while got < n:
            chunk = reader.read(n - got)
            if not chunk:
                raise OSError(f"{piece.key} is shorter than its piece")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _reader_for(self, index: int) -> BinaryIO:
        if self._reader is None or self._reader[0] != index:
            self._close_reader()
            self._reader = (index, self._storage.open_read(self._pieces[index].key))  # type: ignore[union-attr]
        return self._reader[1]

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader[1].close()

    def close(self) -> None:
        self._close_reader()
        super().close()
