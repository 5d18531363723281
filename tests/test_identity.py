"""livetalk.identity: anonymous learners in a signed cookie, IAP learners from a verified assertion."""
from __future__ import annotations

import logging
import re
import socket
import threading
import time

import pytest
from werkzeug.http import dump_cookie

from livetalk.identity import (
    AnonymousLearners,
    Authenticator,
    AuthMode,
    IapError,
    IapVerifier,
    Learner,
    iap_learner_id,
    is_admin,
)
from livetalk.signing import LEARNER_TTL_S, TokenSigner
from tests.helpers import wait_until
from tests.iap_helpers import AUDIENCE, EMAIL, SUBJECT, IapKey, b64url, iap_claims, unsigned_assertion

EPOCH = 1_800_000_000.0  # a fixed wall-clock instant for cookie tests, epoch seconds
SIGNER = TokenSigner("FAKE-ticket-secret-for-identity-tests")


@pytest.fixture()
def learners() -> AnonymousLearners:
    return AnonymousLearners(SIGNER)


def _tampered(value: str) -> str:
    """``value`` with its last character changed (to another canonical base64 ending)."""
    return value[:-1] + ("E" if value.endswith("A") else "A")


# --- learners ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("learner_id", "valid"),
    [
        ("a-0123456789abcdef0123456789abcdef", True),
        ("i-FFFF_ffff-09", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("../other", False),
        ("a/b", False),
        ("a.b", False),
        ("é", False),
        ("a b", False),
    ],
)
def test_learner_ids_are_storage_key_safe(learner_id, valid):
    """A learner id is 1-128 letters, digits, '-' or '_'; anything else cannot make a Learner."""
    if valid:
        assert Learner(learner_id, "anonymous").id == learner_id
    else:
        with pytest.raises(ValueError):
            Learner(learner_id, "anonymous")


def test_learner_kind_is_anonymous_or_iap():
    """Only the two kinds exist."""
    with pytest.raises(ValueError):
        Learner("a-1", "admin")


@pytest.mark.parametrize(
    ("learner", "admins", "expected"),
    [
        (Learner("i-1", "iap", "Boss@Example.com"), ["boss@example.com"], True),
        (Learner("i-1", "iap", "boss@example.com"), [" BOSS@EXAMPLE.COM "], True),
        (Learner("i-1", "iap", "learner@example.com"), ["boss@example.com"], False),
        (Learner("i-1", "iap", None), ["boss@example.com"], False),
        (Learner("i-1", "iap", "boss@example.com"), [], False),
        (Learner("a-1", "anonymous", "boss@example.com"), ["boss@example.com"], False),
    ],
)
def test_is_admin_table(learner, admins, expected):
    """Admins are IAP learners whose email is listed, compared without regard to case."""
    assert is_admin(learner, admins) is expected


# --- anonymous learners ------------------------------------------------------------------


def test_an_issued_learner_reads_back_from_its_cookie(learners):
    """issue() gives a fresh random "a-" id and a cookie value that names it."""
    learner, cookie = learners.issue(now=EPOCH)
    assert re.fullmatch(r"a-[0-9a-f]{32}", learner.id)
    assert (learner.kind, learner.email) == ("anonymous", None)
    assert learners.read(cookie, now=EPOCH + 1.0) == learner
    assert len({learners.issue(now=EPOCH)[0].id for _ in range(50)}) == 50


@pytest.mark.parametrize(
    ("make_cookie", "now"),
    [
        (lambda ls: None, EPOCH),
        (lambda ls: "", EPOCH),
        (lambda ls: "garbage", EPOCH),
        (lambda ls: _tampered(ls.issue(now=EPOCH)[1]), EPOCH),
        (lambda ls: AnonymousLearners(TokenSigner("FAKE-other-secret")).issue(now=EPOCH)[1], EPOCH),
        (lambda ls: ls.issue(now=EPOCH)[1], EPOCH + LEARNER_TTL_S),
        (lambda ls: SIGNER.mint_ticket("sales-ja", now=EPOCH, ttl_s=60.0)[0], EPOCH),
        (lambda ls: SIGNER.mint_learner("i-0123", now=EPOCH), EPOCH),  # genuine, but not an anonymous id
    ],
)
def test_a_bad_cookie_names_nobody(learners, make_cookie, now):
    """Missing, garbled, tampered, foreign, expired or other-kind cookie values read as None."""
    assert learners.read(make_cookie(learners), now=now) is None


def test_cookie_for_renews_the_same_learner(learners):
    """Re-setting the cookie later keeps the id and moves the expiry forward."""
    learner, first = learners.issue(now=EPOCH)
    later = EPOCH + LEARNER_TTL_S - 60.0
    renewed = learners.cookie_for(learner, now=later)
    assert learners.read(first, now=later + 120.0) is None
    assert learners.read(renewed, now=later + 120.0) == learner
    with pytest.raises(ValueError):
        learners.cookie_for(Learner("i-1", "iap", "x@example.com"), now=EPOCH)


@pytest.mark.parametrize("ttl_s", [0.0, -1.0, LEARNER_TTL_S + 1.0])
def test_cookie_lifetime_stays_within_what_browsers_keep(ttl_s):
    """A cookie lives some time, at most the 400 days browsers allow."""
    with pytest.raises(ValueError):
        AnonymousLearners(SIGNER, ttl_s=ttl_s)


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("HTTPS", True), ("http", False)])
def test_cookie_attributes_render_as_a_locked_down_cookie(learners, scheme, secure):
    """Rendered by werkzeug, the cookie is HttpOnly, SameSite=Lax, Path=/, 400 days, Secure only over https."""
    _, value = learners.issue(now=EPOCH)
    header = dump_cookie(AnonymousLearners.COOKIE_NAME, value, **learners.cookie_attributes(public_scheme=scheme))
    parts = {part.strip().split("=")[0] for part in header.split(";")}
    assert header.startswith(f"{AnonymousLearners.COOKIE_NAME}={value};")
    assert {"HttpOnly", "Path", "Max-Age", "SameSite"} <= parts
    assert "SameSite=Lax" in header and f"Max-Age={400 * 86400}" in header
    assert ("Secure" in parts) is secure


# --- IAP assertions ----------------------------------------------------------------------


def test_a_valid_assertion_names_its_learner(iap_verifier, iap_key):
    """The learner id is a key-safe hash of `sub` (not `sub` itself); the email is the `email` claim."""
    learner = iap_verifier.learner(iap_key.assertion(iap_claims(time.time())))
    assert learner == Learner(iap_learner_id(SUBJECT), "iap", EMAIL)
    assert re.fullmatch(r"i-[0-9a-f]{32}", learner.id)
    assert SUBJECT.split(":")[-1] not in learner.id


def test_iap_learner_ids_are_stable_per_subject():
    """The same subject always maps to the same id, different subjects to different ids."""
    assert iap_learner_id(SUBJECT) == iap_learner_id(SUBJECT)
    assert iap_learner_id(SUBJECT) != iap_learner_id(SUBJECT + "1")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": -10},  # seconds from now: within the 30 s leeway
        {"iat": +10},
        {"aud": [AUDIENCE, "/projects/1/global/backendServices/2"]},
        {"email": None},
    ],
)
def test_assertions_within_tolerance_are_accepted(iap_verifier, iap_key, claims):
    """Small clock skew, a list audience that includes ours, and a missing email are all fine."""
    now = time.time()
    overrides = {k: (now + v if k in ("iat", "exp") else v) for k, v in claims.items()}
    learner = iap_verifier.learner(iap_key.assertion(iap_claims(now, **overrides)))
    assert learner.id == iap_learner_id(SUBJECT)
    assert learner.email == (None if "email" in claims else EMAIL)


def _swap_payload(token: str, other: str) -> str:
    """``token``'s header and signature around ``other``'s payload."""
    head, _, signature = token.split(".")
    return f"{head}.{other.split('.')[1]}.{signature}"


REFUSALS = [
    (lambda key, now: None, "missing"),
    (lambda key, now: "", "missing"),
    (lambda key, now: "garbage", "malformed"),
    (lambda key, now: "a.b.c", "malformed"),
    (lambda key, now: "!!.??.##", "malformed"),
    (lambda key, now: "x" * 10_000 + ".e30.e30", "malformed"),
    (lambda key, now: b64url(b"not json") + ".e30.AAAA", "malformed"),
    (lambda key, now: IapKey("").assertion(iap_claims(now)), "malformed"),  # no kid
    (lambda key, now: key.assertion(iap_claims(now, sub=None)), "malformed"),
    (lambda key, now: key.assertion(iap_claims(now, exp=None)), "malformed"),
    (lambda key, now: key.assertion(iap_claims(now, iat="yesterday")), "malformed"),
    (lambda key, now: unsigned_assertion(iap_claims(now), kid=key.kid), "unsigned"),
    (lambda key, now: unsigned_assertion(iap_claims(now), kid=key.kid, alg="ES256"), "unsigned"),
    (lambda key, now: IapKey(key.kid).assertion(iap_claims(now)), "forged"),  # another key, same kid
    (lambda key, now: key.assertion(iap_claims(now), header={"alg": "HS256"}), "forged"),
    (lambda key, now: IapKey("FAKE-unknown-kid").assertion(iap_claims(now)), "forged"),
    (lambda key, now: _swap_payload(key.assertion(iap_claims(now)),
                                    key.assertion(iap_claims(now, sub="accounts.google.com:1"))), "forged"),
    (lambda key, now: key.assertion(iap_claims(now - 720)), "expired"),
    (lambda key, now: key.assertion(iap_claims(now + 300)), "expired"),  # not yet valid
    (lambda key, now: key.assertion(iap_claims(now, aud="/projects/1/global/backendServices/2")), "wrong_audience"),
    (lambda key, now: key.assertion(iap_claims(now, aud=None)), "wrong_audience"),
    (lambda key, now: key.assertion(iap_claims(now, iss="https://accounts.google.com")), "wrong_issuer"),
]


@pytest.mark.parametrize(("make_assertion", "reason"), REFUSALS)
def test_iap_refusals(iap_verifier, iap_key, caplog, make_assertion, reason):
    """Each kind of bad assertion is refused with its reason; neither the message nor a log line quotes it."""
    caplog.set_level(logging.DEBUG)
    assertion = make_assertion(iap_key, time.time())
    with pytest.raises(IapError) as caught:
        iap_verifier.learner(assertion)
    assert caught.value.reason == reason
    if assertion:
        assert assertion not in str(caught.value) and assertion not in caplog.text


def test_an_audience_is_required():
    """AUTH_MODE=iap without IAP_AUDIENCE is a configuration error, found at construction."""
    with pytest.raises(ValueError, match="IAP_AUDIENCE"):
        IapVerifier(audience=" ")


# --- the key set ---------------------------------------------------------------------------


def test_keys_are_fetched_on_first_use_and_then_cached(iap_verifier, iap_key, key_server):
    """Building the verifier fetches nothing; the first assertion fetches once; later ones reuse the set."""
    assert key_server.requests == 0
    for _ in range(20):
        iap_verifier.learner(iap_key.assertion(iap_claims(time.time())))
    assert key_server.requests == 1


def test_key_rotation_refetches_once_and_unknown_kids_do_not_flood(iap_verifier, iap_key, iap_clock, key_server):
    """A new kid triggers one refetch; made-up kids get at most one fetch per interval."""
    now = time.time()
    iap_verifier.learner(iap_key.assertion(iap_claims(now)))
    rotated = IapKey("FAKE-iap-key-2")
    key_server.publish(iap_key, rotated)
    iap_clock.advance(31.0)
    assert iap_verifier.learner(rotated.assertion(iap_claims(now))).id == iap_learner_id(SUBJECT)
    assert key_server.requests == 2
    for n in range(10):
        with pytest.raises(IapError, match="forged"):
            iap_verifier.learner(IapKey(f"FAKE-made-up-{n}").assertion(iap_claims(now)))
    assert key_server.requests == 2  # the last fetch was under 30 s ago
    iap_clock.advance(31.0)
    for n in range(10):
        with pytest.raises(IapError, match="forged"):
            iap_verifier.learner(IapKey(f"FAKE-made-up-{n}").assertion(iap_claims(now)))
    assert key_server.requests == 3
    iap_verifier.learner(iap_key.assertion(iap_claims(now)))  # known kids never wait for a fetch
    assert key_server.requests == 3


def test_an_old_set_is_refreshed_and_a_withdrawn_key_stops_working(iap_verifier, iap_key, iap_clock, key_server):
    """After max_key_age_s the set is fetched again, and a key IAP no longer publishes is refused."""
    now = time.time()
    token = iap_key.assertion(iap_claims(now))
    iap_verifier.learner(token)
    key_server.publish(IapKey("FAKE-iap-key-2"))
    iap_clock.advance(3600.0)
    with pytest.raises(IapError, match="forged"):
        iap_verifier.learner(token)
    assert key_server.requests == 2


def test_an_old_set_is_kept_when_its_refresh_fails(iap_verifier, iap_key, iap_clock, key_server):
    """A failed refresh keeps the keys held, so an outage of the key server does not lock everyone out."""
    token = iap_key.assertion(iap_claims(time.time()))
    iap_verifier.learner(token)
    key_server.status = 503
    iap_clock.advance(3600.0)
    assert iap_verifier.learner(token).id == iap_learner_id(SUBJECT)
    assert key_server.requests == 2


@pytest.mark.parametrize(
    "break_server",
    [
        lambda server: setattr(server, "status", 500),
        lambda server: setattr(server, "body", b"<html>not json</html>"),
        lambda server: setattr(server, "body", b'{"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}]}'),
        lambda server: setattr(server, "body", b'{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k", "x": "AA", "y": "AA"}]}'),
        lambda server: setattr(server, "body", b"[]"),
    ],
)
def test_no_usable_key_set_is_keys_unavailable(iap_verifier, iap_key, iap_clock, key_server, caplog, break_server):
    """Without a usable key set the refusal is keys_unavailable (once per interval), and it recovers."""
    break_server(key_server)
    token = iap_key.assertion(iap_claims(time.time()))
    for _ in range(3):
        with pytest.raises(IapError, match="keys_unavailable"):
            iap_verifier.learner(token)
    assert key_server.requests == 1
    assert "IAP key set unavailable" in caplog.text and token not in caplog.text
    key_server.status, key_server.body = 200, None
    iap_clock.advance(31.0)
    assert iap_verifier.learner(token).id == iap_learner_id(SUBJECT)


def test_an_unreachable_key_server_is_keys_unavailable(iap_key):
    """A key set URL nobody answers (connection refused) gives keys_unavailable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = IapVerifier(audience=AUDIENCE, keys_url=f"http://127.0.0.1:{port}/keys")
    with pytest.raises(IapError, match="keys_unavailable"):
        verifier.learner(iap_key.assertion(iap_claims(time.time())))


def test_concurrent_first_requests_share_one_fetch(iap_verifier, iap_key, key_server):
    """Many requests arriving on a cold verifier together cause a single key-set fetch."""
    token = iap_key.assertion(iap_claims(time.time()))
    key_server.hold.clear()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(iap_verifier.learner(token).id)) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: key_server.requests >= 1)
    key_server.hold.set()
    for thread in threads:
        thread.join()
    assert results == [iap_learner_id(SUBJECT)] * 8
    assert key_server.requests == 1


# --- one entry point -----------------------------------------------------------------------


def test_anonymous_mode_reuses_the_cookie_or_issues_one(learners):
    """Without a cookie a new learner comes with a cookie to set; with it, the same learner and nothing to set."""
    auth = Authenticator(mode=AuthMode.ANONYMOUS, anonymous=learners)
    first = auth.identify(cookie=None, iap_assertion="ignored", now=EPOCH)
    assert first.set_cookie and first.learner.kind == "anonymous"
    again = auth.identify(cookie=first.set_cookie, iap_assertion=None, now=EPOCH + 5.0)
    assert (again.learner, again.set_cookie) == (first.learner, None)
    stranger = auth.identify(cookie=_tampered(first.set_cookie), iap_assertion=None, now=EPOCH)
    assert stranger.learner != first.learner and stranger.set_cookie


def test_iap_mode_trusts_only_the_assertion(learners, iap_verifier, iap_key):
    """Behind IAP the learner comes from the assertion; a cookie is neither needed nor enough."""
    auth = Authenticator(mode=AuthMode.IAP, anonymous=learners, iap=iap_verifier)
    found = auth.identify(cookie=None, iap_assertion=iap_key.assertion(iap_claims(time.time())), now=EPOCH)
    assert (found.learner.kind, found.learner.email, found.set_cookie) == ("iap", EMAIL, None)
    _, cookie = learners.issue(now=EPOCH)
    with pytest.raises(IapError, match="missing"):
        auth.identify(cookie=cookie, iap_assertion=None, now=EPOCH)
    with pytest.raises(ValueError):
        Authenticator(mode=AuthMode.IAP, anonymous=learners)
