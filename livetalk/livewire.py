"""The per-message Gemini Live wire format used on the hot path: pure, no I/O.

The google-genai SDK opens and sets up the Live session (URL, auth, TLS, the
``setup`` message built from ``LiveConnectConfig``). For the frames that repeat
50 times a second per conversation the relay encodes and decodes JSON itself:
``send_realtime_input`` spends ~29 µs per audio chunk on pydantic validation and
the SDK's receive ~54 µs per reply building typed objects, against ~1 µs and
~5 µs here (bench/bench_relay.py --micro). The shapes are exactly what the SDK
sends and accepts (see ../shared/reference/gemini-live-wire-protocol.md §2–3);
tests/test_livewire.py checks them against the SDK's own output.
"""
from __future__ import annotations

import base64
import re

import orjson

from .engine import (
    Event,
    FunctionCall,
    GenerationComplete,
    GoAway,
    Interrupted,
    ModelAudio,
    ModelText,
    Resumption,
    ServerError,
    Transcription,
    ToolCall,
    ToolCallCancellation,
    TurnComplete,
    Usage,
)

AUDIO_STREAM_END = '{"realtime_input": {"audioStreamEnd": true}}'
ACTIVITY_START = '{"realtime_input": {"activityStart": {}}}'
ACTIVITY_END = '{"realtime_input": {"activityEnd": {}}}'

_AUDIO_HEAD = b'{"realtime_input": {"audio": {"data": "'
_AUDIO_TAIL = b'", "mime_type": "audio/pcm;rate=%d"}}}'


_AUDIO_TAIL_16K = _AUDIO_TAIL % 16000


def encode_audio(pcm: bytes, rate_hz: int = 16000) -> bytes:
    """A ``realtime_input.audio`` message for PCM16 mono at ``rate_hz`` (UTF-8 JSON bytes)."""
    tail = _AUDIO_TAIL_16K if rate_hz == 16000 else _AUDIO_TAIL % rate_hz
    return _AUDIO_HEAD + base64.urlsafe_b64encode(pcm) + tail


def encode_text(text: str) -> str:
    """A ``realtime_input.text`` message (a typed user turn)."""
    return orjson.dumps({"realtime_input": {"text": text}}).decode()


# --- server messages ---------------------------------------------------------------

_INTERRUPTED = Interrupted()
_GENERATION_COMPLETE = GenerationComplete()


def parse_server_message(raw: bytes | str) -> list[Event]:
    """Decode one server frame into events, in the order a client should act on them."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [ServerError(None, "upstream sent a frame that is not JSON")]
    if not isinstance(msg, dict):
        return []
    events: list[Event] = []
    content = msg.get("serverContent")
    if content:
        _server_content(content, msg.get("usageMetadata"), events)
    elif "usageMetadata" in msg:
        events.append(Usage(msg["usageMetadata"]))
    if "sessionResumptionUpdate" in msg:
        update = msg["sessionResumptionUpdate"] or {}
        events.append(Resumption(update.get("newHandle") or None, bool(update.get("resumable"))))
    if "toolCall" in msg:
        calls = ((msg["toolCall"] or {}).get("functionCalls")) or []
        events.append(ToolCall(tuple(_function_call(c) for c in calls if isinstance(c, dict))))
    if "toolCallCancellation" in msg:
        ids = ((msg["toolCallCancellation"] or {}).get("ids")) or []
        events.append(ToolCallCancellation(tuple(str(i) for i in ids)))
    if "goAway" in msg:
        events.append(GoAway(parse_duration((msg["goAway"] or {}).get("timeLeft"))))
    if "error" in msg or ("code" in msg and "message" in msg):
        err = msg.get("error") or msg
        events.append(ServerError(err.get("code"), str(err.get("message", ""))[:200]))
    return events


def _server_content(content: dict, usage: dict | None, events: list[Event]) -> None:
    if content.get("interrupted"):
        events.append(_INTERRUPTED)
    turn = content.get("modelTurn")
    if turn:
        for part in turn.get("parts") or ():
            _part(part, events)
    for key, role in (("inputTranscription", "user"), ("outputTranscription", "model")):
        tr = content.get(key)
        if tr and (tr.get("text") or tr.get("finished")):
            events.append(Transcription(role, tr.get("text") or "", bool(tr.get("finished"))))
    if content.get("generationComplete"):
        events.append(_GENERATION_COMPLETE)
    if content.get("turnComplete"):
        events.append(TurnComplete(usage))
    elif usage:
        events.append(Usage(usage))


def _part(part: dict, events: list[Event]) -> None:
    blob = part.get("inlineData") or part.get("inline_data")
    if blob:
        events.append(ModelAudio(decode_b64(blob.get("data") or "")))
    elif part.get("text") and not part.get("thought"):
        events.append(ModelText(part["text"]))


def _function_call(call: dict) -> FunctionCall:
    args = call.get("args")
    return FunctionCall(str(call.get("id") or ""), str(call.get("name") or ""), args if isinstance(args, dict) else {})


def decode_b64(data: str) -> bytes:
    """Decode standard or URL-safe base64 (the real server sends standard)."""
    if "-" in data or "_" in data:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return base64.b64decode(data + "=" * (-len(data) % 4))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_duration(value: object) -> float | None:
    """A protobuf JSON duration like ``"50s"`` or ``"0.5s"`` in seconds, else None."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1))
    return None
