"""The app's routes: the pages, ``/healthz``, ``/scenarios``, ``POST /session``, ``/metrics``; the socket,
``/feedback`` and ``/api``.

Every response carries the security headers (:mod:`livetalk.headers`); every error a client can cause is
a JSON body ``{"error": {"code", "message"}}`` with a 4xx status, and an unexpected failure a 500 without
details (logged with its traceback).
"""
from __future__ import annotations

import ipaddress
import logging
import time

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, NotFound

import prompts

from . import __version__, httpguard, refusals
from .api import api_bp
from .auth import init_auth, refresh_cookie
from .feedback import feedback_bp
from .headers import security_headers
from .logs import TraceContextMiddleware
from .realtime import init_socket, request_ip
from .refusals import ClientRefusal
from .services import Services

log = logging.getLogger("livetalk.web")


def init_app(app: Flask, services: Services) -> None:
    """Register every route of the service on ``app``."""
    app.wsgi_app = TraceContextMiddleware(app.wsgi_app)
    httpguard.init_app(app)
    app.after_request(_security_headers)
    app.register_error_handler(ClientRefusal, refusals.answer)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    init_auth(app, services)
    app.register_blueprint(feedback_bp)
    app.register_blueprint(api_bp)
    init_socket(app, services)

    @app.get("/")
    def index():
        return _page("index.html", services)

    @app.get("/history")
    def history():
        return _page("history.html", services)

    @app.get("/healthz")
    def healthz():
        draining = services.draining.is_set()
        body = {
            "status": "draining" if draining else "ok",
            "version": services.settings.version or __version__,
            "gemini": "emulated" if services.emulated else "live",
            "openai": "emulated" if services.settings.openai_emulated else "live",  # extension
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

    @app.get("/metrics")
    def metrics():
        return _metrics(services)


def _page(template: str, services: Services):
    """A page; an anonymous learner's cookie is (re)set with it."""
    refresh_cookie()
    return render_template(template, emulated=services.emulated, anonymous=services.settings.auth_mode == "anonymous",
                           version=services.settings.version or __version__)


def _security_headers(response):
    for name, value in security_headers().items():
        response.headers.setdefault(name, value)
    return response


def _mint_ticket(services: Services):
    """``POST /session``: a short-lived signed ticket for ``/ws/realtime?token=…``."""
    decision = services.admission.allow_ticket(request_ip(services))
    if not decision.allowed:
        raise ClientRefusal(429, "rate_limited", "too many ticket requests; wait a minute",
                            retry_after=decision.retry_after_whole_s)
    body = request.get_json(silent=True) if request.get_data(cache=True) else {}  # a chunked body too
    if not isinstance(body, dict):
        raise ClientRefusal(400, "bad_request", 'the body must be a JSON object like {"scenario": "sales-ja"}')
    scenario_id = body.get("scenario")
    if scenario_id is not None and not isinstance(scenario_id, str):
        raise ClientRefusal(400, "bad_request", "scenario: must be a string")
    scenario = prompts.get_scenario(scenario_id)
    if scenario is None:
        raise ClientRefusal(400, "bad_request", "scenario: unknown scenario id")
    token, expires = services.tokens.mint_ticket(scenario.id, now=time.time(), ttl_s=services.settings.ticket_ttl_s)
    expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    return jsonify({"token": token, "expires_at": expires_at, "scenario": scenario.id})


def _metrics(services: Services):
    """``GET /metrics`` in Prometheus text format; the same 404 as any unknown path when it may not be seen."""
    settings = services.settings
    if not settings.metrics_enabled or (settings.metrics_local_only and not _from_this_instance()):
        raise NotFound()
    body, content_type = services.metrics.render(request.headers.get("Accept"))
    return body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"}


_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded")


def _from_this_instance() -> bool:
    """A scrape from this machine itself (a sidecar on localhost), not relayed by any proxy.

    Cloud Run's front end sets ``X-Forwarded-For`` on every request it delivers, so a request from outside
    never passes, whatever address it seems to come from.
    """
    if any(name in request.headers for name in _PROXY_HEADERS):
        return False
    try:
        peer = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return (getattr(peer, "ipv4_mapped", None) or peer).is_loopback


_HTTP_CODES = {400: "bad_request", 413: "too_large", 429: "rate_limited"}


def _http_error(exc: HTTPException):
    code = _HTTP_CODES.get(exc.code) or (exc.name or "error").lower().replace(" ", "_")
    return refusals.answer(ClientRefusal(exc.code, code, exc.description or exc.name))


def _internal_error(exc: Exception):
    log.exception("unhandled error in %s %s", request.method, request.path)
    return refusals.answer(ClientRefusal(500, "internal", "something went wrong on our side; please try again"))
