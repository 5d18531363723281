"""Evidence quotes tied to the transcript line they come from, so a page can play that moment. Pure.

The grader quotes the transcript (``criteria[].evidence``); its quotes are close to verbatim but not
always exact (brackets added, spaces or punctuation changed, a long line cut with an ellipsis), and
a model's own idea of *when* something was said is never trusted. Each quote is matched to a line
of the transcript by its text alone, and the line's times are the quote's.

Matching, on text normalised by :func:`normalize` (NFKC, case folded, without spaces, punctuation
or symbols):

1. the lines that contain the quote;
2. else, for a quote cut with an ellipsis (``…``, ``...``), the lines that contain its longest piece
   (at least :data:`MIN_PIECE_CHARS` characters);
3. else the line that holds the largest share of the quote's character pairs, if that share is at
   least :data:`MIN_PAIR_SHARE` (a paraphrase of a word or two).

Among several lines the user's come first (the user is the one graded and quoted), then the
earliest. A quote that matches no line keeps null role and times.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

MIN_PIECE_CHARS = 4  # a piece of a cut quote this short matches too much to mean anything
MIN_PAIR_SHARE = 0.75  # a paraphrased quote must share this much of its character pairs with the line
MIN_FUZZY_CHARS = 6  # shorter quotes only match exactly
SECONDS_DECIMALS = 2
_ELLIPSIS = re.compile(r"…+|\.{3,}|‥+")
_DROPPED_CATEGORIES = ("P", "S", "Z", "C")  # punctuation, symbols, separators, controls


class Line(NamedTuple):
    """One line of the conversation: role, text, and seconds from the conversation's start (None: unknown)."""

    role: str
    text: str
    start_s: float | None = None
    end_s: float | None = None


class EvidenceRef(TypedDict):
    """The contract's ``evaluation.evidence_refs`` entry."""

    criterion: str
    quote: str
    role: str | None
    start_s: float | None
    end_s: float | None


def normalize(text: str) -> str:
    """The text as it is compared: NFKC, case folded, only letters, marks and digits."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in _DROPPED_CATEGORIES)


def evidence_refs(criteria: Iterable[Any], lines: Sequence[Line]) -> list[EvidenceRef]:
    """Every quote of every criterion (objects or mappings with ``name`` and ``evidence``), in order, with
    the role and times of the line it comes from."""
    matcher = _Matcher(lines)
    refs: list[EvidenceRef] = []
    for criterion in criteria:
        name, quotes = _field(criterion, "name"), _field(criterion, "evidence") or ()
        for quote in quotes:
            line = matcher.find(str(quote))
            refs.append({"criterion": str(name), "quote": str(quote), "role": line.role if line else None,
                         "start_s": _seconds(line.start_s) if line else None,
                         "end_s": _seconds(line.end_s) if line else None})
    return refs


class _Matcher:
    """The transcript, normalised once, in the order lines are preferred (user first, then by position)."""

    def __init__(self, lines: Sequence[Line]) -> None:
        ordered = sorted(enumerate(lines), key=lambda item: (item[1].role != "user", item[0]))
        self.lines = [(line, normalize(line.text)) for _, line in ordered if line.text.strip()]
        self.pairs = [_pairs(text) for _, text in self.lines]

    def find(self, quote: str) -> Line | None:
        wanted = normalize(quote)
        if not wanted:
            return None
        found = self._containing(wanted) or self._containing(self._longest_piece(quote))
        return found or self._closest(wanted)

    def _containing(self, wanted: str | None) -> Line | None:
        if not wanted:
            return None
        return next((line for line, text in self.lines if wanted in text), None)

    @staticmethod
    def _longest_piece(quote: str) -> str | None:
        pieces = [normalize(piece) for piece in _ELLIPSIS.split(quote)]
        longest = max(pieces, key=len, default="")
        return longest if len(pieces) > 1 and len(longest) >= MIN_PIECE_CHARS else None

    def _closest(self, wanted: str) -> Line | None:
        if len(wanted) < MIN_FUZZY_CHARS:
            return None
        quote_pairs = _pairs(wanted)
        best, best_share = None, 0.0
        for (line, _), pairs in zip(self.lines, self.pairs):
            share = len(quote_pairs & pairs) / len(quote_pairs)
            if share > best_share:
                best, best_share = line, share
        return best if best_share >= MIN_PAIR_SHARE else None


def _pairs(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, SECONDS_DECIMALS)
