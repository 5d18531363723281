"""A grade that reads like a grade: the emulator's answer to a conversation-grading request. Pure.

A request is a grading request when its system instruction holds rubric lines
``- <name> (weight <w>): <description>`` and its prompt a ``Transcript (…):`` block
of ``User: …`` / ``AI: …`` lines (what ``livetalk.grading`` sends). The answer is
deterministic and derived from simple features of what the user said: questions
asked, whether a concrete date and time were proposed (see :mod:`meeting`), and how
much they said. A ``Measured facts (JSON):`` line followed by one line of JSON is
trusted over the emulator's own counts, and one or two of its facts are quoted.
Evidence quotes are verbatim pieces of ``User:`` lines. The summary starts with
the emulator's mark, ``[emulator]`` or ``[エミュレーター]``.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import re
import zlib
from collections.abc import Mapping
from typing import Any

from livetalk.emulator.dialogue import is_japanese
from livetalk.emulator.meeting import Proposal, find_proposal, mentions_a_day
from livetalk.emulator.prompt import PromptFacts

MAX_QUOTE_CHARS = 60  # an evidence quote is at most this long
MAX_EVIDENCE = 2  # quotes per criterion
MAX_LIST_ITEMS = 3  # good points, improvements
BASE_SCORE = 35
POINTS_PER_QUESTION, MAX_QUESTION_POINTS = 8, 25
PROPOSAL_POINTS, VAGUE_DAY_POINTS = 20, 8
MAX_AMOUNT_POINTS = 15  # for how much the user said
CHARS_PER_POINT_JA, WORDS_PER_POINT_EN = 20, 10
EMPTY_SCORE = 5  # the user said nothing
TALK_SHARE_HIGH = 0.65  # above this the user talked too much (a sales call is mostly listening)
MONOLOGUE_LONG_S = 45.0
FILLERS_MANY = 4
CRITERION_SPREAD = 5  # other criteria sit within ± this of the overall score

_RUBRIC_LINE = re.compile(r"^\s*-\s+(?P<name>.+?)\s+\(weight\s+(?P<weight>\d+(?:\.\d+)?)\):\s*(?P<description>.*)$", re.M)
_TRANSCRIPT_HEADER = re.compile(r"^\s*Transcript\s*\(.*\)\s*:\s*$", re.M)
_LINE = re.compile(r"^(?P<role>User|AI)\s*:\s?(?P<text>.*)$")
_FACTS_HEADER = "Measured facts (JSON):"
_LANGUAGE = re.compile(r"language\s*\((?P<code>[A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*\)")
_SENTENCE_END = re.compile(r"(?<=[。！？!?.])")
_POLITE = re.compile(r"です|ます|ございます|please|thank", re.IGNORECASE)
_QUESTION_TOPIC = re.compile(r"質問|ヒアリング|引き出|question|discovery|needs", re.IGNORECASE)
_CLOSING_TOPIC = re.compile(r"クロージング|次の一歩|日時|アポ|closing|next step|appointment", re.IGNORECASE)
_LISTENING_TOPIC = re.compile(r"傾聴|listen", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class RubricLine:
    """One rubric criterion as the system instruction states it."""

    name: str
    weight: float
    description: str


@dataclasses.dataclass(frozen=True)
class GradingRequest:
    """What a grading request gives to grade."""

    rubric: tuple[RubricLine, ...]
    user_lines: tuple[str, ...]  # the text of each User: line, stripped
    ai_lines: tuple[str, ...]
    japanese: bool
    measured: Mapping[str, Any]  # the Measured facts JSON object ({} without one)


def read_grading_request(facts: PromptFacts) -> GradingRequest | None:
    """The grading request in ``facts``, or None when the request is not one."""
    rubric = tuple(
        RubricLine(m["name"].strip(), float(m["weight"]), m["description"].strip())
        for m in _RUBRIC_LINE.finditer(facts.system_instruction)
    )
    header = _TRANSCRIPT_HEADER.search(facts.text)
    if not rubric or header is None:
        return None
    user, ai = [], []
    for line in facts.text[header.end() :].splitlines():
        match = _LINE.match(line.strip())
        if match is not None and match["text"].strip():
            (user if match["role"] == "User" else ai).append(match["text"].strip())
    return GradingRequest(rubric=rubric, user_lines=tuple(user), ai_lines=tuple(ai),
                          japanese=_japanese(facts), measured=_measured(facts.text))


def _japanese(facts: PromptFacts) -> bool:
    match = _LANGUAGE.search(facts.system_instruction)
    if match is not None:
        return match["code"].lower() == "ja"
    return is_japanese(facts.system_instruction) or is_japanese(facts.text)


def _measured(text: str) -> Mapping[str, Any]:
    """The JSON object on the line after ``Measured facts (JSON):`` ({} when absent or not JSON)."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == _FACTS_HEADER:
            try:
                value = json.loads(lines[i + 1])
            except ValueError:
                return {}
            return value if isinstance(value, Mapping) else {}
    return {}


# --- features -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Features:
    """What the grade is computed from; measured facts win over the emulator's own counts."""

    user_turns: int
    questions: int
    amount_points: int  # 0..MAX_AMOUNT_POINTS for how much the user said
    proposal: Proposal | None  # a concrete date and time the user proposed
    proposal_sentence: str | None  # the sentence that proposed it
    vague_sentence: str | None  # a sentence naming only a relative day
    outcome: str | None  # the measured outcome's name, if the conversation reached one
    talk_share: float | None  # 0..1, measured
    longest_monologue_s: float | None
    fillers: int | None
    interruptions: int | None

    @property
    def next_step(self) -> str:
        """``agreed`` (a measured outcome), ``concrete``, ``vague`` or ``none``."""
        if self.outcome:
            return "agreed"
        if self.proposal is not None:
            return "concrete"
        return "vague" if self.vague_sentence is not None else "none"


def features_of(request: GradingRequest, *, today: datetime.date) -> Features:
    """Count what the user did, preferring measured facts where the request has them."""
    measured = request.measured
    lines = request.user_lines
    sentences = [sentence for line in lines for sentence in _sentences(line)]
    proposals = ((find_proposal(sentence, today=today), sentence) for sentence in sentences)
    found = next(((p, sentence) for p, sentence in proposals if p is not None), (None, None))
    if request.japanese:
        said = sum(len(line) for line in lines) // CHARS_PER_POINT_JA
    else:
        said = sum(len(line.split()) for line in lines) // WORDS_PER_POINT_EN
    questions = _number(measured, "questions_user", int)
    return Features(
        user_turns=len(lines),
        questions=sum(map(_question_marks, lines)) if questions is None else questions,
        amount_points=min(MAX_AMOUNT_POINTS, said),
        proposal=found[0],
        proposal_sentence=found[1],
        vague_sentence=next((sentence for sentence in sentences if mentions_a_day(sentence)), None),
        outcome=_outcome(measured.get("outcome")),
        talk_share=_share(measured.get("talk_share_user")),
        longest_monologue_s=_number(measured, "longest_monologue_s", float),
        fillers=_number(measured, "fillers_user", int),
        interruptions=_number(measured, "interruptions", int),
    )


def _sentences(line: str) -> list[str]:
    """The sentences of ``line``, each a verbatim (stripped) piece of it."""
    return [piece.strip() for piece in _SENTENCE_END.split(line) if piece.strip()]


def _question_marks(line: str) -> int:
    return line.count("?") + line.count("？")


def _number(measured: Mapping[str, Any], key: str, kind: type) -> Any:
    value = measured.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return kind(value)


def _share(value: Any) -> float | None:
    """A talk share as a fraction (a value above 1 is read as a percentage)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return value / 100 if value > 1 else float(value)


def _outcome(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("name")
    return value if isinstance(value, str) and value.strip() and value.lower() != "none" else None


def overall_score(features: Features) -> int:
    """0–100 from the questions asked, the next step proposed and how much the user said."""
    if features.user_turns == 0:
        return EMPTY_SCORE
    score = BASE_SCORE + min(MAX_QUESTION_POINTS, POINTS_PER_QUESTION * features.questions)
    score += {"agreed": PROPOSAL_POINTS, "concrete": PROPOSAL_POINTS, "vague": VAGUE_DAY_POINTS}.get(
        features.next_step, 0)
    score += features.amount_points
    if features.talk_share is not None and features.talk_share > TALK_SHARE_HIGH:
        score -= CRITERION_SPREAD
    return max(0, min(100, score))


# --- wording ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Phrases:
    """One language's sentences for a grade; ``{…}`` fields are filled from the features."""

    tag: str
    topics: Mapping[str, str]
    overview: str
    empty: str
    next_step: Mapping[str, str]  # by Features.next_step
    talk_share: str
    good: Mapping[str, str]  # questions, proposal, polite, fallback
    improve: Mapping[str, str]  # questions, next_step, talk_share, monologue, fillers, interruptions, fallback
    reasons: Mapping[str, str]  # questions, questions_many, listening, general


JAPANESE = Phrases(
    tag="[エミュレーター]",
    topics={"demo": "デモ", "meeting": "打ち合わせ"},
    overview="{tag} ユーザーの発話{turns}回、質問{questions}件の会話でした。",
    empty="{tag} ユーザーの発話が記録されていないため、評価できる内容がほとんどありません。",
    next_step={
        "agreed": "会話は「{outcome}」という結果に至りました。",
        "concrete": "{when}の{topic}という、日時を伴う具体的な次の一歩を提案できています。",
        "vague": "次の約束に触れていますが、日時がまだ具体的ではありません。",
        "none": "日時を伴う次のアクションの提案はありませんでした。",
    },
    talk_share="ユーザーの発話の割合は{pct}%でした。",
    good={
        "questions": "{questions}件の質問で相手の状況を引き出そうとしていました。",
        "proposal": "具体的な日時を示して次のアクションを提案しました。",
        "polite": "丁寧な言葉遣いで応対していました。",
        "fallback": "最後まで会話を続けることができました。",
    },
    improve={
        "questions": "相手の課題を引き出す開かれた質問をもっと増やしましょう。",
        "next_step": "最後に日時を伴う具体的な次のアクション（デモや打ち合わせ）を提案しましょう。",
        "talk_share": "発話の割合が{pct}%と高めでした。相手に話してもらう時間を増やしましょう。",
        "monologue": "最長で{seconds}秒話し続けた場面がありました。要点を区切って相手の反応を確かめましょう。",
        "fillers": "「えー」「あの」などのつなぎ言葉が{fillers}回ありました。間を恐れずに話しましょう。",
        "interruptions": "相手の話を{interruptions}回さえぎっていました。最後まで聞いてから話しましょう。",
        "fallback": "相手の発言を要約して確認すると、さらに信頼が高まります。",
    },
    reasons={
        "questions": "質問は{questions}件でした。深掘りの質問を重ねるとさらに良くなります。",
        "questions_many": "質問は{questions}件で、相手の課題を具体的に引き出そうとしていました。",
        "listening": "相手の話を受けて会話を続けていました。",
        "general": "会話全体の内容から評価しました（ユーザー発話{turns}回）。",
    },
)
ENGLISH = Phrases(
    tag="[emulator]",
    topics={"demo": "demo", "meeting": "meeting"},
    overview="{tag} You spoke in {turns} turn(s) and asked {questions} question(s).",
    empty="{tag} No words from the user were recorded, so there is little to grade.",
    next_step={
        "agreed": "The conversation reached an outcome: {outcome}.",
        "concrete": "You proposed a concrete next step: a {topic} on {when}.",
        "vague": "You mentioned a next step, but without a concrete date and time.",
        "none": "You did not propose a next step with a date and time.",
    },
    talk_share="You had {pct}% of the talk time.",
    good={
        "questions": "You asked {questions} questions to learn about the customer's situation.",
        "proposal": "You proposed a concrete next step with a date and time.",
        "polite": "You kept a polite, professional tone.",
        "fallback": "You kept the conversation going to the end.",
    },
    improve={
        "questions": "Ask more open questions to uncover the customer's problems.",
        "next_step": "End by proposing a concrete next step with a date and time (a demo or a meeting).",
        "talk_share": "You had {pct}% of the talk time; let the customer talk more.",
        "monologue": "Your longest monologue lasted {seconds} s; pause and check the customer's reaction.",
        "fillers": "You used {fillers} filler words; a short pause works better.",
        "interruptions": "You interrupted the customer {interruptions} time(s); let them finish first.",
        "fallback": "Summarise what the customer said to show you listened.",
    },
    reasons={
        "questions": "You asked {questions} question(s); more follow-up questions would help.",
        "questions_many": "You asked {questions} questions and drew out the customer's problems.",
        "listening": "You built on what the customer said.",
        "general": "Judged from the conversation as a whole ({turns} user turns).",
    },
)


# --- the evaluation -----------------------------------------------------------------------------


def evaluate(request: GradingRequest, *, today: datetime.date) -> dict[str, Any]:
    """The grade: score, summary, good_points, improvements, and one criteria entry per rubric line."""
    features = features_of(request, today=today)
    phrases = JAPANESE if request.japanese else ENGLISH
    fields = _fields(features, phrases, request.japanese)
    score = overall_score(features)
    return {
        "score": score,
        "summary": _summary(features, phrases, fields),
        "good_points": _good_points(features, phrases, fields, request.user_lines),
        "improvements": _improvements(features, phrases, fields),
        "criteria": [_criterion(i, line, features, phrases, fields, score, request.user_lines)
                     for i, line in enumerate(request.rubric)],
    }


def _fields(features: Features, phrases: Phrases, japanese: bool) -> dict[str, Any]:
    proposal = features.proposal
    return {
        "tag": phrases.tag, "turns": features.user_turns, "questions": features.questions,
        "outcome": features.outcome or "",
        "when": proposal.spoken(japanese=japanese) if proposal else "",
        "topic": phrases.topics.get(proposal.topic, proposal.topic) if proposal else "",
        "pct": round(100 * features.talk_share) if features.talk_share is not None else 0,
        "seconds": round(features.longest_monologue_s or 0), "fillers": features.fillers or 0,
        "interruptions": features.interruptions or 0,
    }


def _summary(features: Features, phrases: Phrases, fields: Mapping[str, Any]) -> str:
    if features.user_turns == 0:
        return phrases.empty.format(**fields)
    sentences = [phrases.overview, phrases.next_step[features.next_step]]
    if features.talk_share is not None:
        sentences.append(phrases.talk_share)
    return _join(s.format(**fields) for s in sentences)


def _join(sentences: Any) -> str:
    parts = list(sentences)
    return ("" if any(is_japanese(p) for p in parts) else " ").join(parts)


def _good_points(features: Features, phrases: Phrases, fields: Mapping[str, Any], lines: tuple[str, ...]) -> list[str]:
    if features.user_turns == 0:
        return []
    keys = [key for key, due in (("questions", features.questions >= 2),
                                 ("proposal", features.next_step in ("agreed", "concrete")),
                                 ("polite", any(_POLITE.search(line) for line in lines))) if due]
    return [phrases.good[key].format(**fields) for key in keys or ["fallback"]][:MAX_LIST_ITEMS]


def _improvements(features: Features, phrases: Phrases, fields: Mapping[str, Any]) -> list[str]:
    keys = [key for key, due in (("questions", features.questions < 2),
                                 ("next_step", features.next_step in ("vague", "none"))) if due]
    fact = _notable_fact(features)
    keys += [fact] if fact else []
    return [phrases.improve[key].format(**fields) for key in keys or ["fallback"]][:MAX_LIST_ITEMS]


def _notable_fact(features: Features) -> str | None:
    """The one measured fact worth an improvement, if any (the summary may quote the talk share too)."""
    checks = (
        ("talk_share", features.talk_share is not None and features.talk_share > TALK_SHARE_HIGH),
        ("monologue", (features.longest_monologue_s or 0) > MONOLOGUE_LONG_S),
        ("fillers", (features.fillers or 0) >= FILLERS_MANY),
        ("interruptions", (features.interruptions or 0) > 0),
    )
    return next((key for key, due in checks if due), None)


def _criterion(index: int, line: RubricLine, features: Features, phrases: Phrases, fields: Mapping[str, Any],
               overall: int, lines: tuple[str, ...]) -> dict[str, Any]:
    if _QUESTION_TOPIC.search(line.name):
        score = 30 + min(60, 15 * features.questions)
        reason = phrases.reasons["questions_many" if features.questions >= 3 else "questions"]
        quotes = [sentence for l in lines for sentence in _sentences(l) if _question_marks(sentence)]
    elif _CLOSING_TOPIC.search(line.name):
        score = {"agreed": 90, "concrete": 85, "vague": 55, "none": 25}[features.next_step]
        reason = phrases.next_step[features.next_step]
        quotes = [q for q in (features.proposal_sentence or features.vague_sentence,) if q]
    elif _LISTENING_TOPIC.search(line.name):
        high_share = features.talk_share is not None and features.talk_share > TALK_SHARE_HIGH
        score = 65 - 10 * (features.interruptions or 0) - (10 if high_share else 0)
        reason = phrases.improve["talk_share"] if high_share else phrases.reasons["listening"]
        quotes = []
    else:
        score = overall + zlib.crc32(line.name.encode()) % (2 * CRITERION_SPREAD + 1) - CRITERION_SPREAD
        reason, quotes = phrases.reasons["general"], []
    if features.user_turns == 0:
        score = EMPTY_SCORE
    quotes = (quotes + [lines[(index + k) % len(lines)] for k in range(len(lines))]) if lines else []
    evidence = list(dict.fromkeys(_quote(q) for q in quotes))[:MAX_EVIDENCE]
    return {"name": line.name, "score": max(0, min(100, score)), "comment": reason.format(**fields),
            "evidence": evidence}


def _quote(text: str) -> str:
    """A short verbatim piece of ``text``: its first sentence, cut to MAX_QUOTE_CHARS characters."""
    return _sentences(text)[0][:MAX_QUOTE_CHARS].strip()
