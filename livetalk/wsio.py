"""The browser's WebSocket, driven by the shared asyncio loop after flask-sock's handshake.

flask-sock (simple-websocket) performs the HTTP upgrade in the request thread. Its
default design then parks a reader thread per socket and hands every frame across
threads; at 50 frames a second per conversation that hand-off cost dominated the
relay (see docs/performance.md). Instead, :class:`BrowserSocket` takes the raw,
already-upgraded socket and runs the WebSocket framing (websockets' sans-I/O
``Protocol``) as an asyncio transport on the relay loop, next to the upstream
Gemini connection: one thread, no hand-offs, ``TCP_NODELAY`` on.

All methods must be called on the loop thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable

from websockets.exceptions import InvalidState
from websockets.frames import CloseCode, Opcode
from websockets.protocol import Protocol, Side, State

log = logging.getLogger("livetalk.wsio")

MAX_MESSAGE_BYTES = 1024 * 1024  # hard protocol cap: larger frames close with 1009
MAX_WRITE_BUFFER_BYTES = 4 * 1024 * 1024  # a client this far behind is dropped


class BrowserSocket(asyncio.Protocol):
    """An open server-side WebSocket on an asyncio transport.

    ``on_message(data)`` receives each complete message (``bytes`` for binary,
    ``str`` for text); ``on_closed()`` is called exactly once when the socket is
    gone for any reason (close frame, EOF, reset, our own close).
    """

    def __init__(self, on_message: Callable[[bytes | str], None], on_closed: Callable[[], None]) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._proto = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX_MESSAGE_BYTES)
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._closed_notified = False
        self._failed = False  # we failed the connection: the peer's later frames are ignored
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_pong = 0.0  # time.monotonic() of the last pong
        self.connection: socket.socket | None = None  # the upgraded socket, to shut the connection down

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._proto.receive_data(data)
        self._process()

    def eof_received(self) -> bool:
        self._proto.receive_eof()
        self._process()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._notify_closed()
        if not self.closed.done():
            self.closed.set_result(None)

    # --- sending ---------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self._transport is not None and self._proto.state is State.OPEN

    def send_bytes(self, data: bytes) -> None:
        """Send one binary message (dropped silently once the socket is closing)."""
        if self.open:
            self._proto.send_binary(data)
            self._flush()

    def send_text(self, text: str) -> None:
        """Send one text message (dropped silently once the socket is closing)."""
        if self.open:
            self._proto.send_text(text.encode())
            self._flush()

    def ping(self, payload: bytes = b"") -> None:
        if self.open:
            self._proto.send_ping(payload)
            self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the transport is dropped shortly after."""
        if self._transport is None:
            return
        if self._proto.state is State.OPEN:
            try:
                self._proto.send_close(code, reason[:120])
            except InvalidState:
                pass
            self._flush()
        # Don't wait for the peer's close frame beyond a short grace: teardown must be prompt.
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection now."""
        if self._transport is not None:
            if self.connection is not None:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)  # see attach: closing ours alone is not enough
            self._transport.abort()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for chunk in self._proto.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # the protocol asks for the TCP connection to be closed
                _end(transport)
                return
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER_BYTES:
            log.warning("browser socket too slow: %d bytes buffered; dropping it",
                        transport.get_write_buffer_size())
            transport.abort()

    # --- receiving -------------------------------------------------------------------

    def _process(self) -> None:
        for frame in self._proto.events_received():
            if self._failed:
                break  # failed (1007) earlier in this batch: nothing more is processed (RFC 6455 §7.1.7)
            opcode = frame.opcode
            if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
                if frame.fin:
                    self._deliver(opcode, frame.data)
                else:
                    self._fragment_opcode, self._fragments = opcode, [bytes(frame.data)]
            elif opcode is Opcode.CONT and self._fragment_opcode is not None:
                self._fragments.append(bytes(frame.data))
                if frame.fin:
                    data, self._fragments = b"".join(self._fragments), []
                    opcode, self._fragment_opcode = self._fragment_opcode, None
                    self._deliver(opcode, data)
            elif opcode is Opcode.PONG:
                self.last_pong = time.monotonic()
        self._flush()  # pongs and close replies the protocol queued
        if self._proto.state is State.CLOSED or self._proto.close_expected():
            if self._transport is not None:
                _end(self._transport)
            self._notify_closed()

    def _deliver(self, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.BINARY:
            self._on_message(bytes(data))
            return
        # websockets' sans-I/O Protocol does not check text frames (its asyncio and sync connections do,
        # above it); invalid UTF-8 is a protocol violation here, never a message (RFC 6455 §8.1).
        try:
            text = bytes(data).decode()
        except UnicodeDecodeError:
            log.info("browser sent a text frame that is not UTF-8: closing 1007")
            self._failed = True
            self._proto.fail(CloseCode.INVALID_DATA, "text frame is not valid UTF-8")
            return
        self._on_message(text)

    def _notify_closed(self) -> None:
        if not self._closed_notified:
            self._closed_notified = True
            self._on_closed()


def _end(transport: asyncio.Transport) -> None:
    """Close the TCP connection, sending FIN once the buffer is flushed.

    The request thread's server still holds the socket (werkzeug keeps a file object on it, so
    closing ours does not close the descriptor); without the FIN, a server that writes its own
    HTTP response after the handler returns would put it on the wire after our close frame.
    """
    if transport.can_write_eof():
        transport.write_eof()
    transport.close()


async def attach(sock: socket.socket, factory: Callable[[], BrowserSocket]) -> BrowserSocket:
    """Wrap an upgraded socket as a :class:`BrowserSocket` transport on the running loop.

    The transport gets a duplicate of the descriptor: uvloop takes over (detaches) the socket it is given,
    while the HTTP server that did the upgrade still holds ``sock`` and closes it once the request is over.
    Closing our end alone does not end the connection; :func:`_end` and :meth:`BrowserSocket.abort` shut it
    down, which acts on the connection whichever descriptor is used.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a socket option: the duplicate has it too
    _transport, browser = await asyncio.get_running_loop().connect_accepted_socket(factory, sock=sock.dup())
    browser.connection = sock
    return browser


async def wait_closed(browser: BrowserSocket, timeout_s: float = 2.0) -> None:
    """Wait until the transport is gone (the socket closed); drop it after ``timeout_s``."""
    try:
        await asyncio.wait_for(asyncio.shield(browser.closed), timeout_s)
    except asyncio.TimeoutError:
        browser.abort()
        await browser.closed
