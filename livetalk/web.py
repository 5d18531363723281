"""HTTP routes and the ``/ws/realtime`` socket.

Flask serves the page, ``/healthz`` and ``/scenarios``; flask-sock performs the
WebSocket upgrade. The upgraded socket is then handed to the shared relay loop
(:mod:`livetalk.relay`), and the request thread only waits for the conversation to
end: no per-frame work happens on it.
"""
from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from flask_sock import Sock
from werkzeug.exceptions import HTTPException

import prompts

from . import __version__, live, relay
from .protocol import Close, ErrorCode, ProtocolError, parse_mode
from .services import Services

log = logging.getLogger("livetalk.web")

WS_PATH = "/ws/realtime"
CONVERSATION_WAIT_S = None  # the request thread waits as long as the conversation lasts


class _NoReaderThread:
    """simple-websocket starts a reader thread per socket; the relay loop reads instead."""

    def __init__(self, target=None, **_kwargs) -> None:
        self.name = "livetalk-relay-socket"

    def start(self) -> None:
        """Nothing to start: :mod:`livetalk.wsio` reads the socket on the relay loop."""


def init_app(app: Flask, services: Services) -> None:
    """Register every route of the service on ``app``."""
    app.config["SOCK_SERVER_OPTIONS"] = {"thread_class": _NoReaderThread}
    sock = Sock(app)
    app.before_request(_no_websocket_compression)
    app.register_error_handler(HTTPException, _http_error)

    @app.get("/")
    def index():
        return render_template("index.html", emulated=services.emulated, version=services.settings.version)

    @app.get("/healthz")
    def healthz():
        draining = services.draining.is_set()
        body = {
            "status": "draining" if draining else "ok",
            "version": services.settings.version or __version__,
            "gemini": "emulated" if services.emulated else "live",
            "storage": services.settings.storage_kind,
            "sessions": len(services.sessions),
        }
        return jsonify(body), 503 if draining else 200

    @app.get("/scenarios")
    def scenarios():
        return jsonify(prompts.public_scenarios())

    @sock.route(WS_PATH)
    def realtime(ws):
        _relay_socket(ws, services)


def _no_websocket_compression() -> None:
    """Refuse permessage-deflate: compressing PCM costs CPU per frame and saves little."""
    if request.path == WS_PATH:
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def _http_error(exc: HTTPException):
    code = (exc.name or "error").lower().replace(" ", "_")
    return jsonify({"error": {"code": code, "message": exc.description or exc.name}}), exc.code


def _relay_socket(ws, services: Services) -> None:
    """Hand the upgraded socket to the relay loop and wait for the conversation to end."""
    sock = ws.sock
    ws.connected = False  # flask-sock's own close() becomes a no-op: the relay owns the socket now
    try:
        conversation = _admit(services, request.args)
    except ProtocolError as exc:
        future = services.submit(relay.refuse(sock, exc.code, exc.message, _close_for(exc.code)))
    else:
        future = services.submit(_run(sock, services, conversation))
    future.result(CONVERSATION_WAIT_S)


def _close_for(code: ErrorCode) -> Close:
    if code in (ErrorCode.CAPACITY, ErrorCode.RATE_LIMITED):
        return Close.TRY_AGAIN_LATER
    if code is ErrorCode.SHUTTING_DOWN:
        return Close.GOING_AWAY
    return Close.POLICY


def _admit(services: Services, args) -> relay.Conversation:
    """Check the request and build its conversation; raises :class:`ProtocolError`."""
    if services.draining.is_set():
        raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the server is restarting; try again in a moment")
    scenario = prompts.get_scenario(args.get("scenario"))
    if scenario is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "unknown scenario")
    mode = parse_mode(args.get("mode"))
    settings = services.settings
    setup = live.LiveSetup(
        model=settings.gemini_live_model,
        system_instruction=scenario.system_instruction,
        voice=settings.gemini_voice or scenario.voice,
        vad=scenario.vad,
    )
    return relay.Conversation(
        session_id=_new_session_id(),
        setup=setup,
        mode=mode,
        scenario_id=scenario.id,
        client=services.genai_client(),
        settings=settings,
        emulated=services.emulated,
    )


async def _run(sock, services: Services, conversation: relay.Conversation) -> None:
    """On the loop: enforce the global cap, then relay until the conversation is over."""
    if len(services.sessions) >= services.settings.max_sessions:
        await relay.refuse(sock, ErrorCode.CAPACITY, "the server is full; try again in a minute",
                           Close.TRY_AGAIN_LATER)
        return
    services.sessions[conversation.session_id] = conversation
    try:
        await relay.serve(sock, conversation)
    finally:
        services.sessions.pop(conversation.session_id, None)


def _new_session_id() -> str:
    """Sortable and unguessable: UTC time, then 64 random bits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(8)
