"""The emulator's exceptions.

::

    EmulatorError                 base of everything raised here
     ├── FaultSpecError           a fault or mode description is malformed (also a ValueError)
     ├── ClientProtocolError      a Live client broke the protocol → close 1007 with the message
     └── RestError                a REST request cannot be served → HTTP status + Google error body

Inside the package, three ValueErrors name what is wrong with client bytes and are
turned into a 400 at the REST seam: ``http11.BadRequest`` (not HTTP/1.1),
``media.InvalidAudio`` (audio that is not its MIME type), ``schema.SchemaError``
(a malformed response schema).
"""
from __future__ import annotations

from http import HTTPStatus

QUOTA_MESSAGE = "Resource has been exhausted (e.g. check quota)."
QUOTA_CLOSE_REASON = f"RESOURCE_EXHAUSTED: {QUOTA_MESSAGE}"  # the mid-session close (1011) reason

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class EmulatorError(Exception):
    """Base class of the emulator's errors."""


class FaultSpecError(EmulatorError, ValueError):
    """A fault (or mode) description has an unknown kind, parameter or value."""


class ClientProtocolError(EmulatorError):
    """A Live client sent something the real service would refuse (close 1007)."""


class RestError(EmulatorError):
    """A REST call fails with ``status``; :meth:`body` is the Google-style error JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, object]:
        """``{"error": {"code", "message", "status"}}`` as the real API sends it."""
        name = GOOGLE_STATUS.get(self.status)
        if name is None:
            name = HTTPStatus(self.status).name if self.status in HTTPStatus._value2member_map_ else "UNKNOWN"
        return {"error": {"code": self.status, "message": self.message, "status": name}}
