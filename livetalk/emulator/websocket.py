"""A server WebSocket over asyncio streams, driven by websockets' sans-I/O protocol.

The HTTP server has already read the upgrade request; :func:`handshake` feeds its
raw head to :class:`websockets.server.ServerProtocol`, and :class:`WsConnection`
then moves frames between the protocol object and the stream. No extensions are
offered, so permessage-deflate is never negotiated; pings are answered by the
protocol object itself.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.frames import Close, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from livetalk.emulator.http11 import HttpRequest

READ_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 16 * 2**20  # incoming; client_content can carry long histories
JSON_TYPE = "application/json; charset=UTF-8"
CLOSE_TIMEOUT_S = 2.0  # wait this long for the client's close frame before dropping TCP
WRITE_HIGH_WATER_BYTES = 1 * 2**20  # above this, writers wait for the socket to drain

_ws_logger = logging.getLogger("livetalk.emulator.websocket")


class WsConnection:
    """One accepted WebSocket: receive whole messages, send binary ones, close or abort."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ServerProtocol, *, initial: bytes = b""
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._proto = protocol
        self._inbox: collections.deque[bytes] = collections.deque()
        self._fragments: list[bytes] | None = None
        self._eof = False
        self.aborted = False
        self.bytes_sent = 0
        if initial:
            self._feed(initial)

    @property
    def open(self) -> bool:
        """Whether messages can still be sent."""
        return self._proto.state is State.OPEN and not self.aborted

    @property
    def close_code(self) -> int | None:
        """The close code (of whoever closed first), 1006 after an abort or EOF; None while open."""
        if self.aborted:
            return 1006
        close = self._first_close()
        if close is not None:
            return close.code
        return 1006 if self._eof else None

    @property
    def close_reason(self) -> str | None:
        """The close reason matching :attr:`close_code`."""
        close = None if self.aborted else self._first_close()
        return None if close is None else close.reason

    def _first_close(self) -> Close | None:
        proto = self._proto
        if proto.close_rcvd_then_sent:
            return proto.close_rcvd
        return proto.close_sent or proto.close_rcvd

    async def recv(self) -> bytes | None:
        """The next message (text or binary, as bytes); None once the connection is closing."""
        while not self._inbox:
            if self._proto.state is not State.OPEN or self._eof or self.aborted:
                return None
            await self._read_once()
        return self._inbox.popleft()

    def send(self, payload: bytes, *, text: bool = False) -> bool:
        """Send one binary message (``text``: a text one; ``payload`` is then UTF-8); False once closed."""
        if not self.open:
            return False
        if text:
            self._proto.send_text(payload)
        else:
            self._proto.send_binary(payload)
        self.bytes_sent += len(payload)
        self._flush()
        return True

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (no-op when already closing)."""
        if self.open:
            self._proto.send_close(code, reason)
            self._flush()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.aborted = True
        self._writer.transport.abort()

    async def drain(self) -> None:
        """Wait while the socket's write buffer is above the high-water mark."""
        transport = self._writer.transport
        if transport.get_write_buffer_size() > WRITE_HIGH_WATER_BYTES and not transport.is_closing():
            try:
                await self._writer.drain()
            except ConnectionError:
                pass

    async def shutdown(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Finish the closing handshake (reading until the client's close) and close TCP."""
        if not self.aborted:
            try:
                async with asyncio.timeout(timeout):
                    while not self._proto.eof_sent and not self._eof:
                        await self._read_once()
            except (TimeoutError, ConnectionError):
                pass
        if self._writer.transport.is_closing():
            return
        if self._proto.state is State.OPEN:
            self._writer.transport.abort()
        else:
            self._writer.close()

    async def _read_once(self) -> None:
        try:
            data = await self._reader.read(READ_BYTES)
        except (ConnectionError, OSError):
            data = b""
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Hand received bytes (b"": the end of the stream) to the protocol and collect whole messages."""
        if data:
            self._proto.receive_data(data)
        else:
            self._eof = True
            self._proto.receive_eof()
        for event in self._proto.events_received():
            self._on_frame(event.opcode, event.data, event.fin)
        self._flush()

    def _on_frame(self, opcode: Opcode, data: bytes, fin: bool) -> None:
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if fin:
                self._inbox.append(bytes(data))
            else:
                self._fragments = [bytes(data)]
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(data))
            if fin:
                self._inbox.append(b"".join(self._fragments))
                self._fragments = None

    def _flush(self) -> None:
        for data in self._proto.data_to_send():
            if data:
                if not self._writer.transport.is_closing():
                    self._writer.write(data)
            elif not self._writer.transport.is_closing():
                self._writer.close()  # the protocol's end-of-stream marker


async def accept(request: HttpRequest, writer: asyncio.StreamWriter) -> ServerProtocol | None:
    """Answer the upgrade ``request``: the open protocol, or None once an HTTP error went out (malformed request)."""
    protocol, data = handshake(request)
    writer.write(data)
    if protocol.state is not State.OPEN:
        await writer.drain()
        return None
    return protocol


async def accept_unless_faulted(
    request: HttpRequest, writer: asyncio.StreamWriter, faults: list[Any],
    handshake_fault: Callable[[], Awaitable[bool]],
) -> ServerProtocol | None:
    """Answer the upgrade unless ``handshake_fault()`` (a queued hang or refusal) took the handshake; the open
    protocol, or None when a fault or an HTTP error answered instead. ``faults`` are the session's, taken once."""
    if faults and await handshake_fault():
        return None
    return await accept(request, writer)


def handshake(request: HttpRequest, *, reject: int | None = None, reject_text: str = "") -> tuple[ServerProtocol, bytes]:
    """Run the opening handshake for ``request`` (``reject``: refuse it with that status and ``reject_text`` JSON).

    Returns:
        The protocol object and the bytes to write. The handshake succeeded when
        ``protocol.state`` is OPEN; otherwise the bytes are an HTTP error response.
    """
    protocol = ServerProtocol(max_size=MAX_MESSAGE_BYTES, logger=_ws_logger)
    protocol.debug = False  # its debug log would print request headers, API keys included
    protocol.receive_data(request.head)
    events = protocol.events_received()
    if not events or not isinstance(events[0], Request):
        response = protocol.reject(400, "Failed to open a WebSocket connection: malformed request.\n")
    elif reject is not None:
        response = protocol.reject(reject, reject_text)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = JSON_TYPE  # Google answers refused handshakes with error JSON
    else:
        response = protocol.accept(events[0])
    protocol.send_response(response)
    return protocol, b"".join(protocol.data_to_send())
