"""Hostile WebSocket frames against the production server (gunicorn, as deployed) over raw sockets."""
from __future__ import annotations

import json

import pytest
from websockets.protocol import Protocol, Side, State

from test_relay import raw_upgrade


# --- 3. text frames must be UTF-8 -----------------------------------------------------------


def websocket_exchange(server, frames: list[tuple[str, bytes, bool]]) -> tuple[list[dict], int | None]:
    """Open /ws/realtime by hand, send ``(kind, payload, fin)`` frames; the JSON events received
    until the server closed, and its close code."""
    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    with raw_upgrade(server, "?mode=text") as sock:
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client.receive_data(rest)
        for kind, payload, fin in frames:
            (client.send_text if kind == "text" else client.send_continuation)(payload, fin=fin)
        sock.sendall(b"".join(client.data_to_send()))
        while client.state is not State.CLOSED and (chunk := sock.recv(65536)):
            client.receive_data(chunk)
            sock.sendall(b"".join(client.data_to_send()))
    events = [json.loads(frame.data) for frame in client.events_received() if frame.opcode.name == "TEXT"]
    return events, client.close_rcvd.code if client.close_rcvd else None


INVALID_TEXT = [
    pytest.param([("text", b'{"type":"ping","t":"\xff\xfe"}', True)], id="one-frame"),
    pytest.param([("text", b'{"type":"ping","t":"\xe2\x82', False), ("cont", b'("}', True)], id="across-fragments"),
    pytest.param([("text", b'{"type":"text","text":"\xc0\xaf"}', True)], id="overlong-as-turn"),
]


@pytest.mark.parametrize("frames", INVALID_TEXT)
def test_text_frame_that_is_not_utf8_closes_1007(gunicorn_server, frames):
    """A text message that is not valid UTF-8 closes the socket with 1007: never a pong, never a turn."""
    events, code = websocket_exchange(gunicorn_server, frames)
    assert code == 1007
    assert not [e for e in events if e.get("type") in ("pong", "chunk", "complete")]


def test_utf8_split_across_fragments_is_one_valid_message(gunicorn_server):
    """A character split between two fragments is valid UTF-8: the ping is answered, echoing it whole."""
    events, _code = websocket_exchange(gunicorn_server, [
        ("text", b'{"type":"ping","t":"caf\xc3', False), ("cont", b'\xa9"}', True),
        ("text", b'{"type":"end"}', True)])
    assert {"type": "pong", "t": "café"} in events
