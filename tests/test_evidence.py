"""Evidence quotes matched to the transcript line they come from, by their text alone."""
from __future__ import annotations

import pytest

from livetalk.evidence import Line, evidence_refs, normalize
from livetalk.grading import CriterionScore

LINES = [
    Line("model", "お電話ありがとうございます。情報システム部の佐藤です。", 0.5, 3.2),
    Line("user", "本日はお時間をいただきありがとうございます。", 4.0, 6.1),
    Line("user", "社内の問い合わせ対応で、いちばんお困りのことは何でしょうか？", 6.3, 9.9),
    Line("model", "問い合わせが情報システム部に集中していることですね。", 10.4, 13.0),
    Line("user", "Could we book a demo next Tuesday at 2 pm?", 14.0, 16.5),
    Line("user", "ありがとうございます。", 17.0, 18.0),
]


@pytest.mark.parametrize(("quote", "expected"), [
    ("社内の問い合わせ対応で、いちばんお困りのことは何でしょうか？", 2),
    ("「いちばんお困りのことは何でしょうか」", 2),  # brackets added, a piece of the line
    ("いちばん お困りのこと は 何でしょうか", 2),  # spaces inserted
    ("could we book a DEMO next tuesday", 4),  # case and a piece
    ("社内の問い合わせ対応で…何でしょうか？", 2),  # cut with an ellipsis
    ("社内の問い合わせ対応で、一番お困りのことは何でしょうか", 2),  # a word written otherwise
    ("ありがとうございます", 1),  # in several lines: the user's first, then the earliest
    ("情報システム部の佐藤です", 0),  # only the model said it
    ("予算はおいくらですか", None),  # never said
    ("。", None),  # nothing left to match
], ids=["verbatim", "brackets", "spaces", "case", "ellipsis", "paraphrase", "several-lines", "model-line",
        "never-said", "only-punctuation"])
def test_a_quote_finds_its_line(quote, expected):
    """Each quote gets the role and times of the line it comes from, or nulls when no line says it."""
    [ref] = evidence_refs([{"name": "質問力", "evidence": [quote]}], LINES)
    assert ref["criterion"] == "質問力" and ref["quote"] == quote
    if expected is None:
        assert (ref["role"], ref["start_s"], ref["end_s"]) == (None, None, None)
    else:
        line = LINES[expected]
        assert (ref["role"], ref["start_s"], ref["end_s"]) == (line.role, line.start_s, line.end_s)


def test_every_quote_of_every_criterion_in_order():
    """Refs follow the criteria and their quotes in order; criteria may be the grader's own objects."""
    criteria = [CriterionScore(name="a", score=50, comment="", evidence=["本日はお時間を", "demo next Tuesday"]),
                CriterionScore(name="b", score=50, comment="", evidence=[])]
    refs = evidence_refs(criteria, LINES)
    assert [(r["criterion"], r["start_s"]) for r in refs] == [("a", 4.0), ("a", 14.0)]


def test_lines_without_times_still_give_the_role():
    """An uploaded log has no times: the matched quote keeps its role and null times."""
    [ref] = evidence_refs([{"name": "c", "evidence": ["demo next Tuesday"]}], [Line("user", "A demo next Tuesday?")])
    assert (ref["role"], ref["start_s"], ref["end_s"]) == ("user", None, None)


@pytest.mark.parametrize(("text", "normal"), [
    ("「ＡＢＣ　です！」", "abcです"),
    ("Don't, you know?", "dontyouknow"),
    ("えーっと…", "えーっと"),
])
def test_normalize(text, normal):
    """Comparison ignores width, case, spaces, punctuation and symbols, and keeps the long vowel mark."""
    assert normalize(text) == normal
