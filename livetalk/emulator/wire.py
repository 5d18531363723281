"""Pure helpers for the Gemini wire format: key spellings, base64, server frames.

The google-genai SDK mixes snake_case and camelCase keys (and the JS SDK sends
camelCase only), and it encodes bytes as URL-safe base64 while the real server
sends standard base64. Everything here is pure: no I/O, no state.
"""
from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping
from typing import Any

import orjson

MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes
OUTPUT_AUDIO_MIME = "audio/pcm;rate=24000"
DEFAULT_INPUT_RATE_HZ = 16000

_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")
_AUDIO_PREFIX = (
    b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"'
    + OUTPUT_AUDIO_MIME.encode()
    + b'","data":"'
)
_AUDIO_SUFFIX = b'"}}]}}}'


@functools.lru_cache(maxsize=512)
def snake(camel: str) -> str:
    """``"generationConfig"`` → ``"generation_config"``."""
    return _CAMEL_HUMP.sub("_", camel).lower()


def pick(obj: Any, camel: str, default: Any = None) -> Any:
    """``obj[camel]`` or ``obj[snake_case(camel)]``, else ``default``; tolerates non-dicts."""
    if not isinstance(obj, Mapping):
        return default
    value = obj.get(camel)
    if value is None:
        value = obj.get(snake(camel))
    return default if value is None else value


def has(obj: Any, camel: str) -> bool:
    """Whether ``obj`` holds ``camel`` in either spelling (even with a falsy value)."""
    return isinstance(obj, Mapping) and (camel in obj or snake(camel) in obj)


def pick_path(obj: Any, *camels: str, default: Any = None) -> Any:
    """Follow ``camels`` through nested mappings, each key in either spelling."""
    for camel in camels:
        obj = pick(obj, camel)
        if obj is None:
            return default
    return obj


def b64decode(data: str | bytes) -> bytes:
    """Decode standard or URL-safe base64, with or without padding (strictly, as the real API does).

    Raises:
        ValueError: ``data`` is not base64 (or not text at all).
    """
    if not isinstance(data, (str, bytes)):
        raise ValueError("bad base64: not a string")
    try:
        if isinstance(data, str):
            data = data.encode("ascii")
        data = data.translate(_URLSAFE_TO_STANDARD)
        if len(data) % 4:
            data = data.rstrip(b"=") + b"=" * (-len(data.rstrip(b"=")) % 4)
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"bad base64: {exc}") from None


def b64encode(data: bytes) -> str:
    """Standard base64 (with ``+``, ``/`` and padding), as the real server sends."""
    return base64.b64encode(data).decode("ascii")


@functools.lru_cache(maxsize=64)
def mime_rate(mime_type: str | None, default: int = DEFAULT_INPUT_RATE_HZ) -> int:
    """The ``rate=N`` parameter of an ``audio/pcm;rate=N`` MIME type, in Hz."""
    if not mime_type:
        return default
    for param in mime_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "rate" and value.strip().isdigit():
            return max(1, int(value.strip()))
    return default


def clip_reason(reason: str) -> str:
    """Cut a close reason to at most 123 UTF-8 bytes without splitting a character."""
    raw = reason.encode()
    if len(raw) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return raw[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


def dumps(message: Mapping[str, Any]) -> bytes:
    """Serialise one server message as compact UTF-8 JSON."""
    return orjson.dumps(message)


def audio_frame(pcm: bytes) -> bytes:
    """A ``serverContent.modelTurn`` frame carrying 24 kHz PCM, built without a JSON encoder."""
    return _AUDIO_PREFIX + base64.b64encode(pcm) + _AUDIO_SUFFIX


def audio_part(pcm: bytes) -> dict[str, Any]:
    """A ``modelTurn`` part holding 24 kHz PCM16."""
    return {"inlineData": {"mimeType": OUTPUT_AUDIO_MIME, "data": b64encode(pcm)}}


def server_content(**fields: Any) -> dict[str, Any]:
    """``{"serverContent": {...}}`` with ``fields`` (already camelCase)."""
    return {"serverContent": fields}


def text_of_parts(parts: Any) -> str:
    """Join the ``text`` of each part in a ``parts`` list (other parts are skipped)."""
    if not isinstance(parts, list):
        return ""
    return "".join(p["text"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str))
