"""How a log record is written: one JSON object per line for Cloud Logging, or one readable line for a terminal.

:class:`JsonFormatter` writes the form Cloud Run's logging agent parses into ``jsonPayload``, with the keys it
promotes: ``severity``, ``message``, ``time``, ``logging.googleapis.com/trace``, ``…/spanId`` and
``…/sourceLocation``; an exception's traceback goes to ``stack_trace``, where Error Reporting finds it.
:class:`TextFormatter` writes ``HH:MM:SS LEVEL logger: message key=value…`` for people at a terminal.
The gunicorn access variants turn gunicorn's access record into the same shapes.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Final

from .context import current, parse_trace_header
from .filters import redact_query

TRACE_KEY: Final = "logging.googleapis.com/trace"
SPAN_KEY: Final = "logging.googleapis.com/spanId"
SAMPLED_KEY: Final = "logging.googleapis.com/trace_sampled"
SOURCE_KEY: Final = "logging.googleapis.com/sourceLocation"
_SEVERITIES: Final = ((logging.CRITICAL, "CRITICAL"), (logging.ERROR, "ERROR"),
                      (logging.WARNING, "WARNING"), (logging.INFO, "INFO"), (logging.DEBUG, "DEBUG"))
_BARE: Final = re.compile(r"[^\s=\"']+")  # a value that needs no quotes in key=value


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
        trace, span, session_id = current()
        entry.update(self.trace_keys(trace, span))
        if session_id is not None:
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


def _atom(atoms: Mapping[str, Any], name: str) -> str | None:
    value = atoms.get(name)
    return None if value in (None, "-") else str(value)


def severity(levelno: int) -> str:
    """Cloud Logging's severity name for a :mod:`logging` level number."""
    for threshold, name in _SEVERITIES:
        if levelno >= threshold:
            return name
    return "DEFAULT"


class TextFormatter(logging.Formatter):
    """One readable line per record: ``HH:MM:SS LEVEL logger: message key=value…`` (local time)."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}{self.suffix(record)}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line

    @staticmethod
    def suffix(record: logging.LogRecord) -> str:
        """The structured fields and the conversation id, as `` key=value`` pairs."""
        pairs: dict[str, Any] = {}
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            pairs.update(fields)
        _, _, session_id = current()
        if session_id is not None:
            pairs.setdefault("session_id", session_id)
        return "".join(f" {key}={_value(value)}" for key, value in pairs.items() if value is not None)


class TextAccessFormatter(TextFormatter):
    """gunicorn's access record as ``HH:MM:SS INFO    GET /path?query 200 12 ms``."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, Mapping) else None
        if atoms is None:
            return super().format(record)
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        url = (atoms.get("U") or "/") + (f"?{redact_query(str(atoms['q']))}" if atoms.get("q") else "")
        millis = float(atoms.get("L") or 0) * 1000
        return f"{when} {record.levelname:<7} {atoms.get('m', '-')} {url} {atoms.get('s', '-')} {millis:.0f} ms"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)
