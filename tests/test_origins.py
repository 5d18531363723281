"""livetalk.origins: the Origin check for sockets, and the client address that limits count by."""
from __future__ import annotations

import pytest

from livetalk.origins import client_ip, limit_key, origin_allowed


# --- origins -------------------------------------------------------------------------------

HOST = "http://relay.example.com/"


@pytest.mark.parametrize(
    ("origin", "host_url", "allowed", "proto", "expected"),
    [
        ("http://relay.example.com", HOST, (), None, True),
        ("http://RELAY.example.com:80", HOST, (), None, True),
        ("http://evil.example.net", HOST, (), None, False),
        ("http://relay.example.com.evil.net", HOST, (), None, False),
        ("https://relay.example.com", HOST, (), None, False),  # scheme differs without the proxy's word
        ("https://relay.example.com", HOST, (), "https", True),  # Cloud Run terminates TLS
        ("https://relay.example.com", HOST, (), "https,http", True),
        ("http://relay.example.com:8080", "http://relay.example.com:8080/", (), None, True),
        ("http://relay.example.com:8081", "http://relay.example.com:8080/", (), None, False),
        ("null", HOST, (), None, False),
        ("not a url", HOST, (), None, False),
        ("http://relay.example.com:99999", HOST, (), None, False),
        (None, HOST, (), None, True),  # a non-browser client in same-origin mode
        ("", HOST, (), None, True),
        ("https://app.example.org", HOST, ("https://app.example.org",), None, True),
        ("https://app.example.org:443", HOST, ("https://app.example.org",), None, True),
        ("https://APP.example.org", HOST, ("https://app.example.org/",), None, True),
        ("http://app.example.org", HOST, ("https://app.example.org",), None, False),
        ("http://relay.example.com", HOST, ("https://app.example.org",), None, False),  # strict: own host too
        (None, HOST, ("https://app.example.org",), None, False),  # strict: no Origin, no entry
    ],
)
def test_origin_allowed_table(origin, host_url, allowed, proto, expected):
    """Same-origin by default, only the allowlist when one is set, a missing Origin only in the default mode."""
    assert origin_allowed(origin, host_url, allowed, forwarded_proto=proto) is expected


def test_missing_origin_can_be_decided_explicitly():
    """``allow_missing`` overrides the mode's default for a request without Origin."""
    assert origin_allowed(None, HOST, ("https://a.example",), allow_missing=True) is True
    assert origin_allowed(None, HOST, (), allow_missing=False) is False


# --- client addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "xff", "hops", "expected"),
    [
        ("169.254.1.1", "203.0.113.9", 0, "169.254.1.1"),  # untrusted: header ignored
        ("169.254.1.1", None, 1, "169.254.1.1"),
        ("169.254.1.1", "203.0.113.9", 1, "203.0.113.9"),  # Cloud Run appends the client
        ("169.254.1.1", "6.6.6.6, 203.0.113.9", 1, "203.0.113.9"),  # spoofed entry on the left
        ("169.254.1.1", "6.6.6.6, 203.0.113.9, 10.0.0.2", 2, "203.0.113.9"),  # LB in front
        ("169.254.1.1", "203.0.113.9", 2, "169.254.1.1"),  # shorter than configured
        ("169.254.1.1", "6.6.6.6, not-an-ip", 1, "169.254.1.1"),
        ("169.254.1.1", "2001:DB8::1", 1, "2001:db8::1"),
        ("169.254.1.1", "[2001:db8::1]:443", 1, "2001:db8::1"),
        ("169.254.1.1", "203.0.113.9:51234", 1, "203.0.113.9"),
        (None, None, 0, "unknown"),
    ],
)
def test_client_ip_table(remote, xff, hops, expected):
    """Only the entries appended by trusted proxies count; anything odd falls back to the peer."""
    assert client_ip(remote, xff, hops) == expected


def test_limit_key_groups_an_ipv6_subscriber():
    """IPv6 addresses count per /64; IPv4 (also mapped) per address."""
    assert limit_key("2001:db8:1:2:aaaa::1") == limit_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert limit_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert limit_key("203.0.113.9") == "203.0.113.9"
    assert limit_key("unknown") == "unknown"
