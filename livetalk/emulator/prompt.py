"""Facts about a generateContent request that the emulator's answers are derived from.

Pure apart from looking up uploaded files in the :class:`FileStore` it is given.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from livetalk.emulator.dialogue import is_japanese
from livetalk.emulator.errors import RestError
from livetalk.emulator.files import FileStore
from livetalk.emulator.media import InvalidAudio, audio_seconds
from livetalk.emulator.wire import b64decode, pick

MAX_QUOTE_CHARS = 200  # a quoted input line is cut to this length

# A transcript line spoken by the user ("User: …", "営業: …"); the label list is deliberately broad.
_USER_LINE = re.compile(
    r"^\s*[\[(（【]?\s*(user|you|me|human|learner|student|trainee|salesperson|sales|rep|"
    r"ユーザー|利用者|学習者|営業|営業担当|あなた|私)\s*[\])）】]?\s*[:：]",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class PromptFacts:
    """What the user side of a request contains."""

    text: str = ""  # all user text, parts joined by newlines
    lines: tuple[str, ...] = ()  # its non-empty lines, stripped
    user_turns: int = 0  # user-labelled transcript lines, else user contents
    questions: int = 0  # '?' and '？' in the user text
    audio_seconds: float = 0.0  # audio in inline data and referenced files
    system_instruction: str = ""

    @property
    def japanese(self) -> bool:
        """Whether the input is (at least partly) Japanese."""
        return is_japanese(self.text) or is_japanese(self.system_instruction)

    def quote(self, index: int) -> str | None:
        """A real line of the input (the ``index``-th, cycling), or None without text."""
        if not self.lines:
            return None
        return self.lines[index % len(self.lines)][:MAX_QUOTE_CHARS]


def analyse(body: Mapping[str, Any], files: FileStore) -> PromptFacts:
    """Collect :class:`PromptFacts` from a generateContent request body.

    Raises:
        RestError: 400 for a malformed or undecodable part (as the real API), 403 for an unknown file.
    """
    texts: list[str] = []
    audio_s = 0.0
    user_contents = 0
    for i, content in enumerate(_list(pick(body, "contents", []), "contents")):
        if not isinstance(content, Mapping):
            raise _invalid(f"contents[{i}]", "expected a Content object")
        if pick(content, "role", "user") != "user":
            continue
        user_contents += 1
        for j, part in enumerate(_list(pick(content, "parts", []), f"contents[{i}].parts")):
            text, seconds = _read_part(part, files, f"contents[{i}].parts[{j}]")
            texts.append(text)
            audio_s += seconds
    text = "\n".join(t for t in texts if t)
    lines = tuple(line.strip() for line in text.splitlines() if line.strip())
    labelled = sum(1 for line in lines if _USER_LINE.match(line))
    return PromptFacts(
        text=text,
        lines=lines,
        user_turns=labelled or user_contents,
        questions=text.count("?") + text.count("？"),
        audio_seconds=round(audio_s, 2),
        system_instruction=_system_text(pick(body, "systemInstruction")),
    )


def _invalid(field: str, problem: str) -> RestError:
    return RestError(400, f"Invalid value at '{field}': {problem}.")


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(field, "expected a list")
    return value


def _read_part(part: Any, files: FileStore, field: str) -> tuple[str, float]:
    """A part's text and audio seconds."""
    if not isinstance(part, Mapping):
        raise _invalid(field, "expected a Part object")
    text = pick(part, "text")
    if text is not None:
        if not isinstance(text, str):
            raise _invalid(f"{field}.text", "expected a string")
        return text, 0.0
    inline = pick(part, "inlineData")
    if inline is not None:
        return _read_inline(inline, f"{field}.inline_data")
    file_data = pick(part, "fileData")
    if file_data is not None:
        return _read_file(file_data, files, f"{field}.file_data")
    return "", 0.0


def _read_inline(inline: Any, field: str) -> tuple[str, float]:
    data, mime_type = pick(inline, "data", ""), pick(inline, "mimeType", "")
    if not isinstance(data, str) or not isinstance(mime_type, str):
        raise _invalid(field, "data and mime_type must be strings")
    try:
        raw = b64decode(data)
    except ValueError:
        raise RestError(400, f"Invalid value at '{field}.data' (TYPE_BYTES), Base64 decoding failed.") from None
    return _read_blob(raw, mime_type, field)


def _read_file(file_data: Any, files: FileStore, field: str) -> tuple[str, float]:
    uri = pick(file_data, "fileUri")
    if not isinstance(uri, str) or not uri:
        raise _invalid(f"{field}.file_uri", "expected a file URI")
    stored = files.find_uri(uri)
    if stored is None:
        name = uri.rsplit("/", 1)[-1]
        raise RestError(403, f"You do not have permission to access the File {name} or it may not exist.")
    return _read_blob(stored.data, stored.mime_type, field)


def _read_blob(data: bytes, mime_type: str, field: str) -> tuple[str, float]:
    kind = mime_type.split(";")[0].strip().lower()
    if kind.startswith("text/") or kind in ("application/json",):
        return data.decode("utf-8", errors="replace"), 0.0
    if not kind.startswith("audio/"):
        return "", 0.0
    try:
        return "", audio_seconds(data, mime_type)
    except InvalidAudio as exc:
        raise RestError(400, f"Request contains an invalid argument: '{field}' holds undecodable audio ({exc}).") from None


def _system_text(instruction: Any) -> str:
    if isinstance(instruction, str):
        return instruction
    parts = pick(instruction, "parts", [])
    if not isinstance(parts, list):
        raise _invalid("system_instruction.parts", "expected a list")
    return "\n".join(p["text"] for p in parts if isinstance(pick(p, "text"), str))
