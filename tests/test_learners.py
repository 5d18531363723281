"""livetalk.learners and livetalk.history: each learner's index beside the records, read back, joined and deleted.

Recordings are made by the real recorder (livetalk.recording) on both storage backends.
"""
from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from livetalk import history
from livetalk.identity import Learner
from livetalk.learners import IndexedRecording, LearnerIndex, Search, entry_key, public_entry
from livetalk.recording import ConversationRecorder, find_recording, index_key
from livetalk.storage import ObjectNotFound

ALICE = Learner("a-" + "1" * 32, "anonymous")
BOB = Learner("i-" + "2" * 32, "iap", "Bob@Example.com")
DAY = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def pool():
    executor = ThreadPoolExecutor(2)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def record(recording_pump, pool):
    """Factory: record one conversation segment through an IndexedRecording; returns the recorder."""

    def make(store, session_id: str, learner: Learner, *, seconds: float = 1.0, segment: int = 0,
             started_at: dt.datetime = DAY, scenario: str = "sales-ja", say: str | None = "はじめまして") -> object:
        clock = Clock()
        inner = ConversationRecorder(store, session_id=session_id, scenario_id=scenario, started_at=started_at,
                                     clock=clock, pump=recording_pump, segment=segment, learner_id=learner.id)
        rec = IndexedRecording(inner, LearnerIndex(store), learner, submit=pool.submit)
        if say is not None:
            for _ in range(int(seconds / 0.02)):
                clock.t += 0.02
                rec.user_audio((8000 * np.sin(np.arange(320) / 3)).astype("<i2").tobytes())
            rec.transcript("user", say, True)
            rec.model_audio(bytes(4800))
            rec.transcript("model", "こちらこそ。", True)
            rec.turn_complete()
        clock.t += 0.5
        assert rec.finalize("end") is not None
        return rec

    return make


def sid(n: int, day: str = "20250310") -> str:
    return f"{day}T09{n:02d}00Z-{n:016x}"


# --- filing --------------------------------------------------------------------------------------


def test_a_published_recording_is_filed_under_its_learner(store, record):
    """The entry says when, which scenario, how long; the session index names the owner."""
    record(store, sid(1), ALICE, seconds=1.0)
    entry = LearnerIndex(store).read(ALICE.id, sid(1))
    assert public_entry(entry) == {"session_id": sid(1), "scenario": "sales-ja", "started_at": DAY.isoformat(),
                                   "duration_s": pytest.approx(1.5, abs=0.01), "score": None, "outcome": None,
                                   "talk_share_user": None, "graded_at": None}
    assert entry["prefix"] == f"conversations/2025/03/10/{sid(1)}"
    assert find_recording(store, sid(1))["learner_id"] == ALICE.id
    assert LearnerIndex(store).read(BOB.id, sid(1)) is None


def test_an_empty_conversation_is_not_listed(store, record):
    """A socket that recorded nothing (no speech, no text) leaves no entry in the history."""
    record(store, sid(1), ALICE, say=None)
    assert LearnerIndex(store).page(ALICE.id).entries == []


def test_a_resumed_conversation_is_one_entry_under_its_owner(store, record):
    """A resumed segment adds its seconds to the first one's entry, even from a socket with another learner."""
    record(store, sid(1), BOB, seconds=1.0)
    record(store, sid(1), ALICE, seconds=2.0, segment=1)  # e.g. a client app that keeps no cookie
    entries = LearnerIndex(store).page(BOB.id).entries
    assert [e["session_id"] for e in entries] == [sid(1)]
    assert entries[0]["segments"] == {"0": pytest.approx(1.5, abs=0.01), "1": pytest.approx(2.5, abs=0.01)}
    assert entries[0]["duration_s"] == pytest.approx(4.0, abs=0.02)
    assert entries[0]["learner_email"] == "bob@example.com"
    assert LearnerIndex(store).page(ALICE.id).entries == []


def test_a_grade_is_put_in_the_entry(store, record):
    """Score, graded time, talk share and outcome go into the entry; there is nothing to grade without one."""
    record(store, sid(1), ALICE)
    index = LearnerIndex(store)
    evaluation = {"score": 72, "metrics": {"talk_share_user": 0.55},
                  "outcome": {"appointment": True, "details": {"date": "2026-12-03"}}}
    assert index.record_grade(ALICE.id, sid(1), evaluation, graded_at="2025-03-10T09:30:00+00:00")
    entry = public_entry(index.read(ALICE.id, sid(1)))
    assert (entry["score"], entry["talk_share_user"], entry["outcome"]["appointment"]) == (72.0, 0.55, True)
    assert index.record_grade(ALICE.id, sid(1), {"score": 80}, graded_at="later")  # no metrics yet: still a grade
    assert index.read(ALICE.id, sid(1))["talk_share_user"] is None
    assert not index.record_grade(BOB.id, sid(1), evaluation, graded_at="x")


def test_a_grade_refiles_a_conversation_whose_entry_is_missing(store, record):
    """If filing failed, the grade rebuilds the entry from the recording's meta through its session index."""
    record(store, sid(1), ALICE)
    index = LearnerIndex(store)
    index.remove(ALICE.id, sid(1))
    pointer = find_recording(store, sid(1))
    assert index.record_grade(ALICE.id, sid(1), {"score": 64}, graded_at="x", pointer=pointer)
    entry = index.read(ALICE.id, sid(1))
    assert entry["score"] == 64.0 and entry["scenario"] == "sales-ja" and entry["duration_s"] > 0


def test_an_unreadable_session_index_is_as_good_as_absent(store, record):
    """A session index that is not JSON does not break reading: the owner still finds theirs by their entry."""
    record(store, sid(1), ALICE)
    store.replace(index_key(sid(1)), b"{not json", "application/json")
    assert history.find(store, sid(1)) is None
    assert history.find(store, sid(1), learner=ALICE).owner == ALICE.id
    with pytest.raises(ValueError):
        history.find(store, "../etc")


# --- listing -------------------------------------------------------------------------------------


def test_a_learner_pages_through_their_own_conversations_newest_first(store, record, pool):
    """Pages follow each other by cursor, newest first, and hold only the learner's own conversations."""
    for n in (3, 1, 5, 2, 4):
        record(store, sid(n), ALICE)
    record(store, sid(6), BOB)
    index = LearnerIndex(store, submit=pool.submit)
    first = index.page(ALICE.id, limit=2)
    second = index.page(ALICE.id, limit=2, cursor=first.next)
    third = index.page(ALICE.id, limit=2, cursor=second.next)
    assert [[e["session_id"] for e in p.entries] for p in (first, second, third)] == [
        [sid(5), sid(4)], [sid(3), sid(2)], [sid(1)]]
    assert third.next is None
    assert index.page("a-" + "9" * 32).entries == []


def test_administrators_search_every_learner(store, record):
    """Filters by scenario, day, learner (id or email, any case) and score combine; results name the learner."""
    record(store, sid(1), ALICE, scenario="sales-ja")
    record(store, sid(2, "20250311"), ALICE, scenario="sales-en", started_at=DAY + dt.timedelta(days=1))
    record(store, sid(3, "20250311"), BOB, scenario="sales-en", started_at=DAY + dt.timedelta(days=1))
    index = LearnerIndex(store)
    index.record_grade(ALICE.id, sid(1), {"score": 40}, graded_at="x")
    index.record_grade(BOB.id, sid(3, "20250311"), {"score": 90}, graded_at="x")

    def found(**query) -> list[str]:
        return [e["session_id"] for e in index.search(Search(**query)).entries]

    assert found() == [sid(3, "20250311"), sid(2, "20250311"), sid(1)]
    assert found(scenario="sales-en") == [sid(3, "20250311"), sid(2, "20250311")]
    assert found(since="20250311") == [sid(3, "20250311"), sid(2, "20250311")]
    assert found(until="20250310") == [sid(1)]
    assert found(learner=ALICE.id) == [sid(2, "20250311"), sid(1)]
    assert found(learner="bob@example.com") == [sid(3, "20250311")]
    assert found(min_score=50) == [sid(3, "20250311")]
    assert found(max_score=50) == [sid(1)]
    first = index.search(Search(), limit=2)
    assert first.entries[0]["learner_id"] == BOB.id and first.next == sid(2, "20250311")
    assert [e["session_id"] for e in index.search(Search(), limit=2, cursor=first.next).entries] == [sid(1)]


# --- one conversation ----------------------------------------------------------------------------


def test_details_lay_the_segments_end_to_end(store, record):
    """The transcript of a resumed conversation runs on: the second segment's times follow the first's."""
    record(store, sid(1), ALICE, seconds=1.0, say="一つ目")
    record(store, sid(1), ALICE, seconds=1.0, segment=1, say="二つ目")
    found = history.find(store, sid(1))
    assert found.owner == ALICE.id and [s.number for s in found.segments] == [0, 1]
    details = history.details(store, found)
    assert details["scenario"] == "sales-ja" and details["duration_s"] == pytest.approx(3.0, abs=0.02)
    users = [line for line in details["transcript"] if line["role"] == "user"]
    assert [u["text"] for u in users] == ["一つ目", "二つ目"]
    assert users[1]["start_s"] >= 1.5 > users[0]["start_s"]


def test_deleting_removes_every_object_of_the_conversation(store, record):
    """Segments, transcript, meta, grades, the session index and the learner's entry are all gone; others stay."""
    record(store, sid(1), ALICE)
    record(store, sid(1), ALICE, segment=1)
    record(store, sid(2), ALICE)
    found = history.find(store, sid(1))
    late = f"{found.prefix}/feedback-20250310T100000Z-abcd/evaluation.json"
    store.put(late, b"{}", "application/json")  # a grade stored after the folder was listed
    before = set(store.list("conversations"))
    removed = history.delete(store, found)
    left = set(store.list("conversations"))
    assert removed == len(found.keys) + 1 and not {k for k in left if sid(1) in k}
    assert before - left == {*found.keys, late}
    with pytest.raises(ObjectNotFound):
        store.read(index_key(sid(1)))
    with pytest.raises(ObjectNotFound):
        store.read(entry_key(ALICE.id, sid(1)))
    assert history.find(store, sid(1), learner=ALICE) is None
    assert [e["session_id"] for e in LearnerIndex(store).page(ALICE.id).entries] == [sid(2)]


def test_an_interrupted_deletion_is_finished_through_the_learners_entry(store, record):
    """With the session index already gone, the owner still finds the conversation by their entry and can finish."""
    record(store, sid(1), ALICE)
    store.delete(index_key(sid(1)))
    assert history.find(store, sid(1)) is None
    found = history.find(store, sid(1), learner=ALICE)
    assert found is not None and found.owner == ALICE.id and found.keys
    assert history.find(store, sid(1), learner=BOB) is None
    history.delete(store, found)
    assert store.list(found.prefix) == [] and LearnerIndex(store).read(ALICE.id, sid(1)) is None


def test_the_latest_grade_is_the_one_shown(store, record):
    """Of several grading requests, the newest folder's evaluation and report are read."""
    record(store, sid(1), ALICE)
    prefix = history.find(store, sid(1)).prefix
    for stamp, score in (("20250310T100000Z-aaaa", 50), ("20250310T110000Z-bbbb", 70)):
        record_json = json.dumps({"evaluation": {"score": score}}).encode()
        store.put(f"{prefix}/feedback-{stamp}/evaluation.json", record_json, "application/json")
        store.put(f"{prefix}/feedback-{stamp}/feedback.md", f"# {score}".encode(), "text/markdown")
    evaluation, report = history.grade(store, history.find(store, sid(1)))
    assert evaluation == {"score": 70} and report == "# 70"
