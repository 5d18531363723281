"""The response headers every page and API answer carries: a strict CSP and the usual hardening. Pure."""
from __future__ import annotations

from typing import Final

_CSP_DIRECTIVES: Final = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data:"),
    ("connect-src", "'self' ws: wss:"),
    ("media-src", "'self' blob:"),
    ("worker-src", "'self' blob:"),
    ("frame-ancestors", "'none'"),
    ("base-uri", "'none'"),
    ("form-action", "'self'"),
    ("object-src", "'none'"),
)


def content_security_policy() -> str:
    """The page's CSP: only this origin's files, no inline code."""
    return "; ".join(f"{name} {sources}" for name, sources in _CSP_DIRECTIVES)


def security_headers() -> dict[str, str]:
    """Headers for every response (set them in an ``after_request`` hook)."""
    return {
        "Content-Security-Policy": content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
