"""A recorded conversation read back as one: segments on one timeline, lines, outcome, one joined WAV."""
from __future__ import annotations

import datetime as dt
import io
import json
import wave

import numpy as np
import pytest

from livetalk.analytics import measure_conversation
from livetalk.recording import ConversationRecorder
from livetalk.recording.readback import read_conversation
from livetalk.storage import LocalStorage
from livetalk.storage.joined import Span, Zeros, open_joined
from tests.helpers import wait_until

STARTED = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.timezone.utc)
RATE = 24000
RESUMED_AFTER_S = 10.0


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def user_tone(seconds: float, amplitude: int = 8000) -> list[bytes]:
    frame = (amplitude * np.sin(2 * np.pi * 200 * np.arange(320) / 16000)).astype("<i2").tobytes()
    return [frame] * int(round(seconds / 0.02))


def talk(rec, clock, seconds: float, *, amplitude: int = 8000) -> None:
    for frame in user_tone(seconds, amplitude):
        clock.t += 0.02
        rec.user_audio(frame)


@pytest.fixture
def recorder_at(recording_pump):
    """Factory: a recorder of session ``sess-1``, segment ``n`` starting ``at_s`` after the conversation."""

    def make(store, clock, segment: int = 0, at_s: float = 0.0, **options) -> ConversationRecorder:
        return ConversationRecorder(store, session_id="sess-1", scenario_id="sales-ja", started_at=STARTED,
                                    recording_started_at=STARTED + dt.timedelta(seconds=at_s), segment=segment,
                                    clock=clock, pump=recording_pump, **options)
    return make


@pytest.fixture
def two_segments(store, recorder_at):
    """A conversation resumed once: 2 s of speech, then, 10 s after the start, 1.5 s more on a new socket."""
    clock = Clock()
    first = recorder_at(store, clock)
    talk(first, clock, 1.0)
    first.transcript("user", "最初の質問です。", True)
    first.outcome("appointment", {"date": "2026-12-03", "time": "14:00", "topic": "demo"})
    talk(first, clock, 1.0, amplitude=0)
    assert first.finalize("drop")
    second = recorder_at(store, clock, segment=1, at_s=RESUMED_AFTER_S)
    talk(second, clock, 0.5, amplitude=0)
    talk(second, clock, 1.0)
    second.transcript("user", "ご予算はいかがですか？", True)
    assert second.finalize("end")
    return store, read_conversation(store, "sess-1")


def test_segments_are_placed_at_their_own_start(two_segments):
    """Each segment sits where it started; lines and the duration are in conversation time."""
    _, conversation = two_segments
    assert [s.number for s in conversation.segments] == [0, 1]
    assert conversation.index["prefix"] == conversation.prefix == conversation.segments[0].folder
    assert [s.offset_s for s in conversation.segments] == [0.0, RESUMED_AFTER_S]
    lines = conversation.lines()
    assert [line.text for line in lines] == ["最初の質問です。", "ご予算はいかがですか？"]
    assert lines[1].start_s == pytest.approx(RESUMED_AFTER_S + 0.5, abs=0.05)
    assert conversation.duration_s() == pytest.approx(RESUMED_AFTER_S + 1.5, abs=0.05)
    assert conversation.outcome() == {"appointment": True,
                                      "details": {"date": "2026-12-03", "time": "14:00", "topic": "demo"}}


def test_the_segments_are_measured_as_one_conversation(two_segments):
    """Both segments' speech is on one timeline: talk time adds up, the duration spans both."""
    store, conversation = two_segments
    metrics = measure_conversation(conversation.parts(store), language="ja-JP")
    assert metrics["duration_s"] == pytest.approx(RESUMED_AFTER_S + 1.5, abs=0.05)
    assert metrics["talk_s"]["user"] == pytest.approx(2.0, abs=0.1)
    assert [round(e["start_s"]) for e in metrics["timeline"]] == [0, round(RESUMED_AFTER_S + 0.5)]
    assert metrics["questions_user"] == 1 and metrics["turns"]["user"] == 1  # nobody else spoke between


def test_the_joined_audio_puts_each_segment_at_its_offset(two_segments):
    """One WAV: segment 0, silence until the resume, segment 1; or a short pause with max_gap_s."""
    store, conversation = two_segments
    for max_gap_s, second_at_s in ((None, RESUMED_AFTER_S), (0.5, None)):
        with open_joined(store, conversation.audio_pieces(store, max_gap_s=max_gap_s)) as stream:
            with wave.open(stream) as wav:
                assert (wav.getnchannels(), wav.getframerate()) == (2, RATE)
                user = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 2)[:, 0]
        loud = np.flatnonzero(np.abs(user) > 1000) / RATE
        gap_start = loud[np.argmax(np.diff(loud))]
        resumed = loud[np.argmax(np.diff(loud)) + 1]
        assert gap_start == pytest.approx(1.0, abs=0.05)
        if second_at_s is not None:
            assert resumed == pytest.approx(second_at_s + 0.5, abs=0.05)
        else:
            first_length = json.loads(store.read(f"{conversation.prefix}/meta.json"))["audio"]["duration_s"]
            assert resumed == pytest.approx(first_length + 0.5 + 0.5, abs=0.05)


def test_an_older_continuation_follows_the_previous_segment(two_segments):
    """A segment whose meta predates continuation starts is laid end to end after the previous one."""
    store, conversation = two_segments
    key = f"{conversation.segments[1].folder}/meta.json"
    meta = json.loads(store.read(key))
    del meta["conversation_started_at"]
    meta["started_at"] = STARTED.isoformat()  # what continuations used to say
    store.replace(key, json.dumps(meta).encode(), "application/json")
    again = read_conversation(store, "sess-1")
    assert again.segments[1].offset_s == pytest.approx(again.segments[0].length_s())


def test_a_cancelled_outcome_is_withdrawn_even_across_segments(tmp_path, recorder_at):
    """Outcome lines are replayed in order: agreed in one segment, cancelled in the next, means none."""
    store, clock = LocalStorage(tmp_path), Clock()
    first = recorder_at(store, clock)
    first.outcome("appointment", {"date": "2026-12-03", "time": "14:00", "topic": "demo"})
    talk(first, clock, 0.5)
    assert first.finalize("drop")
    second = recorder_at(store, clock, segment=1, at_s=5.0)
    second.outcome_cancelled("appointment")
    talk(second, clock, 0.5)
    assert second.finalize("end")
    conversation = read_conversation(store, "sess-1")
    assert conversation.outcome() is None
    assert all(line.role in ("user", "model") for line in conversation.lines())


def test_a_recording_cut_short_is_read_to_its_last_checkpoint(tmp_path, recorder_at):
    """A recording whose worker died after a checkpoint reads back: incomplete, with its audio and lines."""
    store, clock = LocalStorage(tmp_path), Clock()
    rec = recorder_at(store, clock, checkpoint_s=1.0)
    talk(rec, clock, 1.0)
    rec.transcript("user", "聞こえますか？", True)
    talk(rec, clock, 2.0, amplitude=0)
    wait_until(lambda: (c := read_conversation(store, "sess-1")) and c.segments
               and (c.segments[0].meta.get("audio") or {}).get("duration_s", 0) >= 1.5)
    conversation = read_conversation(store, "sess-1")
    assert conversation.segments[0].meta["complete"] is False
    assert [line.text for line in conversation.lines()] == ["聞こえますか？"]
    assert measure_conversation(conversation.parts(store), language="ja-JP")["talk_s"]["user"] > 0.9
    assert rec.finalize("end")


def test_unknown_session_reads_as_none(tmp_path):
    """An id that was never recorded reads back as None."""
    assert read_conversation(LocalStorage(tmp_path), "never-recorded") is None


# --- the joined stream --------------------------------------------------------------------------


def test_a_joined_stream_reads_seeks_and_sizes_like_a_file(store):
    """Pieces of stored objects, bytes and zeros read, seek and report their size as one file would."""
    store.put("a/one.bin", bytes(range(100)), "application/octet-stream")
    store.put("a/two.bin", bytes(range(100, 200)), "application/octet-stream")
    pieces = [b"HEAD", Span("a/one.bin", 10, 20), Zeros(5), Span("a/two.bin", 0, 100), b"", b"END"]
    whole = b"HEAD" + bytes(range(10, 30)) + bytes(5) + bytes(range(100, 200)) + b"END"
    with open_joined(store, pieces) as stream:
        assert stream.read() == whole
        assert stream.seek(0, io.SEEK_END) == len(whole)
        stream.seek(22)
        assert stream.read(10) == whole[22:32]  # across three pieces in one read
        stream.seek(-3, io.SEEK_END)
        assert stream.read(100) == b"END" and stream.read(1) == b""
