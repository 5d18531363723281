"""The storage contract: safe keys, the error tree, and the :class:`Storage` and :class:`Writer` protocols."""
from __future__ import annotations

import re
import secrets
from typing import IO, TYPE_CHECKING, BinaryIO, Protocol, Union

if TYPE_CHECKING:
    from ..config import Settings

Data = Union[bytes, bytearray, memoryview, BinaryIO, IO[bytes]]

MAX_KEY_BYTES = 1024  # GCS's limit on an object name, in UTF-8 bytes
COPY_CHUNK_BYTES = 256 * 1024

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# --- errors ------------------------------------------------------------------------------


class StorageError(Exception):
    """Base of the storage errors."""


class StorageUnavailable(StorageError):
    """The store cannot be reached or refused the operation; the message is client-safe."""


class ObjectExists(StorageError):
    """The key is already taken; objects are never overwritten."""


class ObjectNotFound(StorageError):
    """No object has this key."""


class InvalidKey(StorageError, ValueError):
    """The key is not a safe relative object name."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative name, else raise :class:`InvalidKey`.

    Each ``/``-separated segment starts with a letter or digit and holds only
    ``A-Z a-z 0-9 . _ -``: no ``..``, no absolute paths, no empty segments.
    """
    if not isinstance(key, str) or not key or len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidKey("object key must be a non-empty name of at most 1024 bytes")
    if not all(_SEGMENT.fullmatch(part) for part in key.split("/")):
        raise InvalidKey(f"object key {key!r} is not a safe relative name")
    return key


def unique_suffix() -> str:
    """A random suffix that keeps temporary names of concurrent writers apart."""
    return secrets.token_hex(6)


class Writer(Protocol):
    """A streamed object: appended to in bounded memory, published on :meth:`close`."""

    key: str

    def write(self, data: bytes) -> None:
        """Append ``data``."""

    def checkpoint(self, *, header: bytes = b"") -> str:
        """Make what was written so far readable under the key, with ``header``; returns its URI.

        Later checkpoints and :meth:`close` replace it with longer versions. The first publication raises
        :class:`ObjectExists` if the key was taken meanwhile.
        """

    def close(self, *, header: bytes = b"") -> str:
        """Publish the object and return its URI.

        ``header`` replaces the ``header_size`` placeholder bytes reserved at open
        (e.g. a WAV header whose sizes are only known at the end); it must be exactly
        that long. Raises :class:`ObjectExists` if the key was taken meanwhile.
        """

    def abort(self) -> None:
        """Discard everything written; nothing is published."""


class Storage(Protocol):
    """What the service needs from an object store."""

    kind: str  # "gcs" | "local"

    def uri(self, key: str) -> str:
        """Where ``key`` lives, as an operator would type it (``gs://…`` or ``file://…``)."""

    def put(self, key: str, data: Data, content_type: str) -> str:
        """Write a whole object (bytes, or a binary file read to its end); returns its URI."""

    def open_append(self, key: str, content_type: str, *, header_size: int = 0) -> Writer:
        """Start a streamed object; ``header_size`` bytes at its start are fixed at close."""

    def exists(self, key: str) -> bool:
        """Whether an object with this key has been published."""

    def read(self, key: str) -> bytes:
        """The whole object (use :meth:`open_read` for large ones)."""

    def open_read(self, key: str) -> BinaryIO:
        """A seekable binary reader over the object (bounded memory)."""

    def size(self, key: str) -> int:
        """The object's length in bytes."""

    def replace(self, key: str, data: bytes, content_type: str) -> str:
        """Write a whole object, replacing any earlier version at once (readers see the old or the new one).

        Only for objects that are meant to change: checkpoints of a recording in progress, index entries.
        """

    def list(self, prefix: str) -> list[str]:
        """The keys of the objects under the folder ``prefix`` (recursively), sorted."""

    def delete(self, key: str) -> None:
        """Remove an object; removing one that does not exist does nothing."""




# --- factory -------------------------------------------------------------------------------


def create_storage(settings: Settings) -> Storage:
    """GCS when ``settings.gcs_bucket_name`` is set, else a directory at ``settings.data_dir``."""
    if settings.gcs_bucket_name:
        from .gcs import GcsStorage

        return GcsStorage(settings.gcs_bucket_name)
    from .local import LocalStorage

    return LocalStorage(settings.data_dir)
