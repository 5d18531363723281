"""The Google Cloud Storage backend, through google-cloud-storage with its own retry policy."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from .base import Data, ObjectExists, ObjectNotFound, StorageError, StorageUnavailable, check_key, unique_suffix

if TYPE_CHECKING:
    from google.cloud import storage as gcs

log = logging.getLogger("livetalk.storage")

GCS_CHUNK_BYTES = 1024 * 1024  # resumable-upload chunk: what one open writer buffers (multiple of 256 KiB)
GCS_READ_CHUNK_BYTES = 1024 * 1024  # what one open reader buffers
GCS_RETRY_DEADLINE_S = 30.0  # total time the client's own retry may spend on one call
GCS_TIMEOUT_S = (5.0, 60.0)  # (connect, read) per HTTP request


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

    def replace(self, key: str, data: bytes, content_type: str) -> str:
        blob = self.blob(key)
        with gcs_errors("write", key):
            # No generation precondition: the new version replaces the old one in one step.
            blob.upload_from_string(bytes(data), content_type=content_type, retry=self.retry, timeout=self.timeout)
        return self.uri(key)

    def list(self, prefix: str) -> list[str]:
        folder = check_key(prefix) + "/"
        with gcs_errors("read", prefix):
            blobs = self.bucket().list_blobs(prefix=folder, retry=self.retry, timeout=self.timeout)
            return sorted(blob.name for blob in blobs)

    def delete(self, key: str) -> None:
        blob = self.blob(key)
        try:
            with gcs_errors("read", key):
                blob.delete(retry=self.retry, timeout=self.timeout)
        except ObjectNotFound:
            pass

    def delete_quietly(self, key: str) -> None:
        """Best-effort delete of a temporary object."""
        try:
            self.blob(key).delete(retry=self.retry, timeout=self.timeout)
        except Exception:  # a leftover temporary is harmless; the caller already succeeded
            log.warning("could not delete temporary object %s", key)


class _GcsWriter:
    """A streamed object uploaded in parts, published by composing ``header + parts`` into the key.

    Data goes to a resumable upload of the current *part* (``<key>.<random>.part``), in ``chunk_bytes``
    pieces. :meth:`checkpoint` finishes that part, folds it into the body so far (``….body``, a compose
    in GCS, no data moves through this process) and composes ``header + body`` into the key, so what has
    been written is readable there; the next write starts a new part. :meth:`close` does the same one last
    time and removes the temporaries. The first publication refuses a key that is already taken.
    """

    def __init__(self, store: GcsStorage, key: str, content_type: str, header_size: int) -> None:
        self.key = check_key(key)
        self._store = store
        self._content_type = content_type
        self._header_size = header_size
        base = f"{key}.{unique_suffix()}"
        self._part_key, self._body_key, self._head_key = f"{base}.part", f"{base}.body", f"{base}.head"
        self._stream: Any = None  # the current part's upload
        self._has_body = False
        self._generation: int | None = None  # of the key, once this writer has published it

    def write(self, data: bytes) -> None:
        if self._stream is None:
            blob = self._store.blob(self._part_key)
            with gcs_errors("write", self.key):
                self._stream = blob.open(
                    "wb", chunk_size=self._store.chunk_bytes, content_type=self._content_type,
                    if_generation_match=0, retry=self._store.retry,
                )
        with gcs_errors("write", self.key):
            self._stream.write(data)

    def checkpoint(self, *, header: bytes = b"") -> str:
        self._check_header(header)
        self._fold_part()
        self._publish(header)
        return self._store.uri(self.key)

    def close(self, *, header: bytes = b"") -> str:
        self._check_header(header)
        try:
            self._fold_part()
            self._publish(header)
        finally:
            self._store.delete_quietly(self._body_key)
        return self._store.uri(self.key)

    def _check_header(self, header: bytes) -> None:
        if len(header) != self._header_size:
            raise ValueError(f"header must be {self._header_size} bytes, got {len(header)}")

    def _fold_part(self) -> None:
        """Finish the current part's upload and append it to the body (server-side)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        store = self._store
        try:
            with gcs_errors("write", self.key):
                stream.close()
                sources = [store.blob(self._body_key)] if self._has_body else []
                body = store.blob(self._body_key)
                body.content_type = self._content_type
                body.compose([*sources, store.blob(self._part_key)], retry=store.retry, timeout=store.timeout)
            self._has_body = True
        finally:
            store.delete_quietly(self._part_key)

    def _publish(self, header: bytes) -> None:
        """Compose ``header + body`` into the key: first time only if the key is free, then over itself."""
        store = self._store
        sources = []
        if header:
            store.replace(self._head_key, header, "application/octet-stream")
            sources.append(store.blob(self._head_key))
        if self._has_body:
            sources.append(store.blob(self._body_key))
        target = store.blob(self.key)
        target.content_type = self._content_type
        try:
            with gcs_errors("write", self.key):
                if self._generation is None:
                    # The emulator ignores the precondition on compose; real GCS honours it.
                    if target.exists(retry=store.retry, timeout=store.timeout):
                        raise ObjectExists(self.key)
                if sources:
                    target.compose(sources, if_generation_match=self._generation or 0, retry=store.retry,
                                   timeout=store.timeout)
                else:
                    target.upload_from_string(b"", content_type=self._content_type,
                                              if_generation_match=self._generation or 0, retry=store.retry)
                self._generation = target.generation
        finally:
            if header:
                store.delete_quietly(self._head_key)

    def abort(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.terminate()  # cancel the resumable upload: nothing more is published
            except Exception:  # an unfinished upload is never published anyway; GCS expires it
                log.warning("could not cancel the upload of %s", self.key)
        if self._has_body:
            self._store.delete_quietly(self._body_key)


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


