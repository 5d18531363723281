"""Conversation logs as client apps send them to ``POST /feedback``: parsed into turns. Pure.

Two forms: a JSON list of ``{"role": "user"|"model", "text": "..."}`` (``ai`` and ``assistant`` are
``model``), or plain text lines ``User: ...`` / ``AI: ...`` where a line without a label continues the
previous message.

Errors::

    LogError     the log cannot be read as a conversation (also a ValueError); the message says where
"""
from __future__ import annotations

import json
import re
from typing import Any

from .grading import Turn

MAX_LOG_TURNS = 5000
MAX_TURN_CHARS = 20_000
ROLE_ALIASES = {"user": "user", "model": "model", "ai": "model", "assistant": "model"}
JAPANESE_SHARE = 0.2  # a log whose letters are at least this share kana or kanji is Japanese
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")  # kana, kanji, half-width kana
_LATIN = re.compile(r"[A-Za-z]")
_LINE_LABEL = re.compile(r"^\s*(user|ai|model|assistant|ユーザー)\s*[:：]\s?(.*)$", re.IGNORECASE)


class LogError(ValueError):
    """The log is not a readable conversation; the message names what is wrong."""


def is_json_log(text: str) -> bool:
    """Whether ``text`` is meant as the JSON form (it starts with ``[`` or ``{``)."""
    return text.lstrip()[:1] in ("[", "{")


def parse_log(text: str) -> list[Turn]:
    """The turns of a log: a JSON list of ``{role, text}``, or ``User:`` / ``AI:`` lines.

    Raises :class:`LogError` naming what is wrong.
    """
    turns = _parse_json_log(text) if is_json_log(text) else _parse_text_log(text)
    turns = [t for t in turns if t.text.strip()]
    if not turns:
        raise LogError("log has no turns with text")
    if len(turns) > MAX_LOG_TURNS:
        raise LogError(f"log has more than {MAX_LOG_TURNS} turns")
    return turns


def log_language(turns: list[Turn]) -> str:
    """``"ja"`` when the turns are written in Japanese (kana and kanji among their letters), else ``"en"``.

    English words inside Japanese (``AI``, ``PC``) and a Japanese name inside English do not flip it.
    """
    text = "".join(turn.text for turn in turns)
    japanese, latin = len(_JAPANESE.findall(text)), len(_LATIN.findall(text))
    return "ja" if japanese and japanese >= JAPANESE_SHARE * (japanese + latin) else "en"


def _parse_json_log(text: str) -> list[Turn]:
    try:
        items = json.loads(text)
    except ValueError:
        raise LogError("log is not valid JSON") from None
    if not isinstance(items, list):
        raise LogError('log must be a JSON list of {"role", "text"} objects')
    return [_json_turn(i, item) for i, item in enumerate(items)]


def _json_turn(i: int, item: Any) -> Turn:
    if not isinstance(item, dict):
        raise LogError(f"log[{i}] must be an object with role and text")
    role = ROLE_ALIASES.get(str(item.get("role", "")).lower())
    if role is None:
        raise LogError(f"log[{i}].role must be 'user' or 'model'")
    text = item.get("text")
    if not isinstance(text, str):
        raise LogError(f"log[{i}].text must be a string")
    if len(text) > MAX_TURN_CHARS:
        raise LogError(f"log[{i}].text is over {MAX_TURN_CHARS} characters")
    return Turn(role, text)


def _parse_text_log(text: str) -> list[Turn]:
    turns: list[list[str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LINE_LABEL.match(line)
        if match:
            turns.append([ROLE_ALIASES.get(match[1].lower(), "user"), match[2].strip()])
        elif line.strip() and turns:
            turns[-1][1] = f"{turns[-1][1]}\n{line.strip()}"  # a message that spans lines
        elif line.strip():
            raise LogError(f"log line {number} must start with 'User:' or 'AI:'")
    return [Turn(role, body[:MAX_TURN_CHARS]) for role, body in turns]
