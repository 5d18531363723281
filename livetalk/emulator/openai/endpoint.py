"""The OpenAI Realtime WebSocket endpoint, ``/v1/realtime?model=M``: handshake faults, credentials, the session.

The handshake is refused (with OpenAI's REST error JSON) by the ``reject`` fault
(429 ``rate_limit_exceeded`` by default) and the ``quota`` fault at the handshake
(429 ``insufficient_quota``); ``hang`` never answers it. Credentials are checked
after the handshake, as the service does: a missing or wrong key gets an ``error``
event and a close with code 3000 and reason ``<type>.<code>``.
"""
from __future__ import annotations

import asyncio
import logging
import re

import orjson

from livetalk.emulator import http11
from livetalk.emulator.control import Control, Fault, FaultKind, Moment
from livetalk.emulator.http11 import HttpRequest
from livetalk.emulator.openai import errors
from livetalk.emulator.openai.errors import RealtimeEventError
from livetalk.emulator.openai.session import RealtimeSession
from livetalk.emulator.openai.stats import RealtimeStats
from livetalk.emulator.websocket import WsConnection, accept_unless_faulted, handshake

logger = logging.getLogger("livetalk.emulator")

REALTIME_PATH = re.compile(r"^/+v1/+realtime/*$")
REFUSAL_CLOSE_CODE = 3000  # the registered code the service closes refused sessions with
BEARER = "bearer "


class RealtimeEndpoint:
    """Serves OpenAI Realtime WebSocket upgrades on the emulator's port.

    Args:
        control: shared faults and statistics.
        api_key: when set, the only key accepted; otherwise any non-empty key is.
    """

    def __init__(self, control: Control, *, api_key: str | None) -> None:
        self._control = control
        self._api_key = api_key

    @staticmethod
    def matches(path: str) -> bool:
        """Whether ``path`` is the Realtime endpoint."""
        return REALTIME_PATH.match(path) is not None

    async def serve(self, request: HttpRequest, leftover: bytes, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        """Answer the upgrade (or refuse it, by fault) and run the session until it ends."""
        faults = self._control.take_faults()
        protocol = await accept_unless_faulted(
            request, writer, faults, lambda: self._handshake_fault(faults, request, reader, writer))
        if protocol is None:
            return
        key = _bearer(request)
        model = request.query.get("model", "")
        mode = self._control.take_mode()
        stats = self._control.new_session(
            stats_class=RealtimeStats, path=request.path, api_version="v1", method="realtime",
            credential="none" if key is None else "bearer", mode=mode.value,
            faults=[fault.kind.value for fault in faults],
        )
        session = RealtimeSession(WsConnection(reader, writer, protocol, initial=leftover), control=self._control,
                                  stats=stats, faults=faults, model=model, mode=mode,
                                  refusal=self._refusal(key, model))
        logger.info("realtime session %s opened (model %s)", stats.id, model or "-")
        await session.run()

    def _refusal(self, key: str | None, model: str) -> tuple[RealtimeEventError, int, str] | None:
        """The error a session gets at once (no key, a wrong key, no model), with its close; else None."""
        if key is None:
            error = RealtimeEventError(errors.NO_KEY_MESSAGE, code="missing_api_key")
        elif self._api_key is not None and key != self._api_key:
            error = RealtimeEventError(errors.INVALID_KEY_MESSAGE, code="invalid_api_key")
        elif not model:
            error = errors.missing_parameter("model")
        else:
            return None
        return error, REFUSAL_CLOSE_CODE, f"{error.type}.{error.code}"

    async def _handshake_fault(self, faults: list[Fault], request: HttpRequest, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> bool:
        """Apply a hang, reject or handshake-time quota fault; True when one was applied."""
        for fault in faults:
            quota = fault.kind is FaultKind.QUOTA and fault.when is Moment.HANDSHAKE
            if fault.kind is FaultKind.HANG:
                self._log(request, None, fault)
                while await reader.read(http11.MAX_HEAD_BYTES):
                    pass  # never answer; wait for the client to give up
                return True
            if quota or fault.kind is FaultKind.REJECT:
                status = 429 if quota else fault.status
                self._log(request, status, fault)
                body = orjson.dumps(errors.handshake_body(status, quota=quota)).decode()
                _, data = handshake(request, reject=status, reject_text=body)
                writer.write(data)
                await writer.drain()
                return True
        return False

    def _log(self, request: HttpRequest, status: int | None, fault: Fault) -> None:
        self._control.log_request({"method": "GET", "path": request.path, "status": status,
                                   "fault": fault.kind.value, "engine": "openai"})


def _bearer(request: HttpRequest) -> str | None:
    """The API key of an ``Authorization: Bearer <key>`` header (None without one)."""
    header = request.header("authorization") or ""
    if not header.lower().startswith(BEARER):
        return None
    return header[len(BEARER) :].strip() or None
