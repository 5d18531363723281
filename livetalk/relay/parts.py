"""What a conversation is given and what it reports: its policy, the recorder and observer it tells, its stats."""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .conversation import Conversation

PING_INTERVAL_S = 20.0  # browser pings; no frame and no pong for 2.5 intervals means the peer is gone
DEAD_PEER_INTERVALS = 2.5
MAX_TICK_S = 1.0  # limits, keepalive and upstream stalls are checked at least this often
PENDING_AUDIO_S = 10.0  # user audio held while the upstream is replaced
MAX_RECONNECTS = 3
SHUTDOWN_FINALIZE_S = 4.0  # when draining, stop waiting for the recording's upload after this
UPSTREAM_STALL_S = 9.0  # the upstream said nothing for this long after the user finished a turn: replace it


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """The limits and timings of a conversation, in seconds unless named otherwise."""

    session_max_s: float = 15 * 60.0  # whole-conversation cap
    session_warning_s: float = 60.0  # `session_limit` warning this long before the cap
    idle_timeout_s: float = 120.0  # no client frame for this long ends it
    connect_timeout_s: float = 10.0  # opening an upstream session
    ping_interval_s: float = PING_INTERVAL_S
    stall_s: float = UPSTREAM_STALL_S
    max_reconnects: int = MAX_RECONNECTS
    shutdown_finalize_s: float = SHUTDOWN_FINALIZE_S

    @property
    def dead_peer_s(self) -> float:
        """No frame and no pong for this long: the browser is gone."""
        return DEAD_PEER_INTERVALS * self.ping_interval_s

    @property
    def tick_s(self) -> float:
        """How often limits, keepalive and stalls are checked."""
        return min(MAX_TICK_S, self.ping_interval_s / 4, self.stall_s / 4)

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        """The policy for a :class:`~livetalk.config.Settings`."""
        return cls(session_max_s=settings.session_max_s, session_warning_s=settings.session_warning_s,
                   idle_timeout_s=settings.idle_timeout_s, connect_timeout_s=settings.upstream_connect_timeout_s,
                   ping_interval_s=settings.ping_interval_s, stall_s=settings.upstream_stall_s)


@dataclasses.dataclass
class Stats:
    """Per-conversation counters: the summary log line and the observer read them at the end."""

    started: float = dataclasses.field(default_factory=time.monotonic)
    first_audio_s: float | None = None  # from the start to the first model audio
    turns: int = 0
    interruptions: int = 0
    upstream_errors: int = 0
    upstream_codes: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    reconnects: int = 0
    reconnect_reasons: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    bytes_up: int = 0
    bytes_down: int = 0
    audio_frames_dropped: int = 0  # before ready, or beyond the backlog held while the upstream is replaced
    tokens: int = 0
    bad_frames: int = 0

    @property
    def duration_s(self) -> float:
        """Seconds since the conversation started (the relay's own clock)."""
        return time.monotonic() - self.started

    def summary(self) -> dict[str, Any]:
        """The figures of the conversation's summary log line (times in seconds)."""
        return {
            "duration_s": round(self.duration_s, 3),
            "first_audio_s": None if self.first_audio_s is None else round(self.first_audio_s, 3),
            "turns": self.turns, "interruptions": self.interruptions, "upstream_errors": self.upstream_errors,
            "reconnects": self.reconnects, "reconnect_reasons": dict(self.reconnect_reasons) or None,
            "bytes_up": self.bytes_up, "bytes_down": self.bytes_down, "bad_frames": self.bad_frames,
            "audio_frames_dropped": self.audio_frames_dropped, "tokens": self.tokens,
        }


class Recorder(Protocol):
    """What the relay tells the recording (see :mod:`livetalk.recording`). Never blocks."""

    def user_audio(self, pcm: bytes) -> None: ...  # PCM s16le mono at the engine's input rate
    def model_audio(self, pcm24k: bytes) -> None: ...
    def transcript(self, role: str, text: str, final: bool) -> None: ...
    def turn_complete(self) -> None: ...
    def interrupted(self) -> None: ...
    def outcome(self, name: str, details: dict) -> None: ...
    def outcome_cancelled(self, name: str) -> None: ...
    def finalize(self, reason: str, timeout: float | None = None) -> str | None: ...  # blocking


class NullRecorder(Recorder):
    """Records nothing (recording disabled): every call is the protocol's own no-op; nothing is stored."""

    def finalize(self, reason: str, timeout: float | None = None) -> str | None:
        return None


class Observer(Protocol):
    """Told when a conversation starts and ends (metrics). Called on the relay loop: must not block."""

    def conversation_started(self, conversation: Conversation) -> None: ...
    def conversation_ended(self, conversation: Conversation) -> None: ...


class NullObserver:
    """Observes nothing."""

    def conversation_started(self, conversation: Conversation) -> None: ...
    def conversation_ended(self, conversation: Conversation) -> None: ...
