"""A client-facing refusal, and its one JSON answer: ``{"error": {"code", "message"}, …}`` with its status.

Routes raise :class:`ClientRefusal`; :func:`answer` (registered app-wide by :mod:`livetalk.web`) turns it into
the response. A ``429`` carries ``Retry-After`` (the ``retry_after`` extra, default 60 s).
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify


class ClientRefusal(Exception):
    """A refusal with its HTTP status, error code and client-facing message; ``extra`` fields join the body."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def answer(exc: ClientRefusal) -> tuple[Response, int]:
    """The JSON response for ``exc``."""
    response = jsonify({"error": {"code": exc.code, "message": exc.message}, **exc.extra})
    if exc.status == 429:
        response.headers["Retry-After"] = str(exc.extra.get("retry_after", 60))
    return response, exc.status
