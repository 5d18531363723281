"""Helpers and fixtures for tests that talk to the Gemini emulator: audio, SDK clients, raw sockets.

The fixtures (``emu``, ``fresh_control``, ``client``) are imported by the
``test_emulator*.py`` modules, so that each module runs its own unpaced emulator.
``TIMEOUT_S`` is the one time unit every wait in these tests is scaled from; raise
``TEST_TIMEOUT_SCALE`` (as for the rest of the suite) on a slow machine.
"""
from __future__ import annotations

import array
import asyncio
import base64
import json
import math
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from google import genai
from google.genai import types
from websockets.asyncio.client import ClientConnection, connect

from livetalk.emulator import Emulator

T = TypeVar("T")

SCALE = float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))
TIMEOUT_S = 10.0 * SCALE
API_KEY = "test-key-not-real"
INPUT_RATE_HZ = 16000
CHUNK_MS = 20
LIVE_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
LIVE_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.{method}"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator for the module, replies unpaced so tests run fast."""
    emulator = Emulator(reply_speed=0).start()
    yield emulator
    emulator.stop()


@pytest.fixture(autouse=True)
def fresh_control(emu: Emulator) -> None:
    """Every test starts with no faults, no old sessions and the default mode and settings."""
    emu.control.reset()


@pytest.fixture(scope="module")
def client(emu: Emulator) -> genai.Client:
    """A real SDK client pointed at the emulator (kept alive for the module)."""
    return sdk_client(emu)


def newest_session(emu: Emulator) -> dict[str, Any]:
    """The most recent Live session's statistics, once it has ended."""

    def ended() -> dict[str, Any] | None:
        newest = emu.control.sessions()[-1]
        return None if newest["open"] else newest

    return emu.control.wait_for(ended, TIMEOUT_S)


def http(emu: Emulator, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    """A plain HTTPS request to the emulator; returns (status, parsed JSON body)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(emu.base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, context=emu.client_ssl_context(), timeout=TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def tls_socket(emu: Emulator) -> ssl.SSLSocket:
    """A raw TLS connection to the emulator, for bytes no HTTP library would send."""
    raw = socket.create_connection(("127.0.0.1", emu.port), timeout=TIMEOUT_S)
    return emu.client_ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_until_closed(sock: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


def run(coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT_S) -> T:
    """Run ``coro`` on a fresh event loop, failing after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def tone(ms: int, *, freq_hz: float = 440.0, dbfs: float = -10.0, rate_hz: int = INPUT_RATE_HZ) -> bytes:
    """A sine tone as PCM16; ``dbfs`` is its RMS level."""
    peak = 32768 * 10 ** (dbfs / 20) * math.sqrt(2)
    n = rate_hz * ms // 1000
    return array.array("h", (int(peak * math.sin(2 * math.pi * freq_hz * i / rate_hz)) for i in range(n))).tobytes()


def silence(ms: int, *, rate_hz: int = INPUT_RATE_HZ) -> bytes:
    """Digital silence as PCM16."""
    return bytes(2 * (rate_hz * ms // 1000))


def chunks(pcm: bytes, ms: int = CHUNK_MS, *, rate_hz: int = INPUT_RATE_HZ) -> list[bytes]:
    """Split PCM16 into pieces of ``ms``."""
    size = 2 * rate_hz * ms // 1000
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def sdk_client(emu: Emulator, *, api_version: str = "v1beta", api_key: str = API_KEY) -> genai.Client:
    """A real google-genai client pointed at ``emu`` (keep a reference while using it)."""
    context = emu.client_ssl_context()
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=emu.base_url,
            api_version=api_version,
            async_client_args={"ssl": context},
            client_args={"verify": context},
        ),
    )


def live_config(**overrides: Any) -> types.LiveConnectConfig:
    """An audio session config with both transcriptions, English unless overridden."""
    fields: dict[str, Any] = {
        "response_modalities": ["AUDIO"],
        "input_audio_transcription": {},
        "output_audio_transcription": {},
        "speech_config": types.SpeechConfig(language_code="en-US"),
    }
    fields.update(overrides)
    return types.LiveConnectConfig(**fields)


async def send_audio(session: Any, pcm: bytes, *, rate_hz: int = INPUT_RATE_HZ) -> None:
    """Stream PCM16 through the SDK in 20 ms chunks (as fast as the socket takes them)."""
    for piece in chunks(pcm, rate_hz=rate_hz):
        await session.send_realtime_input(audio=types.Blob(data=piece, mime_type=f"audio/pcm;rate={rate_hz}"))


async def receive_turn(session: Any) -> list[types.LiveServerMessage]:
    """Every message up to and including the next turn_complete."""
    return [message async for message in session.receive()]


def joined(messages: list[types.LiveServerMessage], field: str) -> str:
    """Concatenate ``server_content.<field>.text`` over ``messages``."""
    texts = []
    for message in messages:
        content = message.server_content
        value = getattr(content, field, None) if content else None
        if value is not None and value.text:
            texts.append(value.text)
    return "".join(texts)


def live_url(emu: Emulator, *, version: str = "v1beta", method: str = "BidiGenerateContent", query: str = "") -> str:
    """The wss:// URL of the Live endpoint, optionally with a query string."""
    url = emu.base_url.replace("https://", "wss://") + LIVE_PATH.format(version=version, method=method)
    return f"{url}?{query}" if query else url


async def raw_connect(emu: Emulator, url: str | None = None, **headers: str) -> ClientConnection:
    """A plain websockets client connection (no SDK) to the Live endpoint."""
    return await connect(
        url or live_url(emu), ssl=emu.client_ssl_context(), additional_headers=headers, open_timeout=TIMEOUT_S
    )


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    """The next server message, parsed; asserts the real server's binary framing."""
    frame = await asyncio.wait_for(ws.recv(), TIMEOUT_S)
    assert isinstance(frame, bytes), "server frames must be binary"
    return json.loads(frame)


async def recv_until(ws: ClientConnection, key: str) -> list[dict[str, Any]]:
    """Server messages up to the first whose serverContent (or top level) has ``key``."""
    seen = []
    while True:
        message = await recv_json(ws)
        seen.append(message)
        if key in message or key in message.get("serverContent", {}):
            return seen


def b64(data: bytes, *, urlsafe: bool, padded: bool) -> str:
    """Base64 in either alphabet, with or without padding."""
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return text if padded else text.rstrip("=")
