"""A small synchronous client of the ``/ws/realtime`` contract, for tests and tools."""
from __future__ import annotations

import json
import time
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class Closed(Exception):
    """The server closed the socket; ``code`` is its close code (1006 when it dropped TCP)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class RelayClient:
    """Connects to ``/ws/realtime``; collects events (dicts) and model audio (bytes)."""

    def __init__(self, url: str, *, timeout_s: float, origin: str | None = None,
                 headers: dict[str, str] | None = None, **query: str) -> None:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        headers = {**(headers or {}), **({"Origin": origin} if origin else {})} or None
        self._connect = connect(f"{url}?{params}" if params else url, open_timeout=timeout_s,
                                max_size=None, additional_headers=headers, compression=None)
        self.ws = self._connect.__enter__()
        self.timeout_s = timeout_s
        self.events: list[dict] = []
        self.audio = bytearray()
        self.audio_frames = 0
        self.closed: Closed | None = None

    # --- sending ---------------------------------------------------------------------

    def send_json(self, obj: dict) -> None:
        self.ws.send(json.dumps(obj))

    def send_raw(self, data: bytes | str) -> None:
        self.ws.send(data)

    def stream(self, frames: list[bytes], *, frame_s: float = 0.0) -> None:
        """Send audio frames, pacing them ``frame_s`` apart (0: as fast as possible)."""
        start = time.monotonic()
        for i, frame in enumerate(frames):
            if frame_s:
                delay = start + i * frame_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.ws.send(frame)

    # --- receiving -------------------------------------------------------------------

    def _receive_one(self, deadline: float) -> bool:
        try:
            message = self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return False
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            self.closed = Closed(rcvd.code if rcvd else 1006, rcvd.reason if rcvd else "")
            return False
        if isinstance(message, bytes):
            self.audio += message
            self.audio_frames += 1
        else:
            self.events.append(json.loads(message))
        return True

    def wait_for(self, predicate: Callable[[dict], bool], *, timeout_s: float | None = None) -> dict:
        """Receive until an event matches ``predicate``; returns it (earlier ones are kept)."""
        seen = 0
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"no matching event; got {self.events[-8:]} closed={self.closed}")
            self._receive_one(deadline)

    def wait_type(self, kind: str, **fields) -> dict:
        """Wait for an event of type ``kind`` whose fields include ``fields``."""
        return self.wait_for(lambda e: e.get("type") == kind and all(e.get(k) == v for k, v in fields.items()))

    def ready(self) -> dict:
        return self.wait_type("ready")

    def wait_closed(self, *, timeout_s: float | None = None) -> Closed:
        """Receive until the server closes; returns the close."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while self.closed is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"socket still open; last events {self.events[-5:]}")
            self._receive_one(deadline)
        return self.closed

    def drain(self, seconds: float) -> None:
        """Keep receiving for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.closed is None:
            self._receive_one(deadline)

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("type") == kind]

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc) -> None:
        self.ws.close()
