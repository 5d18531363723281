"""In-memory store for the Files API: uploads in progress and finished files."""
from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import itertools
import threading
from typing import Any

from livetalk.emulator.errors import RestError

FILE_LIFETIME = datetime.timedelta(hours=48)  # the real service keeps files 48 h


@dataclasses.dataclass
class Upload:
    """A resumable upload that has been started but not finalised."""

    id: str
    version: str
    display_name: str | None
    mime_type: str
    declared_size: int | None
    data: bytearray = dataclasses.field(default_factory=bytearray)


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """A finished upload."""

    id: str
    display_name: str | None
    mime_type: str
    data: bytes
    created: datetime.datetime

    def resource(self, base_url: str, version: str) -> dict[str, Any]:
        """The ``File`` resource as the Files API returns it."""
        created = self.created.isoformat().replace("+00:00", "Z")
        expires = (self.created + FILE_LIFETIME).isoformat().replace("+00:00", "Z")
        resource = {
            "name": f"files/{self.id}",
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": created,
            "updateTime": created,
            "expirationTime": expires,
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
            "uri": f"{base_url}/{version}/files/{self.id}",
            "state": "ACTIVE",
            "source": "UPLOADED",
        }
        if self.display_name:
            resource["displayName"] = self.display_name
        return resource


class FileStore:
    """Uploads and files, bounded to ``max_bytes`` of content in total."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._uploads: dict[str, Upload] = {}
        self._files: dict[str, StoredFile] = {}

    def start(self, *, version: str, display_name: str | None, mime_type: str, size: int | None) -> Upload:
        """Begin a resumable upload."""
        with self._lock:
            upload = Upload(f"emu-upload-{next(self._ids)}", version, display_name, mime_type, size)
            self._uploads[upload.id] = upload
            return upload

    def upload(self, upload_id: str) -> Upload | None:
        """The upload in progress with this id, if any."""
        with self._lock:
            return self._uploads.get(upload_id)

    def append(self, upload: Upload, offset: int, chunk: bytes) -> None:
        """Add a chunk at ``offset`` (bytes). Raises RestError on a gap or when full."""
        with self._lock:
            if offset != len(upload.data):
                raise RestError(400, f"upload offset {offset} does not match {len(upload.data)} bytes received")
            if self._used() + len(chunk) > self.max_bytes:
                raise RestError(413, "emulator file storage is full")
            upload.data += chunk

    def finish(self, upload: Upload) -> StoredFile:
        """Turn a complete upload into a file."""
        with self._lock:
            self._uploads.pop(upload.id, None)
            stored = StoredFile(
                id=f"emu{next(self._ids)}",
                display_name=upload.display_name,
                mime_type=upload.mime_type,
                data=bytes(upload.data),
                created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0),
            )
            self._files[stored.id] = stored
            return stored

    def get(self, file_id: str) -> StoredFile:
        """A stored file by id (``abc`` or ``files/abc``). Raises RestError 404."""
        file_id = file_id.removeprefix("files/")
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise RestError(404, f"File files/{file_id} not found.")
        return stored

    def find_uri(self, uri: str) -> StoredFile | None:
        """The stored file a ``fileData.fileUri`` (a URI or ``files/…`` name) points at."""
        tail = uri.rsplit("/files/", 1)[-1] if "/files/" in uri else uri.removeprefix("files/")
        with self._lock:
            return self._files.get(tail.split("?")[0])

    def delete(self, file_id: str) -> None:
        """Remove a file. Raises RestError 404."""
        with self._lock:
            if self._files.pop(file_id.removeprefix("files/"), None) is None:
                raise RestError(404, f"File files/{file_id} not found.")

    def clear(self) -> None:
        """Forget every upload and file."""
        with self._lock:
            self._uploads.clear()
            self._files.clear()

    def _used(self) -> int:
        return sum(len(f.data) for f in self._files.values()) + sum(len(u.data) for u in self._uploads.values())
