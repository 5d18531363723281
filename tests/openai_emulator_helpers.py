"""Helpers for tests that drive the OpenAI Realtime emulator through the unmodified ``openai`` SDK.

The SDK is configured as the product would configure it: ``AsyncOpenAI(base_url=emu.openai_base_url)``
(``https://127.0.0.1:PORT/v1``, so the socket is ``wss://127.0.0.1:PORT/v1/realtime?model=M``) with an SSL
context trusting the emulator's CA passed as ``websocket_connection_options``. Audio is PCM16 at 24 kHz.
Every receive is bounded by ``TIMEOUT_S`` (scaled by ``TEST_TIMEOUT_SCALE``).
"""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pydantic
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import RealtimeServerEvent

from livetalk.emulator import Emulator
from tests.emulator_helpers import API_KEY, TIMEOUT_S, chunks, silence, tone

MODEL = "gpt-realtime-2"
RATE_HZ = 24000
ENGLISH = "You are a friendly sales prospect. Answer briefly."
JAPANESE = "あなたは見込み客です。短く答えてください。"
SCHEDULE_TOOL = {
    "type": "function", "name": "schedule_meeting", "description": "Book a meeting.",
    "parameters": {"type": "object", "properties": {"date": {"type": "string"}, "time": {"type": "string"},
                                                    "topic": {"type": "string"}}},
}
_EVENT_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)


def sdk(emu: Emulator, *, api_key: str = API_KEY, headers: dict[str, str] | None = None) -> AsyncOpenAI:
    """A real ``AsyncOpenAI`` client for the emulator (its Realtime socket is ``wss://…/v1/realtime``)."""
    return AsyncOpenAI(api_key=api_key, base_url=emu.openai_base_url, max_retries=0, default_headers=headers)


def connect(emu: Emulator, *, model: str | None = MODEL, api_key: str = API_KEY,
            headers: dict[str, str] | None = None, **options: Any) -> Any:
    """``client.realtime.connect(...)`` trusting the emulator's CA (an async context manager).

    ``headers`` become the client's default headers (they override the SDK's own, Authorization included);
    ``options`` are websockets connect options.
    """
    websocket_options = {"ssl": emu.client_ssl_context(), "open_timeout": TIMEOUT_S, **options}
    kwargs = {"model": model} if model is not None else {}
    client = sdk(emu, api_key=api_key, headers=headers)
    return client.realtime.connect(websocket_connection_options=websocket_options, **kwargs)


def pcm_tone(ms: int, **kwargs: Any) -> bytes:
    """A 24 kHz sine tone (-10 dBFS unless said otherwise)."""
    return tone(ms, rate_hz=RATE_HZ, **kwargs)


def pcm_silence(ms: int) -> bytes:
    """24 kHz digital silence."""
    return silence(ms, rate_hz=RATE_HZ)


async def send_audio(conn: AsyncRealtimeConnection, pcm: bytes, *, chunk_ms: int = 40) -> None:
    """Append PCM16 in ``chunk_ms`` pieces (as fast as the socket takes them)."""
    for piece in chunks(pcm, chunk_ms, rate_hz=RATE_HZ):
        await conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())


async def recv(conn: AsyncRealtimeConnection) -> Any:
    """The next server event, checked against the SDK's own event types (strict validation)."""
    raw = await asyncio.wait_for(conn.recv_bytes(), TIMEOUT_S)
    _EVENT_ADAPTER.validate_json(raw)
    return conn.parse_event(raw)


async def until(conn: AsyncRealtimeConnection, kind: str) -> list[Any]:
    """Events up to and including the first of type ``kind``."""
    seen = []
    while True:
        event = await recv(conn)
        seen.append(event)
        if event.type == kind:
            return seen


async def until_count(conn: AsyncRealtimeConnection, kind: str, count: int) -> list[Any]:
    """Events up to and including the ``count``-th of type ``kind``."""
    seen: list[Any] = []
    while len(of_type(seen, kind)) < count:
        seen.append(await recv(conn))
    return seen


async def opened(conn: AsyncRealtimeConnection) -> Any:
    """The ``session.created`` every connection starts with."""
    event = await recv(conn)
    assert event.type == "session.created", event
    return event


async def configure(conn: AsyncRealtimeConnection, **session: Any) -> Any:
    """A GA ``session.update`` (English, transcription on, unless overridden); returns ``session.updated``."""
    fields: dict[str, Any] = {"type": "realtime", "instructions": ENGLISH,
                              "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}}
    fields.update(session)
    await conn.session.update(session=fields)
    events = await until(conn, "session.updated")
    assert [event.type for event in events] == ["session.updated"], events
    return events[-1]


async def say(conn: AsyncRealtimeConnection, text: str, *, respond: bool = True) -> None:
    """A typed user message, then (``respond``) ``response.create``."""
    await conn.conversation.item.create(item={"type": "message", "role": "user",
                                              "content": [{"type": "input_text", "text": text}]})
    if respond:
        await conn.response.create()


def of_type(events: list[Any], kind: str) -> list[Any]:
    """The events of one type."""
    return [event for event in events if event.type == kind]


def types_of(events: list[Any]) -> list[str]:
    """Event types in order, with runs of deltas collapsed to one entry."""
    collapsed: list[str] = []
    for event in events:
        if not (collapsed and collapsed[-1] == event.type and event.type.endswith(".delta")):
            collapsed.append(event.type)
    return collapsed


def audio_of(events: list[Any]) -> bytes:
    """The PCM carried by ``response.output_audio.delta`` events."""
    return b"".join(base64.b64decode(event.delta) for event in of_type(events, "response.output_audio.delta"))


def joined(events: list[Any], kind: str) -> str:
    """The ``delta`` texts of one delta event type, joined."""
    return "".join(event.delta for event in of_type(events, kind))


def error_of(event: Any) -> dict[str, Any]:
    """An ``error`` event's error object as a dict."""
    assert event.type == "error", event
    return json.loads(event.error.model_dump_json())
