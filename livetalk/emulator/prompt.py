"""Facts about a generateContent request that the emulator's answers are derived from.

Pure apart from looking up uploaded files in the :class:`FileStore` it is given.
"""
from __future__ import annotations

import dataclasses
import io
import re
import wave
from collections.abc import Mapping
from typing import Any

from livetalk.emulator.audio import duration_ms
from livetalk.emulator.dialogue import is_japanese
from livetalk.emulator.files import FileStore
from livetalk.emulator.wire import b64decode, mime_rate, pick

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
    """Collect :class:`PromptFacts` from a generateContent request body."""
    texts: list[str] = []
    audio_s = 0.0
    user_contents = 0
    for content in pick(body, "contents", ()):
        if pick(content, "role", "user") != "user":
            continue
        user_contents += 1
        for part in pick(content, "parts", ()):
            text, seconds = _read_part(part, files)
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


def _read_part(part: Any, files: FileStore) -> tuple[str, float]:
    """A part's text and audio seconds."""
    if isinstance(pick(part, "text"), str):
        return part["text"], 0.0
    inline = pick(part, "inlineData")
    if inline is not None:
        try:
            data = b64decode(pick(inline, "data", ""))
        except ValueError:
            return "", 0.0
        return _read_blob(data, str(pick(inline, "mimeType", "")))
    uri = pick(pick(part, "fileData"), "fileUri")
    stored = files.find_uri(uri) if isinstance(uri, str) else None
    if stored is not None:
        return _read_blob(stored.data, stored.mime_type)
    return "", 0.0


def _read_blob(data: bytes, mime_type: str) -> tuple[str, float]:
    kind = mime_type.split(";")[0].strip().lower()
    if kind.startswith("text/") or kind in ("application/json",):
        return data.decode("utf-8", errors="replace"), 0.0
    if kind in ("audio/wav", "audio/x-wav", "audio/wave"):
        return "", _wav_seconds(data)
    if kind in ("audio/pcm", "audio/l16"):
        return "", duration_ms(len(data), mime_rate(mime_type)) / 1000
    return "", 0.0


def _wav_seconds(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        return 0.0


def _system_text(instruction: Any) -> str:
    if isinstance(instruction, str):
        return instruction
    return "\n".join(p["text"] for p in pick(instruction, "parts", ()) if isinstance(pick(p, "text"), str))
