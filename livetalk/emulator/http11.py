"""HTTP/1.1 on one server connection, parsed and framed by h11.

:class:`HttpConnection` reads whole requests (head and body) from an asyncio
stream and writes responses; the server keeps its own loop around it, so faults
can still hang or drop a connection at any point. A WebSocket upgrade leaves
h11 behind: the request keeps its head (rebuilt from h11's raw header items, for
the websockets handshake) and :meth:`HttpConnection.upgrade_leftover` returns
what the client sent after the request.
"""
from __future__ import annotations

import asyncio
import dataclasses
import urllib.parse
from collections.abc import Iterable
from http import HTTPStatus

import h11

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 2**20  # one request body (the SDK uploads in 8 MiB chunks)
READ_BYTES = 64 * 1024


class BadRequest(ValueError):
    """The bytes on the connection are not an acceptable HTTP/1.1 request."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class HttpRequest:
    """One parsed request. Header names are lower-case; repeated headers are joined."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    head: bytes  # the request head as text, for the WebSocket protocol object
    body: bytes = b""

    @property
    def path(self) -> str:
        """The percent-decoded path, without the query."""
        return urllib.parse.unquote(self.target.split("?", 1)[0])

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (the first value of each)."""
        query = self.target.partition("?")[2]
        return {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    @property
    def is_websocket(self) -> bool:
        """Whether this is a WebSocket upgrade request."""
        return "websocket" in _tokens(self.header("upgrade", "")) and "upgrade" in _tokens(
            self.header("connection", "")
        )


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def _from_event(event: h11.Request) -> HttpRequest:
    """An :class:`HttpRequest` (without body) from h11's request event."""
    method, target = event.method.decode("latin-1"), event.target.decode("latin-1")
    version = f"HTTP/{event.http_version.decode('latin-1')}"
    headers: dict[str, str] = {}
    lines = [f"{method} {target} {version}"]
    for raw_name, raw_value in event.headers.raw_items():
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return HttpRequest(method=method, target=target, version=version, headers=headers, head=head)


def _reason(status: int) -> bytes:
    return HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b"Unknown"


class HttpConnection:
    """The HTTP side of one accepted connection.

    Args:
        reader, writer: the connection's streams.
        max_body_bytes: largest request body accepted (bytes); larger ones are a 413.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._max_body_bytes = max_body_bytes
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    async def next_request(self) -> HttpRequest | None:
        """The next whole request, or None when the client closed between requests.

        Raises:
            BadRequest: malformed, too large, or cut short mid-request.
        """
        if self._h11.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            self._h11.start_next_cycle()
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise BadRequest("malformed request")
        request = _from_event(event)
        if len(request.head) > MAX_HEAD_BYTES:  # h11 limits only heads still incomplete after a read
            raise BadRequest("request head too large", 431)
        length = request.header("content-length") or "0"
        if length.isdigit() and int(length) > self._max_body_bytes:
            raise BadRequest("request body too large", 413)
        if self._h11.they_are_waiting_for_100_continue:
            self._write(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        request.body = await self._read_body()
        return request

    async def _read_body(self) -> bytes:
        body = bytearray()
        while True:
            event = await self._next_event()
            if isinstance(event, h11.EndOfMessage):
                return bytes(body)
            if not isinstance(event, h11.Data):
                raise BadRequest("connection closed mid-request")
            body += event.data
            if len(body) > self._max_body_bytes:
                raise BadRequest("request body too large", 413)

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise BadRequest(str(exc) or "malformed request", exc.error_status_hint) from None
            if event is not h11.NEED_DATA:
                return event
            self._h11.receive_data(await self._reader.read(READ_BYTES))  # b"" is the end of the stream

    # -- responses ------------------------------------------------------------

    async def respond(
        self, status: int, body: bytes, *, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """A complete response with a Content-Length body."""
        fields = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
        self._write(h11.Response(status_code=status, headers=fields, reason=_reason(status)))
        if body:
            self._write(h11.Data(data=body))
        self._write(h11.EndOfMessage())
        await self._writer.drain()

    async def respond_stream(
        self, status: int, pieces: Iterable[bytes], *, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """A response whose body goes out piece by piece (chunked for HTTP/1.1 clients)."""
        fields = [("Content-Type", content_type), ("Cache-Control", "no-cache"), *headers]
        self._write(h11.Response(status_code=status, headers=fields, reason=_reason(status)))
        for piece in pieces:
            self._write(h11.Data(data=piece))
            await self._writer.drain()
        self._write(h11.EndOfMessage())
        await self._writer.drain()

    async def refuse(self, status: int, body: bytes, *, content_type: str) -> None:
        """Answer a request that could not be parsed, then the connection must end (when h11 still allows it)."""
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        await self.respond(status, body, content_type=content_type, headers=[("Connection", "close")])

    @property
    def reusable(self) -> bool:
        """Whether another request may follow on this connection (keep-alive, nothing went wrong)."""
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def upgrade_leftover(self) -> bytes:
        """Bytes the client sent after an upgrade request (the first WebSocket frames, if it did not wait)."""
        data, _closed = self._h11.trailing_data
        return bytes(data)

    def _write(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._writer.write(data)
