"""A gunicorn gthread worker that holds no thread for a slow client and answers every error in JSON.

On top of gunicorn's gthread worker:

* **Request headers are read on the worker's main poller**, not in a request thread.
  Stock gthread hands a connection to a thread as soon as its first byte arrives,
  and the thread then blocks until the headers are complete: 250 clients sending
  one byte every 2 s held all 200 threads, and ``/healthz`` timed out. Here a
  connection waits in the poller (non-blocking reads into a
  :class:`~livetalk.httpguard.HeaderCollector`) until its headers are complete,
  then goes to the thread pool with the bytes given back to gunicorn's parser. A
  connection whose headers are not complete ``header_timeout_s`` after the wait
  began is answered 408 and closed; one whose headers pass ``max_header_bytes``,
  431. Waiting connections hold no thread, so they do not count toward
  ``worker_connections``; at most ``max_waiting`` wait (the oldest is dropped).
* **Errors gunicorn answers itself** (a malformed request line or header, a bad
  chunk, an oversized header block) get the contract's JSON body instead of
  gunicorn's HTML page, and one WARNING line without a traceback.
* **A body that cannot be read** marks the request ``Connection: close``; a
  malformed body the app never read is not answered a second time when gunicorn
  drains it: the connection just closes.
* **SIGTERM** begins draining the relay's conversations (gunicorn's own handler
  still runs first: it stops accepting and waits ``graceful_timeout``).

These overrides rely on gthread internals of gunicorn :data:`GUNICORN_VERSION`
(``enqueue_req``, ``murder_pending``, ``handle_request``, ``_keepalive_after``,
``TConn.parser`` / ``data_ready``, ``Unreader.unread`` / ``take_buffered``);
tests/test_http_hardening.py fails on any other version until they are re-read.
TLS and HTTP/2 prior-knowledge connections keep gunicorn's own path.
"""
from __future__ import annotations

import datetime as dt
import errno
import logging
import selectors
import ssl
import time
from functools import partial

from gunicorn import http as gunicorn_http
from gunicorn.http import errors as gunicorn_errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

from .httpguard import (
    HEADERS_TOO_LARGE,
    MAX_REQUEST_HEADER_BYTES,
    REQUEST_HEADER_TIMEOUT_S,
    REQUEST_TIMEOUT,
    GuardedInput,
    HeaderCollector,
    HeaderState,
    HttpError,
    encode_error,
)

log = logging.getLogger("livetalk.http")

GUNICORN_VERSION = "27.0.1"  # the gthread internals overridden here were read in this version
MAX_WAITING_CONNECTIONS = 4096  # per worker: connections whose headers are still arriving
RECV_BYTES = 64 * 1024  # one non-blocking read while collecting headers

INTERNAL_ERROR = HttpError(500, "internal", "something went wrong on our side; please try again")
_MALFORMED_BODY = HttpError(400, "bad_request", "the request body's chunked encoding is malformed")
_MALFORMED_LINE = HttpError(400, "bad_request", "the request line is malformed")
_MALFORMED_HEADER = HttpError(400, "bad_request", "a request header is malformed")
_MALFORMED_REQUEST = HttpError(400, "bad_request", "the request is malformed")

E = gunicorn_errors
# Checked in order: the first class that matches decides. None = the server's own fault (500).
_GUNICORN_ERRORS: tuple[tuple[tuple[type[BaseException], ...], HttpError | None], ...] = (
    ((E.InvalidResponseHeader, E.InvalidResponseHeaderName, E.ConfigurationProblem), None),
    ((E.LimitRequestLine,), HttpError(414, "uri_too_long", "the request line is too long")),
    ((E.LimitRequestHeaders,), HttpError(431, "headers_too_large", "the request headers are too large")),
    ((E.ExpectationFailed,), HttpError(417, "expectation_failed", "only 'Expect: 100-continue' is supported")),
    # RFC 9112 §6.1: a transfer coding the server does not understand is answered 501.
    ((E.UnsupportedTransferCoding,), HttpError(501, "not_implemented",
                                               "only the chunked transfer coding is supported")),
    ((E.ForbiddenProxyRequest,), HttpError(403, "forbidden", "proxy requests are not allowed from this address")),
    ((E.InvalidChunkSize, E.ChunkMissingTerminator, E.InvalidChunkExtension), _MALFORMED_BODY),
    ((E.InvalidRequestLine, E.InvalidRequestMethod, E.InvalidHTTPVersion), _MALFORMED_LINE),
    ((E.InvalidHeader, E.InvalidHeaderName, E.ObsoleteFolding), _MALFORMED_HEADER),
    ((E.ParseException, ssl.SSLError), _MALFORMED_REQUEST),
)


def client_error_for(exc: BaseException) -> HttpError | None:
    """The JSON answer for an error gunicorn hit while parsing a request; None when it is the server's fault."""
    for classes, error in _GUNICORN_ERRORS:
        if isinstance(exc, classes):
            return error
    return None


class RelayWorker(ThreadWorker):
    """gthread, plus: headers collected without a thread, JSON errors, SIGTERM drains conversations.

    Tuning (class attributes, so a subclass or a test can pass smaller values):
    ``header_timeout_s`` (seconds), ``max_header_bytes``, ``max_waiting`` (connections).
    """

    header_timeout_s: float = REQUEST_HEADER_TIMEOUT_S
    max_header_bytes: int = MAX_REQUEST_HEADER_BYTES
    max_waiting: int = MAX_WAITING_CONNECTIONS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Connections whose headers are still arriving, in deadline order (all get the same timeout).
        self._waiting: dict[TConn, tuple[HeaderCollector, float]] = {}

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        services = getattr(self.wsgi, "extensions", {}).get("livetalk") if self.wsgi else None
        if services is not None:
            services.begin_drain()

    # --- headers on the poller --------------------------------------------------------------

    def enqueue_req(self, conn: TConn) -> None:
        """Every connection about to need a request (new, kept alive, read ahead) waits for its headers first."""
        if self.cfg.is_ssl or conn.is_http2 or negotiation.prior_knowledge_allowed(self.cfg, conn.client):
            super().enqueue_req(conn)
            return
        self.nr_conns -= 1  # a waiting connection holds no thread: it does not count toward worker_connections
        collector = HeaderCollector(max_bytes=self.max_header_bytes)
        buffered = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        state = collector.feed(buffered) if buffered else HeaderState.INCOMPLETE
        if state is not HeaderState.INCOMPLETE:
            self._headers_done(conn, collector, state)
            return
        if len(self._waiting) >= self.max_waiting:
            self._drop(next(iter(self._waiting)), REQUEST_TIMEOUT)
        try:
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_header_bytes, conn))
        except (OSError, ValueError):  # the client is already gone
            conn.close()
            return
        self._waiting[conn] = (collector, time.monotonic() + self.header_timeout_s)
        self._on_header_bytes(conn, conn.sock)  # a kept-alive client's request is usually there already

    def _on_header_bytes(self, conn: TConn, _sock) -> None:
        if conn not in self._waiting:  # dropped by an earlier event of the same poll
            return
        collector, _deadline = self._waiting[conn]
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed or reset the connection
            self._forget(conn)
            conn.close()
            return
        state = collector.feed(data)
        if state is not HeaderState.INCOMPLETE:
            self._forget(conn)
            self._headers_done(conn, collector, state)

    def _headers_done(self, conn: TConn, collector: HeaderCollector, state: HeaderState) -> None:
        """Complete (gunicorn's parser takes it from here, in a thread) or too large (431)."""
        if state is HeaderState.TOO_LARGE:
            self._answer_and_close(conn, HEADERS_TOO_LARGE, received=len(collector.data))
            return
        if conn.parser is None:
            conn.parser = gunicorn_http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(collector.data)
        conn.data_ready = True  # handle() must not wait for data: it is in the parser already
        self.nr_conns += 1
        super().enqueue_req(conn)

    def murder_pending(self) -> None:
        """gunicorn's expiry of deferred connections, then ours: headers late past the deadline."""
        super().murder_pending()
        now = time.monotonic()
        while self._waiting:
            conn = next(iter(self._waiting))
            if self._waiting[conn][1] > now:
                break
            self._drop(conn, REQUEST_TIMEOUT)

    def _drop(self, conn: TConn, error: HttpError) -> None:
        collector, _deadline = self._waiting[conn]
        self._forget(conn)
        received = len(collector.data)
        if received:
            self._answer_and_close(conn, error, received=received)
        else:  # an idle connection (a browser's preconnect, say): nothing was asked, nothing to answer
            conn.close()

    def _answer_and_close(self, conn: TConn, error: HttpError, *, received: int) -> None:
        log.info("request refused before its headers ended (%d %s, %d bytes received)",
                 error.status, error.code, received, extra={"fields": {"client_ip": _ip(conn.client)}})
        _send_quietly(conn.sock, encode_error(error))
        conn.close()

    def _forget(self, conn: TConn) -> None:
        self._waiting.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    # --- requests and their errors ----------------------------------------------------------

    def handle_request(self, req, conn) -> bool:
        """gunicorn's, with a body whose read errors make the response close the connection."""
        if req.body is not None:
            req.body = GuardedInput(req.body, on_error=lambda _exc: req.force_close())
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn, keepalive: bool) -> bool:
        """gunicorn drains a body the app left unread; a malformed one ends the connection, unanswered.

        The app has already answered: answering the drain's error too would put two
        responses on the wire for one request.
        """
        try:
            return super()._keepalive_after(conn, keepalive)
        except gunicorn_errors.ParseException as exc:
            log.info("unread request body is malformed (%s): connection closed", type(exc).__name__,
                     extra={"fields": {"client_ip": _ip(conn.client)}})
            return False

    def handle_error(self, req, client, addr, exc) -> None:
        """Answer a request gunicorn could not parse (or serve) with the contract's JSON, not an HTML page."""
        error = client_error_for(exc)
        if error is None:
            log.exception("error handling request %s", getattr(req, "uri", "(no request line read)"))
            error = INTERNAL_ERROR
        else:
            log.warning("invalid request from %s: %d %s (%s)", _ip(addr), error.status, error.code,
                        type(exc).__name__)
        _send_quietly(client, encode_error(error))
        if req is None and isinstance(exc, (gunicorn_errors.InvalidHeader, gunicorn_errors.InvalidHeaderName)):
            req = getattr(exc, "req", None)  # a header error may know the request it was found in
        if req is not None:
            self._log_access(req, client, addr, error)

    def _log_access(self, req, client, addr, error: HttpError) -> None:
        environ = default_environ(req, client, self.cfg)
        environ["REMOTE_ADDR"] = _ip(addr)
        response = Response(req, client, self.cfg)
        response.status = error.status_line
        response.response_length = len(encode_error(error))
        self.log.access(response, req, environ, dt.timedelta(0))


def _ip(addr) -> str:
    return str(addr[0]) if isinstance(addr, tuple) and addr else ""


def _send_quietly(sock, data: bytes) -> None:
    """Best effort, never blocking: the client may be gone or not reading."""
    try:
        sock.setblocking(False)
        sock.send(data)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF, None):
            log.debug("could not send an error answer: %s", exc)
