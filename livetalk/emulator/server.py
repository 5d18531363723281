"""The emulator's one TLS port: HTTP/1.1 REST with keep-alive, the Live WebSocket, OpenAI Realtime and Responses.

Each connection is read request by request (h11, see :mod:`http11`); a WebSocket
upgrade on a Live path leaves the HTTP loop and becomes a :class:`LiveSession`, one
on ``/v1/realtime`` goes to the OpenAI Realtime emulator (:mod:`livetalk.emulator.openai`).
Handshake faults (``reject``, ``hang``, ``quota`` at the handshake) are applied
here, before a session exists.
"""
from __future__ import annotations

import asyncio
import logging
import re
import ssl

import orjson

from livetalk.emulator import http11
from livetalk.emulator.control import Control, Fault, FaultKind, Moment
from livetalk.emulator.errors import QUOTA_MESSAGE, RestError
from livetalk.emulator.http11 import BadRequest, HttpConnection, HttpRequest
from livetalk.emulator.live import LiveSession
from livetalk.emulator.openai import RealtimeEndpoint, ResponsesApi
from livetalk.emulator.rest import INVALID_KEY, JSON_TYPE, NO_KEY, RestApi, RestResponse
from livetalk.emulator.websocket import WsConnection, accept_unless_faulted, handshake
from livetalk.emulator.wire import clip_reason

logger = logging.getLogger("livetalk.emulator")

LIVE_PATH = re.compile(
    r"/ws/google\.ai\.generativelanguage\.(?P<version>v1(?:alpha|beta)?)"
    r"\.GenerativeService\.(?P<method>BidiGenerateContent(?:Constrained)?)$"
)
TLS_HANDSHAKE_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 1.0  # connections still open after this are aborted


def credential_kind(request: HttpRequest) -> str:
    """Which of the four credential forms the request carries (``none`` if none)."""
    if (request.header("authorization") or "").startswith("Token "):
        return "token"
    if request.header("x-goog-api-key"):
        return "header"
    query = request.query
    if query.get("key"):
        return "key"
    if query.get("access_token"):
        return "access_token"
    return "none"


class EmulatorServer:
    """Accepts TLS connections and serves REST and Live on them.

    Args:
        host: address to bind.
        port: port to bind (0: any free port).
        ssl_context: the server TLS context.
        control: shared faults, mode and statistics.
        api_key: when set, the only API key accepted.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        control: Control,
        api_key: str | None,
    ) -> None:
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._control = control
        self._api_key = api_key
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = port
        self._rest = RestApi(control, base_url=lambda: f"https://127.0.0.1:{self.port}", api_key=api_key)
        self._realtime = RealtimeEndpoint(control, api_key=api_key)
        self._responses = ResponsesApi(control, api_key=api_key)

    async def start(self) -> int:
        """Bind and listen; return the bound port."""
        self._server = await asyncio.start_server(
            self._on_connection,
            self._host,
            self._port,
            ssl=self._ssl,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
            limit=http11.MAX_HEAD_BYTES,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening, close every Live session (1001) and connection."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve_http(reader, writer)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("emulator connection failed")
        finally:
            self._connections.discard(task)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        http = HttpConnection(reader, writer)
        while True:
            try:
                request = await http.next_request()
            except BadRequest as exc:
                await http.refuse(exc.status, orjson.dumps(RestError(exc.status, str(exc)).body()),
                                  content_type=JSON_TYPE)
                return
            if request is None:
                return
            if request.is_websocket:
                await self._on_websocket(request, http.upgrade_leftover(), reader, writer)
                return
            rest = self._responses if self._responses.matches(request.path) else self._rest
            await _write_response(http, await rest.handle(request))
            if not http.reusable:
                return

    async def _on_websocket(
        self, request: HttpRequest, leftover: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._realtime.matches(request.path):
            await self._realtime.serve(request, leftover, reader, writer)
            return
        match = LIVE_PATH.search(request.path)
        if match is None:
            await _refuse_handshake(writer, request, 404, f"No Live endpoint at {request.path}.")
            return
        faults = self._control.take_faults()
        protocol = await accept_unless_faulted(
            request, writer, faults, lambda: self._handshake_fault(faults, request, reader, writer))
        if protocol is None:
            return
        credential = credential_kind(request)
        mode = self._control.take_mode()
        stats = self._control.new_session(
            path=request.path, api_version=match["version"], method=match["method"],
            credential=credential, mode=mode.value, faults=[fault.kind.value for fault in faults],
        )
        session = LiveSession(
            WsConnection(reader, writer, protocol, initial=leftover), control=self._control, stats=stats, faults=faults,
            mode=mode, refusal=self._refusal(request, credential),
        )
        logger.info("live session %s opened on %s", stats.id, match["version"])
        await session.run()

    async def _handshake_fault(
        self, faults: list[Fault], request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Apply a hang or reject fault to the handshake; True when one was applied."""
        for fault in faults:
            if fault.kind is FaultKind.HANG:
                self._control.log_request({"method": "GET", "path": request.path, "status": None, "fault": "hang"})
                while await reader.read(http11.MAX_HEAD_BYTES):
                    pass  # never answer; wait for the client to give up
                return True
            refusal = _handshake_refusal(fault)
            if refusal is not None:
                self._control.log_request(
                    {"method": "GET", "path": request.path, "status": fault.status, "fault": fault.kind.value}
                )
                await _refuse_handshake(writer, request, fault.status, refusal)
                return True
        return False

    def _refusal(self, request: HttpRequest, credential: str) -> tuple[int, str] | None:
        """The close a session gets at once for missing or wrong credentials, else None."""
        if credential == "none":
            return 1008, clip_reason(NO_KEY)
        key = request.header("x-goog-api-key") or request.query.get("key")
        if self._api_key is not None and credential in ("header", "key") and key != self._api_key:
            return 1007, INVALID_KEY
        return None


def _handshake_refusal(fault: Fault) -> str | None:
    """The error message a reject or handshake-time quota fault answers the upgrade with, else None."""
    if fault.kind is FaultKind.REJECT:
        return f"Emulated handshake rejection {fault.status}."
    if fault.kind is FaultKind.QUOTA and fault.when is Moment.HANDSHAKE:
        return QUOTA_MESSAGE
    return None


async def _refuse_handshake(writer: asyncio.StreamWriter, request: HttpRequest, status: int, message: str) -> None:
    body = orjson.dumps(RestError(status, message).body()).decode()
    _, data = handshake(request, reject=status, reject_text=body)
    writer.write(data)
    await writer.drain()


async def _write_response(http: HttpConnection, response: RestResponse) -> None:
    if response.events is None:
        await http.respond(response.status, response.body, content_type=response.content_type,
                           headers=response.headers)
    else:
        await http.respond_stream(response.status, response.events, content_type=response.content_type,
                                  headers=response.headers)
