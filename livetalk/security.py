"""Security building blocks the web layer calls: origins, tickets, client IPs, limits, headers.

Everything here is pure: no sockets, no Flask, no environment reads. Time comes
from an injected ``clock`` (``time.monotonic`` by default) or an explicit ``now``
argument, so the tests drive it by hand. Objects shared between request threads
(:class:`RateLimiter`, :class:`ConcurrencyLimiter`, :class:`CapacityLimiter`,
:class:`SocketGate`) take a lock around every change.

The contract's refusal codes live in :data:`REFUSALS`: each code with its
WebSocket close code and its HTTP status, so the socket route and the HTTP
routes refuse the same thing the same way.

Exceptions::

    ValueError
     └── TicketError      a relay access ticket was refused; ``.reason`` says why
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import math
import secrets as _secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit

from .protocol import Close, ErrorCode

if TYPE_CHECKING:
    from .config import Settings

Clock = Callable[[], float]

REDACTED: Final = "[REDACTED]"
MIN_SECRET_CHARS: Final = 6  # shorter "secrets" would scrub ordinary words out of logs

# --- refusals: contract code → (WebSocket close code, HTTP status) -----------------------


@dataclasses.dataclass(frozen=True)
class Refusal:
    """How one contract error code is delivered: over a socket and over HTTP."""

    code: ErrorCode
    close: Close  # WebSocket close code after the fatal `error` event
    http_status: int  # status for the same refusal on an HTTP route
    message: str  # plain-language default for the client


REFUSALS: Final[dict[ErrorCode, Refusal]] = {
    r.code: r
    for r in (
        Refusal(ErrorCode.FORBIDDEN_ORIGIN, Close.POLICY, 403,
                "This page's origin may not open a conversation."),
        Refusal(ErrorCode.UNAUTHORIZED, Close.POLICY, 401,
                "A valid access ticket is required; request a new one."),
        # A per-client limit is policy (1008); 1013 is kept for "this server is full".
        Refusal(ErrorCode.RATE_LIMITED, Close.POLICY, 429,
                "Too many conversations from your network; wait a minute."),
        Refusal(ErrorCode.CAPACITY, Close.TRY_AGAIN_LATER, 503,
                "The server is full; try again in a moment."),
        Refusal(ErrorCode.TOO_LARGE, Close.TOO_BIG, 413,
                "The request is larger than the server accepts."),
    )
}


# --- origins ------------------------------------------------------------------------------

_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_allowed(
    origin: str | None,
    host_url: str,
    allowed: tuple[str, ...],
    *,
    forwarded_proto: str | None = None,
    allow_missing: bool | None = None,
) -> bool:
    """Whether a request (above all a WebSocket upgrade) from ``origin`` may proceed.

    Two modes:

    * **Same-origin** (``allowed`` empty, the default): the Origin's scheme, host
      and port must equal the request's own (``host_url``, e.g. Flask's
      ``request.host_url``). Behind a TLS-terminating proxy the request arrives
      as ``http``; pass the proxy's ``X-Forwarded-Proto`` as ``forwarded_proto``
      (only when that header is trusted) to compare against the public scheme.
    * **Strict allowlist** (``allowed`` non-empty): only the listed origins pass,
      not even the request's own host. This also defeats DNS rebinding, where a
      hostile name resolves to this server and so looks "same-origin".

    A missing ``Origin``: browsers always send one on a WebSocket upgrade, so a
    request without it is not a browser acting for a visitor of another site; it
    is a script or a native client, which an Origin check cannot stop anyway
    (it could forge the header). Decision: allowed in same-origin mode (the
    original client apps keep working), refused in strict mode, where the
    operator has said exactly who may connect. ``allow_missing`` overrides this.
    The literal ``null`` origin (sandboxed frames, ``file:``) is never allowed.
    """
    if not origin:
        return (not allowed) if allow_missing is None else allow_missing
    key = _origin_key(origin)
    if key is None:
        return False
    if allowed:
        return key in {_origin_key(entry) for entry in allowed}
    own_url = host_url
    if forwarded_proto:
        scheme = forwarded_proto.split(",")[0].strip().lower()
        own_url = scheme + "://" + host_url.split("://", 1)[-1]
    return key == _origin_key(own_url)


def _origin_key(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of ``url`` with default ports filled in; None if unusable."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port out of range or not a number
        return None
    if not host or port is None:
        return None
    # A ws:// socket belongs to the http:// page on the same host (and wss to https).
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return scheme, host, port


# --- relay access tickets ----------------------------------------------------------------

TICKET_VERSION: Final = 1
TICKET_NONCE_BYTES: Final = 12
TICKET_MAC_BYTES: Final = 32  # full HMAC-SHA256 tag
TICKET_MAX_CHARS: Final = 512  # anything longer is malformed before any decoding work
_TICKET_HEADER: Final = struct.Struct(">BQ")  # version, expiry in epoch milliseconds
_TICKET_LABEL: Final = b"livetalk relay ticket\x00"  # domain separation for the MAC


class TicketError(ValueError):
    """A relay access ticket was refused; ``reason`` is one of :attr:`REASONS`."""

    REASONS: Final = ("missing", "malformed", "forged", "expired", "wrong-scenario")

    def __init__(self, reason: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown ticket error reason {reason!r}")
        super().__init__(f"ticket refused: {reason}")
        self.reason = reason


def ticket_key(configured: str | None) -> bytes:
    """The HMAC key for tickets: derived from ``configured`` (``TICKET_SECRET``), else random.

    A random key lives only as long as this process, so a ticket minted by one
    process is refused ("forged") by every other: another Cloud Run instance, or
    another gunicorn worker of the same instance. With ``REQUIRE_TICKET`` on and
    more than one process, configure ``TICKET_SECRET`` (the deploy workflow takes
    it from Secret Manager), or set it in the gunicorn master before workers fork.
    """
    if configured:
        return hashlib.sha256(b"livetalk ticket key\x00" + configured.encode()).digest()
    return _secrets.token_bytes(32)


def mint_ticket(secret: bytes, scenario: str, ttl_s: float, now: float) -> tuple[str, float]:
    """A signed ticket for ``scenario``, valid ``ttl_s`` seconds from ``now`` (epoch seconds).

    Returns ``(token, expires_at)`` with ``expires_at`` in epoch seconds. The token
    is URL-safe base64 of version, expiry, a random nonce and the scenario id,
    then ``.`` and the base64url HMAC-SHA256 tag over all of it.
    """
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    expires_ms = int((now + ttl_s) * 1000)
    body = (
        _TICKET_HEADER.pack(TICKET_VERSION, expires_ms)
        + _secrets.token_bytes(TICKET_NONCE_BYTES)
        + scenario.encode("utf-8")
    )
    token = _b64encode(body) + "." + _b64encode(_ticket_mac(secret, body))
    return token, expires_ms / 1000


def verify_ticket(secret: bytes, token: str | None, scenario: str, now: float) -> None:
    """Accept ``token`` for ``scenario`` at ``now`` (epoch seconds) or raise :class:`TicketError`.

    Checks in this order: present, well formed, genuine (constant-time MAC
    compare), unexpired, for this scenario. Pass the resolved scenario id (the
    default scenario's id when the client named none), as it was at minting.
    """
    if not token:
        raise TicketError("missing")
    body, tag = _split_ticket(token)
    if not hmac.compare_digest(tag, _ticket_mac(secret, body)):
        raise TicketError("forged")
    version, expires_ms = _TICKET_HEADER.unpack_from(body)
    if version != TICKET_VERSION:
        raise TicketError("malformed")  # only reachable with a future key reused
    if now * 1000 >= expires_ms:
        raise TicketError("expired")
    bound = body[_TICKET_HEADER.size + TICKET_NONCE_BYTES :]
    if not hmac.compare_digest(bound, scenario.encode("utf-8")):
        raise TicketError("wrong-scenario")


def _split_ticket(token: str) -> tuple[bytes, bytes]:
    """``(body, tag)`` of a token, or :class:`TicketError` ``malformed``."""
    if len(token) > TICKET_MAX_CHARS or token.count(".") != 1:
        raise TicketError("malformed")
    body_text, tag_text = token.split(".")
    try:
        body, tag = _b64decode(body_text), _b64decode(tag_text)
    except ValueError:
        raise TicketError("malformed") from None
    if len(tag) != TICKET_MAC_BYTES or len(body) < _TICKET_HEADER.size + TICKET_NONCE_BYTES:
        raise TicketError("malformed")
    return body, tag


def _ticket_mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, _TICKET_LABEL + body, hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict unpadded base64url; ValueError on anything else."""
    if not text or len(text) % 4 == 1:
        raise ValueError("bad base64 length")
    data = text.encode("ascii")  # UnicodeEncodeError is a ValueError
    # validate=True rejects characters outside the alphabet instead of skipping them.
    return base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True)


# --- client addresses --------------------------------------------------------------------


def client_ip(remote_addr: str | None, x_forwarded_for: str | None, trusted_hops: int) -> str:
    """The address of the client, for rate limits and logs.

    Each trusted proxy appends the address it received the request from to
    ``X-Forwarded-For``; whatever stands left of that was written by the client
    and proves nothing. So with ``trusted_hops`` proxies in front (Cloud Run: 1)
    the client is the ``trusted_hops``-th entry from the right. With 0 the
    header is ignored. A header shorter than expected, or an entry that is not an
    IP address, falls back to ``remote_addr``; with no address at all the result
    is ``"unknown"``.
    """
    fallback = _normalise_ip(remote_addr) or remote_addr or "unknown"
    if trusted_hops <= 0 or not x_forwarded_for:
        return fallback
    entries = [entry.strip() for entry in x_forwarded_for.split(",")]
    if len(entries) < trusted_hops:
        return fallback
    return _normalise_ip(entries[-trusted_hops]) or fallback


def limit_key(ip: str) -> str:
    """The key a per-client limit counts under: the address, or its /64 for IPv6.

    One IPv6 subscriber usually holds a whole /64, so counting single addresses
    would let one client take a fresh limit per address.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _normalise_ip(value: str | None) -> str | None:
    """``value`` as a canonical IP address string, or None when it is not one."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.9:51234"
        text = text.split(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


# --- limits ------------------------------------------------------------------------------

DEFAULT_MAX_KEYS: Final = 10_000  # distinct clients a limiter remembers at once
_PRUNE_EVERY: Final = 256  # calls between sweeps for idle keys


class RateLimiter:
    """At most ``limit`` events per ``window_s`` seconds for each key (a token bucket).

    A key starts with ``limit`` tokens (a burst); each event takes one; tokens
    come back at ``limit / window_s`` per second up to ``limit``. Keys that have
    refilled completely carry no information and are dropped; past ``max_keys``
    live keys the least recently seen key is forgotten (it gets a fresh bucket),
    so memory stays bounded however many addresses a flood uses.
    """

    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        *,
        clock: Clock = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if limit < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._rate = limit / window_s  # tokens per second
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()
        self._calls = 0

    def allow(self, key: str) -> bool:
        """Take one event for ``key``; False (and nothing taken) when over the limit."""
        with self._lock:
            now = self._clock()
            tokens = self._tokens(key, now)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            self._buckets.move_to_end(key)
            self._housekeep(now)
            return allowed

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may have its next event (0 when it may now)."""
        with self._lock:
            missing = 1.0 - self._tokens(key, self._clock())
            return math.ceil(missing / self._rate) if missing > 0 else 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.limit), now))
        return min(float(self.limit), tokens + (now - at) * self._rate)

    def _housekeep(self, now: float) -> None:
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0 or len(self._buckets) > self._max_keys:
            full = [k for k in self._buckets if self._tokens(k, now) >= self.limit]
            for key in full:
                del self._buckets[key]
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


class ConcurrencyLimiter:
    """At most ``limit`` simultaneous holders per key (e.g. open sockets per client).

    Only keys with a holder are stored, so memory follows the open connections.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        """Take a slot for ``key``; False (nothing taken) when it already holds ``limit``."""
        with self._lock:
            held = self._counts.get(key, 0)
            if held >= self.limit:
                return False
            self._counts[key] = held + 1
            return True

    def release(self, key: str) -> None:
        """Give back one slot of ``key``; releasing a key that holds none does nothing."""
        with self._lock:
            held = self._counts.get(key, 0)
            if held <= 1:
                self._counts.pop(key, None)
            else:
                self._counts[key] = held - 1

    def held(self, key: str) -> int:
        """How many slots ``key`` holds now."""
        with self._lock:
            return self._counts.get(key, 0)


class CapacityLimiter:
    """A process-wide cap: at most ``limit`` holders in total (concurrent conversations)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._in_use = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a slot; False (nothing taken) when all ``limit`` are in use."""
        with self._lock:
            if self._in_use >= self.limit:
                return False
            self._in_use += 1
            return True

    def release(self) -> None:
        """Give back a slot; never goes below zero."""
        with self._lock:
            self._in_use = max(0, self._in_use - 1)

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._in_use


class SocketGate:
    """The admission checks for one new conversation socket, in the order they apply.

    ``admit(ip)`` checks, per client (:func:`limit_key` of ``ip``): new sockets
    per minute, then concurrent sockets; then the process-wide capacity. It
    returns None and holds a per-client slot and a capacity slot (give both back
    with ``release(ip)`` exactly once, in a ``finally``), or the :class:`Refusal`
    to send, holding nothing. A refused attempt still counts toward the
    per-minute rate, so hammering a full server does not pay off.
    """

    def __init__(
        self,
        *,
        new_per_min: int,
        concurrent_per_ip: int,
        capacity: int,
        clock: Clock = time.monotonic,
    ) -> None:
        self.new_sockets = RateLimiter(new_per_min, 60.0, clock=clock)
        self.per_ip = ConcurrencyLimiter(concurrent_per_ip)
        self.capacity = CapacityLimiter(capacity)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = time.monotonic) -> SocketGate:
        """The gate for ``NEW_SOCKETS_PER_IP_PER_MINUTE``, ``MAX_SOCKETS_PER_IP``, ``MAX_SESSIONS``."""
        return cls(
            new_per_min=settings.new_sockets_per_ip_per_min,
            concurrent_per_ip=settings.max_sockets_per_ip,
            capacity=settings.max_sessions,
            clock=clock,
        )

    def admit(self, ip: str) -> Refusal | None:
        key = limit_key(ip)
        if not self.new_sockets.allow(key) or not self.per_ip.acquire(key):
            return REFUSALS[ErrorCode.RATE_LIMITED]
        if not self.capacity.acquire():
            self.per_ip.release(key)
            return REFUSALS[ErrorCode.CAPACITY]
        return None

    def release(self, ip: str) -> None:
        self.per_ip.release(limit_key(ip))
        self.capacity.release()


# --- response headers --------------------------------------------------------------------

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


def content_security_policy(nonce: str | None = None) -> str:
    """The page's CSP: only this origin's files, no inline code (a ``nonce`` may admit one script)."""
    parts = []
    for name, sources in _CSP_DIRECTIVES:
        if name == "script-src" and nonce:
            sources = f"{sources} 'nonce-{nonce}'"
        parts.append(f"{name} {sources}")
    return "; ".join(parts)


def security_headers(nonce: str | None = None) -> dict[str, str]:
    """Headers for every response (set them in an ``after_request`` hook)."""
    return {
        "Content-Security-Policy": content_security_policy(nonce),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


# --- scrubbing ---------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret (and its URL-quoted form) replaced.

    Values shorter than :data:`MIN_SECRET_CHARS` and None are ignored.
    """
    for secret in _usable(secrets):
        text = text.replace(secret, REDACTED)
        quoted = quote(secret, safe="")
        if quoted != secret:
            text = text.replace(quoted, REDACTED)
    return text


def _usable(secrets: Iterable[str | None]) -> list[str]:
    """Secrets worth scrubbing, longest first (so one that contains another goes whole)."""
    found = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
    return sorted(found, key=len, reverse=True)

