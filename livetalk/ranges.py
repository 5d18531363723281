"""Serving stored objects over HTTP with ``Range`` (RFC 9110 §14), in bounded memory, from either backend.

A :class:`StoredBody` is a sequence of pieces (:mod:`livetalk.storage.joined`: literal bytes such as a
header made up on the spot, a span of a stored object, a run of zeros), so one response can join several
objects (a resumed conversation's recordings under one WAV header, the silence between them included). Bytes are read with :meth:`~livetalk.storage.Storage.open_read` and
``seek``: a local file seeks, a GCS reader fetches from the offset, and at most ``chunk_bytes`` (plus the
backend's own read buffer) are held at once, whatever the object's size.

:func:`range_response` answers ``200`` (no ``Range``, one it may ignore: malformed, several ranges, or
an ``If-Range`` it cannot check), ``206`` with ``Content-Range`` for one satisfiable range, and ``416``
(a JSON error, ``Content-Range: bytes */<length>``) for one that is not.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from flask import Response, jsonify

from .storage.joined import Piece, open_joined, piece_length

if TYPE_CHECKING:
    from .storage import Storage

CHUNK_BYTES: Final = 64 * 1024  # what one read hands to the response at a time
_ONE_RANGE: Final = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


class Unsatisfiable(ValueError):
    """A single byte range none of whose bytes exist (answered with 416)."""


class StoredBody:
    """Pieces laid end to end (:mod:`livetalk.storage.joined`), read on demand. See the module docstring."""

    def __init__(self, storage: Storage, pieces: Sequence[Piece], *, chunk_bytes: int = CHUNK_BYTES) -> None:
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be positive")
        self._storage = storage
        self._pieces = list(pieces)
        self._chunk_bytes = chunk_bytes

    @property
    def length(self) -> int:
        """Bytes in the whole body."""
        return sum(piece_length(piece) for piece in self._pieces)

    def iter_range(self, start: int, stop: int) -> Iterator[bytes]:
        """The bytes from ``start`` up to (not including) ``stop``, in chunks of at most ``chunk_bytes``."""
        with open_joined(self._storage, self._pieces) as reader:
            reader.seek(start)
            left = stop - start
            while left > 0:
                chunk = reader.read(min(self._chunk_bytes, left))
                if not chunk:
                    raise OSError(f"the stored body ended {left} bytes early")
                left -= len(chunk)
                yield chunk


def range_response(body: StoredBody, *, range_header: str | None, if_range: str | None = None,
                   mimetype: str) -> Response:
    """The response for a ``GET`` of ``body`` carrying ``range_header`` (see the module docstring)."""
    total = body.length
    try:
        wanted = None if if_range else requested_range(range_header, total)
    except Unsatisfiable:
        response = jsonify({"error": {"code": "range_not_satisfiable",
                                      "message": f"the recording is {total} bytes long"}})
        response.status_code = 416
        response.headers["Content-Range"] = f"bytes */{total}"
        return response
    start, stop = wanted or (0, total)
    response = Response(body.iter_range(start, stop), status=200 if wanted is None else 206,
                        mimetype=mimetype, direct_passthrough=True)
    response.headers["Content-Length"] = str(stop - start)
    response.headers["Accept-Ranges"] = "bytes"
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
    return response


def requested_range(header: str | None, total: int) -> tuple[int, int] | None:
    """``(start, stop)`` of the one byte range ``header`` asks for in ``total`` bytes; None to ignore it.

    Ignored (the whole body is sent): no header, another unit, several ranges, or a malformed one.
    A suffix longer than the body means all of it. :class:`Unsatisfiable` when the range starts at or
    past the end, or is an empty suffix.
    """
    match = _ONE_RANGE.fullmatch(header or "")
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or total == 0:
            raise Unsatisfiable(header)
        return max(0, total - suffix), total
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= total:
        raise Unsatisfiable(header)
    return start, min(int(last) + 1, total) if last else total
