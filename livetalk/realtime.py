"""The ``/ws/realtime`` socket: admission, then the conversation on the relay loop.

flask-sock performs the WebSocket upgrade in a request thread. The checks every conversation must pass run
there (draining, origin, scenario, mode, tickets, limits — see docs/protocol.md for the order), then the
upgraded socket is handed to the relay loop (:mod:`livetalk.relay`) and the request thread only waits for the
conversation to end: no per-frame work happens on it. A refused socket receives one fatal ``error`` event
and the close code the contract gives for it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import time

from flask import Flask, request
from flask_sock import Sock

import prompts

from . import relay
from .auth import current_learner
from .engine import LiveSetup
from .identity import Learner
from .logs import log_context
from .origins import client_ip, origin_allowed
from .protocol import REFUSALS, Close, ErrorCode, Mode, ProtocolError, parse_mode
from .quotas import QuotaExceeded
from .services import Services
from .signing import ResumeError, ResumeState, TicketError

log = logging.getLogger("livetalk.web")

WS_PATH = "/ws/realtime"
CONVERSATION_WAIT_S = None  # the request thread waits as long as the conversation lasts


class _NoReaderThread:
    """simple-websocket starts a reader thread per socket; the relay loop reads instead."""

    def __init__(self, target=None, **_kwargs) -> None:
        self.name = "livetalk-relay-socket"

    def start(self) -> None:
        """Nothing to start: :mod:`livetalk.wsio` reads the socket on the relay loop."""


def init_socket(app: Flask, services: Services) -> None:
    """Register ``/ws/realtime`` on ``app``."""
    app.config["SOCK_SERVER_OPTIONS"] = {"thread_class": _NoReaderThread}
    sock = Sock(app)
    app.before_request(_no_websocket_compression)

    @sock.route(WS_PATH)
    def realtime(ws):
        _relay_socket(ws, services)


def _no_websocket_compression() -> None:
    """Refuse permessage-deflate: compressing PCM costs CPU per frame and saves little."""
    if request.path == WS_PATH:
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def request_ip(services: Services) -> str:
    """The client's address for limits and logs (``X-Forwarded-For`` only as far as it is trusted)."""
    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"),
                     services.settings.trust_forwarded_for)


def _relay_socket(ws, services: Services) -> None:
    """Admit the upgraded socket, hand it to the relay loop and wait until the conversation is over."""
    sock = ws.sock
    ws.connected = False  # flask-sock's own close() becomes a no-op: the relay owns the socket now
    ip, holder, learner = request_ip(services), secrets.token_hex(8), current_learner()
    try:
        conversation = _admit(services, ip, holder, learner)
    except ProtocolError as exc:
        log.info("conversation refused: %s", exc.code.value, extra={"fields": {"client_ip": ip}})
        services.submit(relay.refuse(sock, exc.code, exc.message, _close_for(exc.code))).result()
        return
    try:
        with log_context(session_id=conversation.session_id):
            services.submit(_run(sock, services, conversation)).result(CONVERSATION_WAIT_S)
    finally:
        services.quotas.spend(learner.id, time.monotonic() - conversation.stats.started)
        services.quotas.release(learner.id, conversation.session_id)
        services.admission.release_socket(ip, holder)


def _close_for(code: ErrorCode) -> Close:
    if code is ErrorCode.SHUTTING_DOWN:
        return Close.GOING_AWAY
    refusal = REFUSALS.get(code)
    return refusal.close if refusal else Close.POLICY


def _admit(services: Services, ip: str, holder: str, learner: Learner) -> relay.Conversation:
    """Check the request and build its conversation; raises :class:`ProtocolError`.

    On success ``holder`` holds its admission slots and the conversation one of ``learner``'s
    (both released by the caller).
    """
    settings = services.settings
    if services.draining.is_set():
        raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the server is restarting; try again in a moment")
    # Behind Cloud Run's TLS front end the request arrives as http: compare with the public scheme.
    proto = request.headers.get("X-Forwarded-Proto") if settings.trust_forwarded_for else None
    if not origin_allowed(request.headers.get("Origin"), request.host_url, settings.allowed_origins,
                          forwarded_proto=proto):
        raise ProtocolError(ErrorCode.FORBIDDEN_ORIGIN, "this site may not open conversations here")
    resuming = _resume_state(services, request.args.get("resume"))
    scenario = prompts.get_scenario(resuming.scenario if resuming else request.args.get("scenario"))
    if scenario is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "unknown scenario")
    mode = Mode(resuming.mode) if resuming else parse_mode(request.args.get("mode"))
    if settings.require_ticket and resuming is None:  # a valid resume ticket already proves access
        _check_ticket(services, request.args.get("token"), scenario.id)
    refusal = services.admission.admit_socket(ip, holder)
    if refusal is not None:
        raise ProtocolError(refusal.code, refusal.message)
    session_id = resuming.session_id if resuming else new_session_id()
    try:
        allowance_s = services.quotas.admit(learner.id, session_id, resuming=resuming is not None)
    except QuotaExceeded as exc:
        services.admission.release_socket(ip, holder)
        raise ProtocolError(ErrorCode.QUOTA_EXCEEDED, exc.message) from None
    try:
        return _conversation(services, scenario, mode, resuming, session_id=session_id, learner=learner,
                             allowance_s=allowance_s)
    except BaseException:  # nothing will release what was taken: give it back now
        services.quotas.release(learner.id, session_id)
        services.admission.release_socket(ip, holder)
        raise


def _resume_state(services: Services, token: str | None) -> ResumeState | None:
    if not token:
        return None
    try:
        return services.tokens.verify_resume(token, now=time.time())
    except ResumeError as exc:
        raise ProtocolError(ErrorCode.UNAUTHORIZED,
                            f"resume ticket {exc.reason}: start a new conversation") from None


def _check_ticket(services: Services, token: str | None, scenario_id: str) -> None:
    try:
        services.tokens.verify_ticket(token, scenario=scenario_id, now=time.time())
    except TicketError as exc:
        raise ProtocolError(ErrorCode.UNAUTHORIZED,
                            f"access ticket {exc.reason}: request a new one from POST /session") from None


def _conversation(services: Services, scenario: prompts.Scenario, mode: Mode, resuming: ResumeState | None, *,
                  session_id: str, learner: Learner, allowance_s: float) -> relay.Conversation:
    started_at = resuming.started_at if resuming else time.time()
    segment = resuming.segment if resuming else 0
    engine = services.engine(scenario.engine)
    setup = LiveSetup(
        model=services.engines.model(scenario.engine),
        system_instruction=scenario.system_instruction,
        voice=services.engines.voice(scenario.engine, scenario.voice),
        vad=scenario.vad,
        tools=scenario.tools,
        resume_handle=resuming.handle if resuming else None,
    )
    recorder = services.new_recorder(
        session_id, scenario.id, segment=segment, input_rate=engine.input_rate, engine=engine.name,
        started_at=dt.datetime.fromtimestamp(started_at, dt.timezone.utc), learner=learner,
    )
    policy = services.policy
    if allowance_s < policy.session_max_s:  # what is left of the learner's day ends it first
        policy = dataclasses.replace(policy, session_max_s=allowance_s)
    return relay.Conversation(
        session_id=session_id,
        setup=setup,
        mode=mode,
        scenario_id=scenario.id,
        engine=engine,
        policy=policy,
        emulated=services.engines.emulated(scenario.engine),
        recorder=recorder,
        observer=services.metrics.observer(engine=engine.name),
        tokens=services.tokens,
        started_at=started_at,
        segment=segment,
    )


async def _run(sock, services: Services, conversation: relay.Conversation) -> None:
    """On the loop: relay until the conversation is over (registered for /healthz and draining)."""
    services.sessions[conversation.session_id] = conversation
    try:
        await relay.serve(sock, conversation)
    finally:
        services.sessions.pop(conversation.session_id, None)


def new_session_id() -> str:
    """Sortable and unguessable: UTC time, then 64 random bits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(8)
