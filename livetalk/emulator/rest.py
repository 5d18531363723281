"""The REST side of the emulator: generateContent, the Files API, and control routes.

:meth:`RestApi.handle` turns one parsed :class:`HttpRequest` into a
:class:`RestResponse`; the server does the socket work. Errors are Google-shaped:
``{"error": {"code", "message", "status"}}``; whatever a client sends is answered
with a 4xx when it cannot be served, never a 500. Only the Gemini routes the
product and its tests call are served: ``generateContent`` (and its streaming
form), and the Files API's resumable upload, get and delete.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from livetalk.emulator.control import Control
from livetalk.emulator.errors import RestError
from livetalk.emulator.http11 import HttpRequest
from livetalk.emulator.grader import evaluate, read_grading_request
from livetalk.emulator.prompt import PromptFacts, analyse
from livetalk.emulator.reply import AUDIO_TOKENS_PER_S, text_tokens
from livetalk.emulator.schema import MISSING, SchemaError, generate
from livetalk.emulator.wire import pick

JSON_TYPE = "application/json; charset=UTF-8"
SSE_TYPE = "text/event-stream"
ENUM_TYPE = "text/x.enum"  # the answer is one enum value, unquoted
STREAM_PIECES = 3  # a streamed answer arrives in this many events
MAX_LOGGED_TEXT = 4000  # characters of prompt text kept in the request log
INVALID_KEY = "API key not valid. Please pass a valid API key."
NO_KEY = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key."

logger = logging.getLogger("livetalk.emulator")

_VERSION = r"(?P<version>v1(?:alpha|beta)?\d*)"


@dataclasses.dataclass
class RestResponse:
    """What to send back: a body, or (``events``) a chunked server-sent-event stream."""

    status: int = 200
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    events: list[bytes] | None = None


def json_response(data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> RestResponse:
    """A JSON body response."""
    return RestResponse(status=status, body=orjson.dumps(data), headers=headers or [])


Handler = Callable[[HttpRequest, "re.Match[str]"], Awaitable[RestResponse]]


@dataclasses.dataclass(frozen=True)
class Route:
    """One REST route. ``public`` routes need no API key; ``faulty`` ones take REST faults."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    public: bool = False
    faulty: bool = True


class RestApi:
    """The REST endpoints.

    Args:
        control: shared state (files, faults, logs).
        base_url: the emulator's own URL, used when a request has no Host header.
        api_key: when set, the only API key accepted; otherwise any non-empty key is.
    """

    def __init__(self, control: Control, *, base_url: Callable[[], str], api_key: str | None = None) -> None:
        self._control = control
        self._base_url = base_url
        self._api_key = api_key
        self._ids = itertools.count(1)
        self._routes = self._route_table()

    def _route_table(self) -> list[Route]:
        model = rf"/{_VERSION}/models/(?P<model>[^/:]+)"
        files = rf"/{_VERSION}/files"
        control = "/emulator/v1"
        return [
            Route("POST", re.compile(rf"{model}:generateContent"), self._generate),
            Route("POST", re.compile(rf"{model}:streamGenerateContent"), self._stream),
            Route("POST", re.compile(rf"/upload{files}"), self._upload),
            Route("GET", re.compile(rf"{files}/(?P<file>[^/]+)"), self._get_file),
            Route("DELETE", re.compile(rf"{files}/(?P<file>[^/]+)"), self._delete_file),
            Route("GET", re.compile(rf"{control}/sessions"), self._ctl_sessions, public=True, faulty=False),
            Route("GET", re.compile(rf"{control}/requests"), self._ctl_requests, public=True, faulty=False),
            Route("POST", re.compile(rf"{control}/faults"), self._ctl_faults, public=True, faulty=False),
            Route("POST", re.compile(rf"{control}/rest-faults"), self._ctl_rest_faults, public=True, faulty=False),
            Route("POST", re.compile(rf"{control}/mode"), self._ctl_mode, public=True, faulty=False),
            Route("POST", re.compile(rf"{control}/settings"), self._ctl_settings, public=True, faulty=False),
            Route("POST", re.compile(rf"{control}/reset"), self._ctl_reset, public=True, faulty=False),
            Route("GET", re.compile(rf"{control}/health"), self._ctl_health, public=True, faulty=False),
        ]

    async def handle(self, request: HttpRequest) -> RestResponse:
        """Serve one request; never raises for a client error."""
        path = re.sub("/{2,}", "/", request.path)
        try:
            route, match = self._route(request.method, path)
            transfer = route.handler == self._upload and _is_transfer(request)
            if not (route.public or transfer):
                self._check_key(request)
            if route.faulty and not transfer:
                await self._apply_rest_fault()
            return await route.handler(request, match)
        except RestError as exc:
            return json_response(exc.body(), exc.status)
        except Exception:  # a bug in the emulator: answer like the real API's 500
            logger.exception("emulator REST handler failed for %s %s", request.method, path)
            return json_response(RestError(500, "Internal error encountered.").body(), 500)

    def _route(self, method: str, path: str) -> tuple[Route, re.Match[str]]:
        allowed = False
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.method == method:
                return route, match
            allowed = True
        if allowed:
            raise RestError(405, f"Method {method} is not allowed for {path}.")
        raise RestError(404, f"The requested URL {path} was not found on this server.")

    def _check_key(self, request: HttpRequest) -> None:
        key = request.header("x-goog-api-key") or request.query.get("key")
        if not key:
            raise RestError(403, NO_KEY)
        if self._api_key is not None and key != self._api_key:
            raise RestError(400, INVALID_KEY)

    async def _apply_rest_fault(self) -> None:
        fault = self._control.take_rest_fault()
        if fault is None:
            return
        if fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault.status is not None:
            raise RestError(fault.status, fault.message or f"Emulated error {fault.status}.")

    def _own_url(self, request: HttpRequest) -> str:
        host = request.header("host")
        return f"https://{host}" if host else self._base_url()

    # -- generateContent ------------------------------------------------------

    async def _generate(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        text, usage = self._answer(request, match)
        return json_response(self._candidates(text, match["model"], usage, finished=True))

    async def _stream(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        text, usage = self._answer(request, match)
        size = max(1, -(-len(text) // STREAM_PIECES))
        pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        events = [
            b"data: " + orjson.dumps(self._candidates(piece, match["model"], usage, finished=i == len(pieces) - 1))
            + b"\r\n\r\n"
            for i, piece in enumerate(pieces)
        ]
        return RestResponse(content_type=SSE_TYPE, events=events)

    def _answer(self, request: HttpRequest, match: re.Match[str]) -> tuple[str, dict[str, Any]]:
        """The answer text (JSON when a schema asks for it) and its usage metadata."""
        body = _json_body(request)
        facts = analyse(body, self._control.files)
        config = pick(body, "generationConfig", {})
        if not isinstance(config, dict):
            raise RestError(400, "Invalid value at 'generation_config': expected a GenerationConfig object.")
        schema = pick(config, "responseJsonSchema") or pick(config, "responseSchema")
        mime_type = str(pick(config, "responseMimeType", ""))
        if schema is not None and not isinstance(schema, dict):
            raise RestError(400, "Invalid value at 'generation_config.response_schema': expected a Schema object.")
        text = _answer_text(facts, schema, mime_type)
        prompt = _prompt_tokens(facts)
        answer = text_tokens(text)
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": answer, "totalTokenCount": prompt + answer}
        self._control.log_request(
            {"method": request.method, "path": request.path, "model": match["model"], "status": 200,
             "has_schema": isinstance(schema, dict), "text": facts.text[:MAX_LOGGED_TEXT],
             "system_instruction": facts.system_instruction[:MAX_LOGGED_TEXT], "answer": text}
        )
        return text, usage

    def _candidates(self, text: str, model: str, usage: dict[str, Any], *, finished: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        response: dict[str, Any] = {"candidates": [candidate], "modelVersion": model,
                                    "responseId": f"emu-resp-{next(self._ids)}"}
        if finished:
            candidate["finishReason"] = "STOP"
            response["usageMetadata"] = usage
        return response

    # -- Files API ------------------------------------------------------------

    async def _upload(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        command = (request.header("x-goog-upload-command") or "").lower()
        if "start" in command:
            return self._start_upload(request, match["version"])
        if _is_transfer(request):
            return self._transfer(request, command)
        raise RestError(400, "Only resumable uploads (X-Goog-Upload-Protocol: resumable) are emulated.")

    def _start_upload(self, request: HttpRequest, version: str) -> RestResponse:
        meta = pick(_json_body(request), "file", {})
        size = request.header("x-goog-upload-header-content-length") or pick(meta, "sizeBytes")
        display_name = pick(meta, "displayName")
        upload = self._control.files.start(
            version=version,
            display_name=display_name if isinstance(display_name, str) else None,
            mime_type=str(request.header("x-goog-upload-header-content-type") or pick(meta, "mimeType")
                          or "application/octet-stream"),
            size=int(size) if str(size or "").isdigit() else None,
        )
        url = f"{self._own_url(request)}/upload/{version}/files?upload_id={upload.id}&upload_protocol=resumable"
        headers = [("X-Goog-Upload-URL", url), ("X-Goog-Upload-Status", "active"),
                   ("X-GUploader-UploadID", upload.id)]
        return RestResponse(headers=headers)

    def _transfer(self, request: HttpRequest, command: str) -> RestResponse:
        upload = self._control.files.upload(request.query["upload_id"])
        if upload is None:
            raise RestError(404, "No such upload session.")
        if "query" in command:
            return RestResponse(headers=[("X-Goog-Upload-Status", "active"),
                                         ("X-Goog-Upload-Size-Received", str(len(upload.data)))])
        offset = request.header("x-goog-upload-offset", str(len(upload.data))) or "0"
        self._control.files.append(upload, int(offset) if offset.isdigit() else -1, request.body)
        if "finalize" not in command:
            return RestResponse(headers=[("X-Goog-Upload-Status", "active")])
        stored = self._control.files.finish(upload)
        resource = stored.resource(self._own_url(request), upload.version)
        self._control.log_request({"method": "POST", "path": "upload", "status": 200, "file": resource["name"],
                                   "mime_type": stored.mime_type, "size": len(stored.data)})
        return json_response({"file": resource}, headers=[("X-Goog-Upload-Status", "final")])

    async def _get_file(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        stored = self._control.files.get(match["file"])
        return json_response(stored.resource(self._own_url(request), match["version"]))

    async def _delete_file(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        self._control.files.delete(match["file"])
        return json_response({})

    # -- control --------------------------------------------------------------

    async def _ctl_sessions(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        open_only = request.query.get("open", "") in ("1", "true")
        return json_response({"sessions": self._control.sessions(open_only=open_only)})

    async def _ctl_requests(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        return json_response({"requests": self._control.requests()})

    async def _ctl_faults(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        params = dict(_json_body(request))
        kind = params.pop("kind", None)
        count = params.pop("count", 1)
        try:
            fault = self._control.fault_next(kind, count=count, **params)
        except (TypeError, ValueError) as exc:
            raise RestError(400, str(exc)) from None
        return json_response({"fault": fault.as_dict(), "count": count})

    async def _ctl_rest_faults(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        params = _json_body(request)
        try:
            fault = self._control.fault_next_rest(
                params.get("status", 429), count=params.get("count", 1),
                delay_ms=params.get("delay_ms", 0), message=params.get("message"),
            )
        except (TypeError, ValueError) as exc:
            raise RestError(400, str(exc)) from None
        return json_response({"fault": dataclasses.asdict(fault), "count": params.get("count", 1)})

    async def _ctl_mode(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        params = _json_body(request)
        try:
            if "mode" in params:
                self._control.set_mode(params["mode"], count=params.get("count"))
        except (TypeError, ValueError) as exc:
            raise RestError(400, f"bad mode: {exc}") from None
        return await self._ctl_settings(request, match)

    async def _ctl_settings(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        params = _json_body(request)
        try:
            speed = float(params.get("reply_speed", self._control.reply_speed))
            timeout_s = float(params.get("tool_timeout_s", self._control.tool_timeout_s))
        except (TypeError, ValueError) as exc:
            raise RestError(400, f"bad setting: {exc}") from None
        if not timeout_s > 0 or math.isnan(speed):
            raise RestError(400, "bad setting: tool_timeout_s must be > 0 and reply_speed a number")
        self._control.reply_speed, self._control.tool_timeout_s = speed, timeout_s
        return json_response({"mode": self._control.mode.value, "reply_speed": speed, "tool_timeout_s": timeout_s})

    async def _ctl_reset(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        self._control.reset()
        return json_response({"ok": True})

    async def _ctl_health(self, request: HttpRequest, match: re.Match[str]) -> RestResponse:
        return json_response({"status": "ok", "emulator": True, **self._control.summary()})


def _answer_text(facts: PromptFacts, schema: dict[str, Any] | None, mime_type: str) -> str:
    """The answer: JSON for a schema (a grade for a grading request), one enum value, or prose."""
    if schema is None and mime_type.startswith("application/json"):
        return orjson.dumps({"text": plain_answer(facts)}).decode()
    if schema is None:
        return plain_answer(facts)
    grading = read_grading_request(facts)
    preset = MISSING if grading is None else evaluate(grading, today=datetime.date.today())
    try:
        value = generate(schema, facts, preset=preset)
    except SchemaError as exc:
        raise RestError(400, f"Invalid value at 'generation_config.response_schema': {exc}.") from None
    return str(value) if mime_type == ENUM_TYPE else orjson.dumps(value).decode()


def plain_answer(facts: PromptFacts) -> str:
    """The deterministic free-text answer to a prompt."""
    first = facts.quote(0) or ""
    if facts.japanese:
        text = f"[エミュレーター] ユーザー発話{facts.user_turns}回、質問{facts.questions}件を受け取りました。"
        return text + (f"最初の行:「{first[:60]}」" if first else "")
    text = f"[emulator] Received {facts.user_turns} user turn(s) and {facts.questions} question(s)."
    if facts.audio_seconds:
        text += f" Audio: {facts.audio_seconds:.1f} s."
    return text + (f' First line: "{first[:60]}"' if first else "")


def _prompt_tokens(facts: PromptFacts) -> int:
    return text_tokens(facts.text + facts.system_instruction) + int(facts.audio_seconds * AUDIO_TOKENS_PER_S)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise RestError(400, "Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise RestError(400, "Invalid JSON payload received: expected an object.")
    return body


def _is_transfer(request: HttpRequest) -> bool:
    """An upload transfer: it carries no API key, only the upload id."""
    return "upload_id" in request.query
