"""Grades a finished conversation with OpenAI structured outputs, for a service that has only an OpenAI key.

:meth:`OpenAIGrader.grade` is :meth:`livetalk.grading.Grader.grade` on OpenAI's Responses API: the same
system instruction (the scenario's grading instruction and rubric, :func:`livetalk.grading.system_instruction`)
as ``instructions``, the same transcript prompt as ``input``, and ``responses.parse(text_format=Evaluation)``
so the service must answer JSON matching :class:`~livetalk.grading.Evaluation` (strict JSON schema). The
reply goes through :func:`livetalk.grading.validate` (scores clamped, criteria lined up with the rubric).
Requests are sent with ``store=False``: OpenAI keeps no copy of the conversation.

**The recording is not sent.** The grade is made from the transcript alone (the Responses API takes no
audio input for text models); ``recording`` is accepted, so both graders are called alike, and ignored.

The tunables and the retry policy are :class:`~livetalk.grading.Grader`'s (this class extends it): up to
``max_attempts`` attempts, each within ``attempt_timeout_s`` and all within ``deadline_s``, with backoff,
on HTTP 408/429/5xx, timeouts, connection errors and replies that do not validate; any other status fails
at once.

Exceptions::

    GradingFailed     (livetalk.grading) OpenAI failed, timed out, refused the request, or kept answering
                      with unusable JSON; the message is client-safe (never OpenAI's own text)
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import grading
from .grading import Evaluation, GradingFailed, Recording, Turn

if TYPE_CHECKING:
    from openai import OpenAI

    from prompts import Scenario

log = logging.getLogger("livetalk.grading")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OpenAIGrader(grading.Grader):
    """Grades conversations with one OpenAI model (``model``, e.g. ``gpt-5.4-mini``); timings in seconds.

    ``inline_audio_max_bytes`` is inherited and unused: no audio is sent.
    """

    def grade(self, client: OpenAI, *, scenario: Scenario, turns: Sequence[Turn],
              recording: Recording | None = None, facts: Mapping[str, Any] | None = None) -> Evaluation:
        """Grade a conversation from its transcript; raises :class:`~livetalk.grading.GradingFailed`.

        ``facts``, when the grading module supports them, are told to the model as measured facts.
        """
        if recording is not None:
            log.debug("grading from the transcript only: the recording is not sent to OpenAI")
        deadline = time.monotonic() + self.deadline_s
        system = grading.system_instruction(scenario)
        prompt = _prompt(turns, facts)
        for attempt in range(self.max_attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 1.0:
                break
            problem = self._attempt(client, scenario, system, prompt, min(self.attempt_timeout_s, remaining))
            if isinstance(problem, Evaluation):
                return problem
            log.warning("grading attempt %d of %d failed: %s", attempt + 1, self.max_attempts, problem)
            if attempt + 1 < self.max_attempts:
                self._sleep_before_retry(attempt, deadline)
        raise GradingFailed("the grading service is unavailable; try again later")

    def _attempt(self, client: OpenAI, scenario: Scenario, system: str, prompt: str,
                 timeout_s: float) -> Evaluation | str:
        """One call: the evaluation, or what went wrong (for the log) when asking again may help.

        Raises:
            GradingFailed: OpenAI refused the request for good.
        """
        import openai

        try:
            response = client.with_options(timeout=timeout_s, max_retries=0).responses.parse(
                model=self.model, instructions=system, input=prompt, text_format=Evaluation, store=False)
            return grading.validate(response.output_text, scenario)
        except grading._Retryable as exc:
            return str(exc)
        except ValueError as exc:  # the SDK's own parse of a reply that is not the schema
            return f"the reply was not a valid evaluation ({type(exc).__name__})"
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            return type(exc).__name__
        except openai.APIStatusError as exc:
            if exc.status_code in grading.RETRY_STATUS:
                return f"{type(exc).__name__} {exc.status_code}"
            log.warning("grading failed: %s %s", type(exc).__name__, exc.status_code)
            raise GradingFailed("the grading service rejected the request") from exc


def _prompt(turns: Sequence[Turn], facts: Mapping[str, Any] | None) -> str:
    """The Gemini grader's transcript prompt, without the audio note (no recording is attached)."""
    if facts:
        return grading._transcript_prompt(turns, None, facts)
    return grading._transcript_prompt(turns, None)
