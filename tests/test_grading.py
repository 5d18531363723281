"""Grading: validation of Gemini's JSON, retries and timeouts against the emulator, the Markdown report."""
from __future__ import annotations

import io
import json
import time

import pytest

import prompts
from livetalk import grading
from livetalk.grading import AudioRejected, Evaluation, GradingFailed, Recording, Turn, system_instruction, validate
from livetalk.report import evaluation_json, render_markdown
from livetalk.services import Services
from livetalk.wav import wav_header

SALES_JA = prompts.get_scenario("sales-ja")
SALES_EN = prompts.get_scenario("sales-en")
TURNS = [
    Turn("user", "本日はお時間をいただきありがとうございます。社内の問い合わせ対応でお困りのことはありますか？"),
    Turn("model", "そうですね、情報システム部に問い合わせが集中しています。"),
    Turn("user", "それは大変ですね。来週の火曜日にデモのお時間をいただけますか？"),
]


@pytest.fixture
def client(settings, emu):
    """The service's google-genai client, reaching the emulator as an operator would configure it."""
    services = Services(settings)
    yield services.genai_client()
    services.close()


def grader(**options) -> grading.Grader:
    """A grader whose retries wait milliseconds, not seconds."""
    return grading.Grader(model="gemini-3.8-flash", backoff_s=(0.01, 0.01), **options)


def reply(**overrides) -> str:
    body = {
        "score": 72, "summary": " Good discovery. ", "good_points": ["asked about pains", "  "],
        "improvements": ["close with a date"],
        "criteria": [{"name": c.name, "score": 60, "comment": "ok", "evidence": ["quote"]} for c in SALES_JA.rubric],
    }
    body.update(overrides)
    return json.dumps(body, ensure_ascii=False)


def wav_bytes(seconds: float) -> bytes:
    frames = int(seconds * 24000)
    return wav_header(frames * 4, sample_rate=24000, channels=2) + bytes(frames * 4)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [(72, 72), (150, 100), (-5, 0), (0, 0), (100, 100)],
)
def test_scores_are_clamped(given, expected):
    """Overall and per-criterion scores outside 0–100 are clamped into range."""
    evaluation = validate(reply(score=given, criteria=[
        {"name": SALES_JA.rubric[0].name, "score": given, "comment": "c", "evidence": []}]), SALES_JA)
    assert evaluation.score == expected
    assert evaluation.criteria[0].score == expected


@pytest.mark.parametrize(
    "text",
    [None, "", "not json", "[1, 2]", json.dumps({"score": 50}), reply(score="high"), reply(summary="  "),
     reply(criteria=[{"name": "x"}])],
    ids=["none", "empty", "not-json", "list", "missing-fields", "score-not-number", "blank-summary",
         "criterion-incomplete"],
)
def test_unusable_replies_are_rejected(text):
    """Replies that are not a complete evaluation are rejected (and so retried)."""
    with pytest.raises(grading._Retryable):
        validate(text, SALES_JA)


def test_criteria_follow_the_rubric():
    """Criteria are matched to the rubric ignoring case and spaces, put in rubric order, extras kept last."""
    rubric = SALES_EN.rubric
    given = [{"name": "closing for a NEXT step", "score": 50, "comment": " c ", "evidence": [" q ", ""]},
             {"name": "Made up", "score": 10, "comment": "x", "evidence": []},
             {"name": rubric[0].name, "score": 90, "comment": "d", "evidence": []}]
    evaluation = validate(reply(criteria=given), SALES_EN)
    assert [c.name for c in evaluation.criteria] == [rubric[0].name, "Closing for a next step", "Made up"]
    assert evaluation.criteria[1].comment == "c" and evaluation.criteria[1].evidence == ["q"]
    assert evaluation.good_points == ["asked about pains"] and evaluation.summary == "Good discovery."


def test_system_instruction_carries_the_rubric():
    """The system instruction is the scenario's grading instruction plus every criterion with its weight."""
    text = system_instruction(SALES_JA)
    assert text.startswith(SALES_JA.grading_instruction.strip())
    for criterion in SALES_JA.rubric:
        assert f"{criterion.name} (weight {criterion.weight})" in text


@pytest.mark.parametrize(
    "topic", ["質問", "傾聴", "価値", "懸念", "クロージング", "敬語"],
)
def test_sales_rubric_covers_the_required_skills(topic):
    """The sales rubric covers questioning, listening, value, objections, closing and keigo."""
    assert any(topic in c.name for c in SALES_JA.rubric)


# --- against the emulator -----------------------------------------------------------------------


def test_grade_returns_a_valid_evaluation(client, emu):
    """A transcript graded through the real SDK comes back as an Evaluation within range."""
    evaluation = grader().grade(client, scenario=SALES_JA, turns=TURNS)
    assert 0 <= evaluation.score <= 100
    assert evaluation.summary and evaluation.criteria
    calls = [r for r in emu.control.requests() if "generateContent" in r["path"]]
    assert len(calls) == 1 and calls[0]["has_schema"]
    assert SALES_JA.rubric[0].name in calls[0]["system_instruction"]
    assert "来週の火曜日" in calls[0]["text"]


@pytest.mark.parametrize(("inline_limit", "uploads"), [(grading.INLINE_AUDIO_MAX_BYTES, 0), (1024, 1)],
                         ids=["inline", "files-api"])
def test_recording_is_attached_inline_or_uploaded(client, emu, inline_limit, uploads):
    """Small recordings go inline; recordings over the inline limit go through the Files API."""
    data = wav_bytes(1.0)
    recording = Recording("audio/wav", len(data), lambda: io.BytesIO(data), "stereo")
    evaluation = grader(inline_audio_max_bytes=inline_limit).grade(client, scenario=SALES_JA, turns=TURNS,
                                                                   recording=recording)
    assert 0 <= evaluation.score <= 100
    assert sum(r["path"] == "upload" for r in emu.control.requests()) == uploads


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried(client, emu, status):
    """Two transient failures in a row are retried and the third attempt's grade is returned."""
    emu.control.fault_next_rest(status=status, count=2)
    evaluation = grader().grade(client, scenario=SALES_JA, turns=TURNS)
    assert 0 <= evaluation.score <= 100


@pytest.mark.parametrize("status", [429, 500])
def test_exhausted_retries_fail(client, emu, status):
    """When every attempt fails transiently, GradingFailed says so without upstream text."""
    emu.control.fault_next_rest(status=status, count=grading.MAX_ATTEMPTS, message="secret upstream detail")
    with pytest.raises(GradingFailed) as info:
        grader().grade(client, scenario=SALES_JA, turns=TURNS)
    assert "secret" not in str(info.value)


def test_client_errors_are_not_retried(client, emu):
    """A 400 from Gemini fails at once: each grade call uses up exactly one armed fault."""
    emu.control.fault_next_rest(status=400, count=2)
    for _ in range(2):
        with pytest.raises(GradingFailed):
            grader().grade(client, scenario=SALES_JA, turns=TURNS)
    assert grader().grade(client, scenario=SALES_JA, turns=TURNS)


FACTS = {"duration_s": 312.4, "talk_s": {"user": 121.0, "model": 98.5}, "talk_share_user": 0.72,
         "questions_user": 9, "fillers_user": 6, "interruptions": {"by_user": 2, "by_model": 0},
         "outcome": {"name": "appointment", "details": {"date": "2026-12-03", "time": "14:00", "topic": "demo"}}}


def test_measured_facts_reach_the_grader_as_one_line_of_json(client, emu):
    """Facts go in as `Measured facts (JSON):` plus one JSON line; the grader is told not to contradict them."""
    evaluation = grader().grade(client, scenario=SALES_EN, turns=TURNS, facts=FACTS)
    call = [r for r in emu.control.requests() if "generateContent" in r["path"]][-1]
    lines = call["text"].splitlines()
    at = lines.index(grading.FACTS_HEADER)
    assert json.loads(lines[at + 1]) == FACTS
    assert "never contradict them" in call["system_instruction"]
    assert "72% of the talk time" in evaluation.summary  # the emulator quotes the measured share
    assert "reached an outcome" in evaluation.summary


def test_no_facts_no_block(client, emu):
    """Without facts the prompt holds no facts block (the transcript alone is graded)."""
    grader().grade(client, scenario=SALES_JA, turns=TURNS)
    call = [r for r in emu.control.requests() if "generateContent" in r["path"]][-1]
    assert grading.FACTS_HEADER not in call["text"]


@pytest.mark.parametrize(("audio", "rejected"), [
    (b"RIFF\x00\x10\x00\x00WAVEjunkjunkjunkjunkjunk", True),
    (wav_bytes(0.5), False),
], ids=["undecodable", "fine"])
def test_undecodable_audio_is_told_apart_from_other_refusals(client, emu, audio, rejected):
    """A 400 about the attached audio is AudioRejected; any other 400 is a plain GradingFailed."""
    recording = Recording("audio/wav", len(audio), lambda: io.BytesIO(audio))
    if not rejected:
        emu.control.fault_next_rest(status=400, message="Request contains an invalid argument.")
    with pytest.raises(GradingFailed) as info:
        grader().grade(client, scenario=SALES_JA, turns=TURNS, recording=recording)
    assert isinstance(info.value, AudioRejected) is rejected
    if rejected:
        assert "could not be read" in str(info.value)


def test_slow_upstream_times_out_within_the_deadline(client, emu):
    """A hanging upstream is abandoned after the per-attempt timeout, all attempts within the deadline."""
    emu.control.fault_next_rest(status=None, delay_ms=5000, count=5)
    started = time.monotonic()
    with pytest.raises(GradingFailed):
        grader(attempt_timeout_s=0.5, deadline_s=2.5).grade(client, scenario=SALES_JA, turns=TURNS)
    assert time.monotonic() - started < 4.0


# --- the report -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "headings"),
    [(SALES_JA, ["総合スコア: 72 / 100", "## 良かった点", "## 改善点", "## 評価項目別"]),
     (SALES_EN, ["Overall score: 72 / 100", "## What went well", "## What to improve", "## By criterion"])],
)
def test_markdown_report(scenario, headings):
    """The report shows the score, summary, good points, improvements and each criterion with evidence."""
    criteria = [{"name": c.name, "score": 60, "comment": "ok", "evidence": ["「ありがとうございます」"]}
                for c in scenario.rubric]
    evaluation = validate(reply(criteria=criteria), scenario)
    report = render_markdown(evaluation, scenario)
    for heading in headings:
        assert heading in report
    assert "Good discovery." in report and "- asked about pains" in report
    assert f"### {scenario.rubric[0].name}" in report and "> 「ありがとうございます」" in report


METRICS = {"duration_s": 312.4, "talk_s": {"user": 121.0, "model": 98.5}, "talk_share_user": 0.551,
           "longest_monologue_s": {"user": 24.1, "model": 9.8}, "turns": {"user": 14, "model": 15},
           "questions_user": 9, "fillers_user": 6, "interruptions": {"by_user": 2, "by_model": 0},
           "response_latency_s": {"user_p50": 0.9, "model_p50": None}, "speech_rate_user": 310.0,
           "speech_rate_unit": "chars_per_min"}
OUTCOME = {"appointment": True, "details": {"date": "2026-12-03", "time": "14:00", "topic": "demo"}}


@pytest.mark.parametrize(("scenario", "outcome", "lines"), [
    (SALES_JA, OUTCOME, ["## 計測値", "- 会話の長さ: 312.4 秒", "- 発話時間: あなた 121.0 秒 / お客様 98.5 秒",
                         "- あなたの発話の割合: 55.1 %", "- 応答までの間（中央値）: あなた 0.9 秒 / お客様 —",
                         "- あなたの話す速さ: 310.0 文字/分", "- 成果: アポイント獲得 (2026-12-03, 14:00, demo)"]),
    (SALES_EN, None, ["## Measured", "- Length: 312.4 s", "- Interruptions: by you 2 / by the customer 0",
                      "- Your questions: 9", "- Outcome: none"]),
], ids=["ja", "en"])
def test_the_report_has_a_measured_section(scenario, outcome, lines):
    """With metrics, the report ends with what was measured, in the scenario's language; unmeasured reads —."""
    evaluation = validate(reply(), scenario)
    report = render_markdown(evaluation, scenario, metrics=METRICS, outcome=outcome)
    for line in lines:
        assert line in report.splitlines()
    assert "## 計測値" not in render_markdown(evaluation, SALES_JA)


def test_the_evaluation_json_keeps_its_fields_and_adds_the_measured_ones():
    """evaluation_json is the old object plus metrics, outcome and evidence_refs (null when not measured)."""
    evaluation = validate(reply(), SALES_JA)
    plain = evaluation_json(evaluation)
    assert {k: v for k, v in plain.items() if k not in ("metrics", "outcome", "evidence_refs")} == \
        evaluation.model_dump()
    assert plain["metrics"] is None and plain["outcome"] is None and plain["evidence_refs"] is None
    refs = [{"criterion": "c", "quote": "q", "role": "user", "start_s": 1.0, "end_s": 2.0}]
    full = evaluation_json(evaluation, metrics=METRICS, outcome=OUTCOME, evidence_refs=refs)
    assert (full["metrics"], full["outcome"], full["evidence_refs"]) == (METRICS, OUTCOME, refs)


def test_report_of_an_empty_evaluation():
    """Empty lists render as an explicit 'none' rather than a missing section."""
    evaluation = Evaluation(score=10, summary="s", good_points=[], improvements=[], criteria=[])
    assert "- (none)" in render_markdown(evaluation, SALES_EN)
