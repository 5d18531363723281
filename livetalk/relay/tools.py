"""The AI party's function calls: answered for the engine, and an outcome (a meeting agreed…) recorded and told.

Only functions the scenario declared are answered with success; anything else gets an error result, so the
model never believes an undeclared action happened. A declared tool with an ``outcome`` (``appointment``) is
the role-play's result: the recorder keeps it and the browser hears an ``outcome`` event; a call the engine
cancels afterwards withdraws exactly the outcome that call reached.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from .. import engine as ev
from .. import protocol as wire
from ..engine import Tool
from .parts import Recorder

log = logging.getLogger("livetalk.relay")


class ToolDesk:
    """Answers one conversation's function calls and keeps the outcomes they reached.

    Args:
        tools: the functions the scenario declared.
        answer: queues a tool result for the engine: ``answer((call id, name, result))``.
        recorder: told of outcomes reached and withdrawn.
        tell: sends a text event to the browser.
        session_id: for the log.
    """

    def __init__(self, tools: Iterable[Tool], *, answer: Callable[[tuple[str, str, dict]], Any],
                 recorder: Recorder, tell: Callable[[str], None], session_id: str) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._answer, self._recorder, self._tell = answer, recorder, tell
        self._session_id = session_id
        self._outcomes: dict[str, str] = {}  # call id -> the outcome it reached

    def on_call(self, event: ev.ToolCall) -> None:
        """Answer every call of ``event``; record and announce the outcome a declared one reaches."""
        for call in event.calls:
            tool = self._tools.get(call.name)
            if tool is None:
                self._answer((call.id, call.name, {"error": f"unknown function {call.name}"}))
                continue
            if tool.outcome:
                details = {key: value for key, value in call.args.items() if isinstance(value, (str, int, float))}
                self._outcomes[call.id] = tool.outcome
                self._recorder.outcome(tool.outcome, details)
                self._tell(wire.outcome(tool.outcome, details))
                log.info("outcome reached: %s", tool.outcome, extra={"fields": {"session_id": self._session_id}})
            self._answer((call.id, call.name, {"result": "ok"}))

    def on_cancel(self, event: ev.ToolCallCancellation) -> None:
        """Withdraw the outcomes the cancelled calls had reached."""
        for call_id in event.ids:
            name = self._outcomes.pop(call_id, None)
            if name is not None:
                self._recorder.outcome_cancelled(name)
                self._tell(wire.outcome(name, {}, cancelled=True))
