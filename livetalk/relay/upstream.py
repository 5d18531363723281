"""The conversation's side towards the engine: one upstream session at a time, replaced without losing audio.

Frames for the engine go through an outbox drained by one sender task; one receiver task per upstream
session hands its events to the conversation. The link replaces the session, resuming the same conversation
by its latest handle, in three cases:

``upstream_closed``
    the session dropped with a recoverable close (normal, abnormal, "unavailable");
``go_away``
    the engine announced it will close the connection. The new session is opened at the next *resumable
    point*: a resumable handle has arrived and nobody has spoken since, so the new session knows everything
    the old one knew and the reply in progress is not cut. If no such point comes, it is opened when the
    announced time is nearly up;
``stall``
    the engine said nothing for :attr:`~Policy.stall_s` between the end of the user's turn and the end of
    its answer (turn complete, interrupted, or a function call) while the socket stayed open.

While a session is being replaced, the user's frames are held in the outbox (up to
:data:`~livetalk.relay.parts.PENDING_AUDIO_S`, beyond which they are dropped and counted), then sent on the
new session in order. A frame the sender took off the outbox when the old session closed under it goes back
to the front, so no frame is lost without being counted.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from .. import engine as ev
from ..engine import Engine, Event, LiveSetup, Upstream, UpstreamClosed, UpstreamError, UpstreamUnavailable
from .parts import PENDING_AUDIO_S, Policy, Stats

log = logging.getLogger("livetalk.relay")

HANDOVER_MARGIN_S = 5.0  # open the new session at least this long before a GoAway's time is up
DEFAULT_TIME_LEFT_S = 30.0  # when a GoAway does not say how long the connection has left
_MODEL_OUTPUT = (ev.ModelAudio, ev.ModelText, ev.ToolCall)  # the model is answering: not a resumable point
# What ends the engine's answer to a turn. Model audio does not: some of it may have been on its way before
# the user's turn ended (an answer to something earlier), and an engine may fall silent in mid-answer.
_ANSWER_OVER = (ev.TurnComplete, ev.Interrupted, ev.ToolCall)


class UpstreamLink:
    """One conversation's upstream sessions, in turn. Create, :meth:`open`, :meth:`start`; :meth:`close` at the end.

    Args:
        engine: opens sessions.
        setup: what each session is opened with (its resumption handle is updated as handles arrive).
        policy: timings (connect timeout, stall time, reconnect budget).
        stats: the conversation's counters.
        on_events: the conversation's handler for each upstream message's events.
        on_failure: the upstream cannot go on (the conversation ends).
        on_replacing / on_replaced: a replacement starts / has finished; both get the reason.
    """

    def __init__(self, engine: Engine, setup: LiveSetup, policy: Policy, stats: Stats, *,
                 on_events: Callable[[list[Event]], None], on_failure: Callable[[UpstreamError], None],
                 on_replacing: Callable[[str], None], on_replaced: Callable[[str], None]) -> None:
        self.setup = setup
        self.handle: str | None = setup.resume_handle
        self._engine = engine
        self._policy = policy
        self._stats = stats
        self._on_events, self._on_failure = on_events, on_failure
        self._on_replacing, self._on_replaced = on_replacing, on_replaced
        self._upstream: Upstream | None = None
        self._outbox: collections.deque[tuple[str, Any]] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._pending_audio = 0
        self._sending = False  # the sender is writing a frame (a frame sent directly would overtake it)
        self._max_pending_audio = int(PENDING_AUDIO_S * engine.input_rate * 2)
        self._tasks: set[asyncio.Task] = set()
        self._replacing: str | None = None  # the reason, while a new session is being opened
        self._handover_by: float | None = None  # a GoAway came: replace at the next resumable point, or by then
        self._at_rest = False  # a resumable handle arrived and nothing was said since
        self._awaiting_since: float | None = None  # the user finished a turn; the answer is not over
        self._last_message = time.monotonic()
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the first session; raises :class:`~livetalk.engine.UpstreamError`."""
        self._upstream = await self._engine.connect(self.setup, timeout_s=self._policy.connect_timeout_s)
        self._last_message = time.monotonic()

    def start(self) -> None:
        """Start moving frames both ways."""
        self._spawn(self._sender())
        self._spawn(self._receiver(self._upstream))

    async def close(self) -> None:
        """Stop both directions and close the session (bounded by the upstream's own close grace)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            await upstream.close()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- towards the engine --------------------------------------------------------------

    def send(self, kind: str, payload: Any = None) -> bool:
        """Queue a frame for the engine (``audio``, ``text``, ``audio_end``, ``activity_start``, ``activity_end``,
        ``tool_result`` with ``(call id, name, result)``, ``playback`` with the ms the user heard).

        Returns False, and queues nothing, when ``audio`` would exceed the backlog held during a replacement.
        """
        if kind == "audio":
            if self._direct_ok() and self._upstream.send_audio_now(payload):
                return True
            if self._pending_audio + len(payload) > self._max_pending_audio:
                return False
            self._pending_audio += len(payload)
        self._outbox.append((kind, payload))
        self._outbox_ready.set()
        return True

    def _direct_ok(self) -> bool:
        """Whether a frame may skip the sender: a session is up, nothing is queued or being sent before it."""
        return (self._upstream is not None and not self._outbox and not self._sending and self._replacing is None
                and not self._closed)

    def user_spoke(self) -> None:
        """The user is speaking (or typed): what the engine knows is ahead of the last handle."""
        self._at_rest = False

    def user_turn_ended(self) -> None:
        """The user finished a turn (end of speech, a typed turn): the engine should answer soon."""
        self._at_rest = False
        if self._awaiting_since is None:
            self._awaiting_since = time.monotonic()

    async def _sender(self) -> None:
        outbox, senders = self._outbox, _SENDERS
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while outbox and self._replacing is None:
                kind, payload = outbox.popleft()
                if kind == "audio":
                    self._pending_audio -= len(payload)
                self._sending = True
                try:
                    await senders[kind](self._upstream, payload)
                except UpstreamClosed:
                    self._put_back(kind, payload)
                    break  # the receiver sees the same close and decides
                finally:
                    self._sending = False

    def _put_back(self, kind: str, payload: Any) -> None:
        if kind == "audio":
            self._pending_audio += len(payload)
        self._outbox.appendleft((kind, payload))

    # --- from the engine -----------------------------------------------------------------

    async def _receiver(self, conn: Upstream) -> None:
        while True:
            try:
                events = await conn.receive()
            except UpstreamClosed as exc:
                if conn is self._upstream and self._replacing is None and not self._closed:
                    await self._closed_under_us(exc)
                return
            if conn is not self._upstream:
                continue  # a replaced session's last words: the new session carries on from its handle
            self._note(events)
            self._on_events(events)
            self._maybe_hand_over()

    def _note(self, events: list[Event]) -> None:
        """What the link itself learns from a message: liveness, handles, resumable points, GoAway."""
        self._last_message = time.monotonic()
        for event in events:
            if isinstance(event, _ANSWER_OVER):
                self._awaiting_since = None
            if isinstance(event, _MODEL_OUTPUT) or isinstance(event, ev.TurnComplete):
                self._at_rest = False
            elif isinstance(event, ev.Resumption):
                if event.resumable and event.handle:
                    self.handle = event.handle
                    self._at_rest = True
            elif isinstance(event, ev.GoAway):
                self._on_go_away(event)

    def _on_go_away(self, event: ev.GoAway) -> None:
        left = event.time_left_s if event.time_left_s is not None else DEFAULT_TIME_LEFT_S
        log.info("the engine will close this connection in %.0f s: handing over at the next resumable point", left)
        self._handover_by = time.monotonic() + max(left - HANDOVER_MARGIN_S, 0.0)

    def _maybe_hand_over(self) -> None:
        if self._handover_by is None or self._replacing is not None or self._closed:
            return
        if self._at_rest or time.monotonic() >= self._handover_by:
            self._spawn(self._replace("go_away"))

    async def _closed_under_us(self, exc: UpstreamClosed) -> None:
        self._stats.upstream_errors += 1
        self._stats.upstream_codes[exc.code] += 1
        if exc.recoverable and self._may_resume():
            await self._replace("upstream_closed")
        else:
            self._on_failure(exc)

    # --- checks from the conversation's ticker -------------------------------------------------

    def check(self, now: float) -> None:
        """Hand over when a GoAway's time is nearly up; replace a stalled session."""
        if self._replacing is not None or self._closed:
            return
        self._maybe_hand_over()
        if self._awaiting_since is None or now - max(self._awaiting_since, self._last_message) < self._policy.stall_s:
            return
        self._awaiting_since = None
        log.warning("the engine has not answered for %.0f s after the user's turn", self._policy.stall_s)
        if self._may_resume():
            self._spawn(self._replace("stall"))
        else:
            self._on_failure(UpstreamUnavailable("the AI service stopped answering"))

    # --- replacing the session -------------------------------------------------------------

    def _may_resume(self) -> bool:
        return bool(self.handle) and self._stats.reconnects < self._policy.max_reconnects

    async def _replace(self, reason: str) -> None:
        """Open a new session resuming by the latest handle, hold the user's frames meanwhile, then switch."""
        if self._replacing is not None or self._closed:
            return
        self._replacing = reason
        self._stats.reconnects += 1
        self._stats.reconnect_reasons[reason] += 1
        self._on_replacing(reason)
        old = self._upstream
        self.setup = dataclasses.replace(self.setup, resume_handle=self.handle)
        try:
            new = await self._engine.connect(self.setup, timeout_s=self._policy.connect_timeout_s)
        except UpstreamError as exc:
            self._replacing = None
            self._on_failure(exc)
            return
        if self._closed:  # the conversation ended meanwhile
            await new.close()
            return
        self._upstream, self._replacing = new, None
        self._handover_by, self._at_rest, self._awaiting_since = None, False, None
        self._last_message = time.monotonic()
        if old is not None:
            self._spawn(old.close())
        self._spawn(self._receiver(new))
        self._on_replaced(reason)
        self._outbox_ready.set()  # the frames held meanwhile go out on the new session, in order


async def _send_audio(conn: Upstream, pcm: bytes) -> None:
    await conn.send_audio(pcm)


async def _send_text(conn: Upstream, text: str) -> None:
    await conn.send_text(text)


async def _send_audio_end(conn: Upstream, _payload: None) -> None:
    await conn.send_audio_end()


async def _send_activity_start(conn: Upstream, _payload: None) -> None:
    await conn.send_activity_start()


async def _send_activity_end(conn: Upstream, _payload: None) -> None:
    await conn.send_activity_end()


async def _send_tool_result(conn: Upstream, payload: tuple[str, str, dict]) -> None:
    await conn.send_tool_result(*payload)


async def _send_playback(conn: Upstream, played_ms: int) -> None:
    await conn.send_playback(played_ms)


_SENDERS = {
    "audio": _send_audio,
    "text": _send_text,
    "audio_end": _send_audio_end,
    "activity_start": _send_activity_start,
    "activity_end": _send_activity_end,
    "tool_result": _send_tool_result,
    "playback": _send_playback,
}
