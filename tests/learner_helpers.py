"""A learner's browser for tests, without a browser: a cookie jar (``requests.Session``) against one server.

The jar is what makes a learner: it keeps the signed learner cookie the server sets, sends it on every
request and on the socket's upgrade, as a browser does.
"""
from __future__ import annotations

from typing import Any

import requests

from tests.helpers import UNIT_S
from tests.wsclient import RelayClient

COOKIE = "livetalk_learner"


class Browser:
    """One learner's cookie jar against the server at ``url``; ``headers`` go with every request."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(headers or {})

    @property
    def cookie(self) -> str | None:
        return self.session.cookies.get(COOKIE)

    def visit(self) -> requests.Response:
        """Load the conversation page (sets the learner cookie on a first visit)."""
        return self.get("/")

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=UNIT_S, **kwargs)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.url + path, timeout=UNIT_S)

    def post_json(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.url + path, json=body, timeout=6 * UNIT_S)

    def socket(self, **query: str) -> RelayClient:
        """Open ``/ws/realtime`` carrying this jar's cookie and headers, as the page would."""
        headers = dict(self.session.headers)
        headers.pop("User-Agent", None)
        for name in ("Accept", "Accept-Encoding", "Connection"):
            headers.pop(name, None)
        if self.cookie:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        return RelayClient(self.url.replace("http://", "ws://") + "/ws/realtime", timeout_s=UNIT_S,
                           headers=headers, **query)

    def converse(self, text: str = "御社の課題を教えてください。", **query: str) -> str:
        """Hold one conversation (a typed turn answered with speech), end it; its session id once stored."""
        with self.socket(**query) as client:
            session_id = client.ready()["session_id"]
            client.send_json({"type": "text", "text": text})
            client.wait_type("complete")
            client.send_json({"type": "end"})
            assert client.wait_type("ended")["recording"], "the conversation was not stored"
        return session_id

    def close(self) -> None:
        self.session.close()
