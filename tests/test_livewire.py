"""The hot-path Live wire format matches what the google-genai SDK itself sends and reads."""
from __future__ import annotations

import asyncio
import base64
import json

import pytest
from google.genai import live as sdk_live
from google.genai import types

from livetalk import engine as ev
from livetalk import livewire


class _CapturingSocket:
    """Stands in for the SDK's websocket: records what the SDK sends, replays a frame."""

    def __init__(self, frame: bytes = b"{}") -> None:
        self.sent: list[str] = []
        self.frame = frame

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self, decode: bool = False) -> bytes:
        return self.frame


class _ApiClient:
    vertexai = False


def _sdk_session(frame: bytes = b"{}") -> tuple[sdk_live.AsyncSession, _CapturingSocket]:
    ws = _CapturingSocket(frame)
    return sdk_live.AsyncSession(api_client=_ApiClient(), websocket=ws), ws


def test_audio_message_is_byte_identical_to_the_sdk():
    """Our realtime audio JSON equals ``send_realtime_input(audio=...)``'s, byte for byte."""
    pcm = bytes(range(256)) * 5
    session, ws = _sdk_session()
    asyncio.run(session.send_realtime_input(audio=types.Blob(data=pcm, mime_type="audio/pcm;rate=16000")))
    assert livewire.encode_audio(pcm).decode() == ws.sent[0]


@pytest.mark.parametrize(
    ("ours", "sdk_call"),
    [
        (livewire.AUDIO_STREAM_END, lambda s: s.send_realtime_input(audio_stream_end=True)),
        (livewire.ACTIVITY_START, lambda s: s.send_realtime_input(activity_start=types.ActivityStart())),
        (livewire.ACTIVITY_END, lambda s: s.send_realtime_input(activity_end=types.ActivityEnd())),
        (livewire.encode_text("「見積もり」は?"), lambda s: s.send_realtime_input(text="「見積もり」は?")),
    ],
)
def test_control_messages_mean_what_the_sdk_sends(ours, sdk_call):
    """Control and text messages decode to the same JSON the SDK sends."""
    session, ws = _sdk_session()
    asyncio.run(sdk_call(session))
    assert json.loads(ours) == json.loads(ws.sent[0])


def _frame(obj: dict) -> bytes:
    return json.dumps(obj).encode()


def test_model_audio_matches_the_sdk_reading():
    """Audio parts decode to the same bytes the SDK's ``msg.data`` returns (standard base64)."""
    pcm = bytes(range(250, 256)) * 160
    frame = _frame({"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(pcm).decode()}}]}}})
    session, _ = _sdk_session(frame)
    sdk_msg = asyncio.run(session._receive())
    assert livewire.parse_server_message(frame) == [ev.ModelAudio(sdk_msg.data)]
    assert sdk_msg.data == pcm


def test_url_safe_base64_audio_is_accepted():
    """Either base64 alphabet decodes to the same audio."""
    pcm = bytes([0xFB, 0xFF] * 100)
    data = base64.urlsafe_b64encode(pcm).decode().rstrip("=")
    frame = _frame({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": data}}]}}})
    assert livewire.parse_server_message(frame) == [ev.ModelAudio(pcm)]


@pytest.mark.parametrize(
    ("message", "events"),
    [
        ({"serverContent": {"inputTranscription": {"text": "見積もり", "finished": True}}},
         [ev.Transcription("user", "見積もり", True)]),
        ({"serverContent": {"outputTranscription": {"text": "はい"}}},
         [ev.Transcription("model", "はい", False)]),
        ({"serverContent": {"interrupted": True}}, [ev.Interrupted()]),
        ({"serverContent": {"generationComplete": True}}, [ev.GenerationComplete()]),
        ({"serverContent": {"turnComplete": True}, "usageMetadata": {"totalTokenCount": 35}},
         [ev.TurnComplete({"totalTokenCount": 35})]),
        ({"sessionResumptionUpdate": {"newHandle": "h-1", "resumable": True}}, [ev.Resumption("h-1", True)]),
        ({"sessionResumptionUpdate": {"resumable": False}}, [ev.Resumption(None, False)]),
        ({"goAway": {"timeLeft": "50s"}}, [ev.GoAway(50.0)]),
        ({"serverContent": {"modelTurn": {"parts": [{"text": "It is noon."}]}}}, [ev.ModelText("It is noon.")]),
        ({"serverContent": {"modelTurn": {"parts": [{"text": "thinking", "thought": True}]}}}, []),
        ({"usageMetadata": {"totalTokenCount": 3}}, [ev.Usage({"totalTokenCount": 3})]),
        ({"error": {"code": 429, "message": "quota"}}, [ev.ServerError(429, "quota")]),
        ({"setupComplete": {}}, []),
    ],
)
def test_server_messages_become_events(message, events):
    """Each server message kind the relay acts on becomes its event."""
    assert livewire.parse_server_message(_frame(message)) == events


def test_combined_content_keeps_a_useful_order():
    """3.x-style frames with audio and transcript together yield both, audio first."""
    frame = _frame({"serverContent": {
        "modelTurn": {"parts": [{"inlineData": {"data": "AAA="}}]},
        "outputTranscription": {"text": "Hi"},
        "turnComplete": True}})
    kinds = [type(e) for e in livewire.parse_server_message(frame)]
    assert kinds == [ev.ModelAudio, ev.Transcription, ev.TurnComplete]


def test_garbage_frames_do_not_raise():
    """A frame that is not JSON becomes an error event, not an exception."""
    assert isinstance(livewire.parse_server_message(b"\xff\x00")[0], ev.ServerError)


@pytest.mark.parametrize(("value", "seconds"), [("50s", 50.0), ("0.5s", 0.5), (3, 3.0), ("soon", None), (None, None)])
def test_durations(value, seconds):
    """Protobuf JSON durations parse to seconds."""
    assert livewire.parse_duration(value) == seconds


def test_tool_calls_read_like_the_sdk_reads_them():
    """toolCall and toolCallCancellation decode to the ids, names and arguments the SDK's typed message holds."""
    call = {"toolCall": {"functionCalls": [{"id": "fc-1", "name": "schedule_meeting",
                                            "args": {"date": "2026-12-03", "time": "14:00"}}]}}
    cancel = {"toolCallCancellation": {"ids": ["fc-1"]}}
    session, _ = _sdk_session(_frame(call))
    sdk_call = asyncio.run(session._receive()).tool_call.function_calls[0]
    assert livewire.parse_server_message(_frame(call)) == [
        ev.ToolCall((ev.FunctionCall(sdk_call.id, sdk_call.name, sdk_call.args),))]
    session, _ = _sdk_session(_frame(cancel))
    sdk_ids = asyncio.run(session._receive()).tool_call_cancellation.ids
    assert livewire.parse_server_message(_frame(cancel)) == [ev.ToolCallCancellation(tuple(sdk_ids))]
