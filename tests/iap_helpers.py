"""An Identity-Aware Proxy stand-in: ES256 keys made per test, assertions signed like IAP's, the key set over HTTP.

Keys are generated at run time (nothing secret is committed); assertions are
signed with google-auth's own ES256 signer, and the JWK set is served by a real
HTTP server on an ephemeral port, so the verifier under test fetches it exactly
as it fetches Google's.
"""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import jwt
from google.auth.crypt import es

AUDIENCE = "/projects/123456789/global/backendServices/987654321"
ISSUER = "https://cloud.google.com/iap"
SUBJECT = "accounts.google.com:108765432109876543210"
EMAIL = "Learner@Example.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def iap_claims(now: float, **overrides: Any) -> dict[str, Any]:
    """The claims IAP puts in an assertion issued at ``now`` (epoch seconds), valid 10 minutes."""
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "email": EMAIL,
              "iat": int(now), "exp": int(now) + 600, "hd": "example.com"}
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


class IapKey:
    """One ES256 signing key, as IAP holds it, named ``kid``."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self._private = ec.generate_private_key(ec.SECP256R1())
        self._signer = es.EsSigner(self._private, key_id=kid)

    def jwk(self) -> dict[str, str]:
        """The public half as a JWK set entry, shaped like Google's."""
        numbers = self._private.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
                "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}

    def assertion(self, claims: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
        """A signed assertion (google-auth's ES256 signer) carrying ``claims``."""
        return jwt.encode(self._signer, claims, header=header).decode("ascii")


def unsigned_assertion(claims: dict[str, Any], *, kid: str, alg: str = "none") -> str:
    """An assertion with an empty signature, as an attacker would send it."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


class KeySetServer:
    """Serves a JWK set at ``/keys`` over HTTP on 127.0.0.1, counting the requests it receives.

    ``status`` other than 200 answers with that status; ``body`` replaces the
    document; while ``hold`` is clear, responses wait for it (to overlap callers).
    """

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.body: bytes | None = None
        self.hold = threading.Event()
        self.hold.set()
        self._lock = threading.Lock()
        self._requests = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="jwk-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/keys"

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def publish(self, *keys: IapKey) -> None:
        """Serve exactly these keys from now on."""
        self.document = {"keys": [key.jwk() for key in keys]}

    def start(self) -> KeySetServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.hold.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._requests += 1
        self.hold.wait()
        body = self.body if self.body is not None else json.dumps(self.document).encode()
        handler.send_response(self.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
                server._respond(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output clean

        return Handler


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def iap_key() -> IapKey:
    """IAP's current signing key."""
    return IapKey("FAKE-iap-key-1")


@pytest.fixture()
def key_server(iap_key: IapKey) -> Iterator[KeySetServer]:
    """A running JWK set server publishing ``iap_key``."""
    server = KeySetServer().start()
    server.publish(iap_key)
    yield server
    server.stop()


@pytest.fixture()
def iap_clock() -> ManualClock:
    """The monotonic clock the IAP verifier schedules its key fetches by."""
    return ManualClock()


@pytest.fixture()
def iap_verifier(key_server: KeySetServer, iap_clock: ManualClock):
    """A verifier for :data:`AUDIENCE` fetching from ``key_server``: refetch at most every 30 s, keys kept 1 h."""
    from livetalk.identity import IapVerifier

    return IapVerifier(audience=AUDIENCE, keys_url=key_server.url, refetch_interval_s=30.0,
                       max_key_age_s=3600.0, clock=iap_clock)
