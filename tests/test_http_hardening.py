"""Hostile HTTP against the production server: JSON 4xx answers, UTF-8 checked, no thread held by a slow client.

Everything that depends on gunicorn runs against ``gunicorn -c gunicorn.conf.py app:app``
(the ``gunicorn_server`` fixture: 2 ``RelayWorker`` workers, 100 threads each) over raw
sockets, so that what is on the wire is exactly what a client gets.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import re
import selectors
import socket
import threading
import time
import urllib.request
from pathlib import Path

import gunicorn
import pytest
from websockets.protocol import Protocol, Side, State

from tests.helpers import UNIT_S, wait_until
from livetalk import gunicorn_worker, httpguard
from livetalk.httpguard import HeaderCollector, HeaderState, HttpError, websocket_handshake_error
from test_relay import raw_upgrade

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = base64.b64encode(b"0123456789abcdef").decode()


# --- raw HTTP ------------------------------------------------------------------------------


@dataclasses.dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> dict:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)


def exchange(server, data: bytes, *, until_close: bool = True,
             timeout_s: float = UNIT_S) -> tuple[list[RawResponse], bool]:
    """Send ``data`` on a new connection; what :func:`receive` gets back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s) as sock:
        sock.sendall(data)
        return receive(sock, until_close=until_close)


def receive(sock: socket.socket, *, until_close: bool = True) -> tuple[list[RawResponse], bool]:
    """The responses read until the server closed the connection (or, without ``until_close``,
    until one whole response arrived), and whether the server closed it."""
    received, closed = b"", False
    try:
        while chunk := sock.recv(65536):
            received += chunk
            if not until_close and parse_responses(received, partial=True):
                break
        else:
            closed = True
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        pass
    return parse_responses(received), closed


def parse_responses(data: bytes, *, partial: bool = False) -> list[RawResponse]:
    """Split a byte stream into HTTP/1.1 responses (each with a Content-Length); with ``partial``,
    an incomplete last one is left out instead of failing."""
    responses = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        if partial and (not separator or len(rest) < length):
            break
        assert separator, f"not an HTTP response: {data[:200]!r}"
        responses.append(RawResponse(int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def request_bytes(method: str, path: str, headers: dict[str, str | None], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items() if v is not None)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def errors_and_tracebacks(server, since: int) -> list[dict]:
    """Log lines after ``since`` at ERROR or above, or carrying a stack trace."""
    return [line for line in server.log_lines(since)
            if line["severity"] in ("ERROR", "CRITICAL") or "stack_trace" in line or "Traceback" in line["message"]]


def wait_for_access_lines(server, since: int, count: int = 1) -> list[dict]:
    """Wait until ``count`` access-log lines were written after ``since`` (the requests are fully served)."""
    return wait_until(lambda: (lines := [line for line in server.log_lines(since)
                                         if line.get("logger") == "gunicorn.access"]) and len(lines) >= count
                      and lines)


# --- 1. WebSocket upgrades ------------------------------------------------------------------


def upgrade_headers(**changes: str | None) -> dict[str, str | None]:
    headers = {"Host": "relay.test", "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": GOOD_KEY, "Sec-WebSocket-Version": "13"}
    return {**headers, **{name.replace("_", "-"): value for name, value in changes.items()}}


MALFORMED_UPGRADES = [
    pytest.param(upgrade_headers(Sec_WebSocket_Version="8"), 426, id="version-8"),
    pytest.param(upgrade_headers(Sec_WebSocket_Version=None), 400, id="no-version"),
    pytest.param(upgrade_headers(Sec_WebSocket_Key=None), 400, id="no-key"),
    pytest.param(upgrade_headers(Sec_WebSocket_Key="dG9vIHNob3J0"), 400, id="key-of-9-bytes"),
    pytest.param(upgrade_headers(Sec_WebSocket_Key="not base64 at all, sorry"), 400, id="key-not-base64"),
    pytest.param(upgrade_headers(Sec_WebSocket_Key=base64.b64encode(bytes(17)).decode()), 400, id="key-of-17-bytes"),
]


@pytest.mark.parametrize(("headers", "status"), MALFORMED_UPGRADES)
def test_malformed_upgrade_is_a_json_4xx_with_one_log_line(gunicorn_server, headers, status):
    """A malformed WebSocket upgrade is answered 400 (426 + the version we speak for another version)
    with a JSON error, and logged in one INFO line without a traceback."""
    since = gunicorn_server.log_size()
    (response,), _closed = exchange(gunicorn_server, request_bytes("GET", "/ws/realtime", headers),
                                    until_close=False)
    assert response.status == status
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert response.headers["sec-websocket-version"] == "13"
    wait_for_access_lines(gunicorn_server, since)
    lines = [line for line in gunicorn_server.log_lines(since) if line.get("logger") != "gunicorn.access"]
    assert [(line["severity"], line["message"].split(":")[0]) for line in lines] == [
        ("INFO", f"websocket upgrade refused ({status})")]
    assert errors_and_tracebacks(gunicorn_server, since) == []


def wsproto_rejects(method: str, headers: dict[str, str | None]) -> bool:
    """Whether simple-websocket's handshake library (wsproto) refuses this upgrade request."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.utilities import RemoteProtocolError

    request = request_bytes(method, "/ws/realtime", headers)
    try:
        WSConnection(ConnectionType.SERVER).receive_data(request)
    except RemoteProtocolError:
        return True
    return False


HANDSHAKES = [
    pytest.param("GET", upgrade_headers(), None, id="sound"),
    pytest.param("GET", upgrade_headers(Sec_WebSocket_Version=" 13 "), None, id="version-with-spaces"),
    pytest.param("GET", upgrade_headers(Connection="keep-alive, Upgrade"), None, id="connection-list"),
    pytest.param("HEAD", upgrade_headers(), 400, id="head"),
    pytest.param("GET", upgrade_headers(Upgrade=None), 400, id="no-upgrade"),
    pytest.param("GET", upgrade_headers(Connection="keep-alive"), 400, id="connection-without-upgrade"),
    pytest.param("GET", upgrade_headers(Host=None), 400, id="no-host"),
    pytest.param("GET", upgrade_headers(Sec_WebSocket_Version="8"), 426, id="version-8"),
    pytest.param("GET", upgrade_headers(Sec_WebSocket_Version="13, 8"), 426, id="two-versions"),
    pytest.param("GET", upgrade_headers(Sec_WebSocket_Version=None), 400, id="no-version"),
    pytest.param("GET", upgrade_headers(Sec_WebSocket_Key=None), 400, id="no-key"),
    pytest.param("GET", upgrade_headers(Sec_WebSocket_Key=""), 400, id="empty-key"),
    pytest.param("GET", upgrade_headers(Sec_WebSocket_Key=GOOD_KEY.rstrip("=")), 400, id="key-without-padding"),
    pytest.param("GET", upgrade_headers(Sec_WebSocket_Key="ÿ" * 24), 400, id="key-not-ascii"),
]


@pytest.mark.parametrize(("method", "headers", "status"), HANDSHAKES)
def test_handshake_check_follows_rfc_6455(method, headers, status):
    """The upgrade check accepts a sound handshake and refuses each broken rule with its status."""
    present = {name: value for name, value in headers.items() if value is not None}
    error = websocket_handshake_error(method, _Caseless(present))
    assert (error.status if error else None) == status


@pytest.mark.parametrize(("method", "headers", "status"), HANDSHAKES)
def test_every_upgrade_wsproto_rejects_is_refused_before_it(method, headers, status):
    """Whatever wsproto (under flask-sock) would raise on, the check refuses first: no handshake reaches a 500."""
    present = {name: value for name, value in headers.items() if value is not None}
    if wsproto_rejects(method, headers):
        assert websocket_handshake_error(method, _Caseless(present)) is not None


class _Caseless(dict):
    """Header lookup without regard to case, as werkzeug's ``request.headers`` does it."""

    def get(self, name, default=None):
        return next((value for key, value in self.items() if key.lower() == name.lower()), default)


# --- 2. request bodies ----------------------------------------------------------------------


def chunked(path: str, chunks: bytes, content_type: str = "application/json", method: str = "POST") -> bytes:
    return request_bytes(method, path, {"Host": "relay.test", "Content-Type": content_type,
                                        "Transfer-Encoding": "chunked"}, chunks)


def chunks_of(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


BAD_CHUNKS = [
    pytest.param(b'zz\r\n{"scenario": "nope"}\r\n0\r\n\r\n', id="chunk-size-not-hex"),
    pytest.param(b'4\r\n{"scenario": "nope"}\r\n0\r\n\r\n', id="chunk-terminator-missing"),
]


@pytest.mark.parametrize("path", ["/feedback", "/session"])
@pytest.mark.parametrize("body", BAD_CHUNKS)
def test_malformed_chunked_body_is_one_json_400_then_close(gunicorn_server, path, body):
    """A chunked body that cannot be decoded gets exactly one answer, a JSON 400 saying Connection: close,
    and the server closes the connection; nothing is logged as an error."""
    since = gunicorn_server.log_size()
    responses, closed = exchange(gunicorn_server, chunked(path, body))
    assert [r.status for r in responses] == [400]
    assert responses[0].json()["error"]["code"] == "bad_request"
    assert responses[0].headers["connection"] == "close"
    assert closed
    wait_for_access_lines(gunicorn_server, since)
    assert errors_and_tracebacks(gunicorn_server, since) == []


def test_malformed_multipart_upload_is_a_json_400(gunicorn_server):
    """A chunked multipart upload to /feedback with a broken chunk is a JSON 400, not a 500."""
    body = b"zz\r\n--b\r\nContent-Disposition: form-data; name=log\r\n\r\nUser: hi\r\n--b--\r\n0\r\n\r\n"
    responses, closed = exchange(gunicorn_server, chunked("/feedback", body, "multipart/form-data; boundary=b"))
    assert [r.status for r in responses] == [400] and closed
    assert responses[0].json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(("scenario", "status"), [("nope", 400), ("sales-en", 200)])
def test_session_reads_a_chunked_body(gunicorn_server, scenario, status):
    """`POST /session` reads a chunked JSON body as it reads one with Content-Length."""
    responses, _closed = exchange(gunicorn_server, chunked("/session", chunks_of(json.dumps(
        {"scenario": scenario}).encode())) + request_bytes("GET", "/healthz", {"Host": "relay.test",
                                                                             "Connection": "close"}))
    assert [r.status for r in responses] == [status, 200]  # the connection stays usable after a good body
    body = responses[0].json()
    assert body.get("scenario") == scenario if status == 200 else body["error"]["code"] == "bad_request"


def test_unread_malformed_body_is_not_answered_twice(gunicorn_server):
    """A route that never reads the body answers once; the malformed body then ends the connection,
    with no second response (gunicorn drains unread bodies after the app answered)."""
    since = gunicorn_server.log_size()
    responses, closed = exchange(gunicorn_server, chunked("/healthz", b"zz\r\nxx\r\n0\r\n\r\n", method="GET"))
    assert [r.status for r in responses] == [200]
    assert closed
    wait_for_access_lines(gunicorn_server, since)
    assert errors_and_tracebacks(gunicorn_server, since) == []


HOST = "Host: relay.test\r\n"
SERVER_PARSE_ERRORS = [
    pytest.param(b"GARBAGE\r\n\r\n", 400, id="request-line"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST.encode() + b"Bad Header: x\r\n\r\n", 400, id="header-name"),
    pytest.param(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + HOST.encode() + b"\r\n", 414, id="long-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST.encode() + b"X: " + b"a" * 9000 + b"\r\n\r\n", 431, id="long-header"),
    pytest.param(b"POST / HTTP/1.1\r\n" + HOST.encode() + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                 400, id="two-lengths"),
    pytest.param(b"POST / HTTP/1.1\r\n" + HOST.encode() + b"Transfer-Encoding: foo\r\n\r\n", 501,
                 id="unknown-transfer-coding"),
]


@pytest.mark.parametrize(("data", "status"), SERVER_PARSE_ERRORS)
def test_requests_gunicorn_cannot_parse_get_json_errors(gunicorn_server, data, status):
    """What gunicorn refuses itself is answered with the JSON error body (never its HTML page),
    the fitting status, Connection: close, and one WARNING line without a traceback."""
    since = gunicorn_server.log_size()
    responses, closed = exchange(gunicorn_server, data)
    assert [r.status for r in responses] == [status] and closed
    assert responses[0].json()["error"]["message"]
    assert responses[0].headers["connection"] == "close"
    refused = wait_until(lambda: [line for line in gunicorn_server.log_lines(since)
                                  if line["message"].startswith("invalid request from")])
    assert [line["severity"] for line in refused] == ["WARNING"]
    assert errors_and_tracebacks(gunicorn_server, since) == []


def test_gunicorn_errors_map_to_the_statuses_gunicorn_uses():
    """Each gunicorn parse error gets a JSON answer; the server's own faults stay 500 (None here)."""
    from gunicorn.http import errors

    assert gunicorn_worker.client_error_for(errors.InvalidChunkSize(b"zz")).status == 400
    assert gunicorn_worker.client_error_for(errors.LimitRequestHeaders("too many")).status == 431
    assert gunicorn_worker.client_error_for(errors.InvalidResponseHeader("X")) is None
    assert gunicorn_worker.client_error_for(errors.ConfigurationProblem("x")) is None
    assert gunicorn_worker.client_error_for(ValueError("app bug")) is None


# --- 3. text frames must be UTF-8 -----------------------------------------------------------


def websocket_exchange(server, frames: list[tuple[str, bytes, bool]]) -> tuple[list[dict], int | None]:
    """Open /ws/realtime by hand, send ``(kind, payload, fin)`` frames; the JSON events received
    until the server closed, and its close code."""
    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    with raw_upgrade(server, "?mode=text") as sock:
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client.receive_data(rest)
        for kind, payload, fin in frames:
            (client.send_text if kind == "text" else client.send_continuation)(payload, fin=fin)
        sock.sendall(b"".join(client.data_to_send()))
        while client.state is not State.CLOSED and (chunk := sock.recv(65536)):
            client.receive_data(chunk)
            sock.sendall(b"".join(client.data_to_send()))
    events = [json.loads(frame.data) for frame in client.events_received() if frame.opcode.name == "TEXT"]
    return events, client.close_rcvd.code if client.close_rcvd else None


INVALID_TEXT = [
    pytest.param([("text", b'{"type":"ping","t":"\xff\xfe"}', True)], id="one-frame"),
    pytest.param([("text", b'{"type":"ping","t":"\xe2\x82', False), ("cont", b'("}', True)], id="across-fragments"),
    pytest.param([("text", b'{"type":"text","text":"\xc0\xaf"}', True)], id="overlong-as-turn"),
]


@pytest.mark.parametrize("frames", INVALID_TEXT)
def test_text_frame_that_is_not_utf8_closes_1007(gunicorn_server, frames):
    """A text message that is not valid UTF-8 closes the socket with 1007: never a pong, never a turn."""
    events, code = websocket_exchange(gunicorn_server, frames)
    assert code == 1007
    assert not [e for e in events if e.get("type") in ("pong", "chunk", "complete")]


def test_utf8_split_across_fragments_is_one_valid_message(gunicorn_server):
    """A character split between two fragments is valid UTF-8: the ping is answered, echoing it whole."""
    events, _code = websocket_exchange(gunicorn_server, [
        ("text", b'{"type":"ping","t":"caf\xc3', False), ("cont", b'\xa9"}', True),
        ("text", b'{"type":"end"}', True)])
    assert {"type": "pong", "t": "café"} in events


# --- 4. slow clients hold no thread ----------------------------------------------------------

SLOW_CLIENTS = 250
SLOW_ADDRESSES = 25  # 127.0.0.2 … 127.0.0.26: Linux routes all of 127/8 to lo
TRICKLE_S = 2.0  # each slow client sends one more byte this often
PROBE_LIMIT_S = 1.0  # /healthz must answer within this, throughout
PROBE_INTERVAL_S = 0.2
SLOW_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: relay.test\r\nUser-Agent: slowloris\r\n\r\n"


class SlowClients:
    """Many connections that each send a request one byte every ``TRICKLE_S``; records when the server closed each."""

    def __init__(self, port: int, count: int, addresses: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.opened_at: dict[socket.socket, float] = {}
        self.closed_at: dict[socket.socket, float] = {}
        self.received: dict[socket.socket, bytes] = {}
        self.sent: dict[socket.socket, int] = {}
        for i in range(count):
            sock = socket.socket()
            sock.bind((f"127.0.0.{2 + i % addresses}", 0))
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            self.opened_at[sock] = time.monotonic()
            self.received[sock], self.sent[sock] = b"", 0
            self.selector.register(sock, selectors.EVENT_READ)
            self._send_next(sock)
        self.all_closed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._thread.start()

    def _send_next(self, sock: socket.socket) -> None:
        position = self.sent[sock]
        try:
            sock.send(SLOW_REQUEST[position:position + 1])
            self.sent[sock] = position + 1
        except OSError:
            pass  # closed by the server: the reader notices

    def _run(self) -> None:
        next_trickle = time.monotonic() + TRICKLE_S
        while not self._stop.is_set() and len(self.closed_at) < len(self.opened_at):
            for key, _ in self.selector.select(timeout=max(0.0, next_trickle - time.monotonic())):
                self._on_readable(key.fileobj)
            if time.monotonic() >= next_trickle:
                next_trickle += TRICKLE_S
                for sock in self.opened_at.keys() - self.closed_at.keys():
                    self._send_next(sock)
        self.all_closed.set()

    def _on_readable(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.received[sock] += data
        if not data:
            self.closed_at[sock] = time.monotonic()
            self.selector.unregister(sock)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.opened_at:
            sock.close()
        self.selector.close()


def probe(url: str) -> float:
    """Seconds /healthz took to answer 200 (``inf`` when it did not within the limit)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=PROBE_LIMIT_S) as response:
            response.read()
            assert response.status == 200
    except OSError:
        return float("inf")
    return time.monotonic() - started


def test_slow_clients_do_not_starve_health_checks(gunicorn_server):
    """250 clients from 25 addresses, each sending its headers one byte every 2 s: /healthz answers
    every probe within 1 s, and each slow connection is answered 408 and closed at the header deadline."""
    deadline_s = httpguard.REQUEST_HEADER_TIMEOUT_S
    slow = SlowClients(gunicorn_server.port, SLOW_CLIENTS, SLOW_ADDRESSES)
    try:
        latencies = []
        give_up = time.monotonic() + deadline_s + 2 * UNIT_S
        while not slow.all_closed.is_set() and time.monotonic() < give_up:
            latencies.append(probe(gunicorn_server.url + "/healthz"))
            slow.all_closed.wait(PROBE_INTERVAL_S)
    finally:
        slow.close()
    assert len(latencies) >= deadline_s / (PROBE_LIMIT_S + PROBE_INTERVAL_S)
    assert max(latencies) < PROBE_LIMIT_S, f"slowest probes (s): {sorted(latencies)[-5:]} of {len(latencies)}"
    assert len(slow.closed_at) == SLOW_CLIENTS, f"{SLOW_CLIENTS - len(slow.closed_at)} slow connections still open"
    lifetimes = [slow.closed_at[s] - slow.opened_at[s] for s in slow.opened_at]
    assert deadline_s - 0.5 < min(lifetimes) and max(lifetimes) < deadline_s + 1.0 + 0.2 * UNIT_S, \
        (min(lifetimes), max(lifetimes))
    answers = {s: parse_responses(data) for s, data in slow.received.items()}
    assert {tuple(r.status for r in responses) for responses in answers.values()} == {(408,)}


def test_kept_alive_connection_is_served_then_dropped_when_its_next_headers_stall(gunicorn_server):
    """Requests on a kept-alive connection are served one after another; when the next one's headers
    stall, it is answered 408 and closed at the header deadline."""
    deadline_s = httpguard.REQUEST_HEADER_TIMEOUT_S
    with socket.create_connection(("127.0.0.1", gunicorn_server.port), timeout=deadline_s + UNIT_S) as sock:
        for _ in range(2):
            sock.sendall(request_bytes("GET", "/healthz", {"Host": "relay.test"}))
            responses, closed = receive(sock, until_close=False)
            assert [r.status for r in responses] == [200] and not closed
        sock.sendall(SLOW_REQUEST[:8])
        started = time.monotonic()
        responses, closed = receive(sock)
    assert [r.status for r in responses] == [408] and closed
    assert responses[0].json()["error"]["code"] == "request_timeout"
    assert deadline_s - 0.5 < time.monotonic() - started < deadline_s + 1.0 + 0.2 * UNIT_S


def test_headers_fed_byte_by_byte_complete_only_at_their_end():
    """Fed one byte at a time, the collector completes on the empty line that ends the headers, not before."""
    collector = HeaderCollector(max_bytes=1024)
    states = [collector.feed(SLOW_REQUEST[i:i + 1]) for i in range(len(SLOW_REQUEST))]
    assert states[:-1] == [HeaderState.INCOMPLETE] * (len(SLOW_REQUEST) - 1)
    assert states[-1] is HeaderState.COMPLETE
    assert collector.data == SLOW_REQUEST


@pytest.mark.parametrize(("chunks", "state"), [
    ([b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"], HeaderState.COMPLETE),
    ([b"GET / HTTP/1.1\r\nHost: a\r\n", b"\r", b"\n"], HeaderState.COMPLETE),
    ([b"GET / HTTP/1.1\nHost: a\n\n"], HeaderState.COMPLETE),  # bare LF: gunicorn's parser decides, at once
    ([b"\r\n"], HeaderState.INCOMPLETE),  # the one empty line allowed before the request line
    ([b"\r\n\r", b"\n"], HeaderState.INCOMPLETE),
    ([b"\r\n", b"\r\n", b"\r\n"], HeaderState.COMPLETE),  # an empty request line: a 400, not a wait
    ([b"GET / HTTP/1.1\r\nX: " + b"a" * 60], HeaderState.TOO_LARGE),
    ([b"GET / HTTP/1.1\r\nX: " + b"a" * 20 + b"\r\n\r\n" + b"b" * 100], HeaderState.COMPLETE),
])
def test_header_collector_states(chunks, state):
    """The collector says complete at the end of the headers, too large past its limit, else incomplete."""
    collector = HeaderCollector(max_bytes=64)
    states = [collector.feed(chunk) for chunk in chunks]
    assert states[-1] is state
    assert collector.data == b"".join(chunks)


def test_server_written_errors_are_whole_json_responses():
    """encode_error writes a complete HTTP/1.1 response that closes the connection, with the JSON error body."""
    error = HttpError(426, "upgrade_required", "version 13 only", (("Sec-WebSocket-Version", "13"),))
    (response,) = parse_responses(httpguard.encode_error(error))
    assert response.status == 426
    assert response.headers["connection"] == "close" and response.headers["sec-websocket-version"] == "13"
    assert response.json() == {"error": {"code": "upgrade_required", "message": "version 13 only"}}


# --- gunicorn internals --------------------------------------------------------------------


def test_relay_worker_is_pinned_to_the_gunicorn_it_was_written_for():
    """RelayWorker overrides gthread internals read in one gunicorn version; another version fails here
    until livetalk/gunicorn_worker.py is checked against the new gunicorn/workers/gthread.py."""
    pinned = re.search(r"^gunicorn==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE).group(1)
    assert gunicorn.__version__ == pinned == gunicorn_worker.GUNICORN_VERSION, (
        f"gunicorn {gunicorn.__version__} installed, {pinned} pinned, RelayWorker written for "
        f"{gunicorn_worker.GUNICORN_VERSION}: re-read gthread.py's enqueue_req, handle, finish_request, "
        "murder_pending, handle_request, _keepalive_after and TConn.init, then update GUNICORN_VERSION")
    from gunicorn.http.unreader import Unreader
    from gunicorn.workers.gthread import TConn, ThreadWorker

    for name in ("enqueue_req", "finish_request", "murder_pending", "handle_request", "_keepalive_after",
                 "handle_error", "handle"):
        assert callable(getattr(ThreadWorker, name, None)), name
    assert callable(getattr(Unreader, "take_buffered", None)) and callable(getattr(Unreader, "unread", None))
    with socket.socket() as sock:
        conn = TConn(None, sock, ("127.0.0.1", 1), ("127.0.0.1", 2))
        assert {"parser", "data_ready", "initialized", "is_http2"} <= set(vars(conn))
