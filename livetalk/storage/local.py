"""The local-directory backend: objects as files under ``DATA_DIR`` (the default with no bucket configured)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .base import (
    COPY_CHUNK_BYTES,
    Data,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    check_key,
    unique_suffix,
)


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

    def replace(self, key: str, data: bytes, content_type: str) -> str:
        final = self.path(key)
        tmp = final.with_name(f".{final.name}.{unique_suffix()}.part")
        with _local_errors():
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(tmp, "xb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)  # atomic: readers see the old file or the new one
            finally:
                tmp.unlink(missing_ok=True)
        return final.as_uri()

    def list(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        with _local_errors():
            if not folder.is_dir():
                return []
            return sorted(
                path.relative_to(self.root).as_posix() for path in folder.rglob("*")
                if path.is_file() and not path.name.startswith(".")
            )

    def delete(self, key: str) -> None:
        path = self.path(key)
        with _local_errors():
            path.unlink(missing_ok=True)
            for parent in path.parents:  # tidy the folders it leaves empty, up to the root
                if parent == self.root or not parent.is_relative_to(self.root):
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break


class _LocalWriter:
    """Appends to a hidden temp file beside the target; ``close`` links it in without overwriting.

    :meth:`checkpoint` links the file in early (the same file: later writes show through) with a header that
    says how much of it is final, so a reader finds a consistent object up to the last checkpoint.
    """

    def __init__(self, store: LocalStorage, key: str, header_size: int) -> None:
        self.key = key
        self._final = store.path(key)
        self._uri = store.uri(key)
        self._header_size = header_size
        self._tmp = self._final.with_name(f".{self._final.name}.{unique_suffix()}.part")
        self._file: BinaryIO | None = None
        self._linked = False  # published early by a checkpoint

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

    def checkpoint(self, *, header: bytes = b"") -> str:
        self._sync(header)
        if not self._linked:
            with _local_errors():
                _link_no_overwrite(self._tmp, self._final)
            self._linked = True
        return self._uri

    def close(self, *, header: bytes = b"") -> str:
        try:
            f = self._sync(header)
            with _local_errors():
                f.close()
                if not self._linked:
                    _link_no_overwrite(self._tmp, self._final)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self._uri

    def _sync(self, header: bytes) -> BinaryIO:
        """Write ``header`` over the placeholder and flush everything to the disk."""
        if len(header) != self._header_size:
            raise ValueError(f"header must be {self._header_size} bytes, got {len(header)}")
        f = self._open()
        with _local_errors():
            if header:
                f.seek(0)
                f.write(header)
                f.seek(0, os.SEEK_END)
            f.flush()
            os.fsync(f.fileno())
        return f

    def abort(self) -> None:
        file, self._file = self._file, None
        if file is not None:  # only then does the temp file exist
            file.close()
            self._tmp.unlink(missing_ok=True)  # what a checkpoint published stays


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


