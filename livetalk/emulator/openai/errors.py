"""What the OpenAI Realtime emulator says when a client event cannot be served, as the real service says it.

A :class:`RealtimeEventError` becomes one ``error`` server event; the session stays
open (the real service never closes a socket over a bad client event). The
constructors below give the real service's ``type``/``code``/``message``/``param``
for each kind of mistake. Messages never quote an API key.
"""
from __future__ import annotations

from typing import Any

from livetalk.emulator.errors import EmulatorError

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
INSUFFICIENT_QUOTA = "insufficient_quota"

QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. For more information "
                 "on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.")
RATE_LIMIT_MESSAGE = "Rate limit reached for requests. Please try again in 20s."
SERVER_ERROR_MESSAGE = ("The server had an error while processing your request. Sorry about that! You can retry your "
                        "request, or contact us through our help center at help.openai.com if the error persists. "
                        "(Please include the session ID {session} in your message.)")
INVALID_KEY_MESSAGE = ("Incorrect API key provided. You can find your API key at "
                       "https://platform.openai.com/account/api-keys.")
NO_KEY_MESSAGE = ("You didn't provide an API key. You need to provide your API key in an Authorization header using "
                  "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")

_JSON_TYPES = ((bool, "a boolean"), (int, "an integer"), (float, "a decimal"), (str, "a string"),
               (list, "an array"), (dict, "an object"))


class RealtimeEventError(EmulatorError):
    """A client event the real service would refuse: sent back as an ``error`` event.

    Args:
        message: the human-readable explanation.
        code: the machine-readable code (``invalid_value``, ``unknown_parameter``…), or None.
        param: the offending parameter's path (``session.audio.input.format.rate``), or None.
        type: the error class (``invalid_request_error`` unless said otherwise).
    """

    def __init__(self, message: str, *, code: str | None, param: str | None = None,
                 type: str = INVALID_REQUEST) -> None:  # noqa: A002  (the wire's name)
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.type = type

    def body(self, client_event_id: Any = None) -> dict[str, Any]:
        """The ``error`` object of the event: type, code, message, param and the client's event_id."""
        event_id = client_event_id if isinstance(client_event_id, str) else None
        return {"type": self.type, "code": self.code, "message": self.message, "param": self.param,
                "event_id": event_id}


def json_type(value: Any) -> str:
    """How the real service names a JSON value's type in its messages ("a string", "an object"…)."""
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "an unknown value")


def unknown_parameter(path: str) -> RealtimeEventError:
    """A key the GA API does not have (a beta-shaped field, say)."""
    return RealtimeEventError(f"Unknown parameter: '{path}'.", code="unknown_parameter", param=path)


def missing_parameter(path: str) -> RealtimeEventError:
    """A required key is absent."""
    return RealtimeEventError(f"Missing required parameter: '{path}'.", code="missing_required_parameter", param=path)


def invalid_type(path: str, value: Any, expected: str) -> RealtimeEventError:
    """A key holds the wrong JSON type (``expected`` like "a string")."""
    return RealtimeEventError(f"Invalid type for '{path}': expected {expected}, but got {json_type(value)} instead.",
                              code="invalid_type", param=path)


def invalid_value(path: str, value: Any, supported: tuple[str, ...] = ()) -> RealtimeEventError:
    """A key holds a value outside its allowed set (listed when ``supported`` is given)."""
    message = f"Invalid value: '{value}'."
    if supported:
        quoted = [f"'{name}'" for name in supported]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
        message += f" Supported values are: {listed}."
    return RealtimeEventError(message, code="invalid_value", param=path)


def out_of_range(path: str, value: float, *, low: float, high: float) -> RealtimeEventError:
    """A number below ``low`` or above ``high``."""
    if value > high:
        return RealtimeEventError(
            f"Invalid '{path}': decimal above maximum value. Expected a value <= {high:g}, but got {value:g} instead.",
            code="decimal_above_max_value", param=path)
    return RealtimeEventError(
        f"Invalid '{path}': decimal below minimum value. Expected a value >= {low:g}, but got {value:g} instead.",
        code="decimal_below_min_value", param=path)


def invalid_json(detail: str) -> RealtimeEventError:
    """The frame is not a JSON object."""
    return RealtimeEventError(f"The server failed to parse the JSON message: {detail}.", code="invalid_json")


def server_error(session_id: str) -> RealtimeEventError:
    """The service's own failure (an emulated fault)."""
    return RealtimeEventError(SERVER_ERROR_MESSAGE.format(session=session_id), code=None, type=SERVER_ERROR)


def quota_exhausted() -> RealtimeEventError:
    """The account's quota is used up (an emulated fault)."""
    return RealtimeEventError(QUOTA_MESSAGE, code=INSUFFICIENT_QUOTA, type=INSUFFICIENT_QUOTA)


def handshake_body(status: int, *, quota: bool) -> dict[str, Any]:
    """The JSON body of a refused WebSocket handshake, as OpenAI's REST errors look.

    ``quota``: 429 ``insufficient_quota``; else a 429 is ``rate_limit_exceeded`` and other
    statuses a ``server_error`` (5xx) or ``invalid_request_error`` (4xx).
    """
    if quota:
        error = {"message": QUOTA_MESSAGE, "type": INSUFFICIENT_QUOTA, "param": None, "code": INSUFFICIENT_QUOTA}
    elif status == 429:
        error = {"message": RATE_LIMIT_MESSAGE, "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    else:
        kind = SERVER_ERROR if status >= 500 else INVALID_REQUEST
        error = {"message": f"Emulated handshake rejection {status}.", "type": kind, "param": None, "code": None}
    return {"error": error}
