"""Each learner's own index of their conversations: one small object per conversation, beside the records.

Objects, one per conversation, under the learner who owns it::

    learners/<learner_id>/conversations/<session_id>.json
    {"session_id", "scenario", "started_at", "duration_s", "score", "outcome", "talk_share_user",
     "graded_at", "prefix", "segments": {"<n>": seconds}, "learner_email"}

so a learner's history is one prefix listing (one directory in ``DATA_DIR``) and one small read per
entry shown: no database. Session ids begin with their UTC start time, so their names sort by date.

Who writes:

* :class:`IndexedRecording` wraps the relay's recorder: once a recording (or a resumed segment of
  it) is published, it files the conversation under its owner, before the relay says ``ended``.
  A resumed conversation is one entry; its ``duration_s`` is the sum of its segments'.
* :meth:`LearnerIndex.record_grade`, when ``POST /feedback`` graded the conversation.

Entries change through :meth:`~livetalk.storage.Storage.replace`, so a reader sees the old or the new
one. Every method may raise :class:`~livetalk.storage.StorageError`; :class:`IndexedRecording` logs it
instead (the recording itself is safe either way).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Final

from .recording import META_NAME, check_session_id, conversation_prefix, find_recording
from .storage import ObjectNotFound, StorageError, check_key

if TYPE_CHECKING:
    from .identity import Learner
    from .recording import ConversationRecorder
    from .storage import Storage

log = logging.getLogger("livetalk.learners")

LEARNERS: Final = "learners"
DEFAULT_PAGE: Final = 20
MAX_PAGE: Final = 100
MAX_SCAN_READS: Final = 500  # entries one admin search reads at most before it hands back a cursor
PUBLISH_WAIT_S: Final = 10.0  # a recording still publishing after a drain's timeout is filed if done by then
ENTRY_FIELDS: Final = ("session_id", "scenario", "started_at", "duration_s", "score", "outcome",
                       "talk_share_user", "graded_at")  # what the API shows of an entry

Submit = Callable[..., Future]


def entry_key(learner_id: str, session_id: str) -> str:
    """Where ``learner_id``'s entry for ``session_id`` lives."""
    return check_key(f"{LEARNERS}/{learner_id}/conversations/{check_session_id(session_id)}.json")


@dataclasses.dataclass(frozen=True)
class Page:
    """Entries, newest first, and the cursor of the next page (None at the end)."""

    entries: list[dict[str, Any]]
    next: str | None


@dataclasses.dataclass(frozen=True)
class Search:
    """What an operator looks for across every learner; None means any."""

    scenario: str | None = None
    since: str | None = None  # first UTC day, ``YYYYMMDD``
    until: str | None = None  # last UTC day, ``YYYYMMDD``
    learner: str | None = None  # a learner id, or an email (any case)
    min_score: float | None = None
    max_score: float | None = None

    def day_matches(self, session_id: str) -> bool:
        day = session_id[:8]
        return (self.since is None or day >= self.since) and (self.until is None or day <= self.until)

    def entry_matches(self, learner_id: str, entry: dict[str, Any]) -> bool:
        if self.scenario is not None and entry.get("scenario") != self.scenario:
            return False
        if self.learner is not None and self.learner not in (learner_id, entry.get("learner_email")):
            return False
        score = entry.get("score")
        if self.min_score is not None and (score is None or score < self.min_score):
            return False
        return self.max_score is None or (score is not None and score <= self.max_score)


class LearnerIndex:
    """The per-learner index objects in ``storage``.

    Args:
        storage: the object store.
        submit: runs a function on a thread pool (``Services.write``), so a page's entries are read
            in parallel; None reads them one after another.
    """

    def __init__(self, storage: Storage, *, submit: Submit | None = None) -> None:
        self.storage = storage
        self._submit = submit

    # --- one entry -----------------------------------------------------------------------

    def read(self, learner_id: str, session_id: str) -> dict[str, Any] | None:
        """``learner_id``'s entry for ``session_id``, or None."""
        return self._read_key(entry_key(learner_id, session_id))

    def record_segment(self, learner_id: str, meta: dict[str, Any], *, prefix: str,
                       email: str | None = None) -> dict[str, Any]:
        """File a published recording segment (its ``meta.json``) under ``learner_id``; the entry."""
        session_id = meta["session_id"]
        entry = self.read(learner_id, session_id) or _new_entry(meta, prefix)
        entry["segments"][str(int(meta.get("segment") or 0))] = float(meta.get("duration_s") or 0.0)
        entry["duration_s"] = round(sum(entry["segments"].values()), 3)
        if meta.get("outcome") and not entry.get("outcome"):
            entry["outcome"] = meta["outcome"]
        if email:
            entry["learner_email"] = email.lower()
        self._write(learner_id, session_id, entry)
        return entry

    def record_grade(self, learner_id: str, session_id: str, evaluation: dict[str, Any], *,
                     graded_at: str, pointer: dict[str, Any] | None = None) -> bool:
        """Put a grade (``evaluation`` as ``POST /feedback`` returns it) in the entry; False if there is none.

        With the conversation's session index entry (``pointer``), a missing entry (its filing failed)
        is made from the recording's ``meta.json`` first.
        """
        entry = self.read(learner_id, session_id)
        if entry is None and pointer is not None:
            entry = self._refile(learner_id, pointer)
        if entry is None:
            return False
        metrics = evaluation.get("metrics") if isinstance(evaluation.get("metrics"), dict) else {}
        entry.update(score=_number(evaluation.get("score")), graded_at=graded_at,
                     talk_share_user=_number(metrics.get("talk_share_user")))
        if evaluation.get("outcome") is not None:
            entry["outcome"] = evaluation["outcome"]
        self._write(learner_id, session_id, entry)
        return True

    def _refile(self, learner_id: str, pointer: dict[str, Any]) -> dict[str, Any] | None:
        meta_key, prefix = pointer.get("meta"), pointer.get("prefix")
        if not (isinstance(meta_key, str) and isinstance(prefix, str)):
            return None
        try:
            meta = json.loads(self.storage.read(meta_key))
        except (ObjectNotFound, ValueError):
            return None
        return self.record_segment(learner_id, meta, prefix=prefix) if isinstance(meta, dict) else None

    def remove(self, learner_id: str, session_id: str) -> None:
        """Delete the entry (nothing happens if there is none)."""
        self.storage.delete(entry_key(learner_id, session_id))

    # --- listing -------------------------------------------------------------------------

    def page(self, learner_id: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page:
        """``learner_id``'s entries newest first, after ``cursor`` (a session id from an earlier page)."""
        keys = [(sid, key) for lid, sid, key in self._keys(f"{LEARNERS}/{learner_id}/conversations")
                if lid == learner_id and (cursor is None or sid < cursor)]
        shown = keys[:limit]
        entries = [e for e in self._read_many(key for _, key in shown) if e is not None]
        return Page(entries, shown[-1][0] if len(keys) > limit else None)

    def search(self, query: Search, *, limit: int = DEFAULT_PAGE, cursor: str | None = None,
               max_reads: int = MAX_SCAN_READS) -> Page:
        """Every learner's entries matching ``query``, newest first (each with ``learner_id``), after ``cursor``."""
        candidates = [(lid, sid, key) for lid, sid, key in self._keys(LEARNERS)
                      if (cursor is None or sid < cursor) and query.day_matches(sid)
                      and (query.learner is None or "@" in query.learner or lid == query.learner)]
        found: list[dict[str, Any]] = []
        scanned = 0
        for start in range(0, min(len(candidates), max_reads), limit):
            batch = candidates[start:min(start + limit, max_reads)]
            for (lid, sid, _), entry in zip(batch, self._read_many(key for _, _, key in batch)):
                scanned += 1
                if entry is not None and query.entry_matches(lid, entry):
                    found.append({**entry, "learner_id": lid})
                if len(found) == limit:
                    break
            if len(found) == limit:
                break
        more = scanned < len(candidates)
        return Page(found, candidates[scanned - 1][1] if more and scanned else None)

    # --- helpers -------------------------------------------------------------------------

    def _keys(self, folder: str) -> list[tuple[str, str, str]]:
        """``(learner_id, session_id, key)`` of the entries under ``folder``, newest first."""
        found = []
        for key in self.storage.list(folder):
            parts = key.split("/")
            if len(parts) == 4 and parts[2] == "conversations" and parts[3].endswith(".json"):
                found.append((parts[1], parts[3][:-len(".json")], key))
        return sorted(found, key=lambda item: item[1], reverse=True)

    def _read_many(self, keys: Iterable[str]) -> list[dict[str, Any] | None]:
        keys = list(keys)
        if self._submit is None or len(keys) < 2:
            return [self._read_key(key) for key in keys]
        return [future.result() for future in [self._submit(self._read_key, key) for key in keys]]

    def _read_key(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self.storage.read(key))
        except ObjectNotFound:
            return None
        except ValueError:
            log.warning("index entry %s is not JSON; skipped", key)
            return None
        return entry if isinstance(entry, dict) else None

    def _write(self, learner_id: str, session_id: str, entry: dict[str, Any]) -> None:
        self.storage.replace(entry_key(learner_id, session_id),
                             json.dumps(entry, ensure_ascii=False, indent=1).encode(), "application/json")


def public_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields of an entry the API shows (``GET /api/conversations``)."""
    return {name: entry.get(name) for name in ENTRY_FIELDS}


def _new_entry(meta: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {"session_id": meta["session_id"], "scenario": meta.get("scenario_id"),
            "started_at": meta.get("started_at"), "duration_s": 0.0, "score": None, "outcome": None,
            "talk_share_user": None, "graded_at": None, "prefix": prefix, "segments": {}}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# --- filing recordings as they are published -----------------------------------------------------


class IndexedRecording:
    """A :class:`~livetalk.recording.ConversationRecorder` that files its recording under its owner when published.

    Everything but :meth:`finalize` is the recorder's own (looked up once, then called directly, so
    the relay's per-frame calls cost what they cost before). The owner of segment 0 is the learner
    who opened the conversation; a resumed segment is filed under the owner named in the session
    index (the resume ticket, not the socket's cookie, proves the right to continue it).

    Args:
        recorder: the conversation's recorder (made with ``learner_id=learner.id``).
        index: where to file it.
        learner: who opened this socket.
        submit: runs a function on a thread pool: a recording still being published when the relay
            stops waiting (a drain) is filed from there once it is done.
    """

    def __init__(self, recorder: ConversationRecorder, index: LearnerIndex, learner: Learner, *,
                 submit: Submit) -> None:
        self._recorder = recorder
        self._index = index
        self._learner = learner
        self._submit = submit

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._recorder, name)
        if callable(value):
            setattr(self, name, value)  # a bound method: later calls skip __getattr__
        return value

    def finalize(self, reason: str, timeout: float | None = None) -> str | None:
        """The recorder's :meth:`finalize`, then file the published recording (see the class docstring)."""
        uri = self._recorder.finalize(reason, timeout)
        if uri is not None:
            self._file()
        elif timeout is not None:
            self._submit(self._file_when_published, reason)
        return uri

    def _file_when_published(self, reason: str) -> None:
        if self._recorder.finalize(reason, PUBLISH_WAIT_S) is not None:
            self._file()

    def _file(self) -> None:
        recorder, storage = self._recorder, self._index.storage
        try:
            meta = json.loads(storage.read(f"{recorder.key_prefix}/{META_NAME}"))
            if not _has_content(meta):
                return  # nothing was said or heard: not a conversation worth listing
            owner = self._owner(storage) if recorder.segment else self._learner.id
            prefix = conversation_prefix(recorder.session_id, recorder.started_at)
            self._index.record_segment(owner, meta, prefix=prefix, email=self._email(owner))
        except (StorageError, ValueError, KeyError) as exc:
            log.warning("conversation %s could not be filed in its learner's history: %s",
                        recorder.session_id, type(exc).__name__)
        except Exception:  # the boundary: the recording is stored whatever happens to its index entry
            log.exception("filing conversation %s in its learner's history failed", recorder.session_id)

    def _owner(self, storage: Storage) -> str:
        pointer = find_recording(storage, self._recorder.session_id) or {}
        owner = pointer.get("learner_id")
        return owner if isinstance(owner, str) and owner else self._learner.id

    def _email(self, owner: str) -> str | None:
        return self._learner.email if owner == self._learner.id else None


def _has_content(meta: dict[str, Any]) -> bool:
    turns = meta.get("turns") if isinstance(meta.get("turns"), dict) else {}
    return bool(meta.get("audio")) or any(isinstance(n, int) and n > 0 for n in turns.values())
