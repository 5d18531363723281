"""What the relay needs from the party it relays to: a live conversation upstream, behind one small interface.

An :class:`Engine` opens an :class:`Upstream` for a :class:`LiveSetup` that the server built from a scenario.
The relay sends the user's audio, typed turns and tool results on it, and receives the events below; it
never asks which engine it has. Gemini Live is :mod:`livetalk.live`; tests can pass an in-memory engine.

Events (what an upstream's :meth:`Upstream.receive` returns), in the order a client should act on them:
:class:`ModelAudio`, :class:`ModelText`, :class:`Transcription`, :class:`Interrupted`,
:class:`GenerationComplete`, :class:`TurnComplete`, :class:`Usage`, :class:`Resumption`, :class:`GoAway`,
:class:`ToolCall`, :class:`ToolCallCancellation`, :class:`ServerError`.

Errors::

    UpstreamError
     ├── UpstreamUnavailable   the engine could not be reached (network, TLS, timeout, HTTP 5xx)
     └── UpstreamClosed        the engine refused or closed the session: ``code`` and ``reason``
          │                    (its WebSocket close code or HTTP status); ``recoverable`` when a new
          │                    connection may continue the same conversation
          └── UpstreamQuota    …because the project is over its quota or concurrent-session limit
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

MAX_REASON_CHARS = 123  # a WebSocket close reason's limit, in bytes of UTF-8 (ASCII here)


# --- the setup ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Vad:
    """Server-side voice activity detection for the upstream session.

    ``silence_ms`` is how long the user must be quiet before the model answers; ``prefix_ms`` is audio kept
    from before speech was detected. ``automatic=False`` switches to push-to-talk (the client sends
    ``activity_start``/``activity_end``).
    """

    automatic: bool = True
    start_sensitivity: str = "START_SENSITIVITY_LOW"
    end_sensitivity: str = "END_SENSITIVITY_LOW"
    prefix_ms: int = 100
    silence_ms: int = 700


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tool:
    """A function the AI party may call, declared by the server (never by the client).

    ``parameters`` is a JSON schema of the arguments. ``outcome`` names what a call means for the role-play
    (e.g. ``"appointment"``): the relay records it and tells the browser; None for other tools.
    """

    name: str
    description: str
    parameters: dict
    outcome: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class LiveSetup:
    """What the relay asks of an upstream session; the server derives it from a scenario."""

    model: str
    system_instruction: str
    voice: str
    vad: Vad
    tools: tuple[Tool, ...] = ()
    resume_handle: str | None = None


# --- events -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ModelAudio:
    pcm: bytes  # s16le mono at the engine's output rate


@dataclasses.dataclass(frozen=True, slots=True)
class ModelText:
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Transcription:
    role: str  # "user" (input transcription) or "model" (output transcription)
    text: str
    finished: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Interrupted:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class GenerationComplete:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class TurnComplete:
    usage: dict | None


@dataclasses.dataclass(frozen=True, slots=True)
class Resumption:
    handle: str | None
    resumable: bool


@dataclasses.dataclass(frozen=True, slots=True)
class GoAway:
    time_left_s: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    usage: dict


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionCall:
    id: str
    name: str
    args: dict


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCall:
    """The AI party calls functions; each needs an answer (:meth:`Upstream.send_tool_result`)."""

    calls: tuple[FunctionCall, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallCancellation:
    """Calls the AI party no longer wants answered (the user spoke over them)."""

    ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ServerError:
    """An error the upstream reported in a message (the session goes on)."""

    code: int | None
    message: str


Event = (ModelAudio | ModelText | Transcription | Interrupted | GenerationComplete | TurnComplete
         | Resumption | GoAway | Usage | ToolCall | ToolCallCancellation | ServerError)


# --- errors -------------------------------------------------------------------------------


class UpstreamError(Exception):
    """The upstream failed; subclasses say how."""


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached."""


class UpstreamClosed(UpstreamError):
    """The upstream closed (or refused) the session with ``code`` and ``reason``.

    ``recoverable``: a new connection may continue the same conversation (a normal or abnormal close, a
    service that is briefly unavailable), as opposed to an error that would happen again.
    """

    def __init__(self, code: int, reason: str, *, recoverable: bool = False) -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason[:MAX_REASON_CHARS]
        self.recoverable = recoverable


class UpstreamQuota(UpstreamClosed):
    """The engine refused or closed the session for the project's quota (HTTP 429, RESOURCE_EXHAUSTED)."""


# --- the interface ------------------------------------------------------------------------


class Upstream(Protocol):
    """One open upstream session. Every method may raise :class:`UpstreamClosed` once it has closed."""

    async def send_audio(self, pcm: bytes) -> None:
        """The user's audio: PCM s16le mono at the engine's input rate."""

    def send_audio_now(self, pcm: bytes) -> bool:
        """Write the user's audio at once when the connection can take it without waiting (no coroutine, no
        hand-off); False when it cannot, or the engine has no such path: then :meth:`send_audio` it."""

    async def send_text(self, text: str) -> None:
        """A typed user turn."""

    async def send_audio_end(self) -> None:
        """The microphone stopped: flush voice detection."""

    async def send_activity_start(self) -> None:
        """Push-to-talk: the user starts speaking."""

    async def send_activity_end(self) -> None:
        """Push-to-talk: the user stopped speaking."""

    async def send_tool_result(self, call_id: str, name: str, result: dict) -> None:
        """Answer a function call; the AI party carries on without announcing it."""

    async def send_playback(self, played_ms: int) -> None:
        """After a barge-in: the user heard ``played_ms`` of the interrupted model turn (an engine that keeps
        the whole unplayed answer in its memory forgets the rest; others ignore it)."""

    async def receive(self) -> list[Event]:
        """The events of the next upstream message; raises :class:`UpstreamClosed` at the end."""

    async def close(self) -> None:
        """Close the session (normal closure) within a short grace; never raises."""


ABNORMAL_CLOSURE = 1006  # a connection lost without a close frame (RFC 6455 §7.1.5)


def received_close(exc: Any, peer: str) -> tuple[int, str]:
    """The close code and reason a websockets ``ConnectionClosed`` received from ``peer`` (an engine's label);
    1006 and a plain reason when the connection was lost without a close frame."""
    rcvd = exc.rcvd
    if rcvd is None:
        return ABNORMAL_CLOSURE, f"connection to {peer} lost without a close frame"
    return rcvd.code, rcvd.reason


USAGE_TOTAL_TOKENS = "totalTokenCount"  # the key of the total in a TurnComplete's or Usage's usage dict


class Engine(Protocol):
    """Opens upstream sessions. ``name`` is what ``ready.engine`` reports, ``label`` what people read."""

    name: str
    label: str
    input_rate: int  # Hz of the audio the client sends
    output_rate: int  # Hz of the audio the client receives

    async def connect(self, setup: LiveSetup, *, timeout_s: float) -> Upstream:
        """Open a session for ``setup`` within ``timeout_s`` seconds; raises :class:`UpstreamError`."""
