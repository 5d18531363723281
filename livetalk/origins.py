"""Who is asking, and from where: the Origin check for sockets and the client address for limits. Pure.

No sockets, no Flask, no environment reads: the web layer passes in the request's headers and the settings.
"""
from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

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
