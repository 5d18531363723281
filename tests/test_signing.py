"""livetalk.signing: access tickets, resume tickets and learner cookies under one secret."""
from __future__ import annotations

import secrets
import string
import time

import pytest

from livetalk.signing import (
    LEARNER_TTL_S,
    RESUME_MAX_CHARS,
    RESUME_TTL_S,
    TICKET_MAX_CHARS,
    LearnerCookieError,
    ResumeError,
    ResumeState,
    TicketError,
    TokenError,
    TokenSigner,
)

EPOCH = 1_800_000_000.0  # a fixed wall-clock instant, epoch seconds
SIGNER = TokenSigner("FAKE-ticket-secret-for-signing-tests")
OTHER = TokenSigner("FAKE-another-ticket-secret")
STATE = ResumeState(session_id="0f3c9a7e1d2b4c5a", scenario="sales-ja", mode="voice",
                    handle="FAKE-resumption-handle-" + "h" * 200, started_at=EPOCH - 42.5, segment=2)
LEARNER_ID = "a-" + "0123456789abcdef" * 2
URL_SAFE = set(string.ascii_letters + string.digits + "-_.")


def _ticket(signer: TokenSigner = SIGNER, scenario: str = "sales-ja", ttl_s: float = 60.0) -> str:
    return signer.mint_ticket(scenario, now=EPOCH, ttl_s=ttl_s)[0]


def _resume(signer: TokenSigner = SIGNER) -> str:
    return signer.mint_resume(STATE, now=EPOCH)


def _learner(signer: TokenSigner = SIGNER) -> str:
    return signer.mint_learner(LEARNER_ID, now=EPOCH)


# Each kind: (mint with a signer, verify at a time, its error); verify returns what the token carries.
KINDS = {
    "ticket": (_ticket, lambda s, t, now: s.verify_ticket(t, scenario="sales-ja", now=now), TicketError),
    "resume": (_resume, lambda s, t, now: s.verify_resume(t, now=now), ResumeError),
    "learner": (_learner, lambda s, t, now: s.verify_learner(t, now=now), LearnerCookieError),
}


def _refusal(kind: str, token: str | None, *, now: float = EPOCH, signer: TokenSigner = SIGNER) -> str:
    """The reason ``kind``'s verifier gives for ``token``; fails the test if it is accepted."""
    _, verify, error = KINDS[kind]
    with pytest.raises(error) as caught:
        verify(signer, token, now)
    if token:
        assert token not in str(caught.value)
    return caught.value.reason


# --- round trips -----------------------------------------------------------------------


def test_a_ticket_verifies_for_its_scenario_until_it_expires():
    """A ticket is accepted for its scenario up to (not at) its expiry, which mint reports in epoch seconds."""
    token, expires_at = SIGNER.mint_ticket("sales-ja", now=EPOCH, ttl_s=120.0)
    assert expires_at == pytest.approx(EPOCH + 120.0)
    SIGNER.verify_ticket(token, scenario="sales-ja", now=EPOCH + 119.999)
    assert _refusal("ticket", token, now=EPOCH + 120.0) == "expired"


def test_a_resume_ticket_carries_its_state_for_ten_minutes_by_default():
    """The state comes back field for field, and the default lifetime is 10 minutes."""
    token = _resume()
    assert SIGNER.verify_resume(token, now=EPOCH + RESUME_TTL_S - 0.001) == STATE
    assert RESUME_TTL_S == 600.0
    assert _refusal("resume", token, now=EPOCH + RESUME_TTL_S) == "expired"


def test_a_learner_cookie_names_its_learner_for_400_days_by_default():
    """The learner id comes back, and the default lifetime is the browsers' 400-day cap."""
    token = _learner()
    assert SIGNER.verify_learner(token, now=EPOCH + LEARNER_TTL_S - 1.0) == LEARNER_ID
    assert LEARNER_TTL_S == 400 * 86400
    assert _refusal("learner", token, now=EPOCH + LEARNER_TTL_S) == "expired"


@pytest.mark.parametrize("kind", KINDS)
def test_tokens_are_url_safe_and_bounded(kind):
    """Every kind fits a URL or cookie unescaped and stays well under its length bound."""
    mint, _, _ = KINDS[kind]
    token = mint(SIGNER)
    assert set(token) <= URL_SAFE
    assert len(token) < 512


def test_tickets_are_compact_and_unique():
    """Two tickets minted at the same instant differ (a nonce), and a ticket stays short."""
    first, second = _ticket(), _ticket()
    assert first != second
    assert len(first) < 120


def test_the_same_configured_secret_verifies_across_signers():
    """Two processes configured with the same TICKET_SECRET accept each other's tokens."""
    twin = TokenSigner("FAKE-ticket-secret-for-signing-tests")
    twin.verify_ticket(_ticket(), scenario="sales-ja", now=EPOCH)
    assert twin.verify_resume(_resume(), now=EPOCH) == STATE
    assert twin.verify_learner(_learner(), now=EPOCH) == LEARNER_ID


def test_without_a_secret_each_signer_has_its_own():
    """With no TICKET_SECRET a token minted by one process is forged to every other."""
    first, second = TokenSigner(None), TokenSigner(None)
    first.verify_ticket(_ticket(first), scenario="sales-ja", now=EPOCH)
    assert _refusal("ticket", _ticket(first), signer=second) == "forged"


# --- refusals ----------------------------------------------------------------------------


def _tamper(token: str) -> str:
    """``token`` with one payload character changed (still well formed)."""
    payload, signature = token.rsplit(".", 1)
    flipped = "A" if payload[-2] != "A" else "B"
    return f"{payload[:-2]}{flipped}{payload[-1]}.{signature}"


MALFORMED_INPUTS = (
    "garbage",
    "a.b.c",
    "!!!!.????",
    "é" * 20 + ".abcd",
    "x" * 5000,
    "eyJlIjoxfQ.AAAA",  # a signature of the wrong length
)


@pytest.mark.parametrize(
    ("make_token", "scenario", "now", "reason"),
    [
        (lambda: None, "sales-ja", EPOCH, "missing"),
        (lambda: "", "sales-ja", EPOCH, "missing"),
        *[(lambda bad=bad: bad, "sales-ja", EPOCH, "malformed") for bad in MALFORMED_INPUTS],
        (lambda: _ticket().split(".")[0] + "." + "A" * 43, "sales-ja", EPOCH, "forged"),
        (lambda: _tamper(_ticket()), "sales-ja", EPOCH, "forged"),
        (lambda: _ticket(OTHER), "sales-ja", EPOCH, "forged"),
        (lambda: _ticket(), "sales-ja", EPOCH + 60.0, "expired"),
        (lambda: _ticket(), "sales-ja", EPOCH + 3600.0, "expired"),
        (lambda: _ticket(scenario="sales-ja"), "sales-en", EPOCH, "wrong-scenario"),
        (lambda: _ticket(scenario="sales-ja"), "sales-j", EPOCH, "wrong-scenario"),
    ],
)
def test_ticket_refusals(make_token, scenario, now, reason):
    """Each kind of bad access ticket is refused with today's reason, and the message never quotes it."""
    token = make_token()
    with pytest.raises(TicketError) as caught:
        SIGNER.verify_ticket(token, scenario=scenario, now=now)
    assert caught.value.reason == reason
    assert reason in str(caught.value)
    assert not token or token not in str(caught.value)


@pytest.mark.parametrize(
    ("make_token", "now", "reason"),
    [
        (lambda: "", EPOCH, "malformed"),  # the socket route only asks when a ticket was given
        *[(lambda bad=bad: bad, EPOCH, "malformed") for bad in MALFORMED_INPUTS],
        (lambda: "x" * (RESUME_MAX_CHARS + 1), EPOCH, "malformed"),
        (lambda: _tamper(_resume()), EPOCH, "forged"),
        (lambda: _resume(OTHER), EPOCH, "forged"),
        (lambda: _resume(), EPOCH + RESUME_TTL_S, "expired"),
    ],
)
def test_resume_refusals(make_token, now, reason):
    """A bad resume ticket is malformed, forged or expired, as today."""
    assert _refusal("resume", make_token(), now=now) == reason


@pytest.mark.parametrize(
    ("make_token", "now", "reason"),
    [
        (lambda: None, EPOCH, "missing"),
        *[(lambda bad=bad: bad, EPOCH, "malformed") for bad in MALFORMED_INPUTS],
        (lambda: _tamper(_learner()), EPOCH, "forged"),
        (lambda: _learner(OTHER), EPOCH, "forged"),
        (lambda: _learner(), EPOCH + LEARNER_TTL_S + 1.0, "expired"),
    ],
)
def test_learner_cookie_refusals(make_token, now, reason):
    """A bad learner cookie is missing, malformed, forged or expired."""
    assert _refusal("learner", make_token(), now=now) == reason


@pytest.mark.parametrize(("minted", "verified"), [(a, b) for a in KINDS for b in KINDS if a != b])
def test_kinds_are_not_interchangeable(minted, verified):
    """A genuine token of one kind is forged to every other kind's verifier (each kind has its own salt)."""
    mint, _, _ = KINDS[minted]
    assert _refusal(verified, mint(SIGNER)) == "forged"


@pytest.mark.parametrize("kind", KINDS)
def test_changing_any_character_is_refused(kind):
    """Replacing any one character of a token with any other URL-safe one, or cutting it short, is refused."""
    mint, verify, error = KINDS[kind]
    token = mint(SIGNER)
    variants = [token[:i] + c + token[i + 1:] for i in range(len(token)) for c in sorted(URL_SAFE) if c != token[i]]
    variants += [token[:i] for i in range(len(token))]
    for variant in variants:
        with pytest.raises(error):
            verify(SIGNER, variant, EPOCH)


@pytest.mark.parametrize("kind", KINDS)
def test_over_long_input_is_refused_before_any_work(kind):
    """A 50 MB "token" is malformed in constant time: the length bound comes before decoding or MAC work."""
    huge = _learner()[:-44] + "A" * 50_000_000 + _learner()[-44:]  # well shaped, so only the bound stops it
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        assert _refusal(kind, huge) == "malformed"
        timings.append(time.perf_counter() - started)
    # Scanning 50 MB takes tens of milliseconds; a length check takes microseconds.
    assert min(timings) < 0.005


def test_minting_refuses_tokens_it_could_not_take_back():
    """A lifetime must be positive, and a token over its kind's bound is never handed out."""
    with pytest.raises(ValueError):
        SIGNER.mint_ticket("sales-ja", now=EPOCH, ttl_s=0)
    with pytest.raises(ValueError):
        SIGNER.mint_ticket(secrets.token_hex(TICKET_MAX_CHARS // 2 + 100), now=EPOCH, ttl_s=60.0)
    # Random hex halves at best under zlib, so each of these exceeds its bound.
    huge = ResumeState(**{**STATE.__dict__, "handle": secrets.token_hex(4000)})
    with pytest.raises(ValueError):
        SIGNER.mint_resume(huge, now=EPOCH)


def test_errors_share_one_base_and_reject_unknown_reasons():
    """Every refusal is a TokenError (a ValueError); a reason outside a kind's list is a bug, not a refusal."""
    assert issubclass(TicketError, TokenError) and issubclass(ResumeError, TokenError)
    assert issubclass(LearnerCookieError, TokenError) and issubclass(TokenError, ValueError)
    with pytest.raises(ValueError, match="unknown"):
        ResumeError("wrong-scenario")
