"""Fault injection, behaviour mode and statistics: the emulator's control surface.

:class:`Control` is shared by the server's event-loop thread and the caller's
threads (tests, the CLI, the HTTP control routes), so every mutation of shared
queues happens under one lock. Session statistics are written by the loop thread
only and read as snapshots.
"""
from __future__ import annotations

import collections
import dataclasses
import enum
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from livetalk.emulator.audio import OUTPUT_RATE_HZ, dbfs, duration_ms
from livetalk.emulator.errors import QUOTA_CLOSE_REASON, QUOTA_MESSAGE, FaultSpecError
from livetalk.emulator.files import FileStore
from livetalk.emulator.wire import clip_reason

T = TypeVar("T")

POLL_INTERVAL_S = 0.01  # wait_for re-checks its predicate at least this often
MAX_REQUEST_LOG = 200  # REST requests kept for inspection
MAX_TURN_LOG = 100  # turns kept per session
MAX_CLOSED_SESSIONS = 1000  # older closed sessions are forgotten (a long-running demo must not grow)
MAX_HANDLES = 10000  # resumption handles remembered, oldest forgotten first
DEFAULT_TOOL_TIMEOUT_S = 10.0  # a function call unanswered this long is cancelled


class Mode(str, enum.Enum):
    """How sessions answer (Gemini Live and OpenAI Realtime alike)."""

    CONVERSE = "converse"  # VAD, transcripts, a short spoken reply per turn
    ECHO = "echo"  # every audio chunk answered at once with a copy that keeps its 8-byte tag (Gemini: upsampled)


class FaultKind(str, enum.Enum):
    """What a queued Live fault does."""

    CLOSE = "close"  # close frame with a code and reason
    GOAWAY = "goaway"  # goAway, then a normal close when the time is up
    DROP = "drop"  # TCP reset without a close frame
    DELAY = "delay"  # extra latency before every server message
    REJECT = "reject"  # HTTP error status instead of the WebSocket handshake
    HANG = "hang"  # TLS accepted, handshake never answered
    STALL = "stall"  # after a user turn ends, nothing more is sent; the socket stays open
    QUOTA = "quota"  # RESOURCE_EXHAUSTED: handshake 429, or close 1011 mid-session
    SERVER_ERROR = "server_error"  # OpenAI Realtime only: an `error` event of type server_error at a moment


FAULT_ALIASES = {"slow": FaultKind.DELAY}  # "slow" is the delay fault under the name the runbooks use


class Moment(str, enum.Enum):
    """When a close, drop or server_error fault fires."""

    SETUP = "setup"  # on the setup message, before setupComplete
    FIRST_AUDIO = "first_audio"  # on the first realtime audio chunk
    AFTER_MS = "after_ms"  # a fixed time after setupComplete
    HANDSHAKE = "handshake"  # instead of the WebSocket handshake (quota only)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fault:
    """One fault for one Live session. Build with :func:`make_fault`."""

    kind: FaultKind
    code: int = 1011  # close code (close)
    reason: str = "Internal error encountered."  # close reason (close), ≤ 123 bytes
    when: Moment = Moment.SETUP  # close, drop, server_error
    after_ms: int = 0  # close/drop with when=after_ms; goaway: when to send goAway
    time_left_s: float = 5.0  # goaway: announced time left, then the close
    close: bool = True  # goaway: close when time_left_s has passed
    ms: int = 0  # delay: added before every server message
    status: int = 429  # reject, quota: HTTP status of the handshake response
    after_turns: int = 0  # stall: user turns answered normally before the one that stalls

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        data = dataclasses.asdict(self)
        data["kind"] = self.kind.value
        data["when"] = self.when.value
        return data


@dataclasses.dataclass(frozen=True, kw_only=True)
class RestFault:
    """A fault for the next REST model/file calls: an error status and/or latency."""

    status: int | None = 429
    delay_ms: int = 0
    message: str | None = None


_FAULT_PARAMS = {
    FaultKind.CLOSE: {"code", "reason", "when", "after_ms"},
    FaultKind.GOAWAY: {"after_ms", "time_left_s", "time_left", "close"},
    FaultKind.DROP: {"when", "after_ms"},
    FaultKind.DELAY: {"ms", "delay_ms"},
    FaultKind.REJECT: {"status", "code"},
    FaultKind.HANG: set(),
    FaultKind.STALL: {"after_turns"},
    FaultKind.QUOTA: {"when", "after_ms"},
    FaultKind.SERVER_ERROR: {"when", "after_ms"},
}


def make_fault(kind: str | FaultKind, **params: Any) -> Fault:
    """Validate and normalise one fault description.

    ``when`` accepts ``"setup"``, ``"first_audio"``, ``"after_ms"`` (with ``after_ms=N``),
    ``"after_ms:N"`` or ``{"after_ms": N}``; ``after_ms=N`` alone implies ``when="after_ms"``.
    ``time_left`` accepts ``"5s"``. ``reject`` takes ``status`` (or ``code``); ``delay``
    (alias ``slow``) takes ``ms`` (or ``delay_ms``). ``quota`` refuses the handshake with
    429 unless ``when`` names a moment of the session, which is then closed with 1011
    ``RESOURCE_EXHAUSTED``. ``stall`` takes ``after_turns`` (default 0: the first user turn).
    ``server_error`` (OpenAI Realtime sessions; Gemini sessions ignore it) takes ``when`` like ``close``.

    Raises:
        FaultSpecError: unknown kind or parameter, or a bad value.
    """
    try:
        kind = FAULT_ALIASES.get(kind) or FaultKind(kind)
    except ValueError:
        raise FaultSpecError(f"unknown fault kind {kind!r}") from None
    unknown = set(params) - _FAULT_PARAMS[kind]
    if unknown:
        raise FaultSpecError(f"{kind.value} fault takes no {sorted(unknown)}")
    try:
        return _build_fault(kind, dict(params))
    except (TypeError, ValueError) as exc:
        raise FaultSpecError(f"bad {kind.value} fault: {exc}") from None


def _build_fault(kind: FaultKind, params: dict[str, Any]) -> Fault:
    fields: dict[str, Any] = {"kind": kind}
    if kind in (FaultKind.CLOSE, FaultKind.DROP, FaultKind.SERVER_ERROR):
        fields["when"], fields["after_ms"] = _moment(params.get("when"), params.get("after_ms"))
        if fields["when"] is Moment.HANDSHAKE:
            raise ValueError("only quota faults act on the handshake")
    if kind is FaultKind.QUOTA:
        when = params.get("when", Moment.HANDSHAKE if params.get("after_ms") is None else None)
        fields["when"], fields["after_ms"] = _moment(when, params.get("after_ms"))
        fields["code"], fields["reason"] = 1011, QUOTA_CLOSE_REASON
    if kind is FaultKind.STALL:
        fields["after_turns"] = int(params.get("after_turns", 0))
        if fields["after_turns"] < 0:
            raise ValueError("after_turns must be ≥ 0")
    if kind is FaultKind.CLOSE:
        fields["code"] = int(params.get("code", 1011))
        fields["reason"] = clip_reason(str(params.get("reason", Fault.reason)))
    if kind is FaultKind.GOAWAY:
        fields["after_ms"] = int(params.get("after_ms", 0))
        fields["time_left_s"] = _seconds(params.get("time_left_s", params.get("time_left", 5.0)))
        fields["close"] = bool(params.get("close", True))
    if kind is FaultKind.DELAY:
        fields["ms"] = int(params.get("ms", params.get("delay_ms", 0)))
    if kind is FaultKind.REJECT:
        fields["status"] = int(params.get("status", params.get("code", 429)))
    return Fault(**fields)


def _moment(when: Any, after_ms: Any) -> tuple[Moment, int]:
    if isinstance(when, Mapping):
        return Moment.AFTER_MS, int(when.get("after_ms", 0))
    if isinstance(when, str) and when.startswith("after_ms:"):
        return Moment.AFTER_MS, int(when.partition(":")[2])
    if when is None:
        return (Moment.SETUP, 0) if after_ms is None else (Moment.AFTER_MS, int(after_ms))
    return Moment(when), int(after_ms or 0)


def _seconds(value: Any) -> float:
    if isinstance(value, str):
        value = value.strip().removesuffix("s")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"time_left must be ≥ 0 s, not {value!r}")
    return seconds


@dataclasses.dataclass(kw_only=True)
class SessionStats:
    """What one Live session received and sent. Written by the loop thread only."""

    id: str
    engine: str = "gemini"  # which service the session emulates: gemini | openai
    path: str
    api_version: str
    method: str
    credential: str  # header | key | access_token | token | none
    mode: str
    started_at: float = dataclasses.field(default_factory=time.time)
    ended_at: float | None = None
    model: str | None = None
    setup: dict[str, Any] = dataclasses.field(default_factory=dict)
    raw_setup: Any = None  # the setup message body exactly as received
    resume_handle: str | None = None  # the handle this session resumed from
    last_handle: str | None = None  # the newest handle it was given
    faults: list[str] = dataclasses.field(default_factory=list)
    audio_in_bytes: int = 0
    audio_in_ms: float = 0.0
    audio_chunks: int = 0
    audio_rate_hz: int | None = None
    text_turns: int = 0
    turns_answered: int = 0
    interruptions: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    audio_out_bytes: int = 0  # 24 kHz PCM16 sent in modelTurn parts
    open: bool = True
    close_code: int | None = None
    close_reason: str | None = None
    client_messages: dict[str, int] = dataclasses.field(default_factory=dict)
    turns: collections.deque[dict[str, Any]] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=MAX_TURN_LOG)
    )
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # restored from resume_handle
    tool_calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # id, name, args, status, response…
    tool_responses: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # every function response
    stalled: bool = False  # a stall fault froze the session
    sum_squares: int = 0
    n_samples: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly snapshot, with the overall input RMS (sample units) and dBFS."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.pop("sum_squares")
        data.pop("n_samples")
        rms = math.sqrt(self.sum_squares / self.n_samples) if self.n_samples else 0.0
        data["audio_in_rms"] = round(rms, 2)
        data["audio_in_dbfs"] = round(dbfs(rms), 2) if rms else None
        data["audio_in_ms"] = round(self.audio_in_ms, 1)
        data["audio_out_ms"] = round(duration_ms(self.audio_out_bytes, OUTPUT_RATE_HZ), 1)
        data["client_messages"] = dict(self.client_messages)
        data["turns"] = [dict(turn) for turn in self.turns]
        data["setup"] = dict(self.setup)
        data["faults"] = list(self.faults)
        data["history"] = [dict(turn) for turn in self.history]
        data["tool_calls"] = [dict(call) for call in self.tool_calls]
        data["tool_responses"] = [dict(response) for response in self.tool_responses]
        return data


@dataclasses.dataclass
class _Queued:
    item: Any
    remaining: int


class Control:
    """Faults, mode and statistics of one :class:`~livetalk.emulator.Emulator`.

    Args:
        mode: the mode new sessions (Gemini Live and OpenAI Realtime) get unless one is queued.
        reply_speed: how many times faster than real time replies are sent (≤ 0 or
            ``inf``: unpaced); :attr:`reply_speed` may be changed at any time and
            applies from the next reply of every session.
        max_file_bytes: cap on the bytes all uploaded files may hold in memory.
        tool_timeout_s: how long a Live session waits for a function response before it
            sends ``toolCallCancellation`` (seconds); :attr:`tool_timeout_s` is settable and
            applies to calls made from then on.
    """

    def __init__(
        self,
        *,
        mode: Mode | str = Mode.CONVERSE,
        reply_speed: float = 2.0,
        max_file_bytes: int = 200 * 2**20,
        tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    ) -> None:
        self.reply_speed = self._default_reply_speed = reply_speed
        self.tool_timeout_s = self._default_tool_timeout_s = tool_timeout_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._default_mode = Mode(mode)
        self._mode = self._default_mode
        self._mode_queue: list[_Queued] = []
        self._faults: list[_Queued] = []
        self._rest_faults: list[_Queued] = []
        self._sessions: dict[str, SessionStats] = {}
        self._handles: dict[str, dict[str, Any]] = {}
        self._requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_REQUEST_LOG)
        self._next_id = 0
        self.files = FileStore(max_bytes=max_file_bytes)

    # -- faults ---------------------------------------------------------------

    def fault_next(self, kind: str | FaultKind, *, count: int = 1, **params: Any) -> Fault:
        """Arm ``kind`` for the next ``count`` new Live sessions; see :func:`make_fault`.

        Faults armed by separate calls combine (a ``delay`` and a ``close`` can hit the
        same session); each one applies to ``count`` sessions.
        """
        fault = make_fault(kind, **params)
        with self._lock:
            self._faults.append(_Queued(fault, _positive(count)))
        return fault

    def fault_next_rest(
        self, status: int | None = 429, *, count: int = 1, delay_ms: int = 0, message: str | None = None
    ) -> RestFault:
        """Make the next ``count`` REST model/file calls fail with ``status`` after ``delay_ms``.

        ``status=None`` only adds latency. A 429 says what Gemini says when a quota is used
        up (``RESOURCE_EXHAUSTED``, "Resource has been exhausted (e.g. check quota).")
        unless ``message`` is given.
        """
        if status is not None and not 400 <= int(status) <= 599:
            raise FaultSpecError(f"a REST fault's status must be 400–599, not {status!r}")
        if message is None and status == 429:
            message = QUOTA_MESSAGE
        fault = RestFault(status=None if status is None else int(status), delay_ms=int(delay_ms), message=message)
        with self._lock:
            self._rest_faults.append(_Queued(fault, _positive(count)))
        return fault

    def pending_faults(self) -> list[dict[str, Any]]:
        """Live faults still armed, with how many sessions each has left."""
        with self._lock:
            return [{**q.item.as_dict(), "count": q.remaining} for q in self._faults]

    def clear_faults(self) -> None:
        """Disarm every queued Live and REST fault."""
        with self._lock:
            self._faults.clear()
            self._rest_faults.clear()

    def take_faults(self) -> list[Fault]:
        """For a new Live session: the armed faults (each used up once)."""
        with self._lock:
            return _use(self._faults, len(self._faults))

    def take_rest_fault(self) -> RestFault | None:
        """For a REST call: the first armed REST fault, used up once."""
        with self._lock:
            return next(iter(_use(self._rest_faults, 1)), None)

    # -- mode -----------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """The mode new sessions get when none is queued."""
        return self._mode

    def set_mode(self, mode: Mode | str, *, count: int | None = None) -> None:
        """Set the mode for all new sessions, or (with ``count``) for the next ``count`` only."""
        mode = Mode(mode)
        with self._lock:
            if count is None:
                self._mode = mode
                self._mode_queue.clear()
            else:
                self._mode_queue.append(_Queued(mode, _positive(count)))

    def take_mode(self) -> Mode:
        """For a new session of either engine: a queued mode if any, else the global one."""
        with self._lock:
            return next(iter(_use(self._mode_queue, 1)), self._mode)

    # -- sessions and resumption ---------------------------------------------

    def new_session(self, *, stats_class: type[SessionStats] = SessionStats, **fields: Any) -> SessionStats:
        """Register a Live session (called by the server); ``stats_class`` adds an engine's own fields."""
        with self._changed:
            self._next_id += 1
            stats = stats_class(id=f"s{self._next_id}", **fields)
            self._sessions[stats.id] = stats
            self._forget_old_sessions()
            self._changed.notify_all()
            return stats

    def _forget_old_sessions(self) -> None:
        closed = [key for key, stats in self._sessions.items() if not stats.open]
        for key in closed[: max(0, len(closed) - MAX_CLOSED_SESSIONS)]:
            del self._sessions[key]

    def save_handle(self, handle: str, state: Mapping[str, Any]) -> None:
        """Remember what a resumption handle restores."""
        with self._lock:
            self._handles[handle] = dict(state)
            while len(self._handles) > MAX_HANDLES:
                del self._handles[next(iter(self._handles))]

    def resume(self, handle: str) -> dict[str, Any] | None:
        """The state saved under ``handle``, or None when it is unknown."""
        with self._lock:
            state = self._handles.get(handle)
            return None if state is None else dict(state)

    def notify(self) -> None:
        """Wake :meth:`wait_for` callers (statistics changed)."""
        with self._changed:
            self._changed.notify_all()

    def sessions(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        """Snapshots of every Live session since the last reset, oldest first."""
        with self._lock:
            stats = list(self._sessions.values())
        return [s.as_dict() for s in stats if s.open or not open_only]

    def session(self, session_id: str) -> dict[str, Any]:
        """One session's snapshot. Raises KeyError for an unknown id."""
        with self._lock:
            return self._sessions[session_id].as_dict()

    def log_request(self, entry: Mapping[str, Any]) -> None:
        """Record one REST request summary (called by the server)."""
        with self._changed:
            self._requests.append(dict(entry))
            self._changed.notify_all()

    def requests(self) -> list[dict[str, Any]]:
        """Summaries of recent REST requests (method, path, model, status, text, …)."""
        with self._lock:
            return list(self._requests)

    # -- waiting and reset ----------------------------------------------------

    def wait_for(self, predicate: Callable[[], T], timeout: float) -> T:
        """Block until ``predicate()`` is truthy and return its value.

        A ``LookupError`` raised by the predicate (an empty session list, say) counts
        as "not yet".

        Raises:
            TimeoutError: still falsy after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except LookupError:
                value = None
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout:.1f} s")
            with self._changed:
                self._changed.wait(min(remaining, POLL_INTERVAL_S))

    def wait_sessions(self, n: int, timeout: float, *, closed: bool = False) -> list[dict[str, Any]]:
        """Wait until at least ``n`` sessions exist (and, with ``closed``, have ended)."""

        def ready() -> list[dict[str, Any]] | None:
            found = [s for s in self.sessions() if not (closed and s["open"])]
            return found if len(found) >= n else None

        return self.wait_for(ready, timeout)

    def reset(self) -> None:
        """Forget faults, closed sessions, handles, REST log and files; restore the initial mode, speed, tool timeout."""
        with self._changed:
            self._faults.clear()
            self._rest_faults.clear()
            self._mode_queue.clear()
            self._mode = self._default_mode
            self.reply_speed = self._default_reply_speed
            self.tool_timeout_s = self._default_tool_timeout_s
            self._sessions = {k: v for k, v in self._sessions.items() if v.open}
            self._handles.clear()
            self._requests.clear()
            self._changed.notify_all()
        self.files.clear()

    def summary(self) -> dict[str, Any]:
        """Mode, counts and pending faults, for the health route."""
        with self._lock:
            open_count = sum(1 for s in self._sessions.values() if s.open)
            total = len(self._sessions)
        return {"mode": self.mode.value, "sessions": total, "open_sessions": open_count,
                "faults": self.pending_faults()}


def _positive(count: int) -> int:
    if int(count) < 1:
        raise FaultSpecError(f"count must be ≥ 1, not {count!r}")
    return int(count)


def _use(queue: list[_Queued], n: int) -> list[Any]:
    """Use up one application of the first ``n`` entries; drop the exhausted ones."""
    taken = queue[:n]
    for entry in taken:
        entry.remaining -= 1
    queue[:] = [entry for entry in queue if entry.remaining > 0]
    return [entry.item for entry in taken]
