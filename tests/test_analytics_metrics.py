"""Conversation metrics from known recordings: talk, turns, barge-ins, latency, text measures, parts, uploads."""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import statistics
import struct

import pytest

from livetalk.analytics import (Activity, CorruptWav, Part, Utterance, measure_conversation, measure_upload,
                                parse_transcript, recorded_part, wav_activity)
from livetalk.analytics.vad import StereoVad
from livetalk.analytics.wavstream import open_wav
from tests.analytics_helpers import RATE, Burst, Speech, TrickleStream, encode, render, wav_bytes

TOLERANCE_S = 0.05

# A sales call with one of everything. Times in seconds; the comments give the known answers.
SCRIPT = (
    Burst("model", 0.50, 3.00),  # greeting
    Burst("user", 3.80, 9.00),  # answers after 0.8 s: the user's longest monologue, 5.2 s
    Burst("model", 9.60, 12.00),  # answers after 0.6 s
    Burst("user", 11.20, 15.00),  # barges in (by_user) while the model speaks; the model stops at 12.0
    Burst("model", 15.90, 21.00),  # answers 0.9 s after the user stops: the model's longest monologue, 5.1 s
    Burst("user", 17.00, 17.40),  # はい: a backchannel inside the model's speech (no turn, no interruption)
    Burst("user", 21.70, 25.00),  # answers after 0.7 s
    Burst("model", 24.20, 27.00),  # talks over the user (by_model), who stops at 25.0
    Burst("user", 27.50, 29.00),  # answers after 0.5 s
)
DURATION_S = 30.0
LOG = (
    Utterance("model", "お電話ありがとうございます。"),
    Utterance("user", "えーと、本日はお時間ありがとうございます。御社の課題は何でしょうか？"),  # 1 filler, 1 question
    Utterance("model", "そうですね、運用の負荷です。"),
    Utterance("user", "あの、すみません。ご予算はいかがですか。"),  # 1 filler, 1 question
    Utterance("model", "予算はまだ決まっていません。"),
    Utterance("user", "はい"),
    Utterance("user", "まあ、そうですね。来週はいかがでしょうか"),  # 1 filler, 1 question
    Utterance("model", "来週なら火曜日が"),
    Utterance("user", "うーん、わかりました。"),  # 1 filler
)
KNOWN = {
    "turns": {"user": 4, "model": 4},
    "interruptions": {"by_user": 1, "by_model": 1},
    "response_latency_s": {"user_p50": statistics.median([0.8, 0.7, 0.5]), "model_p50": statistics.median([0.6, 0.9])},
    "longest_monologue_s": {"user": 5.2, "model": 5.1},
    "questions_user": 3,
    "fillers_user": 4,
}


def talk(script, role: str) -> float:
    return sum(b.length_s for b in script if b.role == role)


def spoken_chars(log) -> int:
    return sum(len(re.sub(r"[\W_]", "", u.text)) for u in log if u.role == "user")


def activity_of(parts, *, duration_s: float, noise_dbfs: float | None = None, rate: int = RATE) -> Activity:
    vad = StereoVad(rate)
    vad.feed(render(parts, duration_s=duration_s, noise_dbfs=noise_dbfs, rate=rate).tobytes())
    return vad.finish()


def assert_known_timings(metrics, script=SCRIPT) -> None:
    """The script's known answers: seconds within 50 ms, counts exact."""
    for role in ("user", "model"):
        assert metrics["talk_s"][role] == pytest.approx(talk(script, role), abs=TOLERANCE_S)
    share = talk(script, "user") / (talk(script, "user") + talk(script, "model"))
    assert metrics["talk_share_user"] == pytest.approx(share, abs=0.005)
    assert metrics["turns"] == KNOWN["turns"]
    assert metrics["interruptions"] == KNOWN["interruptions"]
    for key in ("response_latency_s", "longest_monologue_s"):
        assert metrics[key] == pytest.approx(KNOWN[key], abs=TOLERANCE_S)


@pytest.mark.parametrize("noise_dbfs", [None, -60.0, -50.0])
def test_known_conversation(noise_dbfs):
    """Talk, share, turns, barge-ins both ways, latency and monologues match the script, over noise too."""
    activity = activity_of(SCRIPT, duration_s=DURATION_S, noise_dbfs=noise_dbfs)
    metrics = measure_conversation([Part(0.0, activity, LOG)], language="ja-JP")
    assert_known_timings(metrics)
    assert metrics["duration_s"] == pytest.approx(DURATION_S)
    assert (metrics["questions_user"], metrics["fillers_user"]) == (KNOWN["questions_user"], KNOWN["fillers_user"])
    rate = spoken_chars(LOG) / (talk(SCRIPT, "user") / 60)
    assert metrics["speech_rate_user"] == pytest.approx(rate, rel=0.01)
    assert metrics["speech_rate_unit"] == "chars_per_min"


def test_timeline_lists_every_stretch_with_barge_ins_marked():
    """The timeline has each stretch of speech in order, and marks exactly the two interruptions."""
    metrics = measure_conversation([Part(0.0, activity_of(SCRIPT, duration_s=DURATION_S), LOG)], language="ja-JP")
    ordered = sorted(SCRIPT, key=lambda b: b.start_s)
    timeline = metrics["timeline"]
    assert [entry["role"] for entry in timeline] == [b.role for b in ordered]
    for entry, burst in zip(timeline, ordered):
        assert entry["start_s"] == pytest.approx(burst.start_s, abs=TOLERANCE_S)
        assert entry["end_s"] == pytest.approx(burst.end_s, abs=TOLERANCE_S)
    assert [(e["role"], e["start_s"]) for e in timeline if e["interruption"]] == [
        ("user", pytest.approx(11.2, abs=TOLERANCE_S)), ("model", pytest.approx(24.2, abs=TOLERANCE_S))]


def test_emulator_replies():
    """With the emulator's own speech as the model's side, talk and latency follow its voiced syllables."""
    replies = [Speech("model", 0.4, "お電話ありがとうございます。ITシステム部の佐藤です。"),
               Speech("model", 7.0, "はい、運用の負荷が課題です。ご提案はありますか？")]
    first_end, second_start = replies[0].voiced_span()[1], replies[1].voiced_span()[0]
    user = [Burst("user", first_end + 0.9, second_start - 0.6)]
    activity = activity_of([*replies, *user], duration_s=replies[1].voiced_span()[1] + 1.0, noise_dbfs=-55.0)
    metrics = measure_conversation([Part(0.0, activity)], language="ja-JP")
    model_talk = sum(end - start for start, end in (r.voiced_span() for r in replies))
    assert metrics["talk_s"]["model"] == pytest.approx(model_talk, abs=TOLERANCE_S)
    assert metrics["talk_s"]["user"] == pytest.approx(talk(user, "user"), abs=TOLERANCE_S)
    assert metrics["turns"] == {"user": 1, "model": 2}
    assert metrics["response_latency_s"] == pytest.approx({"user_p50": 0.9, "model_p50": 0.6}, abs=TOLERANCE_S)
    assert metrics["interruptions"] == {"by_user": 0, "by_model": 0}


@pytest.mark.parametrize(("user", "model", "turns", "interruptions", "latency", "monologue"), [
    # a model turn with a long pause inside is one turn; the user answers its end
    ([(5.5, 7.0)], [(0.0, 2.0), (3.0, 5.0)], (1, 1), (0, 0), (0.5, None), (1.5, 5.0)),
    # the model's はい inside the user's speech is a backchannel: no turn, no interruption, no break
    ([(0.0, 10.0)], [(4.0, 4.5)], (1, 0), (0, 0), (None, None), (10.0, 0.0)),
    # the user starts during the model's speech and goes on after it: a barge-in, not a latency
    ([(1.5, 4.0)], [(0.0, 2.0)], (1, 1), (1, 0), (None, None), (2.0, 1.5)),
    # the model talks over the end of the user's speech and goes on: interrupted by the model
    ([(0.0, 3.0)], [(2.0, 5.0)], (1, 1), (0, 1), (None, None), (2.0, 2.0)),
    # the user repeats after a silence with nobody answering: still one turn
    ([(0.0, 1.0), (4.0, 5.0)], [(6.0, 7.0)], (1, 1), (0, 0), (None, 1.0), (5.0, 1.0)),
    # ping-pong: latencies are medians per side
    ([(1.0, 2.0), (3.4, 4.0), (5.2, 6.0)], [(0.0, 0.5), (2.2, 3.0), (4.6, 5.0)], (3, 3), (0, 0), (0.4, 0.4),
     (1.0, 0.8)),
])
def test_turn_taking_rules(user, model, turns, interruptions, latency, monologue):
    """Turns, interruptions, latencies and monologues follow the documented rules on exact spans."""
    metrics = measure_conversation([Part(0.0, Activity(tuple(user), tuple(model), 10.0))], language="en-US")
    assert metrics["turns"] == {"user": turns[0], "model": turns[1]}
    assert metrics["interruptions"] == {"by_user": interruptions[0], "by_model": interruptions[1]}
    assert metrics["response_latency_s"] == {"user_p50": latency[0], "model_p50": latency[1]}
    assert metrics["longest_monologue_s"] == {"user": monologue[0], "model": monologue[1]}


def shifted(script, by_s: float):
    return [dataclasses.replace(b, start_s=b.start_s + by_s, end_s=b.end_s + by_s) for b in script]


def test_parts_are_measured_as_one_conversation():
    """Two parts with offsets measure exactly as one recording holding the same speech at the same times."""
    split_s, gap_s = 15.5, 2.0  # the socket dropped at 15.5 s; the resumed one started 2 s later
    first = [b for b in SCRIPT if b.end_s <= split_s]
    second = [b for b in SCRIPT if b.start_s >= split_s]
    assert len(first) + len(second) == len(SCRIPT)
    part_two_s = DURATION_S - split_s
    parts = [Part(0.0, activity_of(first, duration_s=split_s), LOG[:4]),
             Part(split_s + gap_s, activity_of(shifted(second, -split_s), duration_s=part_two_s), LOG[4:])]
    as_one = activity_of([*first, *shifted(second, gap_s)], duration_s=DURATION_S + gap_s)
    metrics = measure_conversation(parts, language="ja-JP")
    assert metrics == measure_conversation([Part(0.0, as_one, LOG)], language="ja-JP")
    assert metrics["duration_s"] == pytest.approx(split_s + gap_s + part_two_s)
    assert metrics["response_latency_s"]["model_p50"] == pytest.approx(statistics.median([0.6, 0.9 + gap_s]),
                                                                       abs=TOLERANCE_S)


def test_overlapping_parts_join_their_speech():
    """A resumed part that starts before the previous one ended (both recording) does not count speech twice."""
    whole = Activity((), ((1.0, 5.0),), 6.0)
    late = Activity((), ((0.0, 2.0), (3.0, 3.5)), 4.0)  # at offset 4: 4-6 overlaps, 7-7.5 is new
    metrics = measure_conversation([Part(0.0, whole), Part(4.0, late)], language="en-US")
    assert metrics["talk_s"]["model"] == pytest.approx(5.5)
    assert metrics["duration_s"] == pytest.approx(8.0)


def test_recorded_parts_from_meta_and_transcript():
    """Recorder segments (meta.json, transcript.jsonl) become parts at their offsets; one without audio is silent."""
    start = dt.datetime(2025, 3, 10, 4, 59, 30, tzinfo=dt.timezone.utc)
    activity = Activity(((1.0, 2.5),), ((3.0, 4.0),), 5.0)
    transcript = "\n".join([
        json.dumps({"role": "user", "text": "ご予算は？", "start_ms": 1000, "end_ms": 2500, "interrupted": False}),
        "not json",
        json.dumps({"role": "model", "text": "未定です。", "start_ms": 3000, "end_ms": 4000, "interrupted": False}),
    ]).encode()
    first = recorded_part({"started_at": start.isoformat(), "duration_s": 5.0, "audio": {"key": "a"},
                           "activity": activity.to_json()}, transcript, conversation_start=start)
    resumed_at = (start + dt.timedelta(seconds=9)).astimezone(dt.timezone(dt.timedelta(hours=9)))
    second = recorded_part({"started_at": resumed_at.isoformat(), "duration_s": 2.0, "audio": None}, b"",
                           conversation_start=start)
    assert (first.offset_s, first.activity) == (0.0, activity)
    assert [u.text for u in first.utterances] == ["ご予算は？", "未定です。"]
    assert (second.offset_s, second.activity) == (9.0, Activity.silent(2.0))
    with pytest.raises(ValueError):
        recorded_part({"duration_s": 1.0}, b"", conversation_start=start)
    metrics = measure_conversation([first, second], language="ja-JP")
    assert metrics["duration_s"] == 11.0
    assert metrics["talk_s"] == {"user": 1.5, "model": 1.0}
    assert metrics["questions_user"] == 1


def test_parse_transcript_reads_the_recorder_format():
    """transcript.jsonl lines become utterances with times in seconds; malformed or foreign lines are skipped."""
    raw = "\n".join([
        json.dumps({"role": "model", "text": "はい", "start_ms": 1500, "end_ms": 2250, "interrupted": True}),
        json.dumps({"role": "system", "text": "x"}), json.dumps({"role": "user"}), json.dumps([1, 2]), "{",
        json.dumps({"role": "user", "text": "Um, ok"}),
    ])
    assert parse_transcript(raw.encode()) == [Utterance("model", "はい", 1.5, 2.25, True), Utterance("user", "Um, ok")]


def test_text_only_log():
    """A log without times or audio gives questions, fillers and turns from the text; every timing is null."""
    log = [Utterance("user", "Um, hello."), Utterance("user", "What's your budget?"), Utterance("model", "Not sure."),
           Utterance("user", "I mean, roughly? You know, a range."), Utterance("model", "Fine."),
           Utterance("model", "Maybe ten."), Utterance("user", "  ")]
    metrics = measure_conversation([Part(0.0, None, log)], language="en-US")
    assert metrics == {
        "duration_s": None, "talk_s": None, "talk_share_user": None, "longest_monologue_s": None,
        "turns": {"user": 2, "model": 2}, "questions_user": 2, "fillers_user": 3, "interruptions": None,
        "response_latency_s": None, "speech_rate_user": None, "speech_rate_unit": "words_per_min", "timeline": None,
    }


def test_silence_gives_nulls_not_errors():
    """A recording in which nobody spoke: zero talk, a null share, no latencies, no rate."""
    metrics = measure_conversation([Part(0.0, Activity.silent(12.0))], language="ja-JP")
    assert metrics["talk_s"] == {"user": 0.0, "model": 0.0}
    assert metrics["talk_share_user"] is None
    assert metrics["response_latency_s"] == {"user_p50": None, "model_p50": None}
    assert metrics["speech_rate_user"] is None
    assert (metrics["duration_s"], metrics["timeline"], metrics["turns"]) == (12.0, [], {"user": 0, "model": 0})


def test_output_is_json_ready_and_rounded():
    """Every value serialises as JSON; seconds carry at most 2 decimals, the share 3, the rate 1."""
    metrics = measure_conversation([Part(0.0, activity_of(SCRIPT, duration_s=DURATION_S), LOG)], language="ja-JP")
    assert json.loads(json.dumps(metrics)) == metrics
    seconds = [metrics["duration_s"], *metrics["talk_s"].values(), *metrics["longest_monologue_s"].values(),
               *metrics["response_latency_s"].values(), *(e[k] for e in metrics["timeline"] for k in ("start_s", "end_s"))]
    assert all(round(value, 2) == value for value in seconds)
    assert round(metrics["talk_share_user"], 3) == metrics["talk_share_user"]
    assert round(metrics["speech_rate_user"], 1) == metrics["speech_rate_user"]


# --- uploads ----------------------------------------------------------------------------------------


def script_wav(*, rate: int = RATE, bits: int = 16, encoding: str = "pcm", extensible: bool = False,
               channels: int = 2, noise_dbfs: float | None = -60.0) -> bytes:
    stereo = render(SCRIPT, duration_s=DURATION_S, rate=rate, noise_dbfs=noise_dbfs)
    samples = stereo if channels == 2 else stereo[:, :1]
    tag = 3 if encoding == "float" else 1
    return wav_bytes(encode(samples, bits=bits, encoding=encoding), rate=rate, channels=channels, bits=bits, tag=tag,
                     extensible=extensible)


@pytest.mark.parametrize(("rate", "bits", "encoding", "extensible"), [
    (24000, 16, "pcm", False), (44100, 16, "pcm", False), (16000, 24, "pcm", False), (48000, 32, "pcm", False),
    (22050, 8, "pcm", False), (44100, 32, "float", False), (48000, 64, "float", False), (24000, 16, "pcm", True),
])
def test_uploaded_stereo_wav_gives_timings(rate, bits, encoding, extensible):
    """A stereo WAV upload (left user, right model) of any rate and sample format gives the known timings."""
    audio = script_wav(rate=rate, bits=bits, encoding=encoding, extensible=extensible)
    metrics = measure_upload(LOG, io.BytesIO(audio), language="ja-JP")
    assert measure_upload(LOG, audio, language="ja-JP") == metrics  # bytes in hand measure the same
    assert_known_timings(metrics)
    assert metrics["duration_s"] == pytest.approx(DURATION_S, abs=0.001)
    assert metrics["questions_user"] == KNOWN["questions_user"]


@pytest.mark.parametrize("audio", [
    None,
    script_wav(channels=1),  # mono: nobody to tell apart
    b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(2000),  # an MP3
    b"OggS" + bytes(2000),
    wav_bytes(bytes(8000), rate=8000, channels=2, bits=8, tag=6),  # A-law, not read here
], ids=["none", "mono", "mp3", "ogg", "alaw"])
def test_uploads_without_usable_stereo_audio_give_text_measures_only(audio):
    """Without a readable stereo WAV, questions, fillers and turns come from the log and timings are null."""
    metrics = measure_upload(LOG, None if audio is None else io.BytesIO(audio), language="ja-JP")
    assert metrics["turns"] == {"user": 4, "model": 4}  # consecutive lines of one side are one turn
    assert (metrics["questions_user"], metrics["fillers_user"]) == (KNOWN["questions_user"], KNOWN["fillers_user"])
    for key in ("duration_s", "talk_s", "talk_share_user", "longest_monologue_s", "interruptions",
                "response_latency_s", "speech_rate_user", "timeline"):
        assert metrics[key] is None, key


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(name: bytes, body: bytes, size: int | None = None) -> bytes:
    return name + struct.pack("<I", len(body) if size is None else size) + body


GOOD_FMT = chunk(b"fmt ", struct.pack("<HHIIHH", 1, 2, 24000, 96000, 4, 16))


@pytest.mark.parametrize("data", [
    riff(),  # nothing after WAVE
    riff(GOOD_FMT),  # no data chunk
    riff(chunk(b"data", bytes(400)), GOOD_FMT),  # data before fmt
    riff(chunk(b"fmt ", bytes(8)), chunk(b"data", bytes(400))),  # fmt too short
    riff(chunk(b"fmt ", struct.pack("<HHIIHH", 1, 2, 24000, 96000, 3, 16)), chunk(b"data", bytes(400))),  # align
    riff(chunk(b"fmt ", struct.pack("<HHIIHH", 1, 0, 24000, 0, 0, 16)), chunk(b"data", bytes(400))),  # 0 channels
    riff(chunk(b"fmt ", struct.pack("<HHIIHH", 1, 2, 0, 0, 4, 16)), chunk(b"data", bytes(400))),  # rate 0
    riff(GOOD_FMT, chunk(b"LIST", bytes(10), size=1_000_000)),  # a chunk running past the end
    riff(chunk(b"fmt ", bytes(16), size=1 << 30)),  # an absurd fmt size
    riff(GOOD_FMT, b"dat"),  # a chunk header cut short
    riff(chunk(b"fmt ", struct.pack("<HHIIHH", 0xFFFE, 2, 24000, 96000, 4, 16))),  # extensible without extension
], ids=["empty", "no-data", "data-first", "short-fmt", "align", "no-channels", "no-rate", "past-end", "huge-fmt",
        "cut-header", "short-extensible"])
def test_corrupt_wav_is_a_clear_error(data):
    """A file that starts like a WAV but whose structure is broken raises CorruptWav (the route answers 415)."""
    with pytest.raises(CorruptWav):
        measure_upload(LOG, io.BytesIO(data), language="ja-JP")


def test_wav_read_in_blocks_from_a_trickling_stream():
    """A non-seekable stream that returns a few bytes per read, with an odd-sized chunk to skip, reads the same."""
    stereo = render(SCRIPT, duration_s=DURATION_S, noise_dbfs=-60.0)
    plain = script_wav()
    odd = wav_bytes(stereo.tobytes(), rate=RATE, channels=2, extra_chunks=chunk(b"LIST", b"abc") + b"\x00")
    expected = wav_activity(io.BytesIO(plain))
    assert wav_activity(TrickleStream(odd, most=997), block_frames=4801) == expected


def test_wav_of_unknown_or_short_length_is_read_as_far_as_it_goes():
    """A data size of 0xFFFFFFFF reads to the end; a file cut short is measured up to the cut and flagged."""
    stereo = render(SCRIPT, duration_s=DURATION_S, noise_dbfs=-60.0).tobytes()
    streamed = wav_bytes(stereo, rate=RATE, channels=2, data_size=0xFFFFFFFF)
    assert wav_activity(io.BytesIO(streamed)) == wav_activity(io.BytesIO(script_wav()))
    cut = wav_bytes(stereo, rate=RATE, channels=2)[: 44 + 10 * RATE * 4 + 3]
    reader = open_wav(io.BytesIO(cut))
    vad = StereoVad(reader.format.sample_rate)
    for block in reader.blocks():
        vad.feed(block)
    assert reader.truncated
    activity = vad.finish()
    assert activity.duration_s == pytest.approx(10.0)
    assert [tuple(round(x, 1) for x in span) for span in activity.user] == [(3.8, 9.0)]


def test_wav_reading_memory_is_bounded_by_the_block():
    """Blocks never exceed the requested number of frames, whatever the file's length."""
    reader = open_wav(io.BytesIO(script_wav()))
    sizes = [len(block) for block in reader.blocks(block_frames=1000)]
    assert max(sizes) == 1000 * 4 and sum(sizes) == DURATION_S * RATE * 4
