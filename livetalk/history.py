"""One past conversation as its learner sees it: who owns it, its transcript, recording and grade; deleting it.

A recorded conversation lives in one folder (:mod:`livetalk.recording.layout`): segment 0 at the top,
each resumed segment in ``segment-<n>/``, each grading request in ``feedback-<time>-<random>/``; the
session index ``sessions/<id>.json`` points at the folder and names the learner who opened it. The
learner's own index entry (:mod:`livetalk.learners`) names the folder too, so a deletion that was
interrupted can be finished from either.

Pure over a :class:`~livetalk.storage.Storage` (no Flask). Any call may raise
:class:`~livetalk.storage.StorageError`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from typing import TYPE_CHECKING, Any, Final

from .learners import LearnerIndex
from .recording import AUDIO_NAME, META_NAME, TRANSCRIPT_NAME, check_session_id, find_recording, index_key
from .storage import ObjectNotFound

if TYPE_CHECKING:
    from .identity import Learner
    from .storage import Storage

log = logging.getLogger("livetalk.history")

EVALUATION_NAME: Final = "evaluation.json"
REPORT_NAME: Final = "feedback.md"
DELETE_PASSES: Final = 3  # listings of a folder being deleted, to catch objects written meanwhile
_SEGMENT_FOLDER: Final = re.compile(r"segment-(\d+)")
_FEEDBACK_FOLDER: Final = re.compile(r"feedback-[A-Za-z0-9_-]+")


@dataclasses.dataclass(frozen=True)
class Segment:
    """One socket's recording of a conversation: its number and the keys it has."""

    number: int
    folder: str
    keys: frozenset[str]

    def key(self, name: str) -> str | None:
        key = f"{self.folder}/{name}"
        return key if key in self.keys else None


@dataclasses.dataclass(frozen=True)
class Conversation:
    """A conversation's folder, its owner (None: recorded before conversations had owners) and its objects."""

    session_id: str
    prefix: str
    owner: str | None
    keys: tuple[str, ...]

    def visible_to(self, learner: Learner, *, admin: bool = False) -> bool:
        """Whether ``learner`` may see it: its owner, or an administrator."""
        return admin or (self.owner is not None and self.owner == learner.id)

    @property
    def segments(self) -> list[Segment]:
        """Its recordings in order: segment 0 (the folder itself), then each ``segment-<n>/``."""
        numbers: dict[int, str] = {0: self.prefix}
        for key in self.keys:
            match = _SEGMENT_FOLDER.fullmatch(key[len(self.prefix) + 1:].split("/")[0])
            if match and "/" in key[len(self.prefix) + 1:]:
                numbers[int(match.group(1))] = f"{self.prefix}/{match.group(0)}"
        keys = frozenset(self.keys)
        return [Segment(n, numbers[n], keys) for n in sorted(numbers)]

    def latest_grade_folder(self) -> str | None:
        """The folder of the newest grading request that stored an evaluation."""
        folders = [key.rsplit("/", 1)[0] for key in self.keys if key.endswith("/" + EVALUATION_NAME)
                   and _FEEDBACK_FOLDER.fullmatch(key.rsplit("/", 2)[-2])]
        return max(folders) if folders else None


def find(storage: Storage, session_id: str, *, learner: Learner | None = None) -> Conversation | None:
    """The conversation ``session_id`` by its session index, or else by ``learner``'s own entry; None if gone.

    Raises ValueError for an id that cannot be a session id.
    """
    try:
        pointer = find_recording(storage, session_id)
    except ValueError:  # not JSON: unreadable, so as good as absent (an id that is not one raises above)
        check_session_id(session_id)
        pointer = None
    if pointer is not None and isinstance(pointer, dict) and isinstance(pointer.get("prefix"), str):
        owner, prefix = pointer.get("learner_id"), pointer["prefix"]
    else:
        entry = LearnerIndex(storage).read(learner.id, session_id) if learner is not None else None
        if entry is None or not isinstance(entry.get("prefix"), str):
            return None
        owner, prefix = learner.id, entry["prefix"]
    keys = tuple(storage.list(prefix))
    return Conversation(session_id, prefix, owner if isinstance(owner, str) else None, keys)


def details(storage: Storage, conversation: Conversation) -> dict[str, Any]:
    """Its scenario, start, length (the segments' together) and transcript (in seconds from the start,
    the segments laid end to end), from what the recorder stored."""
    lines: list[dict[str, Any] | None] = []
    offset_s, first_meta = 0.0, None
    for segment in conversation.segments:
        meta = _meta(storage, segment)
        first_meta = first_meta or meta
        key = segment.key(TRANSCRIPT_NAME)
        if key is not None:
            lines += [_utterance(item, offset_s) for item in _jsonl(storage.read(key))]
        duration = meta.get("duration_s") if meta else None
        offset_s += float(duration) if isinstance(duration, (int, float)) else 0.0
    first_meta = first_meta or {}
    return {"session_id": conversation.session_id, "scenario": first_meta.get("scenario_id"),
            "started_at": first_meta.get("started_at"), "duration_s": round(offset_s, 3),
            "transcript": [line for line in lines if line is not None]}


def has_audio(conversation: Conversation) -> bool:
    """Whether any segment has a recording."""
    return any(segment.key(AUDIO_NAME) for segment in conversation.segments)


def grade(storage: Storage, conversation: Conversation) -> tuple[dict[str, Any] | None, str | None]:
    """The newest stored evaluation and its Markdown report, or ``(None, None)`` before grading."""
    folder = conversation.latest_grade_folder()
    if folder is None:
        return None, None
    record = json.loads(storage.read(f"{folder}/{EVALUATION_NAME}"))
    evaluation = record.get("evaluation") if isinstance(record, dict) else None
    report_key = f"{folder}/{REPORT_NAME}"
    report = storage.read(report_key).decode("utf-8", "replace") if report_key in conversation.keys else None
    return (evaluation if isinstance(evaluation, dict) else None), report


def delete(storage: Storage, conversation: Conversation) -> int:
    """Remove every object of the conversation, its session index and its owner's entry; how many objects.

    The folder is listed again after each pass, so an object written meanwhile (a grade being stored)
    goes too. The entry goes last, so an interrupted deletion can be finished through it (see :func:`find`).
    """
    removed, keys = 0, list(conversation.keys)
    for _ in range(DELETE_PASSES):
        for key in keys:
            storage.delete(key)
        removed += len(keys)
        keys = storage.list(conversation.prefix)
        if not keys:
            break
    storage.delete(index_key(conversation.session_id))
    if conversation.owner is not None:
        LearnerIndex(storage).remove(conversation.owner, conversation.session_id)
    return removed


def _meta(storage: Storage, segment: Segment) -> dict[str, Any] | None:
    key = segment.key(META_NAME)
    if key is None:
        return None
    try:
        meta = json.loads(storage.read(key))
    except (ObjectNotFound, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _jsonl(raw: bytes) -> list[Any]:
    items = []
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            items.append(json.loads(line))
        except ValueError:
            log.warning("skipping a malformed transcript line")
    return items


def _utterance(item: Any, offset_s: float) -> dict[str, Any] | None:
    if not isinstance(item, dict) or item.get("role") not in ("user", "model") or not isinstance(item.get("text"), str):
        return None
    start, end = item.get("start_ms"), item.get("end_ms")
    return {
        "role": item["role"], "text": item["text"],
        "start_s": round(offset_s + start / 1000, 3) if isinstance(start, (int, float)) else None,
        "end_s": round(offset_s + end / 1000, 3) if isinstance(end, (int, float)) else None,
        "interrupted": bool(item.get("interrupted")),
    }
