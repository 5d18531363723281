"""An OpenAI Realtime conversation: its items in order, and the items a client may create. Pure.

Items are kept in their wire form (``{"id", "object": "realtime.item", "type", …}``)
so events can carry them as they are. :func:`client_item` checks a
``conversation.item.create`` item the way the GA service does (``message`` with
role ``user`` / ``assistant`` / ``system``, ``function_call``,
``function_call_output``) and raises
:class:`~livetalk.emulator.openai.errors.RealtimeEventError` otherwise.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from livetalk.emulator.openai import errors
from livetalk.emulator.openai.errors import RealtimeEventError

ROOT = "root"  # previous_item_id that inserts at the start
STATUSES = ("completed", "incomplete", "in_progress")
_CONTENT_TYPES = {  # role → content part type → its keys
    "user": {"input_text": {"text"}, "input_audio": {"audio", "transcript"}, "input_image": {"image_url", "detail"}},
    "assistant": {"output_text": {"text"}, "output_audio": {"transcript"}},
    "system": {"input_text": {"text"}},
}
_ITEM_KEYS = {
    "message": {"role", "content"},
    "function_call": {"name", "arguments", "call_id"},
    "function_call_output": {"call_id", "output"},
}
_COMMON_KEYS = {"id", "type", "object", "status"}
_REQUIRED = {"message": ("role", "content"), "function_call": ("name", "arguments"),
             "function_call_output": ("call_id", "output")}


def client_item(raw: Any, *, new_id: str) -> dict[str, Any]:
    """The item a ``conversation.item.create`` adds, with its id (``new_id`` unless the client chose one).

    Raises:
        RealtimeEventError: not an item the GA service accepts.
    """
    if not isinstance(raw, Mapping):
        raise errors.invalid_type("item", raw, "an object")
    kind = raw.get("type")
    if kind is None:
        raise errors.missing_parameter("item.type")
    if kind not in _ITEM_KEYS:
        raise errors.invalid_value("item.type", kind, tuple(_ITEM_KEYS))
    for name in raw:
        if name not in _ITEM_KEYS[kind] | _COMMON_KEYS:
            raise errors.unknown_parameter(f"item.{name}")
    for name in _REQUIRED[kind]:
        if name not in raw:
            raise errors.missing_parameter(f"item.{name}")
    _check_common(raw)
    item = {"id": raw.get("id") or new_id, "object": "realtime.item", "type": kind, "status": "completed"}
    if kind == "message":
        item.update(role=_role(raw["role"]), content=_content(raw["role"], raw["content"]))
    else:
        for name in _ITEM_KEYS[kind]:
            if name in raw:
                _text_field(f"item.{name}", raw[name])
                item[name] = raw[name]
    return item


def _check_common(raw: Mapping[str, Any]) -> None:
    if "id" in raw:
        _text_field("item.id", raw["id"])
    if "object" in raw and raw["object"] != "realtime.item":
        raise errors.invalid_value("item.object", raw["object"], ("realtime.item",))
    if "status" in raw and raw["status"] not in STATUSES:
        raise errors.invalid_value("item.status", raw["status"], STATUSES)


def _text_field(path: str, value: Any) -> None:
    if not isinstance(value, str):
        raise errors.invalid_type(path, value, "a string")


def _role(role: Any) -> str:
    if role not in _CONTENT_TYPES:
        raise errors.invalid_value("item.role", role, tuple(_CONTENT_TYPES))
    return role


def _content(role: str, content: Any) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise errors.invalid_type("item.content", content, "an array")
    allowed = _CONTENT_TYPES[role]
    parts = []
    for index, part in enumerate(content):
        path = f"item.content[{index}]"
        if not isinstance(part, Mapping):
            raise errors.invalid_type(path, part, "an object")
        kind = part.get("type")
        if kind not in allowed:
            raise errors.invalid_value(f"{path}.type", kind, tuple(allowed))
        for name, value in part.items():
            if name != "type" and name not in allowed[kind]:
                raise errors.unknown_parameter(f"{path}.{name}")
            if name != "type" and value is not None:
                _text_field(f"{path}.{name}", value)
        parts.append(dict(part))
    return parts


def text_of(item: Mapping[str, Any]) -> str:
    """What a message says: its text and transcripts joined (an empty string for other items)."""
    pieces = []
    for part in item.get("content") or ():
        value = part.get("text") if part.get("text") is not None else part.get("transcript")
        if isinstance(value, str):
            pieces.append(value)
    return "".join(pieces)


def is_message(item: Mapping[str, Any], role: str) -> bool:
    """Whether ``item`` is a message from ``role``."""
    return item.get("type") == "message" and item.get("role") == role


class Conversation:
    """The default conversation's items, in order."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[dict[str, Any]]:
        """Every item, oldest first (the live objects)."""
        return list(self._items)

    def get(self, item_id: Any) -> dict[str, Any] | None:
        """The item with this id, or None."""
        return next((item for item in self._items if item["id"] == item_id), None)

    def last_id(self) -> str | None:
        """The id of the newest item (the ``previous_item_id`` of an appended one)."""
        return self._items[-1]["id"] if self._items else None

    def add(self, item: dict[str, Any], *, after: Any = None) -> str | None:
        """Insert ``item`` after the item ``after`` (None: at the end; ``root``: first); return its predecessor's id.

        Raises:
            RealtimeEventError: the id is taken, or ``after`` names no item.
        """
        if self.get(item["id"]) is not None:
            raise RealtimeEventError(f"Item with id '{item['id']}' already exists.", code="invalid_value",
                                     param="item.id")
        if after is None:
            previous = self.last_id()
            self._items.append(item)
            return previous
        if after == ROOT:
            self._items.insert(0, item)
            return None
        anchor = self.get(after)
        if anchor is None:
            raise RealtimeEventError(f"Previous item with id '{after}' not found.", code="invalid_value",
                                     param="previous_item_id")
        self._items.insert(self._items.index(anchor) + 1, item)
        return anchor["id"]

    def delete(self, item_id: Any) -> bool:
        """Remove an item; False when there is none with that id."""
        item = self.get(item_id)
        if item is None:
            return False
        self._items.remove(item)
        return True

    def count(self, role: str) -> int:
        """How many messages from ``role`` the conversation holds."""
        return sum(1 for item in self._items if is_message(item, role))

    def summary(self) -> list[dict[str, Any]]:
        """One small record per item (id, type, role, status, text, call_id), for statistics."""
        records = []
        for item in self._items:
            record = {"id": item["id"], "type": item["type"], "status": item.get("status")}
            if item["type"] == "message":
                record.update(role=item["role"], text=text_of(item))
            else:
                record.update({key: item.get(key) for key in ("call_id", "name", "arguments", "output") if key in item})
            records.append(record)
        return records


def snapshot(item: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of an item as events carry it (audio data is never included)."""
    copied = copy.deepcopy(dict(item))
    for part in copied.get("content") or ():
        if "audio" in part:
            part["audio"] = None
    return copied
