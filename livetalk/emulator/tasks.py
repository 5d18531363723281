"""The background tasks of one emulated session (replies, timers, faults): kept while they run, cancelled together.

A task that fails is logged with the session's name and reported to ``on_failure`` (a session closes itself
with 1011 then: an emulator bug must not pass for the service's behaviour).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

logger = logging.getLogger("livetalk.emulator")


class SessionTasks:
    """A session's running tasks. ``name`` names the session in the log (``live session s-1``)."""

    def __init__(self, name: Callable[[], str], on_failure: Callable[[], None] | None = None) -> None:
        self._name, self._on_failure = name, on_failure
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task of the session."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def cancel(self, *, sparing: asyncio.Task[Any] | None = None) -> None:
        """Cancel every running task (but ``sparing``, typically the caller's own)."""
        for task in list(self._tasks):
            if task is not sparing:
                task.cancel()

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s: task failed", self._name(), exc_info=task.exception())
            if self._on_failure is not None:
                self._on_failure()
