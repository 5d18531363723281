"""JSON log lines for Cloud Logging, through the standard :mod:`logging` module.

:func:`configure_logging` puts one handler on the root logger that writes one
JSON object per line to stdout, the form Cloud Run's logging agent parses into
``jsonPayload``, with the special keys it promotes: ``severity``, ``message``,
``time``, ``logging.googleapis.com/trace``, ``logging.googleapis.com/spanId``
and ``logging.googleapis.com/sourceLocation``. Per-request values (trace,
conversation id) come from :func:`log_context`, which rides on context variables,
so they follow a request across threads' ``copy_context`` and into asyncio tasks.

Structured values go in ``extra={"fields": {...}}`` and are merged into the line
(they cannot overwrite the keys above). An exception's traceback goes to
``stack_trace``, where Error Reporting finds it: in the logs, never in a response.

Every line passes :class:`RedactFilter`, which scrubs configured secrets (the
Gemini API key, the ticket secret) from the message, the arguments, the fields
and the traceback before anything is formatted.

gunicorn's own error and access logs take the same shape through
:func:`gunicorn_logconfig_dict` (gunicorn's ``logconfig_dict`` setting).
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, Final
from urllib.parse import parse_qsl, urlencode

from .scrub import REDACTED, redact

TRACE_HEADER: Final = "X-Cloud-Trace-Context"
TRACE_KEY: Final = "logging.googleapis.com/trace"
SPAN_KEY: Final = "logging.googleapis.com/spanId"
SAMPLED_KEY: Final = "logging.googleapis.com/trace_sampled"
SOURCE_KEY: Final = "logging.googleapis.com/sourceLocation"
SECRET_ENV_VARS: Final = ("GEMINI_API_KEY", "TICKET_SECRET")
SENSITIVE_QUERY_PARAMS: Final = ("token", "resume", "key")  # never written to an access log

_SEVERITIES: Final = ((logging.CRITICAL, "CRITICAL"), (logging.ERROR, "ERROR"),
                      (logging.WARNING, "WARNING"), (logging.INFO, "INFO"), (logging.DEBUG, "DEBUG"))
_TRACE_RE: Final = re.compile(r"^\s*([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?\s*$")

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetalk_trace", default=None)
_span: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetalk_span", default=None)
_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetalk_session", default=None)


# --- trace context -----------------------------------------------------------------------


def parse_trace_header(value: str | None) -> tuple[str | None, str | None]:
    """``(trace_id, span_id)`` from ``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1``.

    The trace id is 32 hex digits (lower-cased). The header's span id is a
    decimal number; it is returned as the 16 hex digits Cloud Logging's
    ``spanId`` field expects, or None when absent or zero. A header that does
    not parse gives ``(None, None)``.
    """
    match = _TRACE_RE.match(value or "")
    if not match:
        return None, None
    trace_id, span = match.group(1).lower(), match.group(2)
    span_id = None
    if span and 0 < int(span) < 2**64:
        span_id = f"{int(span):016x}"
    return trace_id, span_id


def set_log_context(
    *, trace: str | None = None, span_id: str | None = None, session_id: str | None = None
) -> Callable[[], None]:
    """Set the given context values for this thread/task; returns a function that undoes it.

    Values left as None keep what the enclosing context has. ``trace`` is a bare
    trace id (see :func:`parse_trace_header`); the project prefix is added when
    a line is written.
    """
    tokens = [
        (var, var.set(value))
        for var, value in ((_trace, trace), (_span, span_id), (_session, session_id))
        if value is not None
    ]

    def reset() -> None:
        for var, token in reversed(tokens):
            var.reset(token)

    return reset


@contextlib.contextmanager
def log_context(
    *, trace: str | None = None, span_id: str | None = None, session_id: str | None = None
) -> Iterator[None]:
    """Within the block, every log line carries these values (see :func:`set_log_context`)."""
    reset = set_log_context(trace=trace, span_id=span_id, session_id=session_id)
    try:
        yield
    finally:
        reset()


class TraceContextMiddleware:
    """WSGI middleware: runs each request inside a :func:`log_context` of its trace header.

    Wrap the Flask app's ``wsgi_app`` with it. The context covers the view (a
    WebSocket route runs its whole conversation inside the view); a streamed
    response body is produced after it ends and is logged without the trace.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        trace, span = parse_trace_header(environ.get("HTTP_X_CLOUD_TRACE_CONTEXT"))
        with log_context(trace=trace, span_id=span):
            return self.app(environ, start_response)


# --- redaction ---------------------------------------------------------------------------


class RedactFilter(logging.Filter):
    """Scrubs secrets from a record before any formatter sees it. Never drops a record.

    ``secrets`` are the values themselves; ``secret_env`` names environment
    variables whose values are read when the filter is built (so a logging
    config dict, which gunicorn may print, never has to hold a secret).
    """

    def __init__(self, secrets: Iterable[str | None] = (), secret_env: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s) + tuple(
            os.environ[name] for name in secret_env if os.environ.get(name)
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        if not isinstance(record.args, Mapping):  # gunicorn's access record keeps its dict
            record.msg = self._scrub(record.getMessage())
            record.args = None
        else:
            record.args = self._scrub(dict(record.args))
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = self._scrub(dict(fields))
        return True

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self.secrets)
        if isinstance(value, Mapping):
            return {self._scrub(str(k)): self._scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._scrub(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return redact(str(value), self.secrets)


# --- formatting --------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with Cloud Logging's special keys.

    ``project`` (default: ``GOOGLE_CLOUD_PROJECT``) turns a trace id into the
    ``projects/<project>/traces/<id>`` name Cloud Logging links to Cloud Trace;
    without it the bare id is written under ``trace``.
    """

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project if project is not None else os.environ.get("GOOGLE_CLOUD_PROJECT")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {}
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        entry.update(self.core(record))
        return json.dumps(entry, default=str, ensure_ascii=False)

    def core(self, record: logging.LogRecord) -> dict[str, Any]:
        """The keys every line has (and that fields may not overwrite)."""
        entry: dict[str, Any] = {
            "severity": severity(record.levelno),
            "message": record.getMessage(),
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="microseconds"
            ).replace("+00:00", "Z"),
            "logger": record.name,
            SOURCE_KEY: {"file": record.pathname, "line": record.lineno, "function": record.funcName},
        }
        entry.update(self.trace_keys(_trace.get(), _span.get()))
        if (session_id := _session.get()) is not None:
            entry["session_id"] = session_id
        stack = self.stack_trace(record)
        if stack:
            entry["stack_trace"] = stack
        return entry

    def trace_keys(self, trace: str | None, span: str | None) -> dict[str, Any]:
        if not trace:
            return {}
        keys: dict[str, Any] = {}
        if self.project:
            keys[TRACE_KEY] = f"projects/{self.project}/traces/{trace}"
        else:
            keys["trace"] = trace
        if span:
            keys[SPAN_KEY] = span
        return keys

    def stack_trace(self, record: logging.LogRecord) -> str | None:
        parts = []
        if record.exc_text:
            parts.append(record.exc_text)
        elif record.exc_info:
            parts.append(self.formatException(record.exc_info))
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts) or None


class GunicornAccessFormatter(JsonFormatter):
    """gunicorn's access record as a JSON line with Cloud Logging's ``httpRequest`` object.

    Query values that grant access (:data:`SENSITIVE_QUERY_PARAMS`) are replaced
    with ``[REDACTED]``. The trace comes from the request's own header, because
    gunicorn writes this line after the request's context is gone.
    """

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, Mapping) else None
        if atoms is None:
            return super().format(record)
        entry = self.core(record)
        entry["message"] = f"{atoms.get('m', '-')} {atoms.get('U', '-')} {atoms.get('s', '-')}"
        entry["httpRequest"] = http_request(atoms)
        trace, span = parse_trace_header(_atom(atoms, "{x-cloud-trace-context}i"))
        entry.update(self.trace_keys(trace, span))
        return json.dumps(entry, default=str, ensure_ascii=False)


def http_request(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """Cloud Logging's ``httpRequest`` fields from gunicorn's access-log atoms."""
    url = atoms.get("U") or "/"
    if atoms.get("q"):
        url += "?" + redact_query(str(atoms["q"]))
    request: dict[str, Any] = {
        "requestMethod": atoms.get("m"),
        "requestUrl": url,
        "protocol": atoms.get("H"),
        "userAgent": _atom(atoms, "{user-agent}i"),
        "remoteIp": atoms.get("h"),
        "latency": f"{atoms.get('L', '0')}s",
    }
    try:
        request["status"] = int(str(atoms.get("s")))
    except ValueError:
        pass
    if isinstance(atoms.get("B"), int):
        request["responseSize"] = str(atoms["B"])
    return {key: value for key, value in request.items() if value not in (None, "-")}


def redact_query(query: str, names: Iterable[str] = SENSITIVE_QUERY_PARAMS) -> str:
    """``query`` with the values of the named parameters replaced by ``[REDACTED]``."""
    hidden = {name.lower() for name in names}
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if k.lower() in hidden else v) for k, v in pairs], safe="[]")


def _atom(atoms: Mapping[str, Any], name: str) -> str | None:
    value = atoms.get(name)
    return None if value in (None, "-") else str(value)


def severity(levelno: int) -> str:
    """Cloud Logging's severity name for a :mod:`logging` level number."""
    for threshold, name in _SEVERITIES:
        if levelno >= threshold:
            return name
    return "DEFAULT"


# --- installation ------------------------------------------------------------------------


def configure_logging(
    level: str,
    *,
    stream: IO[str] = sys.stdout,
    secrets: tuple[str, ...] = (),
    project: str | None = None,
) -> logging.Handler:
    """Make the root logger write JSON lines at ``level`` (e.g. ``"INFO"``) to ``stream``.

    ``secrets`` are scrubbed from every line (pass the Gemini API key and the
    ticket secret); the values of :data:`SECRET_ENV_VARS` are always scrubbed too.
    Replaces a JSON handler installed earlier (by this function or by gunicorn's
    config) and leaves other handlers, such as pytest's, alone. Returns the handler.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old.formatter, JsonFormatter):
            root.removeHandler(old)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(project))
    handler.addFilter(RedactFilter(secrets, SECRET_ENV_VARS))
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def gunicorn_logconfig_dict(level: str = "INFO", *, secret_env: tuple[str, ...] = SECRET_ENV_VARS) -> dict:
    """A :func:`logging.config.dictConfig` dict for gunicorn's ``logconfig_dict`` setting.

    gunicorn's error log and the root logger get :class:`JsonFormatter`, the
    access log :class:`GunicornAccessFormatter`; all write to stdout and scrub
    the values of ``secret_env``. The app's :func:`configure_logging` later
    replaces the root handler in each worker with its own.
    """
    redact_filter = {"()": f"{__name__}.RedactFilter", "secret_env": list(secret_env)}
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "filters": ["redact"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": redact_filter},
        "formatters": {
            "json": {"()": f"{__name__}.JsonFormatter"},
            "access": {"()": f"{__name__}.GunicornAccessFormatter"},
        },
        "handlers": {
            "json": {**handler, "formatter": "json"},
            "access": {**handler, "formatter": "access"},
        },
        "root": {"level": level.upper(), "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["json"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
