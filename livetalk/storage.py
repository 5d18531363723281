"""The one seam to object storage: Google Cloud Storage, or a local directory.

Keys are relative, ``/``-separated object names such as
``conversations/2025/01/31/<session_id>/audio.wav``. Both backends share one
contract: an object is written once and never overwritten, a reader never sees
a half-written object, and a failing backend raises :class:`StorageUnavailable`
(which the routes turn into a ``503``) without leaking the cloud library's text.

Exceptions::

    StorageError
     ├── StorageUnavailable   the backend cannot be reached or refuses (503)
     ├── ObjectExists         the key is already taken (writes never overwrite)
     ├── ObjectNotFound       reading a key that does not exist
     └── InvalidKey           a key that is not a safe relative name (also a ValueError)
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, Union

if TYPE_CHECKING:
    from google.cloud import storage as gcs

    from .config import Settings

log = logging.getLogger("livetalk.storage")

Data = Union[bytes, bytearray, memoryview, BinaryIO, IO[bytes]]

MAX_KEY_BYTES = 1024  # GCS's limit on an object name, in UTF-8 bytes
GCS_CHUNK_BYTES = 1024 * 1024  # resumable-upload chunk: what one open writer buffers (multiple of 256 KiB)
GCS_READ_CHUNK_BYTES = 1024 * 1024  # what one open reader buffers
GCS_RETRY_DEADLINE_S = 30.0  # total time the client's own retry may spend on one call
GCS_TIMEOUT_S = (5.0, 60.0)  # (connect, read) per HTTP request
COPY_CHUNK_BYTES = 256 * 1024

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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


def _unique_suffix() -> str:
    return secrets.token_hex(6)


class Writer(Protocol):
    """A streamed object: appended to in bounded memory, published on :meth:`close`."""

    key: str

    def write(self, data: bytes) -> None:
        """Append ``data``."""

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


# --- local directory ---------------------------------------------------------------------


class LocalStorage:
    """Objects as files under ``root``; every write goes to a unique temp file, then is linked in."""

    kind = "local"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def path(self, key: str) -> Path:
        """The file that holds ``key``."""
        return self.root.joinpath(*check_key(key).split("/"))

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def put(self, key: str, data: Data, content_type: str) -> str:
        writer = self.open_append(key, content_type)
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                writer.write(bytes(data))
            else:
                for chunk in iter(lambda: data.read(COPY_CHUNK_BYTES), b""):
                    writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.close()

    def open_append(self, key: str, content_type: str, *, header_size: int = 0) -> _LocalWriter:
        return _LocalWriter(self, key, header_size)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def read(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageUnavailable("the local data directory cannot be read") from exc

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(key) from None


class _LocalWriter:
    """Appends to a hidden temp file beside the target; ``close`` links it in without overwriting."""

    def __init__(self, store: LocalStorage, key: str, header_size: int) -> None:
        self.key = key
        self._final = store.path(key)
        self._uri = store.uri(key)
        self._header_size = header_size
        self._tmp = self._final.with_name(f".{self._final.name}.{_unique_suffix()}.part")
        self._file: BinaryIO | None = None

    def _open(self) -> BinaryIO:
        if self._file is None:
            with _local_errors():
                self._final.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self._tmp, "xb")
                self._file.write(b"\0" * self._header_size)
        return self._file

    def write(self, data: bytes) -> None:
        with _local_errors():
            self._open().write(data)

    def close(self, *, header: bytes = b"") -> str:
        if len(header) != self._header_size:
            raise ValueError(f"header must be {self._header_size} bytes, got {len(header)}")
        f = self._open()
        try:
            with _local_errors():
                if header:
                    f.seek(0)
                    f.write(header)
                f.flush()
                os.fsync(f.fileno())
                f.close()
                _link_no_overwrite(self._tmp, self._final)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self._uri

    def abort(self) -> None:
        file, self._file = self._file, None
        if file is not None:  # only then does the temp file exist
            file.close()
            self._tmp.unlink(missing_ok=True)


def _link_no_overwrite(tmp: Path, final: Path) -> None:
    try:
        os.link(tmp, final)  # atomic, and fails if the name is taken
    except FileExistsError:
        raise ObjectExists(final.name) from None


@contextlib.contextmanager
def _local_errors() -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except FileExistsError:
        raise ObjectExists("a temporary name collided") from None
    except OSError as exc:
        raise StorageUnavailable("the local data directory cannot be written") from exc


# --- Google Cloud Storage ----------------------------------------------------------------


class GcsStorage:
    """Objects in one GCS bucket, through google-cloud-storage with its own retry policy.

    The client is created on first use (never at import or construction), from the
    ambient credentials unless one is passed in. Every write carries
    ``if_generation_match=0``, so an existing object is never replaced, and that
    precondition is also what makes the library's retries of a write safe.
    """

    kind = "gcs"

    def __init__(
        self,
        bucket_name: str,
        client: gcs.Client | None = None,
        *,
        retry_deadline_s: float = GCS_RETRY_DEADLINE_S,
        timeout_s: float | tuple[float, float] = GCS_TIMEOUT_S,
        chunk_bytes: int = GCS_CHUNK_BYTES,
    ) -> None:
        if chunk_bytes % (256 * 1024):
            raise ValueError("chunk_bytes must be a multiple of 256 KiB")
        self.bucket_name = bucket_name
        self._client = client
        self._bucket: Any = None
        self._retry_deadline_s = retry_deadline_s
        self.timeout = timeout_s
        self.chunk_bytes = chunk_bytes

    @property
    def retry(self) -> Any:
        """The library's default retry (transient errors, backoff) capped at ``retry_deadline_s``."""
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_deadline(self._retry_deadline_s)

    def bucket(self) -> Any:
        """The bucket handle (creates the client on first call; no request is made)."""
        if self._bucket is None:
            with gcs_errors("write"):
                if self._client is None:
                    from google.cloud import storage

                    self._client = storage.Client()
                self._bucket = self._client.bucket(self.bucket_name)
        return self._bucket

    def blob(self, key: str) -> Any:
        return self.bucket().blob(check_key(key))

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{check_key(key)}"

    def put(self, key: str, data: Data, content_type: str) -> str:
        blob = self.blob(key)
        with gcs_errors("write", key):
            if isinstance(data, (bytes, bytearray, memoryview)):
                blob.upload_from_string(
                    bytes(data), content_type=content_type, if_generation_match=0,
                    retry=self.retry, timeout=self.timeout,
                )
            else:
                blob.chunk_size = self.chunk_bytes
                blob.upload_from_file(
                    data, content_type=content_type, if_generation_match=0,
                    retry=self.retry, timeout=self.timeout,
                )
        return self.uri(key)

    def open_append(self, key: str, content_type: str, *, header_size: int = 0) -> _GcsWriter:
        return _GcsWriter(self, key, content_type, header_size)

    def exists(self, key: str) -> bool:
        with gcs_errors("read", key):
            return bool(self.blob(key).exists(retry=self.retry, timeout=self.timeout))

    def read(self, key: str) -> bytes:
        with gcs_errors("read", key):
            return self.blob(key).download_as_bytes(retry=self.retry, timeout=self.timeout)

    def open_read(self, key: str) -> BinaryIO:
        blob = self.blob(key)
        with gcs_errors("read", key):
            # Fetch metadata now so a missing object fails here, not on the first read().
            blob.reload(retry=self.retry, timeout=self.timeout)
            return blob.open("rb", chunk_size=GCS_READ_CHUNK_BYTES, retry=self.retry)

    def size(self, key: str) -> int:
        blob = self.blob(key)
        with gcs_errors("read", key):
            blob.reload(retry=self.retry, timeout=self.timeout)
        return int(blob.size or 0)

    def delete_quietly(self, key: str) -> None:
        """Best-effort delete of a temporary object."""
        try:
            self.blob(key).delete(retry=self.retry, timeout=self.timeout)
        except Exception:  # a leftover temporary is harmless; the caller already succeeded
            log.warning("could not delete temporary object %s", key)


class _GcsWriter:
    """A resumable upload, in ``chunk_bytes`` pieces.

    With a header, the body is uploaded to a temporary object; ``close`` uploads the
    header and composes ``header + body`` into the key, then removes both temporaries.
    """

    def __init__(self, store: GcsStorage, key: str, content_type: str, header_size: int) -> None:
        self.key = check_key(key)
        self._store = store
        self._content_type = content_type
        self._header_size = header_size
        suffix = _unique_suffix()
        self._body_key = f"{key}.{suffix}.body" if header_size else key
        self._head_key = f"{key}.{suffix}.head"
        self._stream: Any = None

    def _open(self) -> Any:
        if self._stream is None:
            blob = self._store.blob(self._body_key)
            with gcs_errors("write", self.key):
                self._stream = blob.open(
                    "wb", chunk_size=self._store.chunk_bytes, content_type=self._content_type,
                    if_generation_match=0, retry=self._store.retry,
                )
        return self._stream

    def write(self, data: bytes) -> None:
        stream = self._open()
        with gcs_errors("write", self.key):
            stream.write(data)

    def close(self, *, header: bytes = b"") -> str:
        if len(header) != self._header_size:
            raise ValueError(f"header must be {self._header_size} bytes, got {len(header)}")
        stream = self._open()
        with gcs_errors("write", self.key):
            stream.close()
        if self._header_size:
            self._compose(header)
        return self._store.uri(self.key)

    def _compose(self, header: bytes) -> None:
        store = self._store
        try:
            store.put(self._head_key, header, "application/octet-stream")
            target = store.blob(self.key)
            target.content_type = self._content_type
            with gcs_errors("write", self.key):
                # The emulator ignores the precondition on compose; real GCS honours it.
                if target.exists(retry=store.retry, timeout=store.timeout):
                    raise ObjectExists(self.key)
                target.compose(
                    [store.blob(self._head_key), store.blob(self._body_key)],
                    if_generation_match=0, retry=store.retry, timeout=store.timeout,
                )
        finally:
            store.delete_quietly(self._head_key)
            store.delete_quietly(self._body_key)

    def abort(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.terminate()  # cancel the resumable upload: nothing is published
        except Exception:  # an unfinished upload is never published anyway; GCS expires it
            log.warning("could not cancel the upload of %s", self.key)


@contextlib.contextmanager
def gcs_errors(action: str, key: str = "") -> Iterator[None]:
    """Translate google-cloud-storage / transport errors into the storage errors."""
    from google.api_core import exceptions as gexc

    try:
        yield
    except StorageError:
        raise
    except gexc.PreconditionFailed:
        raise ObjectExists(key) from None
    except gexc.NotFound as exc:
        if action == "read":
            raise ObjectNotFound(key) from None
        raise StorageUnavailable("the storage bucket does not exist") from exc
    except (gexc.Forbidden, gexc.Unauthorized) as exc:
        raise StorageUnavailable("the storage bucket refused access") from exc
    except Exception as exc:
        if _is_transport_error(exc):
            log.warning("storage %s failed for %s: %s", action, key, type(exc).__name__)
            raise StorageUnavailable(f"storage is unavailable ({action} failed)") from exc
        raise


def _is_transport_error(exc: BaseException) -> bool:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        import requests

        transport: tuple[type[BaseException], ...] = (requests.RequestException,)
    except ImportError:  # pragma: no cover - requests ships with google-cloud-storage
        transport = ()
    errors = (gexc.GoogleAPIError, auth_exc.GoogleAuthError, OSError, *transport)
    # google-resumable-media raises its own InvalidResponse for bad statuses.
    try:
        from google.resumable_media import common

        errors = (*errors, common.InvalidResponse)
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, errors)


# --- factory -------------------------------------------------------------------------------


def create_storage(settings: Settings) -> Storage:
    """GCS when ``settings.gcs_bucket_name`` is set, else a directory at ``settings.data_dir``."""
    if settings.gcs_bucket_name:
        return GcsStorage(settings.gcs_bucket_name)
    return LocalStorage(settings.data_dir)

