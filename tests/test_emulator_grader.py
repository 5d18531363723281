"""The emulator's answer to a grading request: a short, deterministic grade derived from the transcript."""
from __future__ import annotations

import datetime
import json

import pytest
from google.genai import types

import prompts
from tests.emulator_helpers import client, emu, fresh_control  # noqa: F401  (fixtures)
from livetalk import grading
from livetalk.emulator.dialogue import is_japanese
from livetalk.emulator.grader import features_of, read_grading_request
from livetalk.emulator.prompt import PromptFacts
from livetalk.grading import Evaluation, Turn

MODEL = "gemini-3.8-flash"
SALES_JA, SALES_EN = prompts.get_scenario("sales-ja"), prompts.get_scenario("sales-en")
PROMPT_TAIL = "Grade the user's performance."

JA_GOOD = [
    Turn("user", "本日はお時間をいただきありがとうございます。社内の問い合わせ対応でお困りのことはありますか？"),
    Turn("model", "情報システム部に問い合わせが集中しています。"),
    Turn("user", "それは大変ですね。どのような問い合わせが多いですか？担当は何名ですか？"),
    Turn("model", "パスワードの件が多いです。三名です。"),
    Turn("user", "ありがとうございます。12月3日の14時にデモはいかがでしょうか？"),
]
JA_FLAT = [Turn("user", "弊社の製品を紹介します。"), Turn("model", "はい。"), Turn("user", "便利な製品です。")]
EN_GOOD = [
    Turn("user", "Thanks for your time. What slows your dispatchers down today?"),
    Turn("model", "Sick calls in the morning."),
    Turn("user", "How often does that happen? Who rebuilds the plan?"),
    Turn("model", "Weekly. The lead dispatcher."),
    Turn("user", "How about a demo on December 3 at 2 pm?"),
]


def grade(client, scenario, turns) -> Evaluation:
    """Grade through the product's own grading code and the real SDK."""
    return grading.Grader(model=MODEL).grade(client, scenario=scenario, turns=turns)


def user_lines(turns: list[Turn]) -> list[str]:
    return [t.text for t in turns if t.role == "user"]


@pytest.mark.parametrize("scenario, turns", [(SALES_JA, JA_GOOD), (SALES_EN, EN_GOOD)], ids=["ja", "en"])
def test_grade_reads_like_a_grade_in_the_conversations_language(client, scenario, turns):
    """Marked summary in the scenario's language, one criterion per rubric line by exact name, verbatim evidence."""
    evaluation = grade(client, scenario, turns)
    assert evaluation.summary.startswith("[エミュレーター]" if scenario.language == "ja-JP" else "[emulator]")
    texts = [evaluation.summary, *evaluation.good_points, *evaluation.improvements,
             *(c.comment for c in evaluation.criteria)]
    assert all(is_japanese(t) is (scenario.language == "ja-JP") for t in texts[1:])
    assert not any(PROMPT_TAIL in t or "Transcript (" in t for t in texts)
    assert [c.name for c in evaluation.criteria] == [c.name for c in scenario.rubric]
    quotes = [q for c in evaluation.criteria for q in c.evidence]
    assert quotes and all(any(q in line for line in user_lines(turns)) for q in quotes)
    assert 1 <= len(evaluation.good_points) <= 3 and 1 <= len(evaluation.improvements) <= 3


def test_grade_follows_the_transcript_and_is_deterministic(client):
    """Questions and a concrete date score higher than a flat pitch; the same transcript grades the same."""
    good, flat = grade(client, SALES_JA, JA_GOOD), grade(client, SALES_JA, JA_FLAT)
    assert good.score > flat.score
    assert grade(client, SALES_JA, JA_GOOD) == good
    closing = {c.name: c for c in good.criteria}["クロージング（次の一歩）"]
    assert closing.evidence[0] == "12月3日の14時にデモはいかがでしょうか？"
    assert "12月3日の14時" in good.summary
    assert any("次のアクション" in item for item in flat.improvements)


def test_empty_transcript_gets_a_low_grade_that_still_validates(client):
    """With nothing said by the user the grade is low, says so, and quotes nothing."""
    evaluation = grade(client, SALES_EN, [Turn("model", "Hello?")])
    assert evaluation.score <= 10 and "No words" in evaluation.summary
    assert all(c.evidence == [] for c in evaluation.criteria)


def measured_prompt(turns: list[Turn], facts: dict) -> str:
    """The product's transcript prompt with the Measured facts block it is about to add."""
    lines = "\n".join(f"{grading.ROLE_LABELS[t.role]}: {t.text}" for t in turns)
    return (f"Transcript (User = the person being graded, AI = the role-played customer):\n{lines}\n\n"
            f"Measured facts (JSON):\n{json.dumps(facts)}\n\n{PROMPT_TAIL}")


def graded_with_facts(client, scenario, turns, facts) -> Evaluation:
    config = types.GenerateContentConfig(system_instruction=grading.system_instruction(scenario),
                                         response_mime_type="application/json", response_schema=Evaluation)
    response = client.models.generate_content(model=MODEL, contents=measured_prompt(turns, facts), config=config)
    return response.parsed


def test_measured_facts_are_used_and_never_contradicted(client):
    """The measured question count and talk share are what the grade states; a long monologue becomes advice."""
    facts = {"talk_share_user": 0.82, "questions_user": 7, "fillers_user": 1, "longest_monologue_s": 95,
             "interruptions": 0, "outcome": None}
    evaluation = graded_with_facts(client, SALES_EN, EN_GOOD, facts)
    assert "asked 7 question(s)" in evaluation.summary and "82% of the talk time" in evaluation.summary
    assert any("82%" in item for item in evaluation.improvements)
    discovery = {c.name: c for c in evaluation.criteria}["Discovery questions"]
    assert "7 questions" in discovery.comment


def test_measured_outcome_counts_as_the_agreed_next_step(client):
    """A measured outcome (the customer agreed to a meeting) is reported and scores the closing highly."""
    facts = {"questions_user": 0, "outcome": {"name": "appointment", "details": {"date": "2026-12-03"}}}
    evaluation = graded_with_facts(client, SALES_JA, JA_FLAT, facts)
    closing = {c.name: c for c in evaluation.criteria}["クロージング（次の一歩）"]
    assert "appointment" in evaluation.summary and closing.score >= 85
    assert "質問0件" in evaluation.summary


def test_grading_prompt_with_another_schema_still_validates(client):
    """A grading prompt with a schema of a different shape gets JSON that fits that schema."""
    schema = types.Schema(type="OBJECT", required=["score", "verdict"], properties={
        "score": types.Schema(type="INTEGER", minimum=0, maximum=10),
        "verdict": types.Schema(type="STRING", enum=["pass", "fail"]),
        "summary": types.Schema(type="STRING", max_length=20)})
    config = types.GenerateContentConfig(system_instruction=grading.system_instruction(SALES_EN),
                                         response_mime_type="application/json", response_schema=schema)
    data = json.loads(client.models.generate_content(
        model=MODEL, contents=measured_prompt(EN_GOOD, {}), config=config).text)
    assert 0 <= data["score"] <= 10 and data["verdict"] in ("pass", "fail") and len(data["summary"]) <= 20


@pytest.mark.parametrize(
    "facts_line, expected",
    [('{"talk_share_user": 62}', {"talk_share": 0.62}),
     ('{"talk_share_user": 0.4, "questions_user": -1}', {"talk_share": 0.4, "questions": 1}),
     ('{"questions_user": true, "longest_monologue_s": "long"}', {"questions": 1, "longest_monologue_s": None}),
     ("[1, 2]", {"talk_share": None}),
     ("not json", {"talk_share": None})],
    ids=["percent", "negative-ignored", "wrong-types-ignored", "not-an-object", "not-json"],
)
def test_measured_facts_are_read_leniently(facts_line, expected):
    """Facts are taken when they are sensible numbers (a share above 1 is a percentage); anything else is ignored."""
    system = "- Discovery (weight 1.5.2): bad weight, ignored\n- Discovery (weight 25): questions"
    text = f"Transcript (x):\nUser: What is slow?\nAI: Mornings.\n\nMeasured facts (JSON):\n{facts_line}\n"
    request = read_grading_request(PromptFacts(text=text, system_instruction=system))
    assert [line.weight for line in request.rubric] == [25.0]
    found = features_of(request, today=datetime.date(2026, 1, 1))
    assert {key: getattr(found, key) for key in expected} == expected
