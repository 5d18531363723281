"""Grading with OpenAI structured outputs through the unmodified ``openai`` SDK against the emulator's Responses
API: a valid Evaluation, the retry policy, timeouts, client-safe errors, and the endpoint itself."""
from __future__ import annotations

import io
import json
import time
from typing import Any

import openai
import pydantic
import pytest
from openai.types.responses import Response

import prompts
from livetalk import grading
from livetalk.grading import Evaluation, GradingFailed, Recording, Turn
from livetalk.grading_openai import OpenAIGrader
from tests.emulator_helpers import API_KEY, emu, fresh_control  # noqa: F401  (fixtures)

SALES_JA = prompts.get_scenario("sales-ja")
SALES_EN = prompts.get_scenario("sales-en")
MODEL = "gpt-5.4-mini"
TURNS = [
    Turn("user", "本日はお時間をいただきありがとうございます。社内の問い合わせ対応でお困りのことはありますか？"),
    Turn("model", "そうですね、情報システム部に問い合わせが集中しています。"),
    Turn("user", "それは大変ですね。12月3日の14時にデモのお時間をいただけますか？"),
]


def sdk(emu, **options: Any) -> openai.OpenAI:
    """A real synchronous OpenAI client for the emulator (its CA trusted), without the SDK's own retries."""
    return openai.OpenAI(api_key=API_KEY, base_url=emu.openai_base_url, max_retries=0,
                         http_client=openai.DefaultHttpxClient(verify=emu.client_ssl_context()), **options)


@pytest.fixture
def client(emu):
    """The SDK client the service would hand the grader."""
    with sdk(emu) as client:
        yield client


def grader(**options: Any) -> OpenAIGrader:
    """A grader whose retries wait milliseconds, not seconds."""
    return OpenAIGrader(model=MODEL, backoff_s=(0.01, 0.01), **options)


def responses_calls(emu) -> list[dict[str, Any]]:
    return [entry for entry in emu.control.requests() if entry.get("path") == "/v1/responses"]


# -- grading ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [SALES_JA, SALES_EN], ids=["ja", "en"])
def test_grade_returns_a_valid_evaluation_from_one_structured_call(client, emu, scenario):
    """One Responses call with the strict Evaluation schema, the rubric as instructions and the transcript as
    input, store off, comes back as a validated Evaluation lined up with the rubric."""
    evaluation = grader().grade(client, scenario=scenario, turns=TURNS)
    assert isinstance(evaluation, Evaluation) and 0 <= evaluation.score <= 100 and evaluation.summary
    assert [c.name for c in evaluation.criteria] == [c.name for c in scenario.rubric]
    [call] = responses_calls(emu)
    assert call["model"] == MODEL and call["has_schema"] and call["store"] is False
    assert call["system_instruction"] == grading.system_instruction(scenario)
    assert "User: それは大変ですね。12月3日の14時に" in call["text"] and "attached audio" not in call["text"]
    assert json.loads(call["answer"])["score"] == evaluation.score


def test_the_recording_is_not_sent(client, emu):
    """A recording is accepted but never opened: the grade comes from the transcript alone."""

    def never_opened() -> io.BytesIO:
        raise AssertionError("the OpenAI grader must not read the recording")

    evaluation = grader().grade(client, scenario=SALES_JA, turns=TURNS,
                                recording=Recording("audio/wav", 10**9, never_opened, "stereo"))
    assert 0 <= evaluation.score <= 100 and len(responses_calls(emu)) == 1


@pytest.mark.skipif(not hasattr(grading, "facts_block"), reason="this grading module has no measured facts")
def test_measured_facts_reach_the_model(client, emu):
    """Facts go in the prompt as the Gemini grader writes them."""
    grader().grade(client, scenario=SALES_JA, turns=TURNS, facts={"questions_user": 2})
    assert grading.FACTS_HEADER in responses_calls(emu)[0]["text"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried(client, emu, status):
    """Two transient failures in a row are retried and the third attempt's grade is returned."""
    emu.control.fault_next_rest(status=status, count=2)
    evaluation = grader().grade(client, scenario=SALES_JA, turns=TURNS)
    assert 0 <= evaluation.score <= 100 and len(responses_calls(emu)) == 1  # faulted calls are not logged
    assert not emu.control.take_rest_fault()


@pytest.mark.parametrize("status", [429, 500])
def test_exhausted_retries_fail_without_upstream_text(client, emu, status):
    """When every attempt fails transiently, GradingFailed says so in its own words, never OpenAI's."""
    emu.control.fault_next_rest(status=status, count=grading.MAX_ATTEMPTS, message="secret upstream detail")
    with pytest.raises(GradingFailed) as info:
        grader().grade(client, scenario=SALES_JA, turns=TURNS)
    assert "secret" not in str(info.value) and "unavailable" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 403])
def test_client_errors_are_not_retried(client, emu, status):
    """A 4xx other than 408/429 fails at once: each grade uses up exactly one armed fault."""
    emu.control.fault_next_rest(status=status, count=2, message="secret upstream detail")
    for _ in range(2):
        with pytest.raises(GradingFailed) as info:
            grader().grade(client, scenario=SALES_JA, turns=TURNS)
        assert "secret" not in str(info.value)
    assert grader().grade(client, scenario=SALES_JA, turns=TURNS)


def test_slow_upstream_times_out_within_the_deadline(client, emu):
    """A hanging upstream is abandoned after the per-attempt timeout, all attempts within the deadline."""
    emu.control.fault_next_rest(status=None, delay_ms=5000, count=5)
    started = time.monotonic()
    with pytest.raises(GradingFailed):
        grader(attempt_timeout_s=0.5, deadline_s=2.5).grade(client, scenario=SALES_JA, turns=TURNS)
    assert time.monotonic() - started < 4.0


def test_a_wrong_key_is_refused_at_once(emu):
    """An emulator that holds its own key answers a wrong one with 401: not retried, no upstream text."""
    from livetalk.emulator import Emulator

    with Emulator(api_key="the-right-key") as locked, sdk(locked) as client:
        with pytest.raises(GradingFailed) as info:
            grader().grade(client, scenario=SALES_EN, turns=TURNS)
        assert "Incorrect API key" not in str(info.value)
        assert not responses_calls(locked)


# -- the emulator's Responses endpoint ---------------------------------------------------------------------


def test_the_answer_is_a_response_the_sdk_validates(client):
    """The emulator's JSON validates strictly against the SDK's Response model, and parse() fills output_parsed."""
    raw = client.responses.with_raw_response.parse(model=MODEL, input="User: hello?", text_format=Evaluation,
                                                   instructions=grading.system_instruction(SALES_EN))
    Response.model_validate(json.loads(raw.http_response.text), strict=True)
    parsed = raw.parse()
    assert isinstance(parsed.output_parsed, Evaluation) and parsed.usage.total_tokens > 0


def test_plain_requests_get_prose(client):
    """Without a schema the answer is the emulator's prose about the input."""
    response = client.responses.create(model=MODEL, input=[{"role": "developer", "content": "Be brief."},
                                                           {"role": "user", "content": "User: hello?"}])
    assert response.output_text.startswith("[emulator]")


class Loose(pydantic.BaseModel):
    score: int


@pytest.mark.parametrize("text, param, code", [
    ({"format": {"type": "json_schema", "name": "Loose", "strict": True,
                 "schema": {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}}},
     "text.format.schema", "invalid_json_schema"),
    ({"format": {"type": "json_schema", "name": "Loose", "strict": True,
                 "schema": {"type": "object", "properties": {"score": {"type": "integer"}},
                            "additionalProperties": False}}}, "text.format.schema", "invalid_json_schema"),
    ({"format": {"type": "json_schema", "name": "has spaces", "schema": {"type": "object"}}}, "text.format.name",
     "invalid_value"),
    ({"format": {"type": "yaml"}}, "text.format.type", "invalid_value"),
])
def test_requests_the_service_refuses_get_its_400(client, text, param, code):
    """Strict schemas that are not closed or do not require every property, bad names and formats: 400."""
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", text=text)
    assert (info.value.body["param"], info.value.body["code"]) == (param, code)


def test_a_missing_key_is_401(emu):
    """No Authorization header: 401 with OpenAI's error body."""
    with sdk(emu, default_headers={"Authorization": ""}) as client:
        with pytest.raises(openai.AuthenticationError):
            client.responses.create(model=MODEL, input="hi")
