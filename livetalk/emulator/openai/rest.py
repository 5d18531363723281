"""OpenAI's Responses API on the emulator's port: ``POST /v1/responses``, with structured outputs.

Only what the product calls is served: a request with ``model``, ``instructions`` and ``input`` (a string,
or messages whose content is a string or ``input_text`` parts), and ``text.format`` ``text``,
``json_object`` or ``json_schema``. A ``json_schema`` format with ``strict`` true must meet the service's
strict-mode rules (every object closed with ``additionalProperties: false`` and listing every property in
``required``) or the request gets the service's 400. The answer is the Gemini side's (:mod:`..rest`): a
grading request — the rubric in the instructions, a ``Transcript (…):`` block in the input, as
:mod:`livetalk.grading_openai` sends — gets the emulator's grade, shaped to the schema; other requests get
JSON derived from the input, or prose.

Credentials: ``Authorization: Bearer <key>`` (any non-empty key, or only the emulator's ``api_key`` when it
has one), else 401. REST faults (``control.fault_next_rest``) apply as on the Gemini side: a delay, then an
error status with OpenAI's error body (429 ``rate_limit_exceeded``, 5xx ``server_error``…). Errors are
``{"error": {"message", "type", "param", "code"}}``; client mistakes are 4xx, never 500.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from livetalk.emulator.control import Control
from livetalk.emulator.errors import EmulatorError, RestError
from livetalk.emulator.http11 import HttpRequest
from livetalk.emulator.openai import errors
from livetalk.emulator.prompt import analyse
from livetalk.emulator.reply import text_tokens
from livetalk.emulator.rest import MAX_LOGGED_TEXT, RestResponse, _answer_text, json_response, plain_answer

logger = logging.getLogger("livetalk.emulator")

RESPONSES_PATH = re.compile(r"^/+v1/+responses/*$")
SYSTEM_ROLES = frozenset({"system", "developer"})
FORMATS = ("text", "json_object", "json_schema")
SCHEMA_PARAM = "text.format.schema"


class ResponsesError(EmulatorError):
    """A Responses API request fails with ``status``; :meth:`body` is OpenAI's error JSON."""

    def __init__(self, status: int, message: str, *, type: str = errors.INVALID_REQUEST,  # noqa: A002
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ResponsesApi:
    """Serves ``POST /v1/responses``.

    Args:
        control: shared REST faults and the request log.
        api_key: when set, the only key accepted; otherwise any non-empty key is.
    """

    def __init__(self, control: Control, *, api_key: str | None) -> None:
        self._control = control
        self._api_key = api_key
        self._ids = itertools.count(1)

    @staticmethod
    def matches(path: str) -> bool:
        """Whether ``path`` is the Responses endpoint."""
        return RESPONSES_PATH.match(path) is not None

    async def handle(self, request: HttpRequest) -> RestResponse:
        """Serve one request; never raises."""
        try:
            if request.method != "POST":
                raise ResponsesError(405, f"Method {request.method} is not allowed on /v1/responses.")
            self._check_key(request)
            await self._apply_fault()
            return json_response(self._respond(request))
        except ResponsesError as exc:
            return json_response(exc.body(), exc.status)
        except Exception:  # a bug in the emulator: answer like the service's 500
            logger.exception("emulator Responses handler failed")
            return json_response(ResponsesError(500, "The server had an error while processing your request.",
                                                type=errors.SERVER_ERROR).body(), 500)

    def _check_key(self, request: HttpRequest) -> None:
        header = request.header("authorization") or ""
        key = header[len("bearer ") :].strip() if header.lower().startswith("bearer ") else ""
        if not key:
            raise ResponsesError(401, errors.NO_KEY_MESSAGE)
        if self._api_key is not None and key != self._api_key:
            raise ResponsesError(401, errors.INVALID_KEY_MESSAGE, code="invalid_api_key")

    async def _apply_fault(self) -> None:
        fault = self._control.take_rest_fault()
        if fault is None:
            return
        if fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault.status is not None:
            error = errors.handshake_body(fault.status, quota=False)["error"]
            raise ResponsesError(fault.status, fault.message or error["message"], type=error["type"],
                                 code=error["code"])

    def _respond(self, request: HttpRequest) -> dict[str, Any]:
        body = _json_body(request.body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ResponsesError(400, "Missing required parameter: 'model'.", code="missing_required_parameter",
                                 param="model")
        instructions, user_text = _read_input(body)
        text_format = _text_format(body.get("text"))
        facts = analyse({"contents": [{"role": "user", "parts": [{"text": user_text}]}],
                         "systemInstruction": {"parts": [{"text": instructions}]}}, self._control.files)
        answer = self._answer(facts, text_format)
        self._control.log_request({
            "method": "POST", "path": request.path, "model": model, "status": 200, "engine": "openai",
            "has_schema": text_format.get("type") == "json_schema", "text": user_text[:MAX_LOGGED_TEXT],
            "system_instruction": instructions[:MAX_LOGGED_TEXT], "answer": answer, "store": body.get("store"),
        })
        return self._response(body, model, text_format, answer, prompt_tokens=text_tokens(instructions + user_text))

    @staticmethod
    def _answer(facts: Any, text_format: Mapping[str, Any]) -> str:
        kind = text_format.get("type", "text")
        if kind == "text":
            return plain_answer(facts)
        try:
            return _answer_text(facts, text_format.get("schema"), "application/json")
        except RestError as exc:
            raise ResponsesError(400, exc.message, code="invalid_json_schema", param=SCHEMA_PARAM) from None

    def _response(self, body: Mapping[str, Any], model: str, text_format: Mapping[str, Any], answer: str, *,
                  prompt_tokens: int) -> dict[str, Any]:
        n = next(self._ids)
        output_tokens = text_tokens(answer)
        message = {"type": "message", "id": f"msg_emu_{n}", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": answer, "annotations": [], "logprobs": []}]}
        return {
            "id": f"resp_emu_{n}", "object": "response", "created_at": int(time.time()), "status": "completed",
            "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {}, "model": model, "output": [message],
            "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
            "service_tier": "default", "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
            "text": {"format": dict(text_format), "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
            "top_p": body.get("top_p", 1.0), "truncation": "disabled",
            "usage": {"input_tokens": prompt_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                      "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": prompt_tokens + output_tokens},
            "user": None,
        }


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise ResponsesError(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                             "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)")
    return body


def _read_input(body: Mapping[str, Any]) -> tuple[str, str]:
    """The system text (``instructions`` and system/developer messages) and the user text of a request."""
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _invalid_type("instructions", "a string")
    system, user = [instructions or ""], []
    raw = body.get("input", "")
    if isinstance(raw, str):
        user.append(raw)
    elif isinstance(raw, list):
        for index, message in enumerate(raw):
            role, text = _message(message, f"input[{index}]")
            (system if role in SYSTEM_ROLES else user if role == "user" else []).append(text)
    else:
        raise _invalid_type("input", "a string or an array")
    return "\n".join(text for text in system if text), "\n".join(text for text in user if text)


def _message(message: Any, path: str) -> tuple[str, str]:
    if not isinstance(message, Mapping):
        raise _invalid_type(path, "an object")
    role, content = message.get("role"), message.get("content")
    if role not in ("user", "assistant", *SYSTEM_ROLES):
        raise ResponsesError(400, f"Invalid value: '{role}'.", code="invalid_value", param=f"{path}.role")
    if isinstance(content, str):
        return role, content
    if not isinstance(content, list):
        raise _invalid_type(f"{path}.content", "a string or an array")
    texts = [part.get("text") for part in content if isinstance(part, Mapping)
             and part.get("type") in ("input_text", "output_text")]
    return role, "\n".join(text for text in texts if isinstance(text, str))


def _text_format(text: Any) -> dict[str, Any]:
    if text is None:
        return {"type": "text"}
    if not isinstance(text, Mapping):
        raise _invalid_type("text", "an object")
    text_format = text.get("format", {"type": "text"})
    if not isinstance(text_format, Mapping) or text_format.get("type") not in FORMATS:
        raise ResponsesError(400, "Invalid value for 'text.format.type'.", code="invalid_value",
                             param="text.format.type")
    if text_format["type"] == "json_schema":
        _check_schema_format(text_format)
    return dict(text_format)


def _check_schema_format(text_format: Mapping[str, Any]) -> None:
    name, schema = text_format.get("name"), text_format.get("schema")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ResponsesError(400, "Missing or invalid 'text.format.name'.", code="invalid_value",
                             param="text.format.name")
    if not isinstance(schema, Mapping):
        raise ResponsesError(400, "Missing required parameter: 'text.format.schema'.",
                             code="missing_required_parameter", param=SCHEMA_PARAM)
    if text_format.get("strict"):
        for context, problem in _strict_problems(schema, ()):
            raise ResponsesError(400, f"Invalid schema for response_format '{name}': In context={context}, "
                                 f"{problem}", code="invalid_json_schema", param=SCHEMA_PARAM)


def _strict_problems(schema: Any, context: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """What breaks the service's strict-mode rules, object by object."""
    if not isinstance(schema, Mapping):
        return
    properties = schema.get("properties")
    if schema.get("type") == "object" or isinstance(properties, Mapping):
        if schema.get("additionalProperties") is not False:
            yield context, "'additionalProperties' is required to be supplied and to be false."
        missing = [key for key in properties or {} if key not in (schema.get("required") or ())]
        if missing:
            yield context, (f"'required' is required to be supplied and to be an array including every key in "
                            f"properties. Missing '{missing[0]}'.")
    for key, value in (properties or {}).items():
        yield from _strict_problems(value, (*context, "properties", key))
    for keyword in ("$defs", "definitions"):
        for key, value in (schema.get(keyword) or {}).items():
            yield from _strict_problems(value, (*context, keyword, key))
    for index, value in enumerate(schema.get("anyOf") or ()):
        yield from _strict_problems(value, (*context, "anyOf", str(index)))
    if "items" in schema:
        yield from _strict_problems(schema["items"], (*context, "items"))


def _invalid_type(path: str, expected: str) -> ResponsesError:
    return ResponsesError(400, f"Invalid type for '{path}': expected {expected}.", code="invalid_type", param=path)
