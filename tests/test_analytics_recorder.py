"""Metrics of a conversation recorded by the real recorder, with the emulator's speech as the model's voice."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from livetalk.analytics import measure_conversation, recorded_part, wav_activity
from livetalk.emulator.reply import CHUNK_BYTES
from livetalk.recording import ConversationRecorder, RecordingPump
from livetalk.storage import LocalStorage
from tests.analytics_helpers import Speech

TOLERANCE_S = 0.05
FRAME_S = 0.02  # the browser's user frames
USER_RATE = 16000
STARTED = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.timezone.utc)


def user_frame(amplitude: float = 8000.0, freq: float = 200.0) -> bytes:
    n = int(FRAME_S * USER_RATE)
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / USER_RATE)).astype("<i2").tobytes()


@pytest.fixture
def recorded(tmp_path):
    """A recorded call: reply, answer, reply that the user barges into; what was played, with its known timings."""
    storage, now = LocalStorage(tmp_path), [100.0]  # a monotonic clock moved by hand
    rec = ConversationRecorder(storage, session_id="call-1", scenario_id="sales-ja", started_at=STARTED,
                               clock=lambda: now[0], pump=RecordingPump(interval_s=None, io_threads=1))
    t0, truth = now[0], {}

    def at(seconds: float) -> None:
        now[0] = t0 + seconds

    def model_says(text: str, start_s: float) -> Speech:
        at(start_s)
        pcm = Speech("model", start_s, text).samples(24000).tobytes()
        for i in range(0, len(pcm), CHUNK_BYTES):  # as the emulator sends it, all at once
            rec.model_audio(pcm[i:i + CHUNK_BYTES])
        rec.transcript("model", text, True)
        return Speech("model", start_s, text)

    def user_says(start_s: float, seconds: float) -> None:
        for i in range(1, int(round(seconds / FRAME_S)) + 1):
            at(start_s + i * FRAME_S)  # a frame is heard until it arrives
            rec.user_audio(user_frame())

    first = model_says("お電話ありがとうございます。ITシステム部の佐藤です。", 0.5)
    truth["reply_1"] = first.voiced_span()
    truth["answer"] = (truth["reply_1"][1] + 0.8, truth["reply_1"][1] + 2.8)
    user_says(*truth["answer"][:1], 2.0)
    rec.transcript("user", "えーと、本日はご予算を伺えますか？", True)
    rec.turn_complete()
    second = model_says("ご提案の内容をもう少し詳しく教えていただけますでしょうか", truth["answer"][1] + 0.6)
    barge_in = second.voiced_span()[0] + 1.0
    user_says(barge_in, 0.4)
    rec.interrupted()  # Gemini noticed the user 0.4 s in: the rest of the reply is never played
    user_says(barge_in + 0.4, 1.2)
    rec.transcript("user", "あの、すみません。価格はいかがですか。", True)
    truth["reply_2"] = (second.voiced_span()[0], barge_in + 0.4)
    truth["barge_in"] = (barge_in, barge_in + 1.6)
    at(barge_in + 2.5)
    assert rec.finalize("end", timeout=30) is not None
    prefix = rec.key_prefix
    meta = json.loads(storage.read(f"{prefix}/meta.json"))
    return storage, meta, storage.read(f"{prefix}/transcript.jsonl"), f"{prefix}/audio.wav", truth


def test_recorded_conversation_metrics(recorded):
    """From the recorder's WAV and transcript: talk, turns, the barge-in and latencies match what was played."""
    storage, meta, transcript, audio_key, truth = recorded
    with storage.open_read(audio_key) as audio:
        activity = wav_activity(audio)
    start = dt.datetime.fromisoformat(meta["started_at"])
    metrics = measure_conversation([recorded_part(meta, transcript, conversation_start=start, activity=activity)],
                                   language="ja-JP")
    length = {name: end - start for name, (start, end) in truth.items()}
    assert metrics["talk_s"] == pytest.approx({"user": length["answer"] + length["barge_in"],
                                               "model": length["reply_1"] + length["reply_2"]}, abs=TOLERANCE_S)
    assert metrics["turns"] == {"user": 2, "model": 2}
    assert metrics["interruptions"] == {"by_user": 1, "by_model": 0}
    assert metrics["response_latency_s"] == pytest.approx(
        {"user_p50": truth["answer"][0] - truth["reply_1"][1], "model_p50": truth["reply_2"][0] - truth["answer"][1]},
        abs=TOLERANCE_S)
    assert (metrics["questions_user"], metrics["fillers_user"]) == (2, 2)
    assert metrics["duration_s"] == pytest.approx(meta["duration_s"], abs=0.01)
    assert [e["interruption"] for e in metrics["timeline"]] == [False, False, False, True]
