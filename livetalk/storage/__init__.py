"""The one seam to object storage: Google Cloud Storage, or a local directory.

Keys are relative, ``/``-separated object names such as ``conversations/2025/01/31/<session_id>/audio.wav``.
Both backends share one contract (one test suite runs against both): an object is written once and never
overwritten (except through :meth:`Storage.replace`, for objects meant to change), a reader never sees a
half-written object, and a failing backend raises :class:`StorageUnavailable` (which the routes turn into a
``503``) without leaking the cloud library's text.

Modules: ``base`` (the contract, keys, errors), ``local`` (:class:`LocalStorage`), ``gcs`` (:class:`GcsStorage`).

Exceptions::

    StorageError
     ├── StorageUnavailable   the backend cannot be reached or refuses (503)
     ├── ObjectExists         the key is already taken (writes never overwrite)
     ├── ObjectNotFound       reading a key that does not exist
     └── InvalidKey           a key that is not a safe relative name (also a ValueError)
"""
from __future__ import annotations

from .base import (
    Data,
    InvalidKey,
    ObjectExists,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageUnavailable,
    Writer,
    check_key,
    create_storage,
)
from .gcs import GcsStorage, gcs_errors
from .local import LocalStorage

__all__ = [
    "Data", "GcsStorage", "InvalidKey", "LocalStorage", "ObjectExists", "ObjectNotFound", "Storage",
    "StorageError", "StorageUnavailable", "Writer", "check_key", "create_storage", "gcs_errors",
]
