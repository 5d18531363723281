"""Deterministic JSON that validates against a response schema and reflects the input.

Understands Gemini ``Schema`` objects (``type: "OBJECT"``, ``property_ordering``,
``nullable``, int64 limits as strings) and JSON Schema (``type: "object"``, type
lists with ``"null"``, ``$ref``/``$defs``, ``anyOf``). Values come from
:class:`PromptFacts`: score-like numbers grow with the questions asked and the
user's turns, evidence-like strings quote real input lines.
"""
from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping
from typing import Any

from livetalk.emulator.prompt import PromptFacts
from livetalk.emulator.wire import pick

MAX_DEPTH = 8  # deeper (recursive) schemas get null/empty values
DEFAULT_RANGE = (0, 100)  # numbers without minimum/maximum
MAX_ARRAY_ITEMS = 3
SCORE_BASE = 0.2  # fraction of the range with no questions and no turns
SCORE_PER_QUESTION = 0.15
SCORE_PER_TURN = 0.05
SCORE_JITTER = 0.05  # per-property spread, so sibling scores differ

_SCORE_NAME = re.compile(r"score|rating|grade|point|mark|level|rank|percent|評価|点|スコア", re.IGNORECASE)
_COUNT_NAME = re.compile(r"count|num|number|turns|questions|total|回数|数", re.IGNORECASE)
_QUOTE_NAME = re.compile(
    r"evidence|quote|comment|excerpt|example|citation|utterance|said|transcript|line|引用|根拠|発言|コメント|例",
    re.IGNORECASE,
)
_FORMATS = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00", "email": "emu@example.com"}


def generate(schema: Mapping[str, Any], facts: PromptFacts) -> Any:
    """A value for ``schema`` derived from ``facts``."""
    defs = {**(pick(schema, "definitions", {}) or {}), **(pick(schema, "$defs", {}) or {})}
    return _Walker(facts, defs).value(schema, name="", path="", index=0, depth=0)


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _schema_type(schema: Mapping[str, Any]) -> str:
    """The (lower-case) type, inferred when absent; the first non-null of a type list."""
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if str(t).lower() != "null"), "null")
    if isinstance(declared, str) and declared:
        return declared.lower()
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


class _Walker:
    def __init__(self, facts: PromptFacts, defs: Mapping[str, Any]) -> None:
        self.facts = facts
        self.defs = defs
        self.tag = "[エミュレーター]" if facts.japanese else "[emulator]"

    def value(self, schema: Any, *, name: str, path: str, index: int, depth: int) -> Any:
        if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
            return None
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[(_crc(path) + self.facts.questions + index) % len(enum)]
        kind = _schema_type(schema)
        handler = getattr(self, f"_{kind}", self._string)
        return handler(schema, name=name, path=path, index=index, depth=depth)

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow ``$ref`` and pick the first non-null ``anyOf``/``oneOf``/``allOf`` branch."""
        for _ in range(MAX_DEPTH):
            ref = schema.get("$ref")
            if isinstance(ref, str):
                schema = self.defs.get(ref.rsplit("/", 1)[-1], {})
                continue
            branches = schema.get("anyOf") or schema.get("any_of") or schema.get("oneOf") or schema.get("allOf")
            if isinstance(branches, list) and branches and "type" not in schema:
                usable = [b for b in branches if isinstance(b, Mapping) and _schema_type(b) != "null"]
                schema = {**{k: v for k, v in schema.items() if k not in ("anyOf", "any_of", "oneOf", "allOf")},
                          **(usable[0] if usable else branches[0])}
                continue
            return schema
        return schema

    def _object(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        order = list(pick(schema, "propertyOrdering", []) or [])
        names = [n for n in order if n in properties] + [n for n in properties if n not in order]
        return {
            prop: self.value(properties[prop], name=prop, path=f"{path}.{prop}", index=index, depth=depth + 1)
            for prop in names
        }

    def _array(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> list[Any]:
        low = int(pick(schema, "minItems", 0) or 0)
        high = int(pick(schema, "maxItems", max(low, MAX_ARRAY_ITEMS)))
        wanted = 1 + (self.facts.questions + self.facts.user_turns + _crc(path)) % MAX_ARRAY_ITEMS
        count = max(low, min(high, wanted))
        item = schema.get("items") or {}
        return [
            self.value(item, name=name, path=f"{path}[{i}]", index=index * MAX_ARRAY_ITEMS + i, depth=depth + 1)
            for i in range(count)
        ]

    def _integer(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> int:
        low, high = self._bounds(schema, integer=True)
        value = round(self._number_in(low, high, name=name, path=path))
        return int(min(math.floor(high), max(math.ceil(low), value)))

    def _number(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> float:
        low, high = self._bounds(schema, integer=False)
        return min(high, max(low, round(self._number_in(low, high, name=name, path=path), 1)))

    def _boolean(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> bool:
        return (self.facts.questions + _crc(path)) % 2 == 0

    def _null(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> None:
        return None

    def _string(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> str:
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt]
        quote = self.facts.quote(index + _crc(name)) if _QUOTE_NAME.search(name) else None
        text = quote if quote is not None else self._describe(name)
        return _fit_length(text, schema)

    def _describe(self, name: str) -> str:
        label = name or "text"
        facts = self.facts
        if facts.japanese:
            return f"{self.tag} {label}: ユーザー発話{facts.user_turns}回、質問{facts.questions}件"
        return f"{self.tag} {label}: {facts.user_turns} user turns, {facts.questions} questions"

    def _bounds(self, schema: Mapping[str, Any], *, integer: bool) -> tuple[float, float]:
        low = _as_number(schema.get("minimum"))
        high = _as_number(schema.get("maximum"))
        step = 1 if integer else 0.1
        if low is None and _as_number(schema.get("exclusiveMinimum")) is not None:
            low = _as_number(schema["exclusiveMinimum"]) + step
        if high is None and _as_number(schema.get("exclusiveMaximum")) is not None:
            high = _as_number(schema["exclusiveMaximum"]) - step
        low = DEFAULT_RANGE[0] if low is None else low
        high = max(low, DEFAULT_RANGE[1] if high is None else high)
        return low, high

    def _number_in(self, low: float, high: float, *, name: str, path: str) -> float:
        facts = self.facts
        if _SCORE_NAME.search(name) or not _COUNT_NAME.search(name):
            jitter = SCORE_JITTER * (_crc(path) % 100) / 100
            fraction = SCORE_BASE + SCORE_PER_QUESTION * facts.questions + SCORE_PER_TURN * facts.user_turns
            return low + (high - low) * min(1.0, fraction + jitter)
        count = facts.questions if "question" in name.lower() else facts.user_turns
        return min(high, max(low, count))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _fit_length(text: str, schema: Mapping[str, Any]) -> str:
    high = _as_number(pick(schema, "maxLength"))
    low = _as_number(pick(schema, "minLength"))
    if high is not None:
        text = text[: int(high)]
    if low is not None and len(text) < low:
        text = text + "." * (int(low) - len(text))
    return text
