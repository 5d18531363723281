"""Just enough HTTP/1.1 for the SDK's REST calls and the WebSocket handshake.

Parsing and serialising are pure; :func:`read_request` is the one reader.
"""
from __future__ import annotations

import asyncio
import dataclasses
import urllib.parse
from http import HTTPStatus

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 2**20  # one request body (the SDK uploads in 8 MiB chunks)
LAST_CHUNK = b"0\r\n\r\n"


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
    head: bytes  # the raw request head, for the WebSocket protocol object
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
    def keep_alive(self) -> bool:
        """Whether the connection stays open after the response."""
        tokens = _tokens(self.header("connection", ""))
        return "keep-alive" in tokens if self.version == "HTTP/1.0" else "close" not in tokens

    @property
    def is_websocket(self) -> bool:
        """Whether this is a WebSocket upgrade request."""
        return "websocket" in _tokens(self.header("upgrade", "")) and "upgrade" in _tokens(
            self.header("connection", "")
        )


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def parse_head(head: bytes) -> HttpRequest:
    """Parse a request head ending in CRLF CRLF. Raises BadRequest."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest("malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest("only HTTP/1.x is served", 505)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header line")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return HttpRequest(method=method, target=target, version=version, headers=headers, head=head)


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """Read one request (head and body) or return None at a clean end of stream.

    Raises:
        BadRequest: malformed, too large, or cut short mid-request.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest("connection closed mid-request") from None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large", 431) from None
    request = parse_head(head)
    request.body = await _read_body(reader, request)
    return request


async def _read_body(reader: asyncio.StreamReader, request: HttpRequest) -> bytes:
    if "chunked" in _tokens(request.header("transfer-encoding")):
        return await _read_chunked(reader)
    length_text = request.header("content-length", "0") or "0"
    if not length_text.isdigit():
        raise BadRequest("bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise BadRequest("request body too large", 413)
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise BadRequest("connection closed mid-body") from None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    try:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers are ignored
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                raise BadRequest("request body too large", 413)
            body += (await reader.readexactly(size + 2))[:-2]
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest("malformed chunked body") from None


def response_head(status: int, headers: list[tuple[str, str]], *, keep_alive: bool) -> bytes:
    """Status line and headers; add Content-Length or Transfer-Encoding yourself."""
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json; charset=UTF-8",
    headers: list[tuple[str, str]] | None = None,
    keep_alive: bool = True,
) -> bytes:
    """A complete response with a Content-Length body."""
    all_headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])]
    return response_head(status, all_headers, keep_alive=keep_alive) + body


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked response body (empty data would end the body; use LAST_CHUNK)."""
    return b"%x\r\n%s\r\n" % (len(data), data)
