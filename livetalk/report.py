"""What a grade reads like to clients: the Markdown report the original app returned, and the evaluation JSON. Pure.

:func:`render_markdown` writes score, summary, good points, improvements and criteria, then a "Measured" section
("計測値" in Japanese) when there are measured facts; :func:`evaluation_json` is the evaluation object the API
returns and stores, the grade with what was measured beside it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prompts import Scenario

    from .grading import Evaluation

_LABELS = {
    "ja": {"title": "評価レポート", "score": "総合スコア", "good": "良かった点", "improve": "改善点",
           "criteria": "評価項目別", "weight": "重み", "none": "（なし）", "measured": "計測値"},
    "en": {"title": "Feedback report", "score": "Overall score", "good": "What went well",
           "improve": "What to improve", "criteria": "By criterion", "weight": "weight", "none": "(none)",
           "measured": "Measured"},
}
# The "Measured" section: (label, how the value reads, its unit) per language; {u}/{m}: the user's / model's.
_MEASURED = {
    "ja": {
        "duration_s": ("会話の長さ", "{v}", "秒"), "talk_s": ("発話時間", "あなた {u} / お客様 {m}", "秒"),
        "talk_share_user": ("あなたの発話の割合", "{v}", "%"),
        "longest_monologue_s": ("最長の連続発話", "あなた {u} / お客様 {m}", "秒"),
        "turns": ("発話の回数", "あなた {u} / お客様 {m}", "回"), "questions_user": ("あなたの質問", "{v}", "回"),
        "fillers_user": ("つなぎ言葉（えー、あの など）", "{v}", "回"),
        "interruptions": ("割り込み", "あなたから {u} / お客様から {m}", "回"),
        "response_latency_s": ("応答までの間（中央値）", "あなた {u} / お客様 {m}", "秒"),
        "speech_rate_user": ("あなたの話す速さ", "{v}", "{rate}"),
        "outcome": ("成果", "{v}", ""),
    },
    "en": {
        "duration_s": ("Length", "{v}", "s"), "talk_s": ("Talk time", "you {u} / customer {m}", "s"),
        "talk_share_user": ("Your share of the talk", "{v}", "%"),
        "longest_monologue_s": ("Longest monologue", "you {u} / customer {m}", "s"),
        "turns": ("Turns", "you {u} / customer {m}", ""), "questions_user": ("Your questions", "{v}", ""),
        "fillers_user": ("Filler words (um, uh, …)", "{v}", ""),
        "interruptions": ("Interruptions", "by you {u} / by the customer {m}", ""),
        "response_latency_s": ("Pause before answering (median)", "you {u} / customer {m}", "s"),
        "speech_rate_user": ("Your speaking rate", "{v}", "{rate}"),
        "outcome": ("Outcome", "{v}", ""),
    },
}
_UNITS = {"ja": {"chars_per_min": "文字/分", "words_per_min": "語/分"},
          "en": {"chars_per_min": "characters/min", "words_per_min": "words/min"}}
_OUTCOMES = {"ja": {"appointment": "アポイント獲得", None: "なし"}, "en": {"appointment": "meeting agreed", None: "none"}}
_PAIRS = {"talk_s": ("user", "model"), "longest_monologue_s": ("user", "model"), "turns": ("user", "model"),
          "interruptions": ("by_user", "by_model"), "response_latency_s": ("user_p50", "model_p50")}


def render_markdown(evaluation: Evaluation, scenario: Scenario, *, metrics: Mapping[str, Any] | None = None,
                    outcome: Mapping[str, Any] | None = None) -> str:
    """The report the original app returned as ``feedback``: score, summary, good points, improvements, criteria,
    then what was measured (``metrics`` as in ``evaluation.metrics``, and the ``outcome``) when given."""
    lang = "ja" if scenario.language.lower().startswith("ja") else "en"
    labels = _LABELS[lang]
    weights = {c.name: c.weight for c in scenario.rubric}
    out = [
        f"# {labels['title']}: {scenario.title}",
        "",
        f"**{labels['score']}: {evaluation.score} / 100**",
        "",
        evaluation.summary,
        "",
        f"## {labels['good']}",
        *_bullets(evaluation.good_points, labels["none"]),
        "",
        f"## {labels['improve']}",
        *_bullets(evaluation.improvements, labels["none"]),
        "",
        f"## {labels['criteria']}",
    ]
    for c in evaluation.criteria:
        weight = f" ({labels['weight']} {weights[c.name]})" if c.name in weights else ""
        out += ["", f"### {c.name}{weight}: {c.score} / 100", "", c.comment]
        out += [f"> {_one_line(quote)}" for quote in c.evidence]
    if metrics is not None:
        out += ["", f"## {labels['measured']}", *_measured_lines(metrics, outcome, lang)]
    return "\n".join(out).rstrip() + "\n"


def _measured_lines(metrics: Mapping[str, Any], outcome: Mapping[str, Any] | None, lang: str) -> list[str]:
    """One bullet per measured fact; a value that was not measured reads "—"."""
    values = {**metrics, "outcome": _outcome_text(outcome, lang)}
    if isinstance(metrics.get("talk_share_user"), (int, float)):
        values["talk_share_user"] = round(100 * metrics["talk_share_user"], 1)
    rate = _UNITS[lang].get(str(metrics.get("speech_rate_unit")), "")
    lines = []
    for name, (label, form, unit) in _MEASURED[lang].items():
        unit = unit.format(rate=rate)
        value, pair = values.get(name), _PAIRS.get(name)
        if pair is None:
            text = form.format(v=_with_unit(value, unit))
        elif isinstance(value, Mapping):
            text = form.format(u=_with_unit(value.get(pair[0]), unit), m=_with_unit(value.get(pair[1]), unit))
        else:
            text = "—"
        lines.append(f"- {label}: {text}")
    return lines


def _with_unit(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value} {unit}" if unit else str(value)


def _outcome_text(outcome: Mapping[str, Any] | None, lang: str) -> str:
    names = _OUTCOMES[lang]
    if not outcome:
        return names[None]
    name = next((key for key, value in outcome.items() if value is True), None)
    details = outcome.get("details") or {}
    said = ", ".join(str(details[k]) for k in ("date", "time", "topic") if details.get(k))
    return f"{names.get(name, name)}{f' ({said})' if said else ''}"


def _bullets(items: list[str], empty: str) -> list[str]:
    return [f"- {_one_line(s)}" for s in items] or [f"- {empty}"]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def evaluation_json(evaluation: Evaluation, *, metrics: Mapping[str, Any] | None = None,
                    outcome: Mapping[str, Any] | None = None,
                    evidence_refs: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The evaluation as the API returns and stores it: the grade, and beside it what was measured
    (``metrics``, ``outcome``, ``evidence_refs``; null when not measured)."""
    return {**evaluation.model_dump(), "metrics": dict(metrics) if metrics is not None else None,
            "outcome": dict(outcome) if outcome is not None else None,
            "evidence_refs": [dict(ref) for ref in evidence_refs] if evidence_refs is not None else None}
