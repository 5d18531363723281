"""Who is calling: the learner behind a request, anonymous or asserted by Identity-Aware Proxy.

Two modes (``AUTH_MODE``, see :class:`AuthMode`):

* **anonymous** (default): a learner is a random id (``a-`` + 32 hex) carried in
  a signed, HttpOnly cookie (:class:`AnonymousLearners`). A request without a
  valid cookie is a new learner, and gets a cookie.
* **iap**: Cloud Run behind Identity-Aware Proxy. IAP signs the Google identity
  into ``X-Goog-IAP-JWT-Assertion`` (an ES256 JWT); :class:`IapVerifier` checks
  it with google-auth against IAP's public key set, which it fetches over HTTP
  and caches. The learner id is a hash of the stable ``sub`` claim (``i-`` + 32
  hex), the email comes from the ``email`` claim.

Either way the id is safe as one segment of a storage key. Pure except for the
key-set fetch, which happens on first use, never in a constructor. Neither an
assertion nor a cookie value ever appears in an error message or a log line.

Exceptions::

    ValueError
     └── signing.TokenError
          └── IapError    an IAP assertion was refused; ``.reason`` says why (each means 401,
                          except ``keys_unavailable``: the server cannot check, 503)
"""
from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import http
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Final, Literal

import google.auth.transport
import google.auth.transport.requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import exceptions as google_exceptions
from google.auth import jwt

from .signing import LEARNER_TTL_S, LearnerCookieError, TokenError, TokenSigner

log = logging.getLogger("livetalk.identity")

Clock = Callable[[], float]
LearnerKind = Literal["anonymous", "iap"]

MAX_LEARNER_ID_CHARS: Final = 128
_LEARNER_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,%d}" % MAX_LEARNER_ID_CHARS)
ANONYMOUS_PREFIX: Final = "a-"
IAP_PREFIX: Final = "i-"
LEARNER_ID_HEX_CHARS: Final = 32  # 128 bits after the prefix

IAP_HEADER: Final = "X-Goog-IAP-JWT-Assertion"
IAP_KEYS_URL: Final = "https://www.gstatic.com/iap/verify/public_key-jwk"
IAP_ISSUER: Final = "https://cloud.google.com/iap"
IAP_ALGORITHM: Final = "ES256"
MAX_ASSERTION_CHARS: Final = 8192  # IAP's assertions are about 1 KB
IAP_LEEWAY_S: Final = 30  # clock skew tolerated on `iat` and `exp`
KEYS_REFETCH_INTERVAL_S: Final = 30.0  # at most one key-set fetch per interval, whatever arrives
KEYS_MAX_AGE_S: Final = 3600.0  # refresh a key set this old (it is kept if the refresh fails)
KEYS_FETCH_TIMEOUT_S: Final = 5.0
_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_IAP_SUBJECT_LABEL: Final = b"livetalk iap subject\x00"


class AuthMode(enum.Enum):
    """How learners are identified (``AUTH_MODE``)."""

    ANONYMOUS = "anonymous"
    IAP = "iap"


@dataclasses.dataclass(frozen=True)
class Learner:
    """One learner: ``id`` is letters, digits, ``-`` and ``_`` (at most 128), safe as a storage key segment."""

    id: str
    kind: LearnerKind
    email: str | None = None

    def __post_init__(self) -> None:
        if not _LEARNER_ID.fullmatch(self.id):
            raise ValueError("a learner id is 1-128 letters, digits, '-' or '_'")
        if self.kind not in ("anonymous", "iap"):
            raise ValueError(f"unknown learner kind {self.kind!r}")


def is_admin(learner: Learner, admin_emails: Iterable[str]) -> bool:
    """Whether ``learner`` is an administrator: an IAP learner whose email is listed (any case)."""
    if learner.kind != "iap" or not learner.email:
        return False
    return learner.email.casefold() in {email.strip().casefold() for email in admin_emails}


# --- anonymous learners ------------------------------------------------------------------


class AnonymousLearners:
    """Anonymous learners: a random id in a signed cookie, valid ``ttl_s`` seconds (default 400 days).

    Re-set the cookie (:meth:`cookie_for`) when the page loads, so a learner who
    keeps coming back keeps the same id.
    """

    COOKIE_NAME: ClassVar[str] = "livetalk_learner"

    def __init__(self, signer: TokenSigner, *, ttl_s: float = LEARNER_TTL_S) -> None:
        if not 0 < ttl_s <= LEARNER_TTL_S:
            raise ValueError("ttl_s must be positive and at most 400 days (browsers cap Max-Age there)")
        self._signer = signer
        self.ttl_s = ttl_s

    def issue(self, *, now: float) -> tuple[Learner, str]:
        """A new learner and the cookie value naming it, minted at ``now`` (epoch seconds)."""
        learner = Learner(ANONYMOUS_PREFIX + secrets.token_hex(LEARNER_ID_HEX_CHARS // 2), "anonymous")
        return learner, self.cookie_for(learner, now=now)

    def cookie_for(self, learner: Learner, *, now: float) -> str:
        """A fresh cookie value for an anonymous ``learner``, valid ``ttl_s`` after ``now``."""
        if learner.kind != "anonymous":
            raise ValueError("only anonymous learners live in a cookie")
        return self._signer.mint_learner(learner.id, now=now, ttl_s=self.ttl_s)

    def read(self, cookie: str | None, *, now: float) -> Learner | None:
        """The learner a cookie value names at ``now`` (epoch seconds); None if missing, tampered or expired."""
        try:
            learner_id = self._signer.verify_learner(cookie, now=now)
        except LearnerCookieError:
            return None
        if not (learner_id.startswith(ANONYMOUS_PREFIX) and _LEARNER_ID.fullmatch(learner_id)):
            return None
        return Learner(learner_id, "anonymous")

    def cookie_attributes(self, *, public_scheme: str) -> dict[str, Any]:
        """Keyword arguments for werkzeug's ``set_cookie`` (``max_age`` in seconds).

        HttpOnly (no script reads it), SameSite=Lax (not sent on cross-site
        subrequests), Secure when the public scheme (after a trusted proxy's
        ``X-Forwarded-Proto``) is https.
        """
        return {
            "max_age": int(self.ttl_s),
            "path": "/",
            "secure": public_scheme.strip().lower() == "https",
            "httponly": True,
            "samesite": "Lax",
        }


# --- Identity-Aware Proxy ----------------------------------------------------------------


class IapError(TokenError):
    """An IAP assertion was refused; ``reason`` is one of :attr:`REASONS`.

    ``expired`` covers the whole validity window: past ``exp``, or ``iat`` in
    the future, each beyond the leeway.
    """

    LABEL = "IAP assertion"
    REASONS = ("missing", "malformed", "unsigned", "forged", "expired",
               "wrong_audience", "wrong_issuer", "keys_unavailable")


class _KeysUnavailable(Exception):
    """The key set could not be fetched or held no usable key (message: why, for the log)."""


def iap_learner_id(subject: str) -> str:
    """The learner id for an IAP ``sub`` claim: stable, key-safe, and not the subject itself."""
    digest = hashlib.sha256(_IAP_SUBJECT_LABEL + subject.encode("utf-8")).hexdigest()
    return IAP_PREFIX + digest[:LEARNER_ID_HEX_CHARS]


class IapVerifier:
    """Verifies IAP's ``X-Goog-IAP-JWT-Assertion`` and names the learner it asserts. Thread-safe.

    The signature (ES256) and the time window are checked by google-auth's
    :func:`google.auth.jwt.decode` against the key named by the token's ``kid``;
    issuer and audience here. The key set at ``keys_url`` is fetched on first
    use with google-auth's HTTP transport and cached: an unknown ``kid`` (IAP
    rotated its keys) or a set older than ``max_key_age_s`` triggers a refetch,
    but never more than one per ``refetch_interval_s`` seconds (``clock``), so a
    stream of made-up ``kid`` values cannot turn into a stream of fetches. A
    failed refresh keeps the keys already held.

    Args:
        audience: ``IAP_AUDIENCE``, e.g. ``/projects/123/global/backendServices/456``.
        keys_url: the JWK set (``IAP_KEYS_URL``).
        issuer: the ``iss`` an assertion must carry.
        leeway_s: clock skew tolerated on ``iat`` and ``exp``, seconds.
        refetch_interval_s: least time between two fetch attempts, seconds.
        max_key_age_s: age after which a key set is refreshed, seconds.
        fetch_timeout_s: timeout of one fetch, seconds.
        request: a google-auth transport; by default one over ``requests``, made on first fetch.
        clock: monotonic seconds, for the fetch schedule.
    """

    def __init__(
        self,
        *,
        audience: str,
        keys_url: str = IAP_KEYS_URL,
        issuer: str = IAP_ISSUER,
        leeway_s: int = IAP_LEEWAY_S,
        refetch_interval_s: float = KEYS_REFETCH_INTERVAL_S,
        max_key_age_s: float = KEYS_MAX_AGE_S,
        fetch_timeout_s: float = KEYS_FETCH_TIMEOUT_S,
        request: google.auth.transport.Request | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if not audience or not audience.strip():
            raise ValueError("IAP_AUDIENCE is required with AUTH_MODE=iap")
        self.audience = audience.strip()
        self.keys_url = keys_url
        self.issuer = issuer
        self.leeway_s = leeway_s
        self.refetch_interval_s = refetch_interval_s
        self.max_key_age_s = max_key_age_s
        self.fetch_timeout_s = fetch_timeout_s
        self._request = request
        self._clock = clock
        self._lock = threading.Lock()  # one fetch at a time; readers of a fresh set never wait
        self._keys: Mapping[str, str] = {}  # kid -> PEM public key; replaced whole, never mutated
        self._fetched_at: float | None = None  # clock time of the last successful fetch
        self._attempted_at: float | None = None  # clock time of the last fetch attempt
        self._last_fetch_failed = False

    def learner(self, assertion: str | None) -> Learner:
        """The learner an assertion names, or :class:`IapError`."""
        claims = self.verify(assertion)
        email = claims.get("email")
        return Learner(iap_learner_id(claims["sub"]), "iap", email if isinstance(email, str) and email else None)

    def verify(self, assertion: str | None) -> Mapping[str, Any]:
        """The claims of a genuine, current assertion for this audience, or :class:`IapError`.

        Checks in this order: present, well formed, signed, genuine, within its
        time window, from IAP, for this audience.
        """
        kid = _unverified_key_id(assertion)
        claims = self._decode(assertion, kid, self._key(kid))
        if claims.get("iss") != self.issuer:
            raise IapError("wrong_issuer")
        audience = claims.get("aud")
        if self.audience not in (audience if isinstance(audience, list) else [audience]):
            raise IapError("wrong_audience")
        return claims

    def _decode(self, assertion: str, kid: str, key: str) -> Mapping[str, Any]:
        try:
            return jwt.decode(assertion, certs={kid: key}, clock_skew_in_seconds=self.leeway_s)
        except google_exceptions.InvalidValue:
            # Algorithm and key type were settled before; google-auth says InvalidValue after a
            # good signature only for the time window.
            raise IapError("expired") from None
        except (google_exceptions.GoogleAuthError, ValueError, TypeError):
            raise IapError("forged") from None

    # --- the key set --------------------------------------------------------------------

    def _key(self, kid: str) -> str:
        """The PEM public key for ``kid``, refreshing the set when due and allowed."""
        keys = self._keys
        if kid not in keys or self._stale():
            keys = self._refresh(kid)
        if kid in keys:
            return keys[kid]
        raise IapError("keys_unavailable" if self._last_fetch_failed else "forged")

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self.max_key_age_s

    def _refresh(self, kid: str) -> Mapping[str, str]:
        """The key set after at most one fetch; none when another thread just did it or one was too recent."""
        with self._lock:
            if kid in self._keys and not self._stale():
                return self._keys
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self.refetch_interval_s:
                return self._keys
            self._attempted_at = now
            try:
                self._keys = self._fetch()
            except _KeysUnavailable as exc:
                self._last_fetch_failed = True
                log.warning("IAP key set unavailable from %s: %s", self.keys_url, exc)
            else:
                self._fetched_at, self._last_fetch_failed = now, False
                log.info("IAP key set fetched from %s: %d keys", self.keys_url, len(self._keys))
            return self._keys

    def _fetch(self) -> dict[str, str]:
        if self._request is None:
            self._request = google.auth.transport.requests.Request()
        try:
            response = self._request(self.keys_url, method="GET", timeout=self.fetch_timeout_s)
        except google_exceptions.TransportError as exc:
            raise _KeysUnavailable(type(exc).__name__) from None
        if response.status != http.HTTPStatus.OK:
            raise _KeysUnavailable(f"HTTP {response.status}")
        try:
            keys = _es256_keys(json.loads(response.data))
        except ValueError:
            raise _KeysUnavailable("not a JSON document") from None
        if not keys:
            raise _KeysUnavailable("no ES256 key in the set")
        return keys


def _unverified_key_id(assertion: str | None) -> str:
    """The ``kid`` of a well-formed, signed ES256 assertion (nothing verified yet), or :class:`IapError`."""
    if not assertion:
        raise IapError("missing")
    if len(assertion) > MAX_ASSERTION_CHARS or not _JWT_SHAPE.fullmatch(assertion):
        raise IapError("malformed")
    try:
        header = jwt.decode_header(assertion)
        claims = jwt.decode(assertion, verify=False)
    except (google_exceptions.GoogleAuthError, ValueError):
        raise IapError("malformed") from None
    algorithm = header.get("alg")
    if not algorithm or str(algorithm).lower() == "none" or assertion.endswith("."):
        raise IapError("unsigned")
    if algorithm != IAP_ALGORITHM:
        raise IapError("forged")  # IAP signs with ES256 only; anything else is not IAP's
    kid = header.get("kid")
    texts_ok = all(isinstance(value, str) and value for value in (kid, claims.get("sub")))
    times_ok = all(type(claims.get(name)) in (int, float) for name in ("iat", "exp"))
    if not (texts_ok and times_ok):
        raise IapError("malformed")
    return kid


def _es256_keys(document: Any) -> dict[str, str]:
    """``kid`` → PEM public key for each usable P-256 signing key of a JWK set; others skipped."""
    found: dict[str, str] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    for jwk in entries if isinstance(entries, list) else ():
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if (jwk.get("kty"), jwk.get("crv"), jwk.get("alg", IAP_ALGORITHM), jwk.get("use", "sig")) != (
                "EC", "P-256", IAP_ALGORITHM, "sig"):
            continue
        try:
            numbers = ec.EllipticCurvePublicNumbers(_b64_int(jwk["x"]), _b64_int(jwk["y"]), ec.SECP256R1())
            key = numbers.public_key()
        except (KeyError, TypeError, ValueError):
            continue  # not a point on the curve, or not base64url
        found[jwk["kid"]] = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
    return found


def _b64_int(text: str) -> int:
    """A JWK coordinate: unpadded base64url, big-endian."""
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


# --- one entry point for the web layer ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Identified:
    """The caller of one request, and the learner cookie to set (anonymous newcomers only)."""

    learner: Learner
    set_cookie: str | None = None


class Authenticator:
    """Names the caller of a request in the configured :class:`AuthMode`.

    Anonymous: the cookie's learner, else a new one (with the cookie to set),
    so client apps that never load the page keep working. IAP: the asserted
    learner, else :class:`IapError`.
    """

    def __init__(self, *, mode: AuthMode, anonymous: AnonymousLearners, iap: IapVerifier | None = None) -> None:
        if mode is AuthMode.IAP and iap is None:
            raise ValueError("AUTH_MODE=iap needs an IapVerifier")
        self.mode = mode
        self.anonymous = anonymous
        self.iap = iap

    def identify(self, *, cookie: str | None, iap_assertion: str | None, now: float) -> Identified:
        """The caller of a request carrying ``cookie`` and ``iap_assertion`` at ``now`` (epoch seconds)."""
        if self.mode is AuthMode.IAP:
            return self._on_iap(iap_assertion)
        return self._on_anonymous(cookie, now)

    def _on_iap(self, assertion: str | None) -> Identified:
        assert self.iap is not None
        return Identified(self.iap.learner(assertion))

    def _on_anonymous(self, cookie: str | None, now: float) -> Identified:
        learner = self.anonymous.read(cookie, now=now)
        if learner is not None:
            return Identified(learner)
        learner, value = self.anonymous.issue(now=now)
        return Identified(learner, value)
