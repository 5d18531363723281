"""OpenAI Realtime server events (GA shapes, as ``openai.types.realtime`` declares them). Pure.

Each function returns one event without its ``event_id``; the session's sender
numbers events as they go out. Items and responses are built here too, so every
event that carries one carries the same shape.
"""
from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from livetalk.emulator.openai.conversation import snapshot
from livetalk.emulator.reply import text_tokens

AUDIO_IN_TOKENS_PER_S = 10  # user audio: one token per 100 ms
AUDIO_OUT_TOKENS_PER_S = 20  # model audio: one token per 50 ms
RATE_LIMIT_REQUESTS = 5000  # per minute, as a usage tier reports them
RATE_LIMIT_TOKENS = 400_000  # per minute
RATE_LIMIT_RESET_S = 60.0

Event = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PartRef:
    """Where a content part sits: its response, item, and indexes."""

    response_id: str
    item_id: str
    output_index: int = 0
    content_index: int = 0

    def fields(self) -> dict[str, Any]:
        """The four location fields every part event carries."""
        return dataclasses.asdict(self)


# -- session and errors -------------------------------------------------------------------------


def session_created(session: Mapping[str, Any]) -> Event:
    """``session.created`` with the full session object."""
    return {"type": "session.created", "session": dict(session)}


def session_updated(session: Mapping[str, Any]) -> Event:
    """``session.updated`` with the full effective session object."""
    return {"type": "session.updated", "session": dict(session)}


def error(body: Mapping[str, Any]) -> Event:
    """``error`` carrying ``{type, code, message, param, event_id}``."""
    return {"type": "error", "error": dict(body)}


def rate_limits(*, requests_used: int, tokens_used: int) -> Event:
    """``rate_limits.updated``: what is left of the per-minute request and token limits."""
    limits = [("requests", RATE_LIMIT_REQUESTS, requests_used), ("tokens", RATE_LIMIT_TOKENS, tokens_used)]
    return {"type": "rate_limits.updated", "rate_limits": [
        {"name": name, "limit": limit, "remaining": max(0, limit - used), "reset_seconds": RATE_LIMIT_RESET_S}
        for name, limit, used in limits
    ]}


# -- input audio buffer -------------------------------------------------------------------------


def speech_started(*, audio_start_ms: float, item_id: str) -> Event:
    """``input_audio_buffer.speech_started``."""
    return {"type": "input_audio_buffer.speech_started", "audio_start_ms": int(audio_start_ms), "item_id": item_id}


def speech_stopped(*, audio_end_ms: float, item_id: str) -> Event:
    """``input_audio_buffer.speech_stopped``."""
    return {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": int(audio_end_ms), "item_id": item_id}


def committed(*, item_id: str, previous_item_id: str | None) -> Event:
    """``input_audio_buffer.committed``."""
    return {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous_item_id}


def cleared() -> Event:
    """``input_audio_buffer.cleared``."""
    return {"type": "input_audio_buffer.cleared"}


# -- conversation ------------------------------------------------------------------------------


def item_added(item: Mapping[str, Any], previous_item_id: str | None) -> Event:
    """``conversation.item.added``."""
    return {"type": "conversation.item.added", "item": snapshot(item), "previous_item_id": previous_item_id}


def item_done(item: Mapping[str, Any], previous_item_id: str | None) -> Event:
    """``conversation.item.done``."""
    return {"type": "conversation.item.done", "item": snapshot(item), "previous_item_id": previous_item_id}


def item_truncated(*, item_id: str, content_index: int, audio_end_ms: int) -> Event:
    """``conversation.item.truncated``."""
    return {"type": "conversation.item.truncated", "item_id": item_id, "content_index": content_index,
            "audio_end_ms": audio_end_ms}


def item_deleted(item_id: str) -> Event:
    """``conversation.item.deleted``."""
    return {"type": "conversation.item.deleted", "item_id": item_id}


def item_retrieved(item: Mapping[str, Any]) -> Event:
    """``conversation.item.retrieved``."""
    return {"type": "conversation.item.retrieved", "item": snapshot(item)}


def transcription_delta(*, item_id: str, delta: str) -> Event:
    """``conversation.item.input_audio_transcription.delta``."""
    return {"type": "conversation.item.input_audio_transcription.delta", "item_id": item_id, "content_index": 0,
            "delta": delta}


def transcription_completed(*, item_id: str, transcript: str, seconds: float) -> Event:
    """``conversation.item.input_audio_transcription.completed`` with duration-billed usage."""
    return {"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id, "content_index": 0,
            "transcript": transcript, "usage": {"type": "duration", "seconds": round(seconds, 3)}}


def user_audio_item(item_id: str) -> dict[str, Any]:
    """The user message a committed audio buffer becomes (no transcript yet)."""
    return {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}]}


# -- responses ---------------------------------------------------------------------------------


def assistant_item(item_id: str) -> dict[str, Any]:
    """An assistant message as it starts (in progress, no content)."""
    return {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
            "status": "in_progress", "content": []}


def function_call_item(item_id: str, *, call_id: str, name: str) -> dict[str, Any]:
    """A function call item as it starts (in progress, no arguments yet)."""
    return {"id": item_id, "object": "realtime.item", "type": "function_call", "status": "in_progress",
            "name": name, "call_id": call_id, "arguments": ""}


def response_resource(response_id: str, *, status: str, output: list[Mapping[str, Any]], audio: bool, voice: str,
                      conversation_id: str, metadata: Any = None, usage: Mapping[str, Any] | None = None,
                      status_details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``response`` object of ``response.created`` / ``response.done``."""
    pcm = {"type": "audio/pcm", "rate": 24000}
    return {
        "object": "realtime.response", "id": response_id, "status": status, "status_details": status_details,
        "output": [snapshot(item) for item in output], "conversation_id": conversation_id,
        "output_modalities": ["audio" if audio else "text"], "max_output_tokens": "inf",
        "audio": {"output": {"format": pcm, "voice": voice}}, "usage": usage, "metadata": metadata,
    }


def response_created(response: Mapping[str, Any]) -> Event:
    """``response.created``."""
    return {"type": "response.created", "response": dict(response)}


def response_done(response: Mapping[str, Any]) -> Event:
    """``response.done``."""
    return {"type": "response.done", "response": dict(response)}


def output_item_added(response_id: str, index: int, item: Mapping[str, Any]) -> Event:
    """``response.output_item.added``."""
    return {"type": "response.output_item.added", "response_id": response_id, "output_index": index,
            "item": snapshot(item)}


def output_item_done(response_id: str, index: int, item: Mapping[str, Any]) -> Event:
    """``response.output_item.done``."""
    return {"type": "response.output_item.done", "response_id": response_id, "output_index": index,
            "item": snapshot(item)}


def content_part_added(ref: PartRef, *, audio: bool) -> Event:
    """``response.content_part.added`` with an empty audio (transcript) or text part."""
    part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
    return {"type": "response.content_part.added", **ref.fields(), "part": part}


def content_part_done(ref: PartRef, *, audio: bool, text: str) -> Event:
    """``response.content_part.done`` with the part's final transcript or text."""
    part = {"type": "audio", "transcript": text} if audio else {"type": "text", "text": text}
    return {"type": "response.content_part.done", **ref.fields(), "part": part}


def audio_delta(ref: PartRef, pcm: bytes) -> Event:
    """``response.output_audio.delta``: base64 PCM16 at 24 kHz."""
    return {"type": "response.output_audio.delta", **ref.fields(), "delta": base64.b64encode(pcm).decode("ascii")}


def audio_done(ref: PartRef) -> Event:
    """``response.output_audio.done``."""
    return {"type": "response.output_audio.done", **ref.fields()}


def transcript_delta(ref: PartRef, delta: str) -> Event:
    """``response.output_audio_transcript.delta``."""
    return {"type": "response.output_audio_transcript.delta", **ref.fields(), "delta": delta}


def transcript_done(ref: PartRef, transcript: str) -> Event:
    """``response.output_audio_transcript.done``."""
    return {"type": "response.output_audio_transcript.done", **ref.fields(), "transcript": transcript}


def text_delta(ref: PartRef, delta: str) -> Event:
    """``response.output_text.delta``."""
    return {"type": "response.output_text.delta", **ref.fields(), "delta": delta}


def text_done(ref: PartRef, text: str) -> Event:
    """``response.output_text.done``."""
    return {"type": "response.output_text.done", **ref.fields(), "text": text}


def arguments_delta(ref: PartRef, *, call_id: str, delta: str) -> Event:
    """``response.function_call_arguments.delta`` (no content index: a call has no parts)."""
    return {"type": "response.function_call_arguments.delta", "response_id": ref.response_id,
            "item_id": ref.item_id, "output_index": ref.output_index, "call_id": call_id, "delta": delta}


def arguments_done(ref: PartRef, *, call_id: str, name: str, arguments: str) -> Event:
    """``response.function_call_arguments.done`` with the whole JSON arguments."""
    return {"type": "response.function_call_arguments.done", "response_id": ref.response_id,
            "item_id": ref.item_id, "output_index": ref.output_index, "call_id": call_id, "name": name,
            "arguments": arguments}


# -- usage -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Token counts by modality."""

    text: int = 0
    audio: int = 0

    @property
    def total(self) -> int:
        """Text and audio tokens together."""
        return self.text + self.audio

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.text + other.text, self.audio + other.audio)


def text_cost(text: str) -> Tokens:
    """What ``text`` costs (nothing for an empty string)."""
    return Tokens(text=text_tokens(text)) if text else Tokens()


def audio_cost(seconds: float, *, output: bool) -> Tokens:
    """What ``seconds`` of audio cost, by the documented rates for input or output audio."""
    rate = AUDIO_OUT_TOKENS_PER_S if output else AUDIO_IN_TOKENS_PER_S
    return Tokens(audio=math.ceil(seconds * rate)) if seconds > 0 else Tokens()


def usage(input_tokens: Tokens, output_tokens: Tokens) -> dict[str, Any]:
    """The ``usage`` object of ``response.done`` (no cached tokens: the emulator caches nothing)."""
    return {
        "total_tokens": input_tokens.total + output_tokens.total,
        "input_tokens": input_tokens.total,
        "output_tokens": output_tokens.total,
        "input_token_details": {
            "text_tokens": input_tokens.text, "audio_tokens": input_tokens.audio, "image_tokens": 0,
            "cached_tokens": 0, "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": output_tokens.text, "audio_tokens": output_tokens.audio},
    }


class Ids:
    """The ids one session hands out: ``item_s1_0001``, ``resp_s1_0001``… (opaque to clients, readable in tests)."""

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        self._counts: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        """A new id with ``prefix`` (``item``, ``resp``)."""
        count = self._counts.get(prefix, 0) + 1
        self._counts[prefix] = count
        return f"{prefix}_{self._session_id}_{count:04d}"
