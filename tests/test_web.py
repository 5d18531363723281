"""HTTP routes and the socket's admission rules, through a real server."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

import prompts
from tests.helpers import FAKE_API_KEY, UNIT_S, wait_until
from livetalk.signing import TokenSigner
from tests.wsclient import RelayClient


def get(url: str) -> tuple[int, dict, dict | list | str]:
    try:
        with urllib.request.urlopen(url, timeout=UNIT_S) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, dict(exc.headers), exc.read()
    try:
        return status, headers, json.loads(body)
    except ValueError:
        return status, headers, body.decode()


def post_json(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=UNIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_healthz_reports_the_configuration(live_server):
    """`/healthz` says ok, which Gemini and storage are used, and how many sessions are open."""
    status, _, body = get(live_server.url + "/healthz")
    assert status == 200
    assert body["status"] == "ok" and body["gemini"] == "live" and body["storage"] == "local"
    assert body["sessions"] == 0 and body["version"]


def test_scenarios_list_public_fields_only(live_server):
    """`/scenarios` lists id, title, description, language, voice and engine — never the persona or rubric."""
    status, _, body = get(live_server.url + "/scenarios")
    assert status == 200
    assert [s["id"] for s in body] == [s.id for s in prompts.SCENARIOS]
    assert all(set(s) == {"id", "title", "description", "language", "voice", "engine"} for s in body)
    assert "佐藤" not in json.dumps(body, ensure_ascii=False)


def test_every_response_carries_security_headers(live_server):
    """Pages and JSON alike get a strict CSP without unsafe-inline, nosniff and frame-ancestors."""
    for path in ("/", "/healthz", "/nope"):
        _, headers, _ = get(live_server.url + path)
        csp = headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"]


def test_unknown_route_is_a_json_error(live_server):
    """Errors are JSON with a code and a message."""
    status, _, body = get(live_server.url + "/nope")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_no_api_key_means_the_embedded_emulator(make_server):
    """Without GEMINI_API_KEY the service runs on its own emulator and says so."""
    server = make_server(gemini_api_key=None)
    _, _, health = get(server.url + "/healthz")
    assert health["gemini"] == "emulated"
    _, _, page = get(server.url + "/")
    assert "emulat" in page.lower() or "エミュレーター" in page
    with RelayClient(server.ws_url, timeout_s=UNIT_S) as client:
        assert client.ready()["emulated"] is True
        client.send_json({"type": "text", "text": "こんにちは"})
        assert client.wait_type("complete")["full_text"]


def test_cors_is_not_open_to_everyone(make_server):
    """CORS answers only the configured origins, never `*`."""
    server = make_server(allowed_origins=("https://app.example",))
    request = urllib.request.Request(server.url + "/scenarios", headers={"Origin": "https://evil.example"})
    with urllib.request.urlopen(request, timeout=UNIT_S) as response:
        assert response.headers.get("Access-Control-Allow-Origin") is None
    request = urllib.request.Request(server.url + "/scenarios", headers={"Origin": "https://app.example"})
    with urllib.request.urlopen(request, timeout=UNIT_S) as response:
        assert response.headers.get("Access-Control-Allow-Origin") == "https://app.example"


# --- tickets ---------------------------------------------------------------------------


def test_session_mints_a_ticket_for_the_scenario(live_server):
    """`POST /session` returns a signed token and its RFC 3339 expiry."""
    status, body = post_json(live_server.url + "/session", {"scenario": "sales-en"})
    assert status == 200 and body["token"] and body["expires_at"].endswith("Z")


def test_session_refuses_an_unknown_scenario(live_server):
    """A ticket for a scenario that does not exist is a 400."""
    status, body = post_json(live_server.url + "/session", {"scenario": "nope"})
    assert status == 400 and body["error"]["code"] == "bad_request"


def refused(server, **query) -> tuple[dict, int]:
    """Open a socket that the server is expected to refuse: (error event, close code)."""
    origin = query.pop("origin", None)
    with RelayClient(server.ws_url, timeout_s=UNIT_S, origin=origin, **query) as client:
        error = client.wait_type("error")
        return error, client.wait_closed().code


def forged_token() -> str:
    token, _ = TokenSigner("another key").mint_ticket("sales-ja", now=time.time(), ttl_s=60)
    return token


def expired_token(server) -> str:
    token, _ = server.services.tokens.mint_ticket("sales-ja", now=time.time() - 120, ttl_s=60)
    return token


@pytest.mark.parametrize(
    ("overrides", "query", "code", "close"),
    [
        ({}, {"origin": "https://evil.example"}, "forbidden_origin", 1008),
        ({"allowed_origins": ("https://app.example",)}, {"origin": "https://evil.example"}, "forbidden_origin", 1008),
        ({"require_ticket": True}, {}, "unauthorized", 1008),
        ({"require_ticket": True}, {"token": "garbage"}, "unauthorized", 1008),
        ({"require_ticket": True}, {"token": forged_token}, "unauthorized", 1008),
        ({"require_ticket": True}, {"token": expired_token}, "unauthorized", 1008),
    ],
    ids=["foreign-origin", "origin-not-in-allowlist", "missing-ticket", "malformed-ticket",
         "forged-ticket", "expired-ticket"],
)
def test_sockets_refused_by_policy(make_server, emulator, overrides, query, code, close):
    """Each admission rule refuses with its contract code and close code, before any Gemini session."""
    server = make_server(**overrides)
    query = {k: (v(server) if k == "token" and v is expired_token else v() if callable(v) else v)
             for k, v in query.items()}
    emulator.control.reset()
    error, close_code = refused(server, **query)
    assert (error["code"], error["fatal"], close_code) == (code, True, close)
    assert emulator.control.sessions() == []


def test_valid_ticket_opens_the_conversation(make_server):
    """A ticket from `POST /session` admits a socket for its scenario."""
    server = make_server(require_ticket=True)
    _, body = post_json(server.url + "/session", {"scenario": "sales-ja"})
    with RelayClient(server.ws_url, timeout_s=UNIT_S, token=body["token"]) as client:
        assert client.ready()["scenario"] == "sales-ja"


def test_ticket_is_bound_to_its_scenario(make_server):
    """A ticket for one scenario does not open another."""
    server = make_server(require_ticket=True)
    _, body = post_json(server.url + "/session", {"scenario": "sales-ja"})
    error, close = refused(server, token=body["token"], scenario="sales-en")
    assert (error["code"], close) == ("unauthorized", 1008)


def test_same_origin_page_is_admitted(live_server):
    """The page's own origin may open a conversation."""
    with RelayClient(live_server.ws_url, timeout_s=UNIT_S, origin=live_server.url) as client:
        assert client.ready()


# --- per-client limits -----------------------------------------------------------------


def test_too_many_sockets_from_one_address(make_server):
    """Past MAX_SOCKETS_PER_IP concurrent sockets, the next one is `rate_limited`."""
    server = make_server(max_sockets_per_ip=2)
    with RelayClient(server.ws_url, timeout_s=UNIT_S) as a, RelayClient(server.ws_url, timeout_s=UNIT_S) as b:
        a.ready(), b.ready()
        error, close = refused(server)
        assert (error["code"], close) == ("rate_limited", 1008)
    wait_until(lambda: server.services.sessions == {})  # slots come back once the conversations ended
    with RelayClient(server.ws_url, timeout_s=UNIT_S) as again:
        again.ready()


def test_too_many_new_sockets_per_minute(make_server):
    """Past NEW_SOCKETS_PER_IP_PER_MINUTE, new sockets are `rate_limited`."""
    server = make_server(new_sockets_per_ip_per_min=2)
    for _ in range(2):
        with RelayClient(server.ws_url, timeout_s=UNIT_S) as client:
            client.ready()
    error, close = refused(server)
    assert (error["code"], close) == ("rate_limited", 1008)


def test_forwarded_for_is_trusted_only_as_configured(make_server):
    """With one trusted proxy, the X-Forwarded-For client is the unit of the per-IP limit."""
    server = make_server(max_sockets_per_ip=1, trust_forwarded_for=1)

    def client(ip: str) -> RelayClient:
        return RelayClient(server.ws_url, timeout_s=UNIT_S, headers={"X-Forwarded-For": f"198.51.100.7, {ip}"})

    with client("203.0.113.1") as first, client("203.0.113.2") as other:
        first.ready(), other.ready()  # different clients: both admitted
        with client("203.0.113.1") as same:
            assert same.wait_type("error")["code"] == "rate_limited"


def test_api_key_never_reaches_a_client(live_server):
    """Neither the page, the API nor the socket ever carries the API key."""
    seen = [str(get(live_server.url + path)) for path in ("/", "/healthz", "/scenarios", "/static/main.js")]
    with RelayClient(live_server.ws_url, timeout_s=UNIT_S) as client:
        client.ready()
        client.send_json({"type": "text", "text": "hello"})
        client.wait_type("complete")
        seen.append(json.dumps(client.events))
    assert not any(FAKE_API_KEY in s for s in seen)


@pytest.mark.parametrize("body", [[1, 2], {"scenario": 5}])
def test_session_refuses_malformed_bodies(live_server, body):
    """A ticket request whose body is not an object with a string scenario is a 400."""
    status, answer = post_json(live_server.url + "/session", body)
    assert status == 400 and answer["error"]["code"] == "bad_request"


def test_unexpected_failures_are_json_without_details(make_server):
    """An unhandled exception becomes a JSON 500 with no exception text."""
    server = make_server()

    @server.app.get("/boom-for-test")
    def boom():
        raise RuntimeError("secret internals")

    status, _, body = get(server.url + "/boom-for-test")
    assert status == 500 and body["error"]["code"] == "internal"
    assert "secret internals" not in json.dumps(body)
