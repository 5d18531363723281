"""The way out of one OpenAI Realtime session: numbered JSON text frames, in order, with injected latency.

:class:`EventSender` gives every event its ``event_id``, counts it in the session
statistics and writes it as a text frame (the service's framing). With a delay
(the ``delay`` / ``slow`` fault) each event leaves that much later than it was
made, order kept, and a close waits behind the events made before it. Once
frozen (the ``stall`` fault) nothing more leaves and the socket stays open.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from livetalk.emulator.openai.stats import RealtimeStats
from livetalk.emulator.websocket import WsConnection
from livetalk.emulator.wire import clip_reason


class EventSender:
    """Sends one session's server events.

    Args:
        ws: the session's connection.
        stats: the session's statistics (``messages_out``, ``bytes_out`` and the per-type
            ``server_events`` counts are kept here).
        delay_s: latency added before every event and close (seconds).
    """

    def __init__(self, ws: WsConnection, stats: RealtimeStats, *, delay_s: float = 0.0) -> None:
        self._ws = ws
        self._stats = stats
        self.delay_s = delay_s
        self.frozen = False
        self._numbers = itertools.count(1)
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[tuple[float, Callable[[], None]]] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def send(self, event: Mapping[str, Any]) -> None:
        """Number ``event`` and send it (now, or after the delay); dropped once frozen."""
        if self.frozen:
            return
        numbered = {"type": event["type"], "event_id": f"event_{self._stats.id}_{next(self._numbers):05d}"}
        numbered.update(event)
        payload = orjson.dumps(numbered)
        self._later(lambda: self._write(event["type"], payload))

    def close(self, code: int, reason: str) -> None:
        """Close the connection once the events made before this call have left."""
        reason = clip_reason(reason)
        self._later(lambda: self._ws.close(code, reason))

    def freeze(self) -> None:
        """Send nothing more (events already delayed are dropped too)."""
        self.frozen = True
        self._queue.clear()
        self.cancel()

    def cancel(self) -> None:
        """Stop the delayed-send task (the emulator is stopping, or the client left)."""
        if self._task is not None:
            self._task.cancel()

    async def flush(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until every delayed event has left."""
        if self._task is None or self._task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            pass

    def _later(self, action: Callable[[], None]) -> None:
        if self.delay_s <= 0 and not self._queue:
            action()
            return
        self._queue.append((self._loop.time() + self.delay_s, action))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue:
            due, action = self._queue[0]
            wait = due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._queue.popleft()
            action()

    def _write(self, kind: str, payload: bytes) -> None:
        if not self._ws.open:
            return
        # Counted before the write: the client may read the frame before this thread would count it after.
        stats = self._stats
        stats.messages_out += 1
        stats.bytes_out += len(payload)
        stats.server_events[kind] = stats.server_events.get(kind, 0) + 1
        self._ws.send(payload, text=True)
