"""Voice activity of stereo recordings: known bursts found within 50 ms, noise ignored, blocks irrelevant."""
from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest

from livetalk.analytics import Activity, Span, StereoVad, VadSettings
from tests.analytics_helpers import RATE, Burst, Speech, render

TOLERANCE_S = 0.05


def detect(stereo: np.ndarray, *, rate: int = RATE, settings: VadSettings | None = None) -> Activity:
    vad = StereoVad(rate, settings=settings)
    vad.feed(stereo.tobytes())
    return vad.finish()


def assert_spans(found, expected) -> None:
    """Same number of spans, each edge within TOLERANCE_S."""
    assert len(found) == len(expected), f"{found} != {expected}"
    for (s, e), (want_s, want_e) in zip(found, expected):
        assert s == pytest.approx(want_s, abs=TOLERANCE_S) and e == pytest.approx(want_e, abs=TOLERANCE_S), \
            f"{(s, e)} != {(want_s, want_e)}"


BURSTS = [
    Burst("user", 0.513, 2.771),
    Burst("model", 3.2, 6.05, level_dbfs=-16),
    Burst("user", 5.5, 7.25, level_dbfs=-32, freq_hz=150),  # quiet, overlapping the model
    Burst("model", 8.0, 8.35),
    Burst("user", 9.0, 14.0, level_dbfs=-26, freq_hz=330),
]


def spans_of(role: str, bursts) -> list[tuple[float, float]]:
    return [(b.start_s, b.end_s) for b in bursts if b.role == role]


@pytest.mark.parametrize("noise_dbfs", [None, -80.0, -60.0, -48.0])
def test_tone_bursts_are_found_within_50_ms_over_noise(noise_dbfs):
    """Each tone burst is one span on its own channel, edges within 50 ms, at every noise level up to -48 dBFS."""
    activity = detect(render(BURSTS, duration_s=15.0, noise_dbfs=noise_dbfs))
    assert_spans(activity.user, spans_of("user", BURSTS))
    assert_spans(activity.model, spans_of("model", BURSTS))
    assert activity.duration_s == pytest.approx(15.0)


@pytest.mark.parametrize("noise_dbfs", [-90.0, -70.0, -55.0, -45.0, -40.0])
def test_noise_alone_is_not_speech(noise_dbfs):
    """Steady white noise, even loud (-40 dBFS RMS), yields no speech on either side."""
    activity = detect(render([], duration_s=20.0, noise_dbfs=noise_dbfs, seed=3))
    assert activity.user == () and activity.model == ()


@pytest.mark.parametrize("text", [
    "はい、そうですね。ご予算はいかがでしょうか？",
    "[エミュレーター] かしこまりました。来週の火曜日、十四時からでいかがですか。",
    "Sure, that sounds good. What time works for you?",
])
@pytest.mark.parametrize("noise_dbfs", [None, -55.0])
def test_emulator_speech_is_one_span_from_first_to_last_syllable(text, noise_dbfs):
    """The emulator's synthesised reply (tones with short pauses) is one span covering its voiced extent."""
    speech = Speech("model", 1.25, text)
    activity = detect(render([speech], duration_s=speech.voiced_span()[1] + 1.0, noise_dbfs=noise_dbfs))
    assert activity.user == ()
    assert_spans(activity.model, [speech.voiced_span()])


@pytest.mark.parametrize(("pause_s", "spans"), [
    (0.10, 1), (0.25, 1), (0.28, 1),  # short pauses inside speech are merged (hangover 0.3 s)
    (0.36, 2), (0.60, 2), (2.00, 2),  # longer ones separate
])
def test_pauses_up_to_the_hangover_are_merged(pause_s, spans):
    """Two bursts separated by a pause of at most 0.3 s are one span (the pause counts); longer pauses split."""
    bursts = [Burst("user", 1.0, 2.0), Burst("user", 2.0 + pause_s, 3.0 + pause_s)]
    activity = detect(render(bursts, duration_s=5.0, noise_dbfs=-60.0))
    expected = [(1.0, 3.0 + pause_s)] if spans == 1 else spans_of("user", bursts)
    assert_spans(activity.user, expected)


@pytest.mark.parametrize(("length_s", "found"), [(0.02, False), (0.05, False), (0.07, False), (0.14, True)])
def test_segments_shorter_than_the_minimum_are_dropped(length_s, found):
    """A lone burst well under 0.1 s (a click, a cough) is not speech; one of 0.14 s is."""
    activity = detect(render([Burst("user", 1.0, 1.0 + length_s)], duration_s=3.0))
    assert len(activity.user) == int(found)


def test_a_train_of_clicks_is_not_speech():
    """Clicks of 20 ms every 150 ms (typing) are dropped before merging, so they never add up to speech."""
    clicks = [Burst("user", 1.0 + 0.15 * i, 1.02 + 0.15 * i, level_dbfs=-15) for i in range(30)]
    assert detect(render(clicks, duration_s=6.0, noise_dbfs=-65.0)).user == ()


def test_a_long_steady_monologue_stays_one_span():
    """A minute of speech-level tone without a single dip stays one span: the noise floor is capped."""
    activity = detect(render([Burst("user", 2.0, 62.0, level_dbfs=-33)], duration_s=64.0, noise_dbfs=-70.0))
    assert_spans(activity.user, [(2.0, 62.0)])


def test_the_noise_floor_adapts_to_a_noise_step():
    """After the room gets 25 dB noisier, the new noise stops counting as speech, and speech over it is found."""
    rate, quiet_until = RATE, 5.0
    stereo = render([Burst("user", 25.0, 28.0, level_dbfs=-20)], duration_s=30.0, noise_dbfs=-70.0)
    n = int(quiet_until * rate)
    loud = render([], duration_s=30.0, noise_dbfs=-45.0, seed=9)
    stereo[n:, 0] = np.clip(stereo[n:, 0].astype(np.int32) + loud[n:, 0], -32768, 32767)
    activity = detect(stereo)
    *adapting, speech = activity.user
    assert all(span.end_s < quiet_until + 10.0 for span in adapting)
    assert_spans([speech], [(25.0, 28.0)])


def test_digital_silence_does_not_lower_the_noise_floor():
    """Zeros (a gap in the stream) before steady noise do not make that noise count as speech."""
    stereo = render([], duration_s=20.0, noise_dbfs=-47.0)
    stereo[: 10 * RATE] = 0
    assert detect(stereo).user == ()


def test_speech_at_the_very_start_is_found():
    """Speech in the first frame is heard: the noise floor starts at its cap, not at the first frame's level."""
    activity = detect(render([Burst("model", 0.0, 1.5)], duration_s=2.0))
    assert_spans(activity.model, [(0.0, 1.5)])


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_any_sample_rate(rate):
    """The same bursts are found at any sample rate (frames are 20 ms whatever the rate)."""
    activity = detect(render(BURSTS, duration_s=15.0, rate=rate, noise_dbfs=-60.0), rate=rate)
    assert_spans(activity.user, spans_of("user", BURSTS))
    assert_spans(activity.model, spans_of("model", BURSTS))


def conversation_audio() -> bytes:
    """About 40 s with noise, overlaps, pauses near the hangover and emulator speech: a hard case for blocks."""
    parts = [*BURSTS, Speech("model", 15.0, "はい、承知しました。詳しく教えてください。"),
             Burst("user", 17.5, 19.0), Burst("user", 19.29, 21.0), Burst("model", 20.5, 23.0),
             Speech("model", 25.0, "Sure, what about Tuesday at two?"), Burst("user", 26.0, 26.11)]
    return render(parts, duration_s=40.0, noise_dbfs=-52.0, seed=5).tobytes()


def block_sizes(kind: str, total: int) -> list[int]:
    rng = random.Random(kind)
    if kind == "recorder":  # the recorder writes 0.5-5 s of stereo frames at a time
        return [4 * rng.randint(RATE // 2, 5 * RATE) for _ in range(total // (2 * RATE) + 1)]
    if kind == "odd":  # anything at all: split samples, split frames
        return [rng.choice([1, 3, 7, 333, 1001, 9999, 48_001]) for _ in range(total // 2000 + 1)]
    return [int(kind)] * (total // int(kind) + 1)


@pytest.mark.parametrize("kind", ["recorder", "odd", "1919", "1920", "96000"])
def test_block_boundaries_change_nothing(kind):
    """Fed in blocks of any sizes (a split sample, a split frame, recorder-sized), the spans are identical."""
    audio = conversation_audio()
    whole = StereoVad(RATE)
    whole.feed(audio)
    vad, position = StereoVad(RATE), 0
    for size in block_sizes(kind, len(audio)):
        vad.feed(audio[position:position + size])
        position += size
    assert position >= len(audio)
    assert vad.finish() == whole.finish()
    assert len(whole.finish().user) >= 5 and len(whole.finish().model) >= 5  # the case is not trivial


@pytest.mark.parametrize("cut_s", [1.0, 4.0, 8.2, 11.5])
def test_so_far_is_the_finish_of_the_audio_fed_and_feeding_goes_on(cut_s):
    """Midway, so_far() equals what a detector fed only that far finishes with; the full run is unchanged."""
    audio = render(BURSTS, duration_s=15.0, noise_dbfs=-60.0).tobytes()
    cut = int(cut_s * RATE) * 4
    vad, prefix = StereoVad(RATE), StereoVad(RATE)
    vad.feed(audio[:cut])
    prefix.feed(audio[:cut])
    assert vad.so_far() == prefix.finish()
    vad.feed(audio[cut:])
    assert vad.finish() == detect(render(BURSTS, duration_s=15.0, noise_dbfs=-60.0))
    assert vad.so_far() == vad.finish()


def test_memory_does_not_grow_with_the_length_of_the_recording():
    """Ten minutes in 1 s blocks hold no more memory than one minute, beyond the segments found."""
    second = render([Burst("user", 0.2, 0.6), Burst("model", 0.7, 0.9)], duration_s=1.0, noise_dbfs=-60.0).tobytes()
    vad = StereoVad(RATE)
    tracemalloc.start()
    try:
        for _ in range(60):
            vad.feed(second)
        after_one_minute = tracemalloc.get_traced_memory()[0]
        for _ in range(540):
            vad.feed(second)
        after_ten_minutes = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    segments = len(vad.finish().user) + len(vad.finish().model)
    assert segments == 1200
    assert after_ten_minutes - after_one_minute < 200 * segments  # bytes: a few small objects per segment


def test_activity_round_trips_through_json():
    """An Activity stored as JSON (times to the millisecond) reads back equal."""
    activity = Activity((Span(0.52, 2.78),), (Span(3.2, 6.04), Span(8.0, 8.36)), 15.0)
    assert Activity.from_json(activity.to_json()) == activity


@pytest.mark.parametrize("value", [
    {}, {"duration_s": 1, "user": [[0, 1]]}, {"duration_s": 1, "user": [[2, 1]], "model": []},
    {"duration_s": "x", "user": [], "model": []}, {"duration_s": 1, "user": [[0]], "model": []},
])
def test_activity_from_json_refuses_other_shapes(value):
    """A stored activity of the wrong shape is a ValueError, not a wrong answer."""
    with pytest.raises(ValueError):
        Activity.from_json(value)


@pytest.mark.parametrize("kwargs", [
    {"abs_off_dbfs": -40.0}, {"snr_off_db": 12.0}, {"hangover_s": -1.0}, {"frame_s": 0.5},
])
def test_contradictory_settings_are_refused(kwargs):
    """Settings whose 'off' threshold is above the 'on' one, negative times or odd frames are refused."""
    with pytest.raises(ValueError):
        VadSettings(**kwargs)


def test_settings_are_used():
    """A longer hangover passed as a setting merges a pause the default keeps apart."""
    bursts = [Burst("user", 1.0, 2.0), Burst("user", 2.6, 3.6)]
    stereo = render(bursts, duration_s=4.0)
    assert len(detect(stereo).user) == 2
    assert len(detect(stereo, settings=VadSettings(hangover_s=0.8)).user) == 1


def test_feeding_after_finish_is_an_error():
    """A finished detector refuses more audio rather than silently ignoring it."""
    vad = StereoVad(RATE)
    vad.feed(bytes(4 * RATE))
    vad.finish()
    with pytest.raises(RuntimeError):
        vad.feed(bytes(4))
