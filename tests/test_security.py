"""livetalk.security: the origin check, relay tickets, client addresses, limits and headers."""
from __future__ import annotations

import threading

import pytest

from livetalk.config import Settings
from livetalk.security import (
    REDACTED,
    REFUSALS,
    CapacityLimiter,
    ConcurrencyLimiter,
    RateLimiter,
    SocketGate,
    TicketError,
    client_ip,
    content_security_policy,
    limit_key,
    mint_ticket,
    origin_allowed,
    redact,
    security_headers,
    ticket_key,
    verify_ticket,
)

FAKE_KEY = "FAKE-gemini-key-security-test-0123456789"
EPOCH = 1_800_000_000.0  # a fixed wall-clock instant for ticket tests


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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


# --- tickets -------------------------------------------------------------------------------

SECRET = ticket_key("ticket-secret-for-tests")


def test_a_fresh_ticket_verifies_for_its_scenario():
    """A ticket minted for a scenario is accepted for it until it expires."""
    token, expires_at = mint_ticket(SECRET, "job-interview", 120.0, EPOCH)
    assert expires_at == pytest.approx(EPOCH + 120.0)
    verify_ticket(SECRET, token, "job-interview", EPOCH + 119.0)


def test_tickets_are_compact_url_safe_and_unique():
    """Tokens fit in a query string unescaped, and two mints never give the same token (nonce)."""
    first, _ = mint_ticket(SECRET, "cafe", 60.0, EPOCH)
    second, _ = mint_ticket(SECRET, "cafe", 60.0, EPOCH)
    assert first != second
    assert len(first) < 120
    assert set(first) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def _tamper(token: str) -> str:
    body, tag = token.split(".")
    flipped = "A" if body[-2] != "A" else "B"
    return f"{body[:-2]}{flipped}{body[-1]}.{tag}"


def _valid(scenario: str = "cafe") -> str:
    return mint_ticket(SECRET, scenario, 60.0, EPOCH)[0]


@pytest.mark.parametrize(
    ("make_token", "scenario", "now", "reason"),
    [
        (lambda: None, "cafe", EPOCH, "missing"),
        (lambda: "", "cafe", EPOCH, "missing"),
        (lambda: "garbage", "cafe", EPOCH, "malformed"),
        (lambda: "a.b.c", "cafe", EPOCH, "malformed"),
        (lambda: "!!!!.????", "cafe", EPOCH, "malformed"),
        (lambda: "é" * 20 + ".abcd", "cafe", EPOCH, "malformed"),
        (lambda: _valid().split(".")[0] + ".AAAA", "cafe", EPOCH, "malformed"),  # short tag
        (lambda: "x" * 2000, "cafe", EPOCH, "malformed"),
        (lambda: _tamper(_valid()), "cafe", EPOCH, "forged"),
        (lambda: mint_ticket(ticket_key("another-secret"), "cafe", 60, EPOCH)[0], "cafe", EPOCH, "forged"),
        (lambda: _valid(), "cafe", EPOCH + 60.0, "expired"),
        (lambda: _valid(), "cafe", EPOCH + 3600.0, "expired"),
        (lambda: _valid("cafe"), "job-interview", EPOCH, "wrong-scenario"),
        (lambda: _valid("cafe"), "caf", EPOCH, "wrong-scenario"),
    ],
)
def test_verify_ticket_refusals(make_token, scenario, now, reason):
    """Each kind of bad ticket is refused with its own reason."""
    with pytest.raises(TicketError) as caught:
        verify_ticket(SECRET, make_token(), scenario, now)
    assert caught.value.reason == reason


def test_random_ticket_keys_differ_between_processes():
    """Without TICKET_SECRET each process has its own key, so tickets do not cross processes."""
    assert ticket_key(None) != ticket_key(None)
    assert ticket_key("same") == ticket_key("same")
    token, _ = mint_ticket(ticket_key(None), "cafe", 60.0, EPOCH)
    with pytest.raises(TicketError, match="forged"):
        verify_ticket(ticket_key(None), token, "cafe", EPOCH)


def test_ticket_rejects_nonpositive_ttl():
    """A ticket must live for some time."""
    with pytest.raises(ValueError):
        mint_ticket(SECRET, "cafe", 0, EPOCH)


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


# --- rate limiter --------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_refills_over_the_window():
    """30 per minute: 30 at once, the 31st refused, one more every 2 s, all 30 after a minute."""
    clock = FakeClock()
    limiter = RateLimiter(30, 60.0, clock=clock)
    assert all(limiter.allow("a") for _ in range(30))
    assert limiter.allow("a") is False
    assert limiter.retry_after("a") == 2
    clock.advance(1.9)
    assert limiter.allow("a") is False
    clock.advance(0.2)
    assert limiter.allow("a") is True
    assert limiter.allow("a") is False
    clock.advance(60.0)
    assert sum(limiter.allow("a") for _ in range(40)) == 30


def test_rate_limiter_keys_are_independent():
    """One client's flood does not limit another."""
    limiter = RateLimiter(2, 60.0, clock=FakeClock())
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b") is True
    assert limiter.retry_after("b") == 0


def test_rate_limiter_forgets_idle_keys_and_stays_bounded():
    """Fully refilled keys are pruned, and no more than max_keys are ever held."""
    clock = FakeClock()
    limiter = RateLimiter(5, 60.0, clock=clock, max_keys=100)
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}")
        assert len(limiter) <= 100
    clock.advance(61.0)
    for _ in range(256):  # enough calls to trigger a sweep
        limiter.allow("fresh")
    assert len(limiter) == 1


def test_rate_limiter_is_thread_safe():
    """Concurrent callers never get more than the limit between them."""
    limiter = RateLimiter(500, 3600.0)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [limiter.allow("shared") for _ in range(200)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 500


# --- concurrency and capacity --------------------------------------------------------------


def test_concurrency_limiter_counts_per_key_and_frees_on_release():
    """A key holds at most ``limit`` slots; releasing one lets the next in; stray releases are harmless."""
    limiter = ConcurrencyLimiter(2)
    assert limiter.acquire("a") and limiter.acquire("a")
    assert limiter.acquire("a") is False
    assert limiter.acquire("b") is True
    limiter.release("a")
    assert limiter.held("a") == 1
    assert limiter.acquire("a") is True
    limiter.release("zzz")
    for _ in range(5):
        limiter.release("b")
    assert limiter.held("b") == 0


def test_capacity_limiter_is_a_global_cap():
    """At most ``limit`` holders in total, whoever they are."""
    cap = CapacityLimiter(2)
    assert cap.acquire() and cap.acquire()
    assert cap.acquire() is False
    cap.release()
    assert cap.in_use == 1
    cap.release()
    cap.release()
    assert cap.in_use == 0


def test_socket_gate_refuses_with_contract_codes():
    """The gate answers rate_limited for one client's excess and capacity for a full server."""
    clock = FakeClock()
    gate = SocketGate(new_per_min=3, concurrent_per_ip=2, capacity=3, clock=clock)
    assert gate.admit("203.0.113.1") is None
    assert gate.admit("203.0.113.1") is None
    refused = gate.admit("203.0.113.1")  # third concurrent socket from one address
    assert (refused.code, refused.close, refused.http_status) == ("rate_limited", 1008, 429)
    assert gate.admit("203.0.113.2") is None
    full = gate.admit("203.0.113.3")
    assert (full.code, full.close, full.http_status) == ("capacity", 1013, 503)
    assert gate.per_ip.held("203.0.113.3") == 0  # a refusal holds nothing
    gate.release("203.0.113.2")
    assert gate.admit("203.0.113.3") is None
    gate.release("203.0.113.1")
    assert gate.admit("203.0.113.1").code == "rate_limited"  # 4th new socket within the minute
    clock.advance(60.0)
    assert gate.admit("203.0.113.1") is None


def test_socket_gate_reads_its_limits_from_settings():
    """The gate's limits are the operator's settings."""
    gate = SocketGate.from_settings(Settings(max_sockets_per_ip=3, new_sockets_per_ip_per_min=7, max_sessions=9))
    assert (gate.per_ip.limit, gate.new_sockets.limit, gate.capacity.limit) == (3, 7, 9)


def test_refusals_match_the_contract():
    """Close codes per ws-protocol.md, statuses per http-api.md."""
    assert {code.value: (int(r.close), r.http_status) for code, r in REFUSALS.items()} == {
        "forbidden_origin": (1008, 403),
        "unauthorized": (1008, 401),
        "rate_limited": (1008, 429),
        "capacity": (1013, 503),
        "too_large": (1009, 413),
    }


# --- headers and redaction -----------------------------------------------------------------


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


def test_csp_nonce_admits_one_script_only():
    """A nonce is added to script-src and nowhere else."""
    csp = content_security_policy("abc123")
    assert "script-src 'self' 'nonce-abc123'" in csp
    assert csp.count("nonce-") == 1


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (f"key={FAKE_KEY}&x=1", (FAKE_KEY,), f"key={REDACTED}&x=1"),
        (f"{FAKE_KEY} and again {FAKE_KEY}", (FAKE_KEY,), f"{REDACTED} and again {REDACTED}"),
        ("a+b/c=secret!", ("a+b/c=secret!",), REDACTED),
        ("q=a%2Bb%2Fc%3Dsecret%21", ("a+b/c=secret!",), f"q={REDACTED}"),  # URL-quoted form
        ("nothing here", (FAKE_KEY, None, ""), "nothing here"),
        ("short abc stays", ("abc",), "short abc stays"),  # too short to be a secret
    ],
)
def test_redact_table(text, secrets, expected):
    """Known secrets (and their URL-quoted form) are replaced; empty or tiny values are ignored."""
    assert redact(text, secrets) == expected
