"""The browser wire format: every client frame the contract allows, and every bad one."""
from __future__ import annotations

import orjson
import pytest

from livetalk import protocol as wire
from livetalk.protocol import ErrorCode


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "text", "text": "こんにちは"}', wire.TextTurn("こんにちは")),
        ('{"text": "legacy form without type"}', wire.TextTurn("legacy form without type")),
        ('{"type": "audio_end"}', wire.AudioEnd()),
        ('{"type": "activity_start"}', wire.ActivityStart()),
        ('{"type": "activity_end"}', wire.ActivityEnd()),
        ('{"type": "ping", "t": 12.5}', wire.Ping(12.5)),
        ('{"type": "ping", "t": "abc"}', wire.Ping("abc")),
        ('{"type": "ping"}', wire.Ping(None)),
        ('{"type": "end"}', wire.End()),
        ('{"type": "playback", "played_ms": 1234}', wire.Playback(1234)),
        ('{"type": "playback", "played_ms": 0}', wire.Playback(0)),
    ],
)
def test_valid_client_frames_parse(frame, expected):
    """Each message type of the contract parses into its message."""
    assert wire.parse_text_frame(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", ErrorCode.BAD_REQUEST),
        ("[1, 2]", ErrorCode.BAD_REQUEST),
        ('{"type": 5}', ErrorCode.BAD_REQUEST),
        ('{"foo": "bar"}', ErrorCode.BAD_REQUEST),
        ('{"type": "dance"}', ErrorCode.BAD_REQUEST),
        ('{"type": "text"}', ErrorCode.BAD_REQUEST),
        ('{"type": "text", "text": 42}', ErrorCode.BAD_REQUEST),
        ('{"type": "text", "text": "   "}', ErrorCode.BAD_REQUEST),
        ('{"type": "ping", "t": {"x": 1}}', ErrorCode.BAD_REQUEST),
        ('{"type": "ping", "t": true}', ErrorCode.BAD_REQUEST),
        ('{"type": "playback"}', ErrorCode.BAD_REQUEST),
        ('{"type": "playback", "played_ms": -1}', ErrorCode.BAD_REQUEST),
        ('{"type": "playback", "played_ms": 1.5}', ErrorCode.BAD_REQUEST),
        ('{"type": "playback", "played_ms": true}', ErrorCode.BAD_REQUEST),
        ('{"type": "playback", "played_ms": 99999999999}', ErrorCode.BAD_REQUEST),
        (orjson.dumps({"type": "text", "text": "あ" * 4001}).decode(), ErrorCode.TOO_LARGE),
        ('{"type": "text", "text": "' + "a" * 40000 + '"}', ErrorCode.TOO_LARGE),
    ],
)
def test_bad_client_frames_are_refused_with_their_code(frame, code):
    """Malformed, unknown or oversized text frames raise the contract's error code."""
    with pytest.raises(wire.ProtocolError) as info:
        wire.parse_text_frame(frame)
    assert info.value.code is code
    assert info.value.message


def test_text_of_exactly_the_limit_is_accepted():
    """A 4000-character turn is within the contract's 1–4000 range."""
    assert wire.parse_text_frame(orjson.dumps({"type": "text", "text": "x" * 4000}).decode()).text == "x" * 4000


@pytest.mark.parametrize(
    ("size", "code"),
    [(0, ErrorCode.BAD_REQUEST), (641, ErrorCode.BAD_REQUEST), (64 * 1024 + 2, ErrorCode.TOO_LARGE)],
)
def test_bad_audio_frames_are_refused(size, code):
    """Empty, odd-length and oversized binary frames are not audio."""
    with pytest.raises(wire.ProtocolError) as info:
        wire.check_audio_frame(bytes(size))
    assert info.value.code is code


@pytest.mark.parametrize("size", [2, 640, 64 * 1024])
def test_good_audio_frames_pass(size):
    """Whole 16-bit samples up to 64 KiB are accepted."""
    wire.check_audio_frame(bytes(size))


def test_ready_event_announces_rates_and_mode():
    """``ready`` carries everything a client needs to start streaming."""
    event = orjson.loads(wire.ready(session_id="s1", scenario="sales-ja", mode=wire.Mode.TEXT,
                                    resume=None, emulated=True, engine="gemini", input_rate=16000,
                                    output_rate=24000))
    assert event == {"type": "ready", "session_id": "s1", "input_rate": 16000, "output_rate": 24000,
                     "scenario": "sales-ja", "mode": "text", "resume": None, "emulated": True,
                     "engine": "gemini"}


def test_error_event_shape():
    """``error`` events carry code, message and fatal."""
    event = orjson.loads(wire.error(ErrorCode.CAPACITY, "full", fatal=True))
    assert event == {"type": "error", "code": "capacity", "message": "full", "fatal": True}


@pytest.mark.parametrize(("value", "mode"), [(None, wire.Mode.VOICE), ("", wire.Mode.VOICE),
                                             ("voice", wire.Mode.VOICE), ("text", wire.Mode.TEXT)])
def test_mode_parameter(value, mode):
    """The ``mode`` query parameter defaults to voice."""
    assert wire.parse_mode(value) is mode


def test_unknown_mode_is_a_bad_request():
    """Any other mode is refused."""
    with pytest.raises(wire.ProtocolError) as info:
        wire.parse_mode("video")
    assert info.value.code is ErrorCode.BAD_REQUEST
