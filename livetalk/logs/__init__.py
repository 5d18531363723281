"""Logging through the standard :mod:`logging` module: JSON lines on Cloud Run, readable lines on a terminal.

:func:`configure_logging` puts one handler on the root logger that writes to stdout, either one JSON object
per line (``LOG_FORMAT=json``, the default on Cloud Run, where ``K_SERVICE`` is set; see
:mod:`~livetalk.logs.formats`) or one readable line per record (``text``, the default elsewhere).
Per-request values (trace, conversation id) come from :func:`log_context` (:mod:`~livetalk.logs.context`).
Structured values go in ``extra={"fields": {...}}``; they cannot overwrite the core keys. Every line passes
:class:`RedactFilter`, which scrubs configured secrets from the message, the arguments, the fields and the
traceback before anything is formatted. gunicorn's error and access logs take the same shapes through
:func:`gunicorn_logconfig_dict`; requests for static files are logged at DEBUG only.
"""
from __future__ import annotations

import logging
import sys
from typing import IO

from .context import TRACE_HEADER, TraceContextMiddleware, log_context, parse_trace_header, set_log_context
from .filters import SECRET_ENV_VARS, SENSITIVE_QUERY_PARAMS, QuietStaticFilter, RedactFilter, redact_query
from .formats import (
    SOURCE_KEY,
    SPAN_KEY,
    TRACE_KEY,
    GunicornAccessFormatter,
    JsonFormatter,
    TextAccessFormatter,
    TextFormatter,
    http_request,
    severity,
)

__all__ = [
    "SECRET_ENV_VARS", "SENSITIVE_QUERY_PARAMS", "SOURCE_KEY", "SPAN_KEY", "TRACE_HEADER", "TRACE_KEY",
    "GunicornAccessFormatter", "JsonFormatter", "QuietStaticFilter", "RedactFilter", "TextAccessFormatter",
    "TextFormatter", "TraceContextMiddleware", "configure_logging", "gunicorn_logconfig_dict", "http_request",
    "log_context", "parse_trace_header", "redact_query", "set_log_context", "severity",
]

FORMATS = ("json", "text")


def configure_logging(
    level: str,
    *,
    fmt: str = "json",
    stream: IO[str] = sys.stdout,
    secrets: tuple[str, ...] = (),
    project: str | None = None,
) -> logging.Handler:
    """Make the root logger write ``fmt`` lines (``"json"`` or ``"text"``) at ``level`` to ``stream``.

    ``secrets`` are scrubbed from every line (pass the API keys and the ticket secret); the values of
    :data:`SECRET_ENV_VARS` are always scrubbed too. Replaces a handler installed earlier by this function or
    by gunicorn's config and leaves other handlers, such as pytest's, alone. Returns the handler.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old.formatter, (JsonFormatter, TextFormatter)):
            root.removeHandler(old)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(project) if fmt == "json" else TextFormatter())
    handler.addFilter(RedactFilter(secrets, SECRET_ENV_VARS))
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def gunicorn_logconfig_dict(level: str = "INFO", fmt: str = "json", *,
                            secret_env: tuple[str, ...] = SECRET_ENV_VARS) -> dict:
    """A :func:`logging.config.dictConfig` dict for gunicorn's ``logconfig_dict`` setting.

    gunicorn's error log and the root logger get :class:`JsonFormatter` (or :class:`TextFormatter`), the
    access log :class:`GunicornAccessFormatter` (or :class:`TextAccessFormatter`) and
    :class:`QuietStaticFilter`; all write to stdout and scrub the values of ``secret_env``. The app's
    :func:`configure_logging` later replaces the root handler in each worker with its own.
    """
    formatters = {
        "json": {"main": f"{__name__}.JsonFormatter", "access": f"{__name__}.GunicornAccessFormatter"},
        "text": {"main": f"{__name__}.TextFormatter", "access": f"{__name__}.TextAccessFormatter"},
    }[fmt]
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "redact": {"()": f"{__name__}.RedactFilter", "secret_env": list(secret_env)},
            "quiet_static": {"()": f"{__name__}.QuietStaticFilter", "level": level.upper()},
        },
        "formatters": {"main": {"()": formatters["main"]}, "access": {"()": formatters["access"]}},
        "handlers": {
            "main": {**handler, "formatter": "main", "filters": ["redact"]},
            "access": {**handler, "formatter": "access", "filters": ["redact", "quiet_static"]},
        },
        "root": {"level": level.upper(), "handlers": ["main"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["main"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
