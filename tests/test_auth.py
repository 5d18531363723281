"""livetalk.auth through a real server: the anonymous learner cookie, and IAP mode on every route and socket."""
from __future__ import annotations

import logging
import time

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from livetalk.identity import IAP_HEADER
from tests.helpers import UNIT_S
from tests.iap_helpers import AUDIENCE, EMAIL, IapKey, iap_claims, unsigned_assertion
from tests.learner_helpers import COOKIE

ADMIN = "boss@example.com"


# --- anonymous learners ---------------------------------------------------------------------------


def set_cookie_header(response: requests.Response) -> str:
    (header,) = [v for k, v in response.raw.headers.items() if k.lower() == "set-cookie"]
    return header


@pytest.mark.parametrize(("overrides", "headers", "secure"), [
    ({}, {}, False),
    ({"trust_forwarded_for": 1}, {"X-Forwarded-Proto": "https"}, True),
    ({}, {"X-Forwarded-Proto": "https"}, False),  # an untrusted header changes nothing
], ids=["http", "behind-https-proxy", "untrusted-proto"])
def test_a_first_visit_sets_a_locked_down_learner_cookie(make_server, overrides, headers, secure):
    """The page sets a signed learner cookie: HttpOnly, SameSite=Lax, Path=/, 400 days, Secure behind HTTPS."""
    server = make_server(**overrides)
    response = requests.get(server.url + "/", headers=headers, timeout=UNIT_S)
    header = set_cookie_header(response)
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert header.startswith(f"{COOKIE}=") and {"httponly", "path", "max-age"} <= attributes
    assert "SameSite=Lax" in header and f"Max-Age={400 * 24 * 3600}" in header
    assert ("secure" in attributes) is secure


def test_a_returning_learner_keeps_their_id_and_a_forged_cookie_starts_a_new_one(live_server, new_browser):
    """The cookie names the same learner on every route and is renewed by pages; a tampered one is a new learner."""
    browser = new_browser(live_server.url)
    browser.visit()
    learner = browser.get("/api/me").json()["learner"]["id"]
    assert learner.startswith("a-")
    assert browser.get("/history").status_code == 200 and browser.get("/api/me").json()["learner"]["id"] == learner
    assert "set-cookie" not in {k.lower() for k in browser.get("/api/me").headers}  # only pages renew it
    forged = browser.cookie[:-1] + ("A" if browser.cookie[-1] != "A" else "B")
    other = requests.get(live_server.url + "/api/me", cookies={COOKIE: forged}, timeout=UNIT_S)
    assert other.json()["learner"]["id"] != learner and COOKIE in other.cookies


def test_pages_say_that_clearing_cookies_starts_a_new_learner(live_server):
    """Both pages carry the anonymous-learner note (Japanese first)."""
    for path in ("/", "/history"):
        page = requests.get(live_server.url + path, timeout=UNIT_S).text
        assert 'data-testid="learner-note"' in page and "Cookie を削除すると" in page


TEST_CLIENT_LOGGERS = ("websockets.client", "urllib3")  # this test's own clients, which log what they send


def server_log(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(TEST_CLIENT_LOGGERS))


def test_nothing_secret_is_logged(live_server, new_browser, caplog, emu):
    """The learner cookie's value appears in no server log line, at any level, across pages, API and a conversation."""
    caplog.set_level(logging.DEBUG)
    browser = new_browser(live_server.url)
    browser.visit()
    browser.converse()
    browser.get("/api/conversations")
    assert browser.cookie and browser.cookie.split(".")[0] not in server_log(caplog)


# --- Identity-Aware Proxy ---------------------------------------------------------------------------


@pytest.fixture
def iap_server(make_server, key_server):
    """A server in IAP mode checking assertions against the test's key set, with one administrator."""
    return make_server(auth_mode="iap", iap_audience=AUDIENCE, iap_keys_url=key_server.url, admin_emails=(ADMIN,))


def assertion(key: IapKey, **claims) -> str:
    return key.assertion(iap_claims(time.time(), **claims))


def refused_assertions(iap_key: IapKey) -> dict[str, str | None]:
    now = time.time()
    return {
        "missing": None,
        "unsigned": unsigned_assertion(iap_claims(now), kid=iap_key.kid),
        "forged": IapKey(iap_key.kid).assertion(iap_claims(now)),  # same kid, another private key
        "expired": iap_key.assertion(iap_claims(now - 3600)),
        "wrong-audience": iap_key.assertion(iap_claims(now, aud="/projects/1/global/backendServices/2")),
        "garbage": "not.a.jwt!",
    }


def test_iap_accepts_a_valid_assertion(iap_server, iap_key, new_browser):
    """A genuine assertion for this audience is the learner: kind iap, their email, a stable id."""
    browser = new_browser(iap_server.url, headers={IAP_HEADER: assertion(iap_key)})
    me = browser.get("/api/me")
    assert me.status_code == 200
    assert me.json()["learner"]["kind"] == "iap" and me.json()["learner"]["email"] == EMAIL
    assert me.json()["admin"] is False and COOKIE not in me.cookies
    assert browser.get("/").status_code == 200 and browser.get("/history").status_code == 200


@pytest.mark.parametrize("path", ["/", "/history", "/healthz", "/scenarios", "/api/me", "/api/conversations",
                                  "/static/style.css", "/api/conversations/20250101T000000Z-0000000000000000"])
def test_iap_refuses_every_route_without_a_genuine_assertion(iap_server, iap_key, path, caplog):
    """Missing, unsigned, forged, expired and wrong-audience assertions are 401 JSON on every route; none is logged."""
    caplog.set_level(logging.DEBUG)
    for reason, token in refused_assertions(iap_key).items():
        headers = {IAP_HEADER: token} if token else {}
        response = requests.get(iap_server.url + path, headers=headers, timeout=UNIT_S)
        assert response.status_code == 401, (reason, response.status_code)
        assert response.json()["error"]["code"] == "unauthorized", reason
        if token:
            assert token not in server_log(caplog)


def test_iap_refuses_posts_and_sockets_before_anything_happens(iap_server, iap_key, emu):
    """/feedback and /session are 401 without an assertion, and the socket is refused before its upgrade."""
    for path in ("/feedback", "/session"):
        assert requests.post(iap_server.url + path, json={"session_id": "x"}, timeout=UNIT_S).status_code == 401
    ws_url = iap_server.ws_url
    for reason, token in refused_assertions(iap_key).items():
        headers = {IAP_HEADER: token} if token else None
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, open_timeout=UNIT_S, additional_headers=headers)
        assert refused.value.response.status_code == 401, reason
    assert not emu.control.sessions(), "a refused socket reached Gemini"


def test_iap_learners_own_their_conversations_and_administrators_see_all(iap_server, iap_key, new_browser, emu):
    """Two IAP users each own theirs; an administrator searches everyone's and opens any, by email too."""
    alice = new_browser(iap_server.url, headers={IAP_HEADER: assertion(iap_key)})
    bob = new_browser(iap_server.url, headers={IAP_HEADER: assertion(iap_key, sub="accounts.google.com:2",
                                                                       email="bob@example.com")})
    admin = new_browser(iap_server.url, headers={IAP_HEADER: assertion(iap_key, sub="accounts.google.com:3",
                                                                        email=ADMIN.upper())})
    mine, theirs = alice.converse(), bob.converse()
    assert alice.get(f"/api/conversations/{theirs}").status_code == 404
    assert [c["session_id"] for c in alice.get("/api/conversations").json()["conversations"]] == [mine]
    assert bob.get("/api/admin/conversations").status_code == 404
    assert admin.get("/api/me").json()["admin"] is True
    everyone = admin.get("/api/admin/conversations").json()["conversations"]
    assert {c["session_id"] for c in everyone} == {mine, theirs}
    by_email = admin.get("/api/admin/conversations", params={"learner": "BOB@example.com"}).json()
    assert [(c["session_id"], c["learner"]["email"]) for c in by_email["conversations"]] == [(theirs, "bob@example.com")]
    detail = admin.get(f"/api/conversations/{theirs}")
    assert detail.status_code == 200 and detail.json()["mine"] is False
    assert admin.get(f"/api/conversations/{theirs}/audio", headers={"Range": "bytes=0-3"}).content == b"RIFF"
    bad = admin.get("/api/admin/conversations", params={"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"


def test_iap_says_503_when_the_key_set_cannot_be_fetched(make_server, iap_key, key_server):
    """With IAP's keys unreachable, a request is 503 (the server cannot check), not 401."""
    key_server.status = 500
    server = make_server(auth_mode="iap", iap_audience=AUDIENCE, iap_keys_url=key_server.url)
    response = requests.get(server.url + "/api/me", headers={IAP_HEADER: assertion(iap_key)}, timeout=UNIT_S)
    assert response.status_code == 503 and response.json()["error"]["code"] == "service_unavailable"


def test_iap_leaves_metrics_to_their_own_guard(iap_server, make_server, key_server):
    """/metrics is not an IAP route: served to a scraper on the instance itself, 404 (not 401) to anyone else."""
    server = make_server(auth_mode="iap", iap_audience=AUDIENCE, iap_keys_url=key_server.url, metrics_enabled=True)
    assert requests.get(server.url + "/metrics", timeout=UNIT_S).status_code == 200
    relayed = requests.get(server.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=UNIT_S)
    assert relayed.status_code == 404
    assert requests.get(iap_server.url + "/metrics", timeout=UNIT_S).status_code == 404  # metrics off there
