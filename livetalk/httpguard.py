"""Client mistakes at the HTTP layer become JSON 4xx answers, never a 500, an HTML page or a stuck thread.

Three guards, each at the point where the mistake first shows:

* **WebSocket upgrades** are checked against RFC 6455 §4.2.1 before flask-sock's
  handshake runs (simple-websocket raises on a malformed one, which surfaced as a
  500 with a traceback): :func:`websocket_handshake_error`, registered by
  :func:`init_app` as a ``before_request`` hook for WebSocket routes.
* **Request bodies** that cannot be read (a bad chunk size, a missing chunk
  terminator, a client that vanished mid-body) raise :class:`UnreadableBody`, a
  400 that the app's ``HTTPException`` handler renders like any other:
  :class:`GuardedInput` wraps ``wsgi.input`` for the whole app.
* **Request headers** are collected by the gunicorn worker without a thread
  (:class:`HeaderCollector`, used by :mod:`livetalk.gunicorn_worker`); errors the
  server itself answers are encoded by :func:`encode_error`.

Every answer has the contract's body ``{"error": {"code": ..., "message": ...}}``
and a fixed message: no client bytes, no exception text.

Exceptions::

    werkzeug.exceptions.BadRequest
     └── UnreadableBody    the request body could not be read to its end (400)
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import http
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, Final

from flask import Flask, has_request_context, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException

log = logging.getLogger("livetalk.http")

# A request line and headers must be complete this long (seconds) after the connection was accepted,
# or after a kept-alive connection began its next request.
REQUEST_HEADER_TIMEOUT_S: Final = 5.0
MAX_REQUEST_HEADER_BYTES: Final = 64 * 1024  # request line + headers; beyond this: 431
WEBSOCKET_VERSION: Final = "13"  # the only version RFC 6455 defines
WEBSOCKET_KEY_BYTES: Final = 16  # Sec-WebSocket-Key: base64 of this many random bytes


@dataclasses.dataclass(frozen=True)
class HttpError:
    """An error answer: HTTP status, the contract's error code, a fixed message, extra headers."""

    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def status_line(self) -> str:
        """``"408 Request Timeout"``: the status and its standard reason phrase."""
        return f"{self.status} {http.HTTPStatus(self.status).phrase}"

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


REQUEST_TIMEOUT: Final = HttpError(408, "request_timeout",
                                   f"the request headers did not arrive within {REQUEST_HEADER_TIMEOUT_S:g} s")
HEADERS_TOO_LARGE: Final = HttpError(431, "headers_too_large",
                                     f"the request line and headers are over {MAX_REQUEST_HEADER_BYTES} bytes")


# --- WebSocket upgrades ------------------------------------------------------------------------


def websocket_handshake_error(method: str, headers: Mapping[str, str]) -> HttpError | None:
    """Why an upgrade request breaks RFC 6455 §4.2.1 (400, or 426 for a version we do not speak); None if sound.

    ``headers`` is case-insensitive, like werkzeug's ``request.headers``.
    """
    if method != "GET":
        return _bad_upgrade("a WebSocket upgrade must use GET")
    if "websocket" not in _tokens(headers.get("Upgrade")) or "upgrade" not in _tokens(headers.get("Connection")):
        return _bad_upgrade("a WebSocket upgrade needs 'Upgrade: websocket' and 'Connection: Upgrade'")
    if not (headers.get("Host") or "").strip():
        return _bad_upgrade("the Host header is required")
    version = headers.get("Sec-WebSocket-Version")
    if version is None:
        return _bad_upgrade("the Sec-WebSocket-Version header is required; this server speaks version 13")
    if version.strip() != WEBSOCKET_VERSION:
        return HttpError(426, "upgrade_required", "this server speaks WebSocket version 13 only",
                         (("Sec-WebSocket-Version", WEBSOCKET_VERSION),))
    if not _is_websocket_key(headers.get("Sec-WebSocket-Key")):
        return _bad_upgrade("Sec-WebSocket-Key must be the base64 encoding of 16 random bytes")
    return None


def _bad_upgrade(message: str) -> HttpError:
    return HttpError(400, "bad_request", message, (("Sec-WebSocket-Version", WEBSOCKET_VERSION),))


def _tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in (value or "").split(",")}


def _is_websocket_key(value: str | None) -> bool:
    if value is None:
        return False
    try:
        return len(base64.b64decode(value.strip(), validate=True)) == WEBSOCKET_KEY_BYTES
    except (binascii.Error, ValueError):  # not base64, or not ASCII
        return False


def _refuse_bad_upgrade():
    """``before_request``: answer a malformed upgrade on a WebSocket route before the handshake runs."""
    rule = request.url_rule
    if rule is None or not rule.websocket:
        return None
    error = websocket_handshake_error(request.method, request.headers)
    if error is None:
        return None
    log.info("websocket upgrade refused (%d): %s", error.status, error.message,
             extra={"fields": {"client_ip": request.remote_addr, "path": request.path}})
    return json_response(error)


def json_response(error: HttpError):
    """The Flask response for ``error``."""
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.extend(error.headers)
    return response


# --- request bodies ----------------------------------------------------------------------------


class UnreadableBody(BadRequest):
    """The request body could not be read to its end (malformed chunking, or the client left)."""

    description = "the request body is malformed or ended early; it was not read"


class GuardedInput:
    """A WSGI input stream whose read errors are first handed to ``on_error`` (which may raise instead).

    Args:
        stream: the server's ``wsgi.input``.
        on_error: called with the exception of a failed read; when it returns, the
            exception propagates unchanged.
    """

    def __init__(self, stream: BinaryIO, *, on_error: Callable[[Exception], None]) -> None:
        self._stream = stream
        self._on_error = on_error
        self.failed = False

    def read(self, size: int | None = -1) -> bytes:
        return self._guard(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._guard(self._stream.readline, size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return self._guard(self._stream.readlines, hint)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _guard(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except HTTPException:
            raise
        except Exception as exc:  # the boundary with the server's body reader: every failure is the client's
            self.failed = True
            self._on_error(exc)
            raise


def _raise_unreadable(exc: Exception) -> None:
    fields = {"path": request.path, "client_ip": request.remote_addr} if has_request_context() else {}
    log.info("request body unreadable (%s): answered 400", type(exc).__name__, extra={"fields": fields})
    raise UnreadableBody() from exc


class _GuardBodies:
    """WSGI middleware: every request's ``wsgi.input`` read errors become :class:`UnreadableBody`."""

    def __init__(self, wsgi_app: Callable) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable):
        stream = environ.get("wsgi.input")
        if stream is not None:
            environ["wsgi.input"] = GuardedInput(stream, on_error=_raise_unreadable)
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    """Install the guards on ``app``: the upgrade check and the body guard."""
    app.before_request(_refuse_bad_upgrade)
    app.wsgi_app = _GuardBodies(app.wsgi_app)


# --- request headers, collected without a thread -----------------------------------------------


class HeaderState(enum.Enum):
    INCOMPLETE = "incomplete"  # wait for more bytes
    COMPLETE = "complete"  # the request line and headers are all in hand
    TOO_LARGE = "too_large"  # over the limit before they ended


class HeaderCollector:
    """Accumulates a request's first bytes until its headers end (sans I/O).

    The end is the first empty line (``CRLF CRLF``; a bare ``LF LF`` too, so that the
    server's parser, not a wait, refuses it), after the one empty line RFC 9112 §2.2
    allows before the request line. Bytes after the headers (a body, a pipelined
    request) are kept: :attr:`data` is everything received, to be given back whole.

    Args:
        max_bytes: the most bytes the request line and headers may take.
    """

    def __init__(self, *, max_bytes: int = MAX_REQUEST_HEADER_BYTES) -> None:
        self._max_bytes = max_bytes
        self._buffer = bytearray()

    @property
    def data(self) -> bytes:
        return bytes(self._buffer)

    def feed(self, data: bytes) -> HeaderState:
        """Add received bytes; where the headers stand now."""
        start = max(len(self._buffer) - 3, 0)  # an end already searched for cannot be in the older bytes
        self._buffer += data
        if self._buffer.startswith(b"\r\n"):
            start = max(start, 2)
        ends = [i for i in (self._buffer.find(b"\r\n\r\n", start), self._buffer.find(b"\n\n", start)) if i >= 0]
        if ends and min(ends) < self._max_bytes:
            return HeaderState.COMPLETE
        return HeaderState.TOO_LARGE if len(self._buffer) > self._max_bytes else HeaderState.INCOMPLETE


def encode_error(error: HttpError) -> bytes:
    """A whole HTTP/1.1 response for ``error`` that closes the connection (for the server to write itself)."""
    body = json.dumps(error.body()).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
               ("Connection", "close"), *error.headers]
    head = f"HTTP/1.1 {error.status_line}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (head + "\r\n").encode("latin-1") + body
