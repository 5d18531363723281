"""Function calling on the Live wire: declarations in ``setup``, ``toolCall`` out, ``toolResponse`` in. Pure.

The emulator calls one function by itself: ``schedule_meeting``, when the user
proposes a meeting with a date and a time (see :mod:`meeting`) and the setup
declared a function of that name. Keys are read in both spellings
(``functionDeclarations`` / ``function_declarations``, ``functionResponses`` /
``function_responses``); ``args`` and ``response`` are user data and are kept as sent.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping
from typing import Any

from livetalk.emulator.errors import ClientProtocolError
from livetalk.emulator.wire import dumps, pick

SCHEDULE_MEETING = "schedule_meeting"
NON_BLOCKING = "NON_BLOCKING"
SILENT = "SILENT"
SCHEDULINGS = frozenset({"SCHEDULING_UNSPECIFIED", SILENT, "WHEN_IDLE", "INTERRUPT"})


@dataclasses.dataclass(frozen=True)
class FunctionDecl:
    """A declared function: its name and whether it is NON_BLOCKING (only those honour ``scheduling``)."""

    name: str
    non_blocking: bool = False


@dataclasses.dataclass(frozen=True)
class FunctionResponse:
    """One entry of a client's ``functionResponses``."""

    id: str | None
    name: str | None
    response: Any
    scheduling: str | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly record."""
        return dataclasses.asdict(self)


def parse_functions(tools: Any) -> tuple[FunctionDecl, ...]:
    """The function declarations of a setup's ``tools`` list (other tools, such as search, are skipped)."""
    if not isinstance(tools, list):
        return ()
    found = []
    for tool in tools:
        declarations = pick(tool, "functionDeclarations", ())
        for declaration in declarations if isinstance(declarations, list) else ():
            name = pick(declaration, "name")
            if isinstance(name, str) and name:
                found.append(FunctionDecl(name, non_blocking=pick(declaration, "behavior") == NON_BLOCKING))
    return tuple(found)


def parse_responses(body: Any) -> list[FunctionResponse]:
    """The function responses of a ``tool_response`` message.

    Raises:
        ClientProtocolError: not a list of objects, or an unknown ``scheduling`` value (close 1007).
    """
    entries = pick(body, "functionResponses")
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ClientProtocolError("Invalid JSON payload received: tool_response.function_responses must be a list.")
    return [_response(entry) for entry in entries]


def _response(entry: Mapping[str, Any]) -> FunctionResponse:
    scheduling = pick(entry, "scheduling")
    if scheduling is not None and (not isinstance(scheduling, str) or scheduling not in SCHEDULINGS):
        raise ClientProtocolError(f"Invalid value at 'tool_response.function_responses.scheduling': {scheduling!r}.")
    call_id, name = pick(entry, "id"), pick(entry, "name")
    return FunctionResponse(
        id=call_id if isinstance(call_id, str) else None,
        name=name if isinstance(name, str) else None,
        response=pick(entry, "response"),
        scheduling=scheduling,
    )


def is_failure(response: Any) -> bool:
    """Whether a function's result reports a failure (an ``error`` key, or ``ok``/``success`` false)."""
    if not isinstance(response, Mapping):
        return False
    return "error" in response or response.get("ok") is False or response.get("success") is False


def tool_call(call_id: str, name: str, args: Mapping[str, Any]) -> bytes:
    """``{"toolCall": {"functionCalls": [{"id", "name", "args"}]}}``."""
    return dumps({"toolCall": {"functionCalls": [{"id": call_id, "name": name, "args": dict(args)}]}})


def tool_call_cancellation(ids: list[str]) -> bytes:
    """``{"toolCallCancellation": {"ids": [...]}}``."""
    return dumps({"toolCallCancellation": {"ids": list(ids)}})


class CallLedger:
    """The function calls of one session and what became of them.

    Each call gets a record (appended to ``records``, the session statistics):
    ``id, name, args, status`` (``pending`` → ``answered`` | ``cancelled``),
    ``cancel_reason`` (``timeout`` | ``user_turn``), ``response``, ``scheduling``,
    ``sent_at``, ``settled_at`` (Unix seconds).
    """

    def __init__(self, session_id: str, records: list[dict[str, Any]]) -> None:
        self._prefix = f"emu-call-{session_id}-"
        self._numbers = itertools.count(1)
        self._records = records
        self._by_id: dict[str, dict[str, Any]] = {}

    def issue(self, name: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Record a new pending call and return its record."""
        record = {"id": f"{self._prefix}{next(self._numbers)}", "name": name, "args": dict(args),
                  "status": "pending", "cancel_reason": None, "response": None, "scheduling": None,
                  "sent_at": time.time(), "settled_at": None}
        self._records.append(record)
        self._by_id[record["id"]] = record
        return record

    def pending(self) -> list[str]:
        """Ids of the calls still waiting for a response, oldest first."""
        return [call_id for call_id, record in self._by_id.items() if record["status"] == "pending"]

    def answer(self, response: FunctionResponse) -> dict[str, Any] | None:
        """Settle a pending call with ``response``; None when it was settled already.

        Raises:
            ClientProtocolError: no call with that id was ever made (close 1007, as Gemini).
        """
        record = self._by_id.get(response.id or "")
        if record is None:
            raise ClientProtocolError(f"Invalid argument: no function call with id {response.id!r} is pending.")
        if record["status"] != "pending":
            return None
        record.update(status="answered", response=response.response, scheduling=response.scheduling,
                      settled_at=time.time())
        return record

    def cancel(self, call_ids: list[str], reason: str) -> list[str]:
        """Cancel the given calls that are still pending; return the ids cancelled."""
        cancelled = []
        for call_id in call_ids:
            record = self._by_id.get(call_id)
            if record is not None and record["status"] == "pending":
                record.update(status="cancelled", cancel_reason=reason, settled_at=time.time())
                cancelled.append(call_id)
        return cancelled
