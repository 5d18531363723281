"""HTTP routes and the ``/ws/realtime`` socket.

Flask serves the page, ``/healthz`` and ``/scenarios``; flask-sock performs the
WebSocket upgrade. The upgraded socket is then handed to the shared relay loop
(:mod:`livetalk.relay`), and the request thread only waits for the conversation to
end: no per-frame work happens on it.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
import time

from flask import Flask, jsonify, render_template, request
from flask_sock import Sock
from werkzeug.exceptions import HTTPException

import prompts

from . import __version__, httpguard, live, relay, resume, security
from .feedback import feedback_bp
from .logs import TraceContextMiddleware, log_context
from .protocol import Close, ErrorCode, Mode, ProtocolError, parse_mode
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
    app.wsgi_app = TraceContextMiddleware(app.wsgi_app)
    httpguard.init_app(app)
    app.before_request(_no_websocket_compression)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    app.register_blueprint(feedback_bp)

    @app.get("/")
    def index():
        return render_template("index.html", emulated=services.emulated,
                               version=services.settings.version or __version__)

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

    @app.post("/session")
    def new_session():
        return _mint_ticket(services)

    @sock.route(WS_PATH)
    def realtime(ws):
        _relay_socket(ws, services)


def _no_websocket_compression() -> None:
    """Refuse permessage-deflate: compressing PCM costs CPU per frame and saves little."""
    if request.path == WS_PATH:
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def _security_headers(response):
    for name, value in security.security_headers().items():
        response.headers.setdefault(name, value)
    return response


def _client_ip(services: Services) -> str:
    return security.client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"),
                              services.settings.trust_forwarded_for)


def _error(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status


def _mint_ticket(services: Services):
    """``POST /session``: a short-lived signed ticket for ``/ws/realtime?token=…``."""
    if not services.ticket_limiter.allow(security.limit_key(_client_ip(services))):
        return _error(429, "rate_limited", "too many ticket requests; wait a minute")
    body = request.get_json(silent=True) if request.get_data(cache=True) else {}  # a chunked body too
    if not isinstance(body, dict):
        return _error(400, "bad_request", 'the body must be a JSON object like {"scenario": "sales-ja"}')
    scenario_id = body.get("scenario")
    if scenario_id is not None and not isinstance(scenario_id, str):
        return _error(400, "bad_request", "scenario: must be a string")
    scenario = prompts.get_scenario(scenario_id)
    if scenario is None:
        return _error(400, "bad_request", "scenario: unknown scenario id")
    token, expires = security.mint_ticket(services.ticket_secret, scenario.id,
                                          services.settings.ticket_ttl_s, time.time())
    expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    return jsonify({"token": token, "expires_at": expires_at, "scenario": scenario.id})


_HTTP_CODES = {400: "bad_request", 413: "too_large", 429: "rate_limited"}


def _http_error(exc: HTTPException):
    code = _HTTP_CODES.get(exc.code) or (exc.name or "error").lower().replace(" ", "_")
    return jsonify({"error": {"code": code, "message": exc.description or exc.name}}), exc.code


def _internal_error(exc: Exception):
    log.exception("unhandled error in %s %s", request.method, request.path)
    return _error(500, "internal", "something went wrong on our side; please try again")


def _relay_socket(ws, services: Services) -> None:
    """Hand the upgraded socket to the relay loop and wait for the conversation to end."""
    sock = ws.sock
    ws.connected = False  # flask-sock's own close() becomes a no-op: the relay owns the socket now
    ip = _client_ip(services)
    try:
        conversation = _admit(services, request, ip)
    except ProtocolError as exc:
        log.info("conversation refused: %s", exc.code.value, extra={"fields": {"client_ip": ip}})
        services.submit(relay.refuse(sock, exc.code, exc.message, _close_for(exc.code))).result()
        return
    try:
        with log_context(session_id=conversation.session_id):
            future = services.submit(_run(sock, services, conversation, ip))
    except BaseException:
        services.gate.release(ip)
        raise
    future.result(CONVERSATION_WAIT_S)


def _close_for(code: ErrorCode) -> Close:
    if code is ErrorCode.SHUTTING_DOWN:
        return Close.GOING_AWAY
    refusal = security.REFUSALS.get(code)
    return refusal.close if refusal else Close.POLICY


def _admit(services: Services, req, ip: str) -> relay.Conversation:
    """Check the request and build its conversation; raises :class:`ProtocolError`.

    On success the client holds a slot of ``services.gate`` (released by the caller).
    """
    settings = services.settings
    if services.draining.is_set():
        raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the server is restarting; try again in a moment")
    # Behind Cloud Run's TLS front end the request arrives as http: compare with the public scheme.
    proto = req.headers.get("X-Forwarded-Proto") if settings.trust_forwarded_for else None
    if not security.origin_allowed(req.headers.get("Origin"), req.host_url, settings.allowed_origins,
                                   forwarded_proto=proto):
        raise ProtocolError(ErrorCode.FORBIDDEN_ORIGIN, "this site may not open conversations here")
    resuming = _resume_state(services, req.args.get("resume"))
    scenario = prompts.get_scenario(resuming.scenario if resuming else req.args.get("scenario"))
    if scenario is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "unknown scenario")
    mode = Mode(resuming.mode) if resuming else parse_mode(req.args.get("mode"))
    if settings.require_ticket and resuming is None:  # a valid resume ticket already proves access
        _check_ticket(services, req.args.get("token"), scenario.id)
    refusal = services.gate.admit(ip)
    if refusal is not None:
        raise ProtocolError(refusal.code, refusal.message)
    return _conversation(services, scenario, mode, resuming)


def _resume_state(services: Services, token: str | None) -> resume.ResumeState | None:
    if not token:
        return None
    try:
        return resume.verify(services.ticket_secret, token, now=time.time())
    except resume.ResumeError as exc:
        raise ProtocolError(ErrorCode.UNAUTHORIZED,
                            f"resume ticket {exc.reason}: start a new conversation") from None


def _check_ticket(services: Services, token: str | None, scenario_id: str) -> None:
    try:
        security.verify_ticket(services.ticket_secret, token, scenario_id, time.time())
    except security.TicketError as exc:
        raise ProtocolError(ErrorCode.UNAUTHORIZED,
                            f"access ticket {exc.reason}: request a new one from POST /session") from None


def _conversation(services: Services, scenario: prompts.Scenario, mode: Mode,
                  resuming: resume.ResumeState | None) -> relay.Conversation:
    settings = services.settings
    session_id = resuming.session_id if resuming else _new_session_id()
    started_at = resuming.started_at if resuming else time.time()
    segment = resuming.segment if resuming else 0
    setup = live.LiveSetup(
        model=settings.gemini_live_model,
        system_instruction=scenario.system_instruction,
        voice=settings.gemini_voice or scenario.voice,
        vad=scenario.vad,
        resume_handle=resuming.handle if resuming else None,
    )
    recorder = services.new_recorder(
        session_id, scenario.id, segment=segment,
        started_at=dt.datetime.fromtimestamp(started_at, dt.timezone.utc),
    )
    return relay.Conversation(
        session_id=session_id,
        setup=setup,
        mode=mode,
        scenario_id=scenario.id,
        client=services.genai_client(),
        settings=settings,
        emulated=services.emulated,
        recorder=recorder,
        resume_secret=services.ticket_secret,
        started_at=started_at,
        segment=segment,
    )


async def _run(sock, services: Services, conversation: relay.Conversation, ip: str) -> None:
    """On the loop: relay until the conversation is over (registered for /healthz and draining).

    The client's admission slot is given back as soon as the conversation has ended.
    """
    services.sessions[conversation.session_id] = conversation
    try:
        await relay.serve(sock, conversation)
    finally:
        services.gate.release(ip)
        services.sessions.pop(conversation.session_id, None)


def _new_session_id() -> str:
    """Sortable and unguessable: UTC time, then 64 random bits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(8)
