"""Grades a finished conversation with Gemini (generateContent + a response schema).

:meth:`Grader.grade` sends the scenario's grading instruction and rubric as the system
instruction, the transcript as text and, when there is one, the recording (inline
when small, through the Files API when large), and asks for JSON matching
:class:`Evaluation`. What was measured rather than judged (talk time, turns, questions, the
outcome…) goes in as facts: a block that starts with the line ``Measured facts (JSON):``
followed by one line of JSON, which the model is told not to contradict. The reply is
validated (scores clamped to 0–100, criteria lined up with the rubric) before it is
returned. :mod:`livetalk.report` turns it into what clients read.

Exceptions::

    GradingFailed     Gemini failed, timed out, or kept answering with unusable JSON;
     │                the message is client-safe (the route answers 502)
     └─ AudioRejected the grading service could not decode the attached audio (400
                      INVALID_ARGUMENT about it, or an upload that failed processing):
                      the bytes are the problem, not the service (an upload → 415)
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from google import genai

    from prompts import Scenario

log = logging.getLogger("livetalk.grading")

INLINE_AUDIO_MAX_BYTES = 14 * 1024 * 1024  # larger recordings go through the Files API (requests cap at 20 MB)
ATTEMPT_TIMEOUT_S = 90.0  # one generateContent call
DEADLINE_S = 180.0  # all attempts together, uploads included
MAX_ATTEMPTS = 3
BACKOFF_S = (1.0, 3.0)  # wait before the 2nd and 3rd attempt (plus up to 50 % jitter)
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
FILE_READY_TIMEOUT_S = 60.0  # an uploaded recording must be ACTIVE within this
FILE_POLL_S = 1.0
MAX_TRANSCRIPT_CHARS = 200_000  # the transcript sent to the model is cut beyond this
MAX_LIST_ITEMS = 10  # good points, improvements, evidence quotes kept per list
ROLE_LABELS = {"user": "User", "model": "AI"}
FACTS_HEADER = "Measured facts (JSON):"  # the emulator's grader (and any reader) finds the facts by this line
AUDIO_FIELDS = ("audio", "inline_data", "file_data")  # a 400 naming one of these is about the attached audio


class GradingFailed(Exception):
    """The conversation could not be graded; the message is safe to show a client."""


class AudioRejected(GradingFailed):
    """The grading service could not decode the attached recording; the message is safe to show a client."""


# --- the evaluation ---------------------------------------------------------------------------


class CriterionScore(BaseModel):
    """One rubric criterion's grade."""

    name: str = Field(description="The rubric criterion's name, exactly as given.")
    score: int = Field(description="0-100 for this criterion.")
    comment: str = Field(description="Why this score, in one to three sentences.")
    evidence: list[str] = Field(description="Short verbatim quotes from the transcript.")


class Evaluation(BaseModel):
    """The grade of one conversation (also the response schema sent to Gemini)."""

    score: int = Field(description="Overall score 0-100, weighing the criteria by their weights.")
    summary: str = Field(description="Two or three sentences on the salesperson's performance.")
    good_points: list[str] = Field(description="What the salesperson did well, with specifics.")
    improvements: list[str] = Field(description="Concrete things to do better next time.")
    criteria: list[CriterionScore] = Field(description="One entry per rubric criterion, in rubric order.")


@dataclasses.dataclass(frozen=True)
class Turn:
    """One utterance of the conversation; ``role`` is ``"user"`` or ``"model"``."""

    role: str
    text: str


@dataclasses.dataclass(frozen=True)
class Recording:
    """Audio to attach: its MIME type, size in bytes, and how to open it (seekable, binary)."""

    mime_type: str
    size: int
    open: Callable[[], BinaryIO]
    description: str = ""  # e.g. which channel is whom; told to the model


# --- grading ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Grader:
    """Grades conversations with one model; the timings and limits are its fields (seconds, bytes)."""

    model: str
    attempt_timeout_s: float = ATTEMPT_TIMEOUT_S  # one generateContent call
    deadline_s: float = DEADLINE_S  # all attempts together, uploads included
    max_attempts: int = MAX_ATTEMPTS
    backoff_s: tuple[float, ...] = BACKOFF_S  # wait before the 2nd, 3rd… attempt (plus up to 50 % jitter)
    inline_audio_max_bytes: int = INLINE_AUDIO_MAX_BYTES  # larger recordings go through the Files API

    def grade(self, client: genai.Client, *, scenario: Scenario, turns: Sequence[Turn],
              recording: Recording | None = None, facts: Mapping[str, Any] | None = None) -> Evaluation:
        """Grade a conversation; raises :class:`GradingFailed` (:class:`AudioRejected` for undecodable audio).

        ``facts`` (JSON-ready) are told to the model as measured facts it must not contradict.
        Retries (up to ``max_attempts``, with backoff, within ``deadline_s``) on 408/429/5xx, transport
        errors and replies that do not validate.
        """
        deadline = time.monotonic() + self.deadline_s
        uploaded = None
        try:
            audio_part, uploaded = _attach(client, recording, deadline, self.inline_audio_max_bytes)
            prompt = _transcript_prompt(turns, recording, facts)
            contents = [*([audio_part] if audio_part is not None else []), prompt]
            return self._generate_with_retries(client, scenario, contents, deadline)
        finally:
            if uploaded is not None:
                _delete_quietly(client, uploaded)

    def _generate_with_retries(self, client, scenario, contents, deadline) -> Evaluation:
        from google.genai import types

        system = system_instruction(scenario)
        last_problem = "no attempt was made"
        for attempt in range(self.max_attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 1.0:
                break
            config = types.GenerateContentConfig(
                system_instruction=system,
                response_mime_type="application/json",
                response_schema=Evaluation,
                temperature=0.2,
                http_options=types.HttpOptions(timeout=int(min(self.attempt_timeout_s, remaining) * 1000)),
            )
            try:
                response = client.models.generate_content(model=self.model, contents=contents, config=config)
                return validate(response.text, scenario)
            except _Retryable as exc:
                last_problem = str(exc)
            except Exception as exc:
                if not _is_transient(exc):
                    log.warning("grading failed: %s", _describe(exc))
                    if len(contents) > 1 and _about_audio(exc):
                        raise AudioRejected("the audio could not be read by the grading service") from exc
                    raise GradingFailed("the grading service rejected the request") from exc
                last_problem = _describe(exc)
            log.warning("grading attempt %d of %d failed: %s", attempt + 1, self.max_attempts, last_problem)
            if attempt + 1 < self.max_attempts:
                self._sleep_before_retry(attempt, deadline)
        raise GradingFailed("the grading service is unavailable; try again later")

    def _sleep_before_retry(self, attempt: int, deadline: float) -> None:
        base = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
        pause = base * (1 + random.random() / 2)
        time.sleep(max(min(pause, deadline - time.monotonic() - 1.0), 0))


def _is_transient(exc: BaseException) -> bool:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        return exc.code in RETRY_STATUS
    try:
        import httpx

        return isinstance(exc, (httpx.TimeoutException, httpx.TransportError))
    except ImportError:  # pragma: no cover - httpx ships with google-genai
        return False


def _about_audio(exc: BaseException) -> bool:
    """Whether a refusal is a 400 INVALID_ARGUMENT that names the attached audio (not our request's shape)."""
    from google.genai import errors

    if not isinstance(exc, errors.APIError) or exc.code != 400:
        return False
    message = (exc.message or "").lower()
    return any(field in message for field in AUDIO_FIELDS)


def _describe(exc: BaseException) -> str:
    """For logs only: the error's type and status, never its body."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}"


class _Retryable(Exception):
    """The reply was unusable; asking again may help."""


def system_instruction(scenario: Scenario) -> str:
    """The scenario's grading instruction followed by its rubric and the output rules."""
    rubric = "\n".join(f"- {c.name} (weight {c.weight}): {c.description}" for c in scenario.rubric)
    return (
        f"{scenario.grading_instruction.strip()}\n\n"
        f"Rubric (criterion (weight): what good looks like):\n{rubric}\n\n"
        f"The request may start with measured facts: a line `{FACTS_HEADER}` and one line of JSON, measured "
        "by the system from the recording and its transcript (times in seconds; null means not measured). "
        "They are true: never contradict them, and use them where the rubric asks about talking time, "
        "listening, questions or the next step. Its `outcome` is what the customer agreed to through the "
        "booking system (null: nothing was agreed); a meeting agreed with a date and time is the goal of the "
        "conversation and weighs on the closing criterion and the overall score.\n\n"
        "Answer with JSON only. Give every score as a whole number from 0 to 100. "
        "Return exactly one entry in `criteria` per rubric criterion, in rubric order, using its name exactly. "
        "`evidence` holds short verbatim quotes from the transcript. "
        f"Write in the conversation's language ({scenario.language})."
    )


def _transcript_prompt(turns: Sequence[Turn], recording: Recording | None,
                       facts: Mapping[str, Any] | None = None) -> str:
    lines = "\n".join(f"{ROLE_LABELS[t.role]}: {t.text}" for t in turns if t.role in ROLE_LABELS and t.text.strip())
    if len(lines) > MAX_TRANSCRIPT_CHARS:
        lines = lines[:MAX_TRANSCRIPT_CHARS] + "\n[… transcript cut …]"
    audio_note = f"The attached audio is the recording of this conversation. {recording.description}\n" if recording else ""
    return (
        f"{facts_block(facts) if facts else ''}"
        f"{audio_note}Transcript (User = the person being graded, AI = the role-played customer):\n"
        f"{lines or '(no words were transcribed)'}\n\nGrade the user's performance."
    )


def facts_block(facts: Mapping[str, Any]) -> str:
    """``Measured facts (JSON):``, the facts as one line of JSON, and what the model must do with them."""
    return (f"{FACTS_HEADER}\n{json.dumps(facts, ensure_ascii=False, separators=(',', ':'))}\n"
            "(Measured by the system; do not contradict these facts.)\n\n")


# --- the recording ----------------------------------------------------------------------------


def _attach(client, recording: Recording | None, deadline: float, inline_max_bytes: int):
    """The recording as a content part (inline or uploaded) and the uploaded file to delete later."""
    from google.genai import types

    if recording is None:
        return None, None
    try:
        if recording.size <= inline_max_bytes:
            with recording.open() as stream:
                return types.Part.from_bytes(data=stream.read(), mime_type=recording.mime_type), None
        with recording.open() as stream:
            uploaded = client.files.upload(file=stream, config=types.UploadFileConfig(mime_type=recording.mime_type))
        _wait_active(client, uploaded, deadline)
        return types.Part.from_uri(file_uri=uploaded.uri, mime_type=recording.mime_type), uploaded
    except GradingFailed:
        raise
    except Exception as exc:
        log.warning("could not attach the recording: %s", _describe(exc))
        raise GradingFailed("the recording could not be sent for grading") from exc


def _wait_active(client, uploaded, deadline: float) -> None:
    limit = min(deadline, time.monotonic() + FILE_READY_TIMEOUT_S)
    file = uploaded
    while _state(file) == "PROCESSING":
        if time.monotonic() >= limit:
            raise GradingFailed("the recording was not ready for grading in time")
        time.sleep(FILE_POLL_S)
        file = client.files.get(name=uploaded.name)
    if _state(file) == "FAILED":
        raise AudioRejected("the audio could not be read by the grading service")


def _state(file) -> str:
    state = getattr(file, "state", None)
    return getattr(state, "value", state) or "ACTIVE"


def _delete_quietly(client, uploaded) -> None:
    try:
        client.files.delete(name=uploaded.name)
    except Exception as exc:  # the Files API expires uploads after 48 h anyway
        log.info("could not delete uploaded recording %s: %s", uploaded.name, _describe(exc))


# --- validation -------------------------------------------------------------------------------


def validate(text: str | None, scenario: Scenario) -> Evaluation:
    """Parse and tidy the model's JSON; raises :class:`_Retryable` when it is unusable.

    Scores outside 0–100 are clamped, blank list items dropped, lists capped at
    :data:`MAX_LIST_ITEMS`; criteria are matched to the rubric by name (ignoring case
    and spaces) and put in rubric order, unknown ones kept after them.
    """
    try:
        data = json.loads(text or "")
        evaluation = Evaluation.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise _Retryable(f"the reply was not a valid evaluation ({type(exc).__name__})") from None
    if not evaluation.summary.strip():
        raise _Retryable("the reply had an empty summary")
    return Evaluation(
        score=_clamp(evaluation.score),
        summary=evaluation.summary.strip(),
        good_points=_tidy(evaluation.good_points),
        improvements=_tidy(evaluation.improvements),
        criteria=_align(evaluation.criteria, scenario),
    )


def _clamp(score: int) -> int:
    return max(0, min(100, int(score)))


def _tidy(items: list[str]) -> list[str]:
    return [s.strip() for s in items if s and s.strip()][:MAX_LIST_ITEMS]


def _key(name: str) -> str:
    return "".join(name.split()).casefold()


def _align(criteria: list[CriterionScore], scenario: Scenario) -> list[CriterionScore]:
    by_name = {_key(c.name): c for c in criteria}
    ordered = []
    for item in scenario.rubric:
        found = by_name.pop(_key(item.name), None)
        if found is not None:
            ordered.append(found.model_copy(update={"name": item.name}))
    ordered.extend(c for c in criteria if _key(c.name) in by_name)
    return [
        c.model_copy(update={"score": _clamp(c.score), "comment": c.comment.strip(), "evidence": _tidy(c.evidence)})
        for c in ordered
    ]
