"""livetalk.headers: the headers every response carries."""
from __future__ import annotations

from livetalk.headers import security_headers


def test_security_headers_forbid_inline_code_and_framing():
    """The CSP has no unsafe-inline/unsafe-eval, forbids framing and plugins; the usual headers are set."""
    headers = security_headers()
    csp = headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
                      "object-src 'none'", "base-uri 'none'", "connect-src 'self' ws: wss:",
                      "worker-src 'self' blob:", "media-src 'self' blob:"):
        assert directive in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "microphone=(self)" in headers["Permissions-Policy"]
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
