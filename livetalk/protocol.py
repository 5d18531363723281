"""The browser ⇄ relay wire format (``/ws/realtime``): parse client frames, encode events.

Pure code: no I/O, no clocks. See docs/protocol.md for the contract in prose.

Errors::

    ProtocolError(code, message)      a client frame the relay refuses (non-fatal)
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Final

import orjson

MAX_AUDIO_FRAME_BYTES = 64 * 1024
MAX_TEXT_CHARS = 4000
MAX_TEXT_FRAME_BYTES = 32 * 1024  # 4000 chars of JSON-escaped text fit comfortably
MAX_PING_T_CHARS = 64


class ErrorCode(str, enum.Enum):
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    CAPACITY = "capacity"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_ERROR = "upstream_error"
    SESSION_LIMIT = "session_limit"
    IDLE_TIMEOUT = "idle_timeout"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL = "internal"
    QUOTA_EXCEEDED = "quota_exceeded"  # extension: the learner's own limits (concurrent, seconds per day)
    UPSTREAM_QUOTA = "upstream_quota"  # extension: the engine refused for the project's quota


class Close(enum.IntEnum):
    """WebSocket close codes the relay uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    TRY_AGAIN_LATER = 1013


# --- refusals: contract code → (WebSocket close code, HTTP status) -----------------------


@dataclasses.dataclass(frozen=True)
class Refusal:
    """How one contract error code is delivered: over a socket and over HTTP."""

    code: ErrorCode
    close: Close  # WebSocket close code after the fatal `error` event
    http_status: int  # status for the same refusal on an HTTP route
    message: str  # plain-language default for the client


REFUSALS: Final[dict[ErrorCode, Refusal]] = {
    r.code: r
    for r in (
        Refusal(ErrorCode.FORBIDDEN_ORIGIN, Close.POLICY, 403,
                "This page's origin may not open a conversation."),
        Refusal(ErrorCode.UNAUTHORIZED, Close.POLICY, 401,
                "A valid access ticket is required; request a new one."),
        # A per-client limit is policy (1008); 1013 is kept for "this server is full".
        Refusal(ErrorCode.RATE_LIMITED, Close.POLICY, 429,
                "Too many conversations from your network; wait a minute."),
        Refusal(ErrorCode.CAPACITY, Close.TRY_AGAIN_LATER, 503,
                "The server is full; try again in a moment."),
        Refusal(ErrorCode.TOO_LARGE, Close.TOO_BIG, 413,
                "The request is larger than the server accepts."),
        Refusal(ErrorCode.QUOTA_EXCEEDED, Close.POLICY, 429,
                "You have reached your practice limit for now."),
    )
}


class Mode(str, enum.Enum):
    VOICE = "voice"
    TEXT = "text"


class ProtocolError(Exception):
    """A client frame was refused; ``code`` is an :class:`ErrorCode`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- client messages ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TextTurn:
    text: str


@dataclasses.dataclass(frozen=True)
class AudioEnd:
    pass


@dataclasses.dataclass(frozen=True)
class ActivityStart:
    pass


@dataclasses.dataclass(frozen=True)
class ActivityEnd:
    pass


@dataclasses.dataclass(frozen=True)
class Ping:
    t: object = None


@dataclasses.dataclass(frozen=True)
class End:
    pass


ClientMessage = TextTurn | AudioEnd | ActivityStart | ActivityEnd | Ping | End

_NO_FIELD_TYPES = {"audio_end": AudioEnd(), "activity_start": ActivityStart(),
                   "activity_end": ActivityEnd(), "end": End()}


def check_audio_frame(data: bytes) -> None:
    """Validate a binary frame as PCM16 audio; raises :class:`ProtocolError`."""
    size = len(data)
    if size > MAX_AUDIO_FRAME_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE,
                            f"audio frame of {size} bytes exceeds {MAX_AUDIO_FRAME_BYTES} bytes")
    if size == 0 or size & 1:
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            f"audio frame must be a non-empty whole number of 16-bit samples, got {size} bytes")


def parse_text_frame(raw: str) -> ClientMessage:
    """Parse one client text frame into a message; raises :class:`ProtocolError`."""
    if len(raw) > MAX_TEXT_FRAME_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"text frame exceeds {MAX_TEXT_FRAME_BYTES} bytes")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "text frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "text frame must be a JSON object")
    kind = obj.get("type", "text" if "text" in obj else None)
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, 'text frame needs a string "type"')
    if kind in _NO_FIELD_TYPES:
        return _NO_FIELD_TYPES[kind]
    if kind == "text":
        return _parse_text_turn(obj)
    if kind == "ping":
        return _parse_ping(obj)
    raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown message type {kind[:40]!r}")


def _parse_text_turn(obj: dict) -> TextTurn:
    text = obj.get("text")
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, '"text" must be a string')
    if not text.strip():
        raise ProtocolError(ErrorCode.BAD_REQUEST, '"text" must not be empty')
    if len(text) > MAX_TEXT_CHARS:
        raise ProtocolError(ErrorCode.TOO_LARGE, f'"text" exceeds {MAX_TEXT_CHARS} characters')
    return TextTurn(text)


def _parse_ping(obj: dict) -> Ping:
    t = obj.get("t")
    if t is not None and not isinstance(t, (int, float, str)) or isinstance(t, bool):
        raise ProtocolError(ErrorCode.BAD_REQUEST, '"t" must be a number or a string')
    if isinstance(t, str) and len(t) > MAX_PING_T_CHARS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f'"t" exceeds {MAX_PING_T_CHARS} characters')
    return Ping(t)


def parse_mode(value: str | None) -> Mode:
    """The ``mode`` query parameter; raises :class:`ProtocolError` when unknown."""
    if not value:
        return Mode.VOICE
    try:
        return Mode(value)
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "mode must be 'voice' or 'text'") from None


# --- server events -----------------------------------------------------------------


def _event(kind: str, **fields: object) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def ready(*, session_id: str, scenario: str, mode: Mode, resume: str | None, emulated: bool, engine: str,
          input_rate: int, output_rate: int) -> str:
    """``ready``; ``engine`` (extension) names the upstream, whose audio rates (Hz) the client must use."""
    return _event("ready", session_id=session_id, input_rate=input_rate, output_rate=output_rate,
                  scenario=scenario, mode=mode.value, resume=resume, emulated=emulated, engine=engine)


def transcript(role: str, text: str, final: bool) -> str:
    return _event("transcript", role=role, text=text, final=final)


def chunk(text: str) -> str:
    return _event("chunk", text=text)


def complete(full_text: str, turn: int) -> str:
    return _event("complete", full_text=full_text, turn=turn)


INTERRUPTED = _event("interrupted")


def resumable(resume: str) -> str:
    return _event("resumable", resume=resume)


def reconnecting(reason: str) -> str:
    return _event("reconnecting", reason=reason)


def resumed(reason: str) -> str:
    return _event("resumed", reason=reason)


def pong(t: object) -> str:
    return _event("pong", t=t)


def ended(session_id: str, recording: str | None) -> str:
    return _event("ended", session_id=session_id, recording=recording)


def warning(code: ErrorCode, message: str, seconds_left: float) -> str:
    """An extension: advance notice of a coming limit (e.g. ``session_limit``)."""
    return _event("warning", code=code.value, message=message, seconds_left=round(seconds_left, 1))


def outcome(name: str, details: dict, *, cancelled: bool = False) -> str:
    """An extension: the AI party reached a result (e.g. ``appointment``) through a tool call.

    ``cancelled`` (also an extension) withdraws an outcome announced earlier.
    """
    return _event("outcome", name=name, details=details, cancelled=cancelled)


def error(code: ErrorCode, message: str, *, fatal: bool) -> str:
    return _event("error", code=code.value, message=message, fatal=fatal)
