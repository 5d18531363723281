"""What the user's words show: questions, fillers, and how much was said (Japanese and English).

Pure functions over transcript text; every rule is written out below, since the counts
are shown to trainees.

**Sentences.** A text is cut into sentences after a run of ``。 ． . ！ ! ？ ?`` (with any
closing brackets or quotes right after it) and at line breaks; the end of the text (one
utterance) ends its last sentence. Text is first NFKC-normalised (full-width ``？`` is
``?``, ``…`` is ``...``).

**Questions.** A sentence is a question when its closing run of marks holds ``?``, or when,
its trailing pauses (``、 , … ー`` and spaces) set aside, it ends with the particle か after
a polite or sentence-final form: ですか, ますか, でしょうか, ましょうか, ませんか, でしたか,
ましたか, だろうか, ないか, のか. A word that merely ends in か (静か, 確か, 何か, 誰か,
いつか, しか) is not a question. Each sentence counts once however many marks it has
(``ですか？`` and ``really?!`` are one question each). Only the end of a sentence counts:
an unpunctuated utterance holding two questions counts once.

**Fillers.** A filler is a hesitation sound, not a word that carries meaning; some forms
are fillers wherever they appear, others only where a word could not be:

=====================  =============================================================
form                   counted
=====================  =============================================================
えーと えっと ええと  anywhere (lengthened: えーっと, えっとー)
うーん                 anywhere (also うーむ)
あのー そのー          anywhere: a lengthened demonstrative is a hesitation
えー                   at the start of a phrase (not へえー, ねえー; ええ is "yes")
あの その              at the start of a phrase, followed by a pause, the end, です
                       (あのですね), or another filler; not before a noun (あの会社)
まあ                   at the start of a phrase; not まあまあ ("so-so")
um uh er (umm, uhm,    anywhere as a word of their own; not uh-huh (a "yes")
uhh, erm, err)
you know, I mean       set off by pauses on both sides (``It's, you know, cheap``;
                       ``I mean, sure``), or right after another filler; not ``do you
                       know the price``, ``I mean it``
=====================  =============================================================

A *phrase* starts at the start of the text, after punctuation, after a space (Japanese
transcripts put spaces between phrases), or right after another filler. Pauses are
punctuation marks; a space is not a pause for the English phrases, whose words are
always separated by spaces. Lengthening may be written ー, ～ or 〜, and small vowels
(えぇ, まぁ) count as the vowel. Katakana spellings (エート) are not counted.

**Amount said.** For Japanese and Chinese (and Korean) scenarios, the characters that
are spoken: letters and digits, not spaces, punctuation or symbols (``はい、そうです。``
is 6). For every other language, words: runs of letters and digits, apostrophes inside
a word included (``don't`` is one).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Literal

SpeechRateUnit = Literal["chars_per_min", "words_per_min"]
CHARACTER_LANGUAGES = ("ja", "zh", "ko")  # primary BCP-47 subtags measured in characters

_TERMINATORS = ".!?。．！？"
_CLOSERS = "」』）)]】\"'”’»"
_SENTENCE = re.compile(rf"[^\n{re.escape(_TERMINATORS)}]*(?:[{re.escape(_TERMINATORS)}]+[{re.escape(_CLOSERS)}]*|\n|$)")
_TRAILING_PAUSES = " \t、,…・ー" + _CLOSERS
_QUESTION_KA = ("ですか", "ますか", "でしょうか", "ましょうか", "ませんか", "でしたか", "ましたか", "だろうか",
                "ないか", "のか")
_WAVE_DASHES = str.maketrans({"〜": "ー", "～": "ー", "~": "ー", "ぇ": "え", "ぁ": "あ", "ぅ": "う"})
_PAUSES = frozenset("、。,.!?…・:;：；「」『』()（）[]【】—–\"“”")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")

# (pattern, needs the start of a phrase, how a phrase start is recognised: "ja" or "en")
_FILLERS: tuple[tuple[re.Pattern[str], bool, str], ...] = (
    (re.compile(r"え(?:ー+っ?|っ|え)とー*"), False, "ja"),  # えーと えーっと えっと ええと
    (re.compile(r"うー+[んむ]"), False, "ja"),  # うーん
    (re.compile(r"[あそ]のー+"), False, "ja"),  # あのー そのー
    (re.compile(r"えー+"), True, "ja"),  # えー
    (re.compile(r"[あそ]の(?=\s*(?:$|[、。,.!?…・:;]|です|え[ーっえ]|[あそ]の|まあ))"), True, "ja"),  # あの、 その…
    (re.compile(r"まあー*(?!まあ)"), True, "ja"),  # まあ
    (re.compile(r"(?<![A-Za-z'’])(?:u+h*m+|u+h+|e+r+m*)(?![A-Za-z'’-])", re.IGNORECASE), False, "en"),  # um uh er
    (re.compile(r"(?:you know|i mean)(?=\s*(?:$|[,.!?…;:—–]))", re.IGNORECASE), True, "en"),
)
_FILLER_ANY = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _, _ in _FILLERS), re.IGNORECASE)


def normalize(text: str) -> str:
    """NFKC, with wave dashes read as ー and small vowels as full ones (for matching only)."""
    return unicodedata.normalize("NFKC", text).translate(_WAVE_DASHES)


def sentences(text: str) -> list[str]:
    """The sentences of one utterance, each with its closing marks (see the module docstring)."""
    return [s.strip() for s in _SENTENCE.findall(normalize(text)) if s.strip()]


def is_question(sentence: str) -> bool:
    """Whether one sentence is a question: it closes with ``?``, or ends with か after a polite form."""
    body = sentence.rstrip(_TERMINATORS + _CLOSERS + " \t")
    if "?" in sentence[len(body):]:
        return True
    return body.rstrip(_TRAILING_PAUSES).endswith(_QUESTION_KA)


def count_questions(text: str) -> int:
    """How many sentences of ``text`` (one utterance) are questions."""
    return sum(is_question(s) for s in sentences(text))


def count_fillers(text: str) -> int:
    """How many fillers ``text`` (one utterance) holds, by the table in the module docstring."""
    text = normalize(text)
    count, last_end = 0, -1
    position = 0
    while (match := _FILLER_ANY.search(text, position)) is not None:
        start = match.start()
        for pattern, needs_phrase_start, kind in _FILLERS:
            found = pattern.match(text, start)
            if found is None:
                continue
            if needs_phrase_start and not _phrase_starts_at(text, start, last_end, kind):
                continue
            count, last_end = count + 1, found.end()
            position = found.end()
            break
        else:
            position = start + 1
    return count


def _phrase_starts_at(text: str, start: int, last_filler_end: int, kind: str) -> bool:
    """Whether a phrase starts at ``start``: the text's start, after a pause, or right after a filler."""
    before = start
    if kind == "en":
        while before and text[before - 1].isspace():
            before -= 1
    if before == 0 or before == last_filler_end or start == last_filler_end:
        return True
    previous = text[before - 1]
    return previous in _PAUSES or (kind == "ja" and previous.isspace())


def spoken_units(text: str, unit: SpeechRateUnit) -> int:
    """How much of ``text`` is spoken: letters and digits (``chars_per_min``) or words (``words_per_min``)."""
    if unit == "chars_per_min":
        return sum(1 for ch in text if unicodedata.category(ch)[0] in "LN")
    return len(_WORD.findall(text))


def speech_rate_unit(language: str) -> SpeechRateUnit:
    """``chars_per_min`` for a Japanese, Chinese or Korean BCP-47 tag (``ja-JP``), else ``words_per_min``."""
    primary = (language or "").split("-")[0].split("_")[0].lower()
    return "chars_per_min" if primary in CHARACTER_LANGUAGES else "words_per_min"
