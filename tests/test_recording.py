"""Server-side recording: alignment of both channels, interruptions, transcript lines, finalize."""
from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
import wave

import numpy as np
import pytest

from livetalk import recording
from livetalk.analytics import Activity, wav_activity
from livetalk.recording import timeline
from livetalk.recording import ConversationRecorder, find_recording
from livetalk.storage import LocalStorage
from tests.gcs_helpers import FakeGcsServer
from tests.helpers import UNIT_S, wait_until

STARTED = dt.datetime(2025, 3, 9, 23, 59, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 2025-03-10 UTC
BLOCK_S = 0.1  # resolution of the activity maps below


class FakeClock:
    """A monotonic clock advanced by hand."""

    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float) -> None:
        self.t += seconds


def tone(seconds: float, rate: int, amplitude: int = 10000, freq: float = 440.0) -> bytes:
    n = int(round(seconds * rate))
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype("<i2").tobytes()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class GatedStorage(LocalStorage):
    """A local store whose writes hang until ``gate`` is set (a stalled backend)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.waiting = threading.Event()  # a write is held at the gate

    def open_append(self, *args, **kwargs):
        self._hold()
        return super().open_append(*args, **kwargs)

    def put(self, *args, **kwargs):
        self._hold()
        return super().put(*args, **kwargs)

    def _hold(self) -> None:
        self.waiting.set()
        self.gate.wait(10)


@pytest.fixture
def make_recorder(recording_pump, clock):
    """Factory: a recorder on the test's pump and fake clock."""

    def make(store, session_id: str = "sess-1", **options) -> ConversationRecorder:
        return ConversationRecorder(store, session_id=session_id, scenario_id="sales-ja", started_at=STARTED,
                                    clock=clock, pump=recording_pump, **options)
    return make


def speak_user(rec, clock, seconds, *, frame_s=0.02, amplitude=10000) -> None:
    """The user talks for ``seconds`` in real time, in ``frame_s`` frames."""
    for _ in range(int(round(seconds / frame_s))):
        clock.tick(frame_s)
        rec.user_audio(tone(frame_s, 16000, amplitude))


def read_wav(store, key) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(io.BytesIO(store.read(key))) as w:
        return w.getparams(), np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)


def activity(channel: np.ndarray) -> str:
    """``#`` for each 100 ms block with sound, ``.`` for silence."""
    block = int(BLOCK_S * 24000)
    n = len(channel) // block
    loud = np.abs(channel[: n * block].astype(np.int32)).reshape(n, block).max(axis=1) > 1000
    return "".join("#" if v else "." for v in loud)


def transcript_lines(store, rec) -> list[dict]:
    raw = store.read(f"{rec.key_prefix}/transcript.jsonl").decode()
    return [json.loads(line) for line in raw.splitlines()]


def test_layout_and_index(store, clock, make_recorder):
    """A finished recording publishes audio, transcript, meta under its UTC day and an index by session id."""
    rec = make_recorder(store)
    speak_user(rec, clock, 0.5)
    uri = rec.finalize("end")
    assert rec.key_prefix == "conversations/2025/03/10/sess-1"
    assert uri == store.uri(rec.key_prefix) + "/"
    for name in ("audio.wav", "transcript.jsonl", "meta.json"):
        assert store.exists(f"{rec.key_prefix}/{name}")
    entry = find_recording(store, "sess-1")
    assert entry["prefix"] == rec.key_prefix
    assert entry["audio"] == f"{rec.key_prefix}/audio.wav"
    assert find_recording(store, "unknown") is None


def test_user_left_model_right_aligned(store, clock, make_recorder):
    """User audio lands on the left at its arrival time; a model burst plays sequentially on the right."""
    rec = make_recorder(store)
    clock.tick(1.0)  # 1 s of nothing
    speak_user(rec, clock, 1.0)  # user: 1.0-2.0 s
    clock.tick(0.5)
    for _ in range(10):  # 1 s of model audio arriving at once at 2.5 s
        rec.model_audio(tone(0.1, 24000))
    clock.tick(2.0)
    rec.turn_complete()
    rec.finalize("end")
    params, stereo = read_wav(store, f"{rec.key_prefix}/audio.wav")
    assert (params.nchannels, params.framerate, params.sampwidth) == (2, 24000, 2)
    assert activity(stereo[:, 0]) == "." * 10 + "#" * 10 + "." * 15
    assert activity(stereo[:, 1]) == "." * 25 + "#" * 10


def test_interrupted_drops_unplayed_model_audio(store, clock, make_recorder):
    """On interrupted, model audio scheduled after that instant is not in the recording."""
    rec = make_recorder(store)
    for _ in range(50):  # 5 s of model audio arriving at once at t=0
        rec.model_audio(tone(0.1, 24000))
    rec.transcript("model", "A long ", False)
    rec.transcript("model", "answer", False)
    clock.tick(2.0)  # the client has played 2 s
    rec.interrupted()
    speak_user(rec, clock, 1.0)  # the user barges in: 2.0-3.0 s
    rec.transcript("user", "Sorry, one question", True)
    clock.tick(1.0)
    for _ in range(5):  # the next answer: 0.5 s at 4.0 s
        rec.model_audio(tone(0.1, 24000))
    rec.transcript("model", "Sure.", True)
    rec.turn_complete()
    rec.finalize("end")
    _, stereo = read_wav(store, f"{rec.key_prefix}/audio.wav")
    assert activity(stereo[:, 1]) == "#" * 20 + "." * 20 + "#" * 5
    assert activity(stereo[:, 0]) == "." * 20 + "#" * 10 + "." * 15
    lines = transcript_lines(store, rec)
    assert [(l["role"], l["text"], l["interrupted"]) for l in lines] == [
        ("model", "A long answer", True),
        ("user", "Sorry, one question", False),
        ("model", "Sure.", False),
    ]
    assert (lines[0]["start_ms"], lines[0]["end_ms"]) == (0, 2000)
    assert lines[1]["start_ms"] == pytest.approx(2000, abs=40)
    assert (lines[2]["start_ms"], lines[2]["end_ms"]) == (4000, 4500)


def test_pieces_merge_into_one_line_per_utterance(tmp_path, clock, make_recorder):
    """Incremental transcript pieces of a turn become one line; turns alternate as spoken."""
    store = LocalStorage(tmp_path)
    rec = make_recorder(store)
    for piece in ("こんにちは、", "本日は", "よろしく", "お願いします。"):
        clock.tick(0.2)
        rec.transcript("user", piece, False)
    rec.model_audio(tone(0.5, 24000))
    rec.transcript("model", "はい、", False)
    rec.transcript("model", "どうぞ。", False)
    rec.turn_complete()
    rec.transcript("user", "", True)  # an empty final piece adds no line
    rec.finalize("end")
    lines = transcript_lines(store, rec)
    assert [(l["role"], l["text"]) for l in lines] == [("user", "こんにちは、本日はよろしくお願いします。"),
                                                       ("model", "はい、どうぞ。")]
    meta = json.loads(store.read(f"{rec.key_prefix}/meta.json"))
    assert meta["turns"] == {"user": 1, "model": 1}
    assert meta["session_id"] == "sess-1" and meta["scenario_id"] == "sales-ja" and meta["reason"] == "end"


def test_checkpoints_make_the_recording_so_far_readable(store, clock, make_recorder, recording_pump):
    """Every checkpoint leaves a readable WAV, the closed transcript lines and meta marked incomplete."""
    rec = make_recorder(store, checkpoint_s=1.0)
    speak_user(rec, clock, 1.0)
    rec.transcript("user", "Hello there", True)
    speak_user(rec, clock, 2.5, amplitude=0)
    wait_until(lambda: store.exists(f"{rec.key_prefix}/meta.json")
               and json.loads(store.read(f"{rec.key_prefix}/meta.json"))["audio"]["duration_s"] >= 1.5)
    meta = json.loads(store.read(f"{rec.key_prefix}/meta.json"))
    params, stereo = read_wav(store, f"{rec.key_prefix}/audio.wav")
    assert meta["complete"] is False and meta["reason"] is None
    assert params.nframes == round(meta["audio"]["duration_s"] * 24000)
    assert activity(stereo[:, 0]).startswith("#########")  # the speech of the first second is there
    assert [line["text"] for line in transcript_lines(store, rec)] == ["Hello there"]
    assert find_recording(store, "sess-1")["audio"] == f"{rec.key_prefix}/audio.wav"
    assert rec.finalize("end") is not None
    meta = json.loads(store.read(f"{rec.key_prefix}/meta.json"))
    assert meta["complete"] is True and meta["reason"] == "end"
    assert read_wav(store, f"{rec.key_prefix}/audio.wav")[0].nframes > params.nframes


def test_user_audio_at_24_khz_is_recorded_as_it_is(tmp_path, clock, make_recorder):
    """For an engine that takes 24 kHz, the user's audio lands on the timeline unchanged and aligned in time."""
    store = LocalStorage(tmp_path)
    rec = make_recorder(store, input_rate=24000)
    for _ in range(50):  # 1 s of a tone at 24 kHz in 20 ms frames
        clock.tick(0.02)
        rec.user_audio(tone(0.02, 24000))
    clock.tick(1.0)
    assert rec.finalize("end") is not None
    params, stereo = read_wav(store, f"{rec.key_prefix}/audio.wav")
    assert params.nframes == pytest.approx(24000 * 1.0, abs=480)
    assert np.array_equal(stereo[:480, 0], np.frombuffer(tone(0.02, 24000), "<i2"))
    assert activity(stereo[:, 0]).startswith("#" * 10)


def test_who_spoke_when_is_measured_as_it_is_written(store, clock, make_recorder):
    """meta.json carries each side's speech at checkpoints and at the end: what the detector finds in audio.wav."""
    rec = make_recorder(store, checkpoint_s=1.0)
    clock.tick(0.5)
    speak_user(rec, clock, 1.0)
    speak_user(rec, clock, 1.5, amplitude=0)
    meta_key = f"{rec.key_prefix}/meta.json"
    wait_until(lambda: store.exists(meta_key) and json.loads(store.read(meta_key))["audio"]["duration_s"] >= 2.0)
    so_far = Activity.from_json(json.loads(store.read(meta_key))["activity"])
    assert [(round(s, 1), round(e, 1)) for s, e in so_far.user] == [(0.5, 1.5)] and so_far.model == ()
    rec.model_audio(tone(0.8, 24000))
    speak_user(rec, clock, 2.0, amplitude=0)
    assert rec.finalize("end") is not None
    meta = json.loads(store.read(meta_key))
    with store.open_read(f"{rec.key_prefix}/audio.wav") as audio:
        assert meta["activity"] == wav_activity(audio).to_json()
    final = Activity.from_json(meta["activity"])
    assert [(round(s, 1), round(e, 1)) for s, e in final.model] == [(3.0, 3.8)]
    assert final.duration_s == meta["audio"]["duration_s"]


def test_an_outcome_is_kept_in_meta_and_the_transcript_and_stored_at_once(tmp_path, clock, make_recorder):
    """outcome() lands in meta.json at the next block (not the next interval) and as an `outcome` line."""
    store = LocalStorage(tmp_path)
    rec = make_recorder(store, checkpoint_s=60.0)
    speak_user(rec, clock, 0.5)
    details = {"date": "2026-12-03", "time": "14:00", "topic": "demo"}
    rec.outcome("appointment", details)
    speak_user(rec, clock, 2.0, amplitude=0)
    meta_key = f"{rec.key_prefix}/meta.json"
    wait_until(lambda: store.exists(meta_key))
    assert json.loads(store.read(meta_key))["outcome"] == {"appointment": True, "details": details}
    rec.transcript("user", "Then the 3rd at two.", True)
    rec.outcome_cancelled("appointment")
    assert rec.finalize("end") is not None
    lines = transcript_lines(store, rec)
    assert [line["role"] for line in lines] == ["outcome", "user", "outcome"]
    assert lines[0] == {"role": "outcome", "name": "appointment", "details": details, "cancelled": False,
                        "start_ms": 500, "end_ms": 500}
    assert lines[2]["cancelled"] is True and lines[2]["details"] is None
    meta = json.loads(store.read(meta_key))
    assert meta["outcome"] is None and meta["turns"] == {"user": 1, "model": 0}


def test_a_continuation_is_placed_on_the_conversation_timeline(tmp_path, clock, make_recorder):
    """A segment's meta.json gives its own start and the conversation's, so it can be laid after the first."""
    store = LocalStorage(tmp_path)
    resumed_at = STARTED + dt.timedelta(seconds=42)
    first, second = make_recorder(store), make_recorder(store, segment=1, recording_started_at=resumed_at)
    speak_user(first, clock, 0.3)
    speak_user(second, clock, 0.3)
    assert first.finalize("drop") and second.finalize("end")
    metas = [json.loads(store.read(f"{rec.key_prefix}/meta.json")) for rec in (first, second)]
    assert [m["conversation_started_at"] for m in metas] == [STARTED.isoformat()] * 2
    assert [m["started_at"] for m in metas] == [STARTED.isoformat(), resumed_at.isoformat()]
    assert dt.datetime.fromisoformat(metas[1]["ended_at"]) > resumed_at


def test_finalize_is_idempotent_and_later_events_are_ignored(tmp_path, clock, make_recorder):
    """A second finalize returns the same URI and writes nothing new; events after it are ignored."""
    store = LocalStorage(tmp_path)
    rec = make_recorder(store)
    speak_user(rec, clock, 0.3)
    first = rec.finalize("end")
    rec.user_audio(tone(1.0, 16000))
    assert rec.finalize("shutdown") == first
    meta = json.loads(store.read(f"{rec.key_prefix}/meta.json"))
    assert meta["reason"] == "end"


def test_concurrent_finalize_calls_agree(tmp_path, clock, make_recorder):
    """finalize called from several threads at once publishes once and returns one URI to all."""
    store = LocalStorage(tmp_path)
    rec = make_recorder(store)
    speak_user(rec, clock, 0.3)
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(rec.finalize("drop"))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and results[0] is not None


def test_recorder_calls_do_not_block_on_storage(tmp_path, clock, make_recorder):
    """While storage hangs, the relay-side calls still return at once."""
    store = GatedStorage(tmp_path)
    rec = make_recorder(store)
    started = time.monotonic()
    speak_user(rec, clock, 5.0)
    for _ in range(50):
        rec.model_audio(tone(0.1, 24000))
    assert time.monotonic() - started < 1.0
    store.gate.set()
    assert rec.finalize("end") is not None


def test_queue_budget_drops_instead_of_growing(tmp_path, clock, make_recorder):
    """Past the queue budget, events are dropped and counted in meta.json, never buffered without bound."""
    store = GatedStorage(tmp_path)
    rec = make_recorder(store, queue_budget_bytes=64 * 1024)
    speak_user(rec, clock, 10.0)
    assert rec.backlog_bytes <= 64 * 1024
    store.gate.set()
    rec.finalize("end")
    assert json.loads(store.read(f"{rec.key_prefix}/meta.json"))["dropped"]["events"] > 0


def test_model_lookahead_is_bounded(tmp_path, clock, make_recorder):
    """Model audio scheduled beyond the look-ahead window is dropped and counted."""
    store = LocalStorage(tmp_path)
    rec = make_recorder(store)
    for _ in range(int(timeline.MAX_LOOKAHEAD_S) + 10):  # 10 s more than the window, all at once
        rec.model_audio(tone(1.0, 24000))
    rec.finalize("end")
    meta = json.loads(store.read(f"{rec.key_prefix}/meta.json"))
    assert meta["dropped"]["model_audio_ms"] >= 8000


def test_empty_conversation(tmp_path, clock, make_recorder):
    """A conversation with no audio still gets a transcript and meta, and no audio object."""
    store = LocalStorage(tmp_path)
    rec = make_recorder(store)
    assert rec.finalize("drop") is not None
    assert not store.exists(f"{rec.key_prefix}/audio.wav")
    assert store.read(f"{rec.key_prefix}/transcript.jsonl") == b""
    assert find_recording(store, "sess-1")["audio"] is None


def test_storage_failure_returns_none(tmp_path, clock, monkeypatch, make_recorder):
    """If the GCS endpoint goes away mid-conversation, finalize returns None instead of raising."""
    from livetalk.storage import GcsStorage

    server = FakeGcsServer(tmp_path).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    store = GcsStorage(server.new_bucket(), client=server.client(), retry_deadline_s=0.5, timeout_s=(0.5, 1.0),
                       chunk_bytes=256 * 1024)
    rec = make_recorder(store)
    speak_user(rec, clock, 1.0)
    server.stop()
    speak_user(rec, clock, 5.0)
    assert rec.finalize("end") is None


@pytest.mark.parametrize("session_id", ["../x", "a/b", "", "x" * 2000])
def test_unsafe_session_id_is_refused(tmp_path, clock, session_id, make_recorder):
    """A session id that is not a safe key segment is refused at construction."""
    with pytest.raises(ValueError):
        make_recorder(LocalStorage(tmp_path), session_id=session_id)


@pytest.mark.parametrize("chunk", [1, 7, 160, 321, 16000])
def test_upsampler_keeps_duration(chunk):
    """16→24 kHz conversion yields 1.5 samples per input sample whatever the chunking."""
    up = timeline.Upsampler()
    data = (np.arange(16000 * 2) % 200 - 100).astype(np.int16)
    out = np.concatenate([up(data[i:i + chunk]) for i in range(0, len(data), chunk)])
    assert abs(len(out) - 48000) <= 2
    whole = timeline.Upsampler()(data)
    assert np.array_equal(out, whole[: len(out)])


def test_resumed_segment_never_collides(tmp_path, clock, make_recorder):
    """A continuation recorded as segment 1 lands in its own folder; the index keeps pointing at segment 0."""
    store = LocalStorage(tmp_path)
    first = make_recorder(store)
    speak_user(first, clock, 0.3)
    second = make_recorder(store, segment=1)
    speak_user(second, clock, 0.3)
    assert first.finalize("drop") and second.finalize("end")
    assert second.key_prefix == f"{first.key_prefix}/segment-1"
    assert store.exists(f"{second.key_prefix}/audio.wav")
    assert find_recording(store, "sess-1")["prefix"] == first.key_prefix


def test_finalize_timeout_returns_while_publishing_continues(tmp_path, clock, make_recorder):
    """finalize(timeout=…) gives up waiting on a hung store, and the recording is still published later."""
    store = GatedStorage(tmp_path)
    rec = make_recorder(store)
    speak_user(rec, clock, 0.3)
    started = time.monotonic()
    assert rec.finalize("shutdown", timeout=0.2) is None
    assert time.monotonic() - started < 2.0
    store.gate.set()
    assert rec.finalize("shutdown") is not None
    assert store.exists(f"{rec.key_prefix}/meta.json")


def test_relay_style_closing_pieces_are_harmless(tmp_path, clock, make_recorder):
    """Empty final pieces for utterances already closed (as the relay sends them) add no lines."""
    store = LocalStorage(tmp_path)
    rec = make_recorder(store)
    rec.model_audio(tone(1.0, 24000))
    rec.transcript("model", "Hello", False)
    clock.tick(0.5)
    rec.interrupted()
    rec.transcript("model", "", True)  # the relay closes the model utterance after interrupted
    rec.transcript("user", "", True)
    rec.transcript("user", "Wait", False)
    rec.transcript("user", "", True)
    rec.turn_complete()
    rec.finalize("end")
    assert [(l["role"], l["text"], l["interrupted"]) for l in transcript_lines(store, rec)] == [
        ("model", "Hello", True), ("user", "Wait", False)]


# --- the shared pump --------------------------------------------------------------------------


def conversation(rec, clock) -> None:
    """A short exchange with a barge-in, from the relay's side."""
    speak_user(rec, clock, 0.6)
    rec.transcript("user", "Hello there", True)
    for _ in range(10):
        rec.model_audio(tone(0.1, 24000))
    rec.transcript("model", "Hi, ", False)
    speak_user(rec, clock, 0.8, amplitude=200)
    rec.interrupted()
    speak_user(rec, clock, 0.4)
    rec.transcript("user", "wait", True)
    clock.tick(1.7)
    for _ in range(5):
        rec.model_audio(tone(0.1, 24000, freq=220.0))
    rec.transcript("model", "Sure.", True)
    rec.turn_complete()
    speak_user(rec, clock, 2.5)


def published_files(store, rec) -> list[bytes]:
    return [store.read(f"{rec.key_prefix}/{name}") for name in ("audio.wav", "transcript.jsonl", "meta.json")]


class PumpedEvery:
    """Stands in for a recorder, running a manual pump after every ``every``-th relay-side call."""

    def __init__(self, rec: ConversationRecorder, pump: recording.RecordingPump, every: int | None) -> None:
        self.rec, self.pump, self.every, self.calls = rec, pump, every, 0

    def __getattr__(self, name):
        method = getattr(self.rec, name)

        def call(*args):
            method(*args)
            self.calls += 1
            if self.every and self.calls % self.every == 0:
                self.pump.run_once()
        return call


@pytest.mark.parametrize("every", [2, 7, 40, None])
def test_batching_does_not_change_the_recording(tmp_path, every):
    """Whether the pump takes events in small batches or all at finalize, the files are those of one at a time."""
    published = []
    for run, pump_every in enumerate((1, every)):
        store, clock = LocalStorage(tmp_path / str(run)), FakeClock()
        pump = recording.RecordingPump(interval_s=None)
        rec = ConversationRecorder(store, session_id="sess-1", scenario_id="sales-ja", started_at=STARTED,
                                   clock=clock, pump=pump)
        conversation(PumpedEvery(rec, pump, pump_every), clock)
        assert rec.finalize("end") is not None
        published.append(published_files(store, rec))
    assert published[0] == published[1]


def test_relay_side_calls_only_queue(tmp_path, clock):
    """The relay-side calls start no thread and process nothing: the events wait for the pump."""
    store = LocalStorage(tmp_path)
    pump = recording.RecordingPump(interval_s=None)
    threads = threading.active_count()
    rec = ConversationRecorder(store, session_id="sess-1", scenario_id="sales-ja", started_at=STARTED, clock=clock,
                               pump=pump)
    speak_user(rec, clock, 3.0)
    rec.model_audio(tone(1.0, 24000))
    assert threading.active_count() == threads
    assert rec.backlog_bytes >= 3 * 32000 and pump.open_recorders == 1
    pump.run_once()
    assert rec.backlog_bytes == 0
    assert rec.finalize("end") is not None
    assert pump.open_recorders == 0


def test_many_recorders_share_one_thread_and_all_are_written(tmp_path):
    """Thirty conversations at once use one pump thread (plus its I/O pool), and each is recorded whole."""
    store = LocalStorage(tmp_path)
    pump = recording.RecordingPump(interval_s=0.01, io_threads=2)
    threads = threading.active_count()
    clocks = [FakeClock() for _ in range(30)]
    recs = [ConversationRecorder(store, session_id=f"sess-{i}", scenario_id="sales-ja", started_at=STARTED,
                                 clock=clocks[i], pump=pump) for i in range(30)]
    for step in range(100):  # 2 s of audio each, interleaved like the relay loop does it
        for i, (rec, clock) in enumerate(zip(recs, clocks)):
            clock.tick(0.02)
            rec.user_audio(tone(0.02, 16000, amplitude=10000 if step < 50 + i else 0))
        if step % 25 == 0:  # let the pump take what is queued before going on
            wait_until(lambda: all(rec.backlog_bytes == 0 for rec in recs))
    assert threading.active_count() <= threads + 1 + 2
    for i, (rec, clock) in enumerate(zip(recs, clocks)):
        clock.tick(1.0)
        assert rec.finalize("end") is not None
        _, stereo = read_wav(store, f"{rec.key_prefix}/audio.wav")
        frames = stereo[: len(stereo) // 480 * 480, 0].astype(np.int32).reshape(-1, 480)  # 20 ms each
        assert len(frames) == 99  # 2 s, less the upsampler's last half sample
        assert abs(int((np.abs(frames).max(axis=1) > 1000).sum()) - (50 + i)) <= 1  # each its own length


def test_finalize_while_the_pump_runs(tmp_path):
    """finalize from another thread while events stream in and the pump works publishes once, consistently."""
    store = LocalStorage(tmp_path)
    pump = recording.RecordingPump(interval_s=0.005)
    rec = ConversationRecorder(store, session_id="sess-1", scenario_id="sales-ja", started_at=STARTED, pump=pump)
    stop = threading.Event()

    def relay_loop() -> None:
        frame = tone(0.02, 16000)
        while not stop.is_set():
            rec.user_audio(frame)
            rec.model_audio(tone(0.02, 24000))
            time.sleep(0.002)

    loop = threading.Thread(target=relay_loop)
    loop.start()
    try:
        wait_until(lambda: rec.frames_written > 0.2 * 24000)  # the pump is writing while the loop streams
        results: list[str | None] = []
        finalizers = [threading.Thread(target=lambda: results.append(rec.finalize("end"))) for _ in range(3)]
        for t in finalizers:
            t.start()
        for t in finalizers:
            t.join()
    finally:
        stop.set()
        loop.join()
    assert len(set(results)) == 1 and results[0] is not None
    params, stereo = read_wav(store, f"{rec.key_prefix}/audio.wav")
    assert params.nframes > 0.2 * 24000
    meta = json.loads(store.read(f"{rec.key_prefix}/meta.json"))
    assert meta["audio"]["duration_s"] == round(params.nframes / 24000, 3)


def test_a_stalled_store_holds_up_only_its_own_recording(tmp_path, clock):
    """While one recording's storage hangs, another recording on the same pump is written and published."""
    stalled, healthy = GatedStorage(tmp_path / "stalled"), LocalStorage(tmp_path / "healthy")
    pump = recording.RecordingPump(interval_s=0.01, io_threads=2)
    slow = ConversationRecorder(stalled, session_id="slow", scenario_id="sales-ja", started_at=STARTED, clock=clock,
                                pump=pump)
    fast = ConversationRecorder(healthy, session_id="fast", scenario_id="sales-ja", started_at=STARTED, clock=clock,
                                pump=pump)
    for _ in range(150):
        clock.tick(0.02)
        slow.user_audio(tone(0.02, 16000))
        fast.user_audio(tone(0.02, 16000))
    assert stalled.waiting.wait(UNIT_S)  # the pump handed the slow recording's audio to storage, which hangs
    started = time.monotonic()
    assert fast.finalize("end") is not None
    assert time.monotonic() - started < 2.0
    assert slow.finalize("end", timeout=0.1) is None
    stalled.gate.set()
    assert slow.finalize("end") is not None
