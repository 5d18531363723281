"""What the emulator says: deterministic, short, clearly emulated replies.

Replies depend only on the session language, the turn number and a description
of the input (its duration or its typed text), so tests can predict them.
"""
from __future__ import annotations

import dataclasses
import re

SNIPPET_CHARS = 24  # typed text quoted in a reply is cut to this many characters
CJK_PIECE_CHARS = 3  # Japanese transcript pieces are this many characters long

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")
_LATIN_PIECE = re.compile(r"\S+\s*")


@dataclasses.dataclass(frozen=True)
class Wording:
    """One language's phrases."""

    tag: str
    speech: str  # input transcription of a voice turn; {s} is seconds
    heard: str  # how a voice turn is described in a reply
    typed: str  # how a typed turn is described in a reply
    replies: tuple[str, ...]  # chosen by turn number; {what} is the description
    confirm: str  # accepting a scheduled meeting; {when} is its date and time as said aloud
    decline: str  # the scheduling function reported a failure


ENGLISH = Wording(
    tag="[emulator]",
    speech="(speech {s:.1f} s)",
    heard="{s:.1f} s of speech",
    typed='"{text}"',
    replies=(
        "{tag} I heard {what}. Please go on.",
        "{tag} Thanks, that was {what}.",
        "{tag} Got it: {what}. Tell me more.",
    ),
    confirm="{tag} Great, {when} works for me.",
    decline="{tag} Sorry, {when} does not work on my side after all. Could you suggest another time?",
)
JAPANESE = Wording(
    tag="[エミュレーター]",
    speech="（音声 {s:.1f} 秒）",
    heard="{s:.1f}秒の音声",
    typed="「{text}」",
    replies=(
        "{tag} {what}を受け取りました。続けてください。",
        "{tag} ありがとうございます。{what}ですね。",
        "{tag} わかりました、{what}。もう少し教えてください。",
    ),
    confirm="{tag} では{when}にお待ちしております。",
    decline="{tag} 申し訳ありません、{when}は都合がつかなくなりました。別の候補をいただけますか。",
)


def wording_for(language_code: str | None, hint: str = "") -> Wording:
    """Japanese for ``ja-*`` (or, without a language code, a Japanese ``hint``), else English."""
    if language_code:
        return JAPANESE if language_code.lower().startswith("ja") else ENGLISH
    return JAPANESE if _JAPANESE.search(hint) else ENGLISH


def is_japanese(text: str) -> bool:
    """Whether ``text`` contains kana or kanji."""
    return bool(_JAPANESE.search(text))


def input_transcript(wording: Wording, seconds: float) -> str:
    """The stand-in transcription of ``seconds`` of user speech."""
    return wording.speech.format(s=seconds)


def reply_text(wording: Wording, turn: int, *, seconds: float | None = None, text: str | None = None) -> str:
    """The reply to turn number ``turn`` (0-based): to speech of ``seconds`` or to typed ``text``."""
    if text is not None:
        snippet = " ".join(text.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[: SNIPPET_CHARS - 1] + "…"
        what = wording.typed.format(text=snippet)
    else:
        what = wording.heard.format(s=seconds or 0.0)
    template = wording.replies[turn % len(wording.replies)]
    return template.format(tag=wording.tag, what=what)


def scheduling_reply(wording: Wording, when: str, *, failed: bool) -> str:
    """What the model says once the scheduling function answered: agree to ``when``, or ask for another time."""
    return (wording.decline if failed else wording.confirm).format(tag=wording.tag, when=when)


def transcript_pieces(text: str) -> list[tuple[int, str]]:
    """Split ``text`` into (start index, piece): words, or short runs of Japanese characters."""
    if is_japanese(text):
        return [(i, text[i : i + CJK_PIECE_CHARS]) for i in range(0, len(text), CJK_PIECE_CHARS)]
    return [(m.start(), m.group()) for m in _LATIN_PIECE.finditer(text)]
