"""Per-request values every log line carries: the Cloud Trace id and span, and the conversation id.

They ride on context variables, so they follow a request across threads' ``copy_context`` and into asyncio
tasks. :class:`TraceContextMiddleware` sets the trace from ``X-Cloud-Trace-Context`` for each request;
:func:`log_context` sets the conversation id for the relay's work.
"""
from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

TRACE_HEADER: Final = "X-Cloud-Trace-Context"
_TRACE_RE: Final = re.compile(r"^\s*([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?\s*$")

# Context variables are declared once, like constants; their values live in each context.
_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetalk_trace", default=None)
_span: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetalk_span", default=None)
_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("livetalk_session", default=None)


def current() -> tuple[str | None, str | None, str | None]:
    """``(trace id, span id, session id)`` of the running context."""
    return _trace.get(), _span.get(), _session.get()


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
