"""Where a recorded conversation lives in storage, and how to find it by id (pure, plus one read).

Objects, under ``conversations/<yyyy>/<mm>/<dd>/<session_id>/`` (the UTC date the conversation started):

``audio.wav``
    24 kHz, 16-bit, stereo: the user on the left (upsampled from 16 kHz), the model on the right.
``transcript.jsonl``
    One line per utterance: ``{"role", "text", "start_ms", "end_ms", "interrupted"}``.
``meta.json``
    Session id, scenario, start and end, duration, why it ended, turn counts.

A conversation resumed on a new socket records its continuation in ``segment-<n>/`` inside the same folder.
``sessions/<session_id>.json`` points at the folder, so a conversation is found by id whatever day it was
recorded on (:func:`find_recording`).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from ..storage import ObjectNotFound, Storage, check_key

CONVERSATIONS = "conversations"
SESSIONS = "sessions"
AUDIO_NAME = "audio.wav"
TRANSCRIPT_NAME = "transcript.jsonl"
META_NAME = "meta.json"
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def check_session_id(session_id: str) -> str:
    """Return ``session_id`` if it is 1–128 letters, digits, ``-`` or ``_`` (starting alphanumeric), else ValueError."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise ValueError("session_id must be 1-128 letters, digits, '-' or '_'")
    return session_id


def conversation_prefix(session_id: str, started_at: dt.datetime) -> str:
    """``conversations/<yyyy>/<mm>/<dd>/<session_id>`` (UTC date), validated as a storage key."""
    check_session_id(session_id)
    day = started_at.astimezone(dt.timezone.utc) if started_at.tzinfo else started_at
    return check_key(f"{CONVERSATIONS}/{day:%Y/%m/%d}/{session_id}")


def segment_prefix(conversation: str, segment: int) -> str:
    """The folder of a conversation's ``segment``-th recording (0: the conversation's own folder)."""
    return check_key(f"{conversation}/segment-{int(segment)}") if segment else conversation


def index_key(session_id: str) -> str:
    """Where the pointer to a session's folder lives."""
    return check_key(f"{SESSIONS}/{check_session_id(session_id)}.json")


def find_recording(storage: Storage, session_id: str) -> dict[str, Any] | None:
    """The index entry of a finalised recording (keys: prefix, audio, transcript, meta, …), or None.

    Raises ValueError for an unsafe id and
    :class:`~livetalk.storage.StorageUnavailable` when the store cannot be read.
    """
    try:
        return json.loads(storage.read(index_key(session_id)))
    except ObjectNotFound:
        return None
