"""The learner behind each request, for the Flask app (:mod:`livetalk.identity`, wired in).

* ``AUTH_MODE=anonymous`` (default): :func:`current_learner` reads the signed learner cookie on first
  use in a request; without a valid one the caller is a new learner and the response sets the
  cookie (HttpOnly, ``SameSite=Lax``, ``Secure`` when the public scheme is https). Pages call
  :func:`refresh_cookie` so a returning learner keeps the same id for another 400 days. A socket
  without the cookie is a new learner too (its ``101`` answer cannot set one).
* ``AUTH_MODE=iap``: every request, static files and sockets included, must carry a valid
  ``X-Goog-IAP-JWT-Assertion``; :func:`init_auth` checks it before any route runs, so a refused socket
  never gets its upgrade. The one exception is ``/metrics``, which guards itself (off unless enabled,
  and by default answered only to a scraper on this instance, which never comes through IAP). Refusals are ``401`` JSON errors (``503`` while IAP's key set cannot be
  fetched). Administrators are IAP learners whose email is in ``ADMIN_EMAILS``.

Neither the cookie nor the assertion is ever logged: only why one was refused.

Exceptions::

    HTTPException
     └── Unauthenticated     no acceptable identity (401, or 503 for keys_unavailable), as a JSON error
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .identity import IAP_HEADER, AnonymousLearners, IapError, Identified, Learner, is_admin

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("livetalk.auth")

_IDENTIFIED = "livetalk_identified"  # flask.g: this request's Identified
_REFRESH = "livetalk_refresh_cookie"  # flask.g: re-set the cookie on this response


class Unauthenticated(HTTPException):
    """The request carries no acceptable identity; answered as ``{"error": {"code", "message"}}``."""

    def __init__(self, reason: str) -> None:
        unavailable = reason == "keys_unavailable"
        self.code = 503 if unavailable else 401
        super().__init__("the identity check is unavailable; try again shortly" if unavailable else
                         "sign in through the organisation's identity proxy to use this service")
        self.reason = reason

    def get_response(self, environ: Any = None, scope: Any = None):  # noqa: ARG002  (werkzeug's signature)
        response = jsonify({"error": {"code": "service_unavailable" if self.code == 503 else "unauthorized",
                                      "message": self.description}})
        response.status_code = self.code
        return response


def init_auth(app: Flask, services: Services) -> None:
    """Identify every request in IAP mode; set the learner cookie in anonymous mode."""
    if services.settings.auth_mode == "iap":
        app.before_request(_require_iap)
    app.after_request(_set_cookie)


def current_learner() -> Learner:
    """The learner making this request (see the module docstring); :class:`Unauthenticated` in IAP mode."""
    identified = g.get(_IDENTIFIED)
    if identified is None:
        identified = _identify(_services())
        setattr(g, _IDENTIFIED, identified)
    return identified.learner


def is_admin_request() -> bool:
    """Whether the caller is an administrator (IAP mode, email in ``ADMIN_EMAILS``)."""
    return is_admin(current_learner(), _services().settings.admin_emails)


def refresh_cookie() -> None:
    """Re-set an anonymous learner's cookie on this response (pages: the 400 days start again)."""
    current_learner()
    setattr(g, _REFRESH, True)


def public_scheme(trust_forwarded_for: int) -> str:
    """``https`` or ``http`` as the browser sees it (``X-Forwarded-Proto`` only behind a trusted proxy)."""
    forwarded = request.headers.get("X-Forwarded-Proto") if trust_forwarded_for else None
    return (forwarded or request.scheme).split(",")[0].strip().lower()


def _services() -> Services:
    return current_app.extensions["livetalk"]


def _identify(services: Services) -> Identified:
    try:
        return services.authenticator.identify(cookie=request.cookies.get(AnonymousLearners.COOKIE_NAME),
                                               iap_assertion=request.headers.get(IAP_HEADER), now=time.time())
    except IapError as exc:
        log.info("request refused: IAP assertion %s", exc.reason,
                 extra={"fields": {"path": request.path, "reason": exc.reason}})
        raise Unauthenticated(exc.reason) from None


SELF_GUARDED_ENDPOINTS = frozenset({"metrics"})  # off by default and served to this instance only: never via IAP


def _require_iap() -> None:
    if request.endpoint not in SELF_GUARDED_ENDPOINTS:
        current_learner()


def _set_cookie(response):
    identified: Identified | None = g.get(_IDENTIFIED)
    if identified is None or identified.learner.kind != "anonymous":
        return response
    services = _services()
    value = identified.set_cookie
    if value is None and g.get(_REFRESH):
        value = services.authenticator.anonymous.cookie_for(identified.learner, now=time.time())
    if value is not None:
        attributes = services.authenticator.anonymous.cookie_attributes(
            public_scheme=public_scheme(services.settings.trust_forwarded_for))
        response.set_cookie(AnonymousLearners.COOKIE_NAME, value, **attributes)
        response.headers.add("Vary", "Cookie")
    return response
