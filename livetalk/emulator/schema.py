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
INT64_RANGE = (-(2**63), 2**63 - 1)  # the API's INTEGER
MAX_ARRAY_ITEMS = 3
MAX_REQUIRED_ITEMS = 100  # a minItems above this is refused rather than built
MAX_REQUIRED_CHARS = 10_000  # likewise for minLength
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
_TYPES = frozenset({"object", "array", "integer", "number", "boolean", "null", "string"})
_FORMATS = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00", "email": "emu@example.com"}


class SchemaError(ValueError):
    """The response schema is malformed (the API answers 400)."""


MISSING: Any = object()  # no preset value


def generate(schema: Mapping[str, Any], facts: PromptFacts, *, preset: Any = MISSING) -> Any:
    """A value for ``schema`` derived from ``facts``.

    ``preset`` is an answer already made (a grade, say): each part of it that fits the
    schema is kept as it is; whatever is missing or does not fit is derived from ``facts``.

    Raises:
        SchemaError: a keyword of the schema has a value of the wrong kind.
    """
    defs = {**_mapping(schema, "definitions"), **_mapping(schema, "$defs")}
    return _Walker(facts, defs).fill(schema, preset, name="", path="", index=0, depth=0)


def _mapping(schema: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = pick(schema, key) or {}
    if not isinstance(value, Mapping):
        raise SchemaError(f"response_schema: '{key}' must be an object")
    return value


def _count(schema: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """A non-negative integer keyword (int64 keywords may arrive as strings)."""
    value = pick(schema, key)
    if value is None:
        return default
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise SchemaError(f"response_schema: '{key}' must be an integer") from None
    if count < 0:
        raise SchemaError(f"response_schema: '{key}' must not be negative")
    return count


def _item_bounds(schema: Mapping[str, Any], *, default_high: int) -> tuple[int, int]:
    """(minItems, maxItems) of an array schema; ``default_high`` (at least minItems) when unbounded."""
    low = _count(schema, "minItems", 0) or 0
    if low > MAX_REQUIRED_ITEMS:
        raise SchemaError(f"response_schema: minItems above {MAX_REQUIRED_ITEMS} is not emulated")
    high = _count(schema, "maxItems", max(low, default_high))
    assert high is not None
    return low, high


def _properties(schema: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """An object schema's properties in ``propertyOrdering`` order, the unordered ones after."""
    properties = _mapping(schema, "properties")
    order = pick(schema, "propertyOrdering") or []
    if not isinstance(order, list):
        raise SchemaError("response_schema: 'property_ordering' must be a list")
    ordered = [n for n in order if isinstance(n, str) and n in properties]
    return [(n, properties[n]) for n in ordered + [n for n in properties if n not in ordered]]


def _fits(schema: Mapping[str, Any], kind: str, value: Any) -> bool:
    """Whether a preset scalar may stand as it is for ``schema`` of type ``kind``."""
    if "const" in schema:
        return value == schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return value in enum
    if kind in ("integer", "number"):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or (kind == "integer" and not isinstance(value, int)):
            return False
        low, high = _as_number(schema.get("minimum")), _as_number(schema.get("maximum"))
        return (low is None or value >= low) and (high is None or value <= high)
    expected = {"string": str, "boolean": bool, "null": type(None)}.get(kind)
    return expected is not None and isinstance(value, expected)


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

    def fill(self, schema: Any, preset: Any, *, name: str, path: str, index: int, depth: int) -> Any:
        """``preset`` where it fits ``schema``, derived values elsewhere."""
        if preset is MISSING or not isinstance(schema, Mapping) or depth > MAX_DEPTH:
            return self.value(schema, name=name, path=path, index=index, depth=depth)
        schema = self._resolve(schema)
        kind = _schema_type(schema)
        if kind == "object" and isinstance(preset, Mapping):
            return {
                prop: self.fill(sub, preset.get(prop, MISSING), name=prop, path=f"{path}.{prop}", index=index,
                                depth=depth + 1)
                for prop, sub in _properties(schema)
            }
        if kind == "array" and isinstance(preset, list):
            return self._fill_array(schema, preset, name=name, path=path, index=index, depth=depth)
        if _fits(schema, kind, preset):
            return _fit_length(preset, schema) if isinstance(preset, str) else preset
        return self.value(schema, name=name, path=path, index=index, depth=depth)

    def _fill_array(self, schema: Mapping[str, Any], preset: list[Any], *, name: str, path: str, index: int,
                    depth: int) -> list[Any]:
        low, high = _item_bounds(schema, default_high=len(preset))
        item = schema.get("items") or {}
        return [
            self.fill(item, preset[i] if i < len(preset) else MISSING, name=name, path=f"{path}[{i}]",
                      index=index * MAX_ARRAY_ITEMS + i, depth=depth + 1)
            for i in range(max(low, min(high, len(preset))))
        ]

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
        handler = getattr(self, f"_{kind}") if kind in _TYPES else self._string
        return handler(schema, name=name, path=path, index=index, depth=depth)

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow ``$ref`` and pick the first non-null ``anyOf``/``oneOf``/``allOf`` branch."""
        for _ in range(MAX_DEPTH):
            ref = schema.get("$ref")
            if isinstance(ref, str):
                target = self.defs.get(ref.rsplit("/", 1)[-1])
                schema = target if isinstance(target, Mapping) else {}
                continue
            branches = schema.get("anyOf") or schema.get("any_of") or schema.get("oneOf") or schema.get("allOf")
            if isinstance(branches, list) and branches and "type" not in schema:
                objects = [b for b in branches if isinstance(b, Mapping)]
                usable = [b for b in objects if _schema_type(b) != "null"] or objects or [{}]
                schema = {**{k: v for k, v in schema.items() if k not in ("anyOf", "any_of", "oneOf", "allOf")},
                          **usable[0]}
                continue
            return schema
        return schema

    def _object(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> dict[str, Any]:
        return {
            prop: self.value(sub, name=prop, path=f"{path}.{prop}", index=index, depth=depth + 1)
            for prop, sub in _properties(schema)
        }

    def _array(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> list[Any]:
        low, high = _item_bounds(schema, default_high=MAX_ARRAY_ITEMS)
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
        value = int(min(math.floor(high), max(math.ceil(low), value)))
        if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            raise SchemaError("response_schema: integer bounds beyond the int64 range")
        return value

    def _number(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> float:
        low, high = self._bounds(schema, integer=False)
        return min(high, max(low, round(self._number_in(low, high, name=name, path=path), 1)))

    def _boolean(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> bool:
        return (self.facts.questions + _crc(path)) % 2 == 0

    def _null(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> None:
        return None

    def _string(self, schema: Mapping[str, Any], *, name: str, path: str, index: int, depth: int) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
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
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    return None


def _fit_length(text: str, schema: Mapping[str, Any]) -> str:
    high = _as_number(pick(schema, "maxLength"))
    low = _as_number(pick(schema, "minLength"))
    if high is not None:
        text = text[: int(high)]
    if low is not None and len(text) < low:
        if low > MAX_REQUIRED_CHARS:
            raise SchemaError(f"response_schema: minLength above {MAX_REQUIRED_CHARS} is not emulated")
        text = text + "." * (int(low) - len(text))
    return text
