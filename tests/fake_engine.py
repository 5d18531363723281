"""In-memory stand-ins for relay state-machine tests: an engine the test scripts, a browser on a socket pair.

The relay runs unchanged (:func:`livetalk.relay.serve` on one end of a Unix socket pair); :class:`Browser`
speaks WebSocket frames on the other end with websockets' sans-I/O client protocol; :class:`FakeEngine`
hands out :class:`FakeUpstream` sessions whose events the test pushes and whose sends it reads. No network,
no SDK: a whole conversation takes milliseconds.
"""
from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from websockets.frames import Opcode
from websockets.protocol import Protocol, Side, State

from livetalk import relay
from livetalk.engine import Event, LiveSetup, Tool, UpstreamClosed, UpstreamError, Vad
from livetalk.protocol import Mode
from livetalk.signing import TokenSigner

MEETING = Tool(name="schedule_meeting", description="Record an agreed meeting.", outcome="appointment",
               parameters={"type": "object", "properties": {"date": {"type": "string"}}})
SETUP = LiveSetup(model="fake-live", system_instruction="Play a customer.", voice="Kore", vad=Vad(),
                  tools=(MEETING,))
WAIT_S = 2.0  # every wait in these tests: in-memory steps take milliseconds


class FakeUpstream:
    """One scripted upstream session: ``push`` events for the relay, read what it ``sent``."""

    def __init__(self, setup: LiveSetup) -> None:
        self.setup = setup
        self.sent: list[tuple[str, Any]] = []
        self.closed = False
        self._inbox: asyncio.Queue[list[Event] | UpstreamError] = asyncio.Queue()
        self._failure: UpstreamClosed | None = None
        self.direct = True  # send_audio_now takes frames (False: the engine has no direct path)
        self.gate: asyncio.Event | None = None  # when set up, every awaited send waits for it (a slow upstream)

    def push(self, *events: Event) -> None:
        """Deliver these events to the relay as one upstream message."""
        self._inbox.put_nowait(list(events))

    def fail(self, code: int, reason: str = "", *, recoverable: bool = False) -> None:
        """The session ends with this close: receive and every later send raise it."""
        self._failure = UpstreamClosed(code, reason, recoverable=recoverable)
        self._inbox.put_nowait(self._failure)

    async def _record(self, kind: str, payload: Any = None) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self._failure is not None:
            raise self._failure
        self.sent.append((kind, payload))

    def send_audio_now(self, pcm: bytes) -> bool:
        if not self.direct or self._failure is not None:
            return False
        self.sent.append(("audio", pcm))
        return True

    async def send_audio(self, pcm: bytes) -> None:
        await self._record("audio", pcm)

    async def send_text(self, text: str) -> None:
        await self._record("text", text)

    async def send_audio_end(self) -> None:
        await self._record("audio_end")

    async def send_activity_start(self) -> None:
        await self._record("activity_start")

    async def send_activity_end(self) -> None:
        await self._record("activity_end")

    async def send_tool_result(self, call_id: str, name: str, result: dict) -> None:
        await self._record("tool_result", (call_id, name, result))

    async def send_playback(self, played_ms: int) -> None:
        await self._record("playback", played_ms)

    async def receive(self) -> list[Event]:
        item = await self._inbox.get()
        if isinstance(item, UpstreamError):
            raise item
        return item

    async def close(self) -> None:
        self.closed = True

    def audio_sent(self) -> list[bytes]:
        return [payload for kind, payload in self.sent if kind == "audio"]


class FakeEngine:
    """Opens :class:`FakeUpstream` sessions; ``refusals`` are raised by the next connects, in order."""

    name = "fake"
    label = "Fake"
    input_rate = 16000
    output_rate = 24000

    def __init__(self) -> None:
        self.sessions: list[FakeUpstream] = []
        self.refusals: list[UpstreamError] = []
        self.connected = asyncio.Event()

    async def connect(self, setup: LiveSetup, *, timeout_s: float) -> FakeUpstream:
        await asyncio.sleep(0)
        if self.refusals:
            raise self.refusals.pop(0)
        session = FakeUpstream(setup)
        self.sessions.append(session)
        self.connected.set()
        return session

    async def next_session(self, count: int) -> FakeUpstream:
        """Wait until ``count`` sessions have been opened; the newest one."""
        async def opened() -> None:
            while len(self.sessions) < count:
                self.connected.clear()
                await self.connected.wait()
        await asyncio.wait_for(opened(), WAIT_S)
        return self.sessions[-1]


class Browser:
    """The browser's end of the socket pair: WebSocket frames through websockets' sans-I/O client protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._proto = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
        self._received: list[dict | bytes] = []
        self.close_code: int | None = None

    @classmethod
    async def open(cls, sock: socket.socket) -> Browser:
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def send_json(self, message: dict) -> None:
        self._proto.send_text(json.dumps(message).encode())
        await self._flush()

    async def send_bytes(self, data: bytes) -> None:
        self._proto.send_binary(data)
        await self._flush()

    async def _flush(self) -> None:
        for chunk in self._proto.data_to_send():
            if chunk:
                self._writer.write(chunk)
        await self._writer.drain()

    async def next(self) -> dict | bytes:
        """The next message from the relay (a decoded JSON event or a binary frame)."""
        while not self._received:
            await self._read_more()
        return self._received.pop(0)

    async def audio(self) -> bytes:
        """Skip to the next binary frame (model audio)."""
        while True:
            message = await asyncio.wait_for(self.next(), WAIT_S)
            if isinstance(message, bytes):
                return message

    async def event(self, kind: str) -> dict:
        """Skip to the next JSON event of type ``kind``."""
        while True:
            message = await asyncio.wait_for(self.next(), WAIT_S)
            if isinstance(message, dict) and message.get("type") == kind:
                return message

    async def closed(self) -> int:
        """Read until the relay closes the socket; returns the close code."""
        async def read_all() -> None:
            while self.close_code is None:
                await self._read_more()
        await asyncio.wait_for(read_all(), WAIT_S)
        return self.close_code

    async def _read_more(self) -> None:
        data = await self._reader.read(65536)
        if not data:
            self._proto.receive_eof()
        else:
            self._proto.receive_data(data)
        for frame in self._proto.events_received():
            if frame.opcode is Opcode.TEXT:
                self._received.append(json.loads(frame.data))
            elif frame.opcode is Opcode.BINARY:
                self._received.append(bytes(frame.data))
            elif frame.opcode is Opcode.CLOSE:
                self.close_code = self._proto.close_rcvd.code if self._proto.close_rcvd else 1006
        await self._flush()
        if not data and self.close_code is None:
            self.close_code = 1006


class CallLog(relay.NullRecorder):
    """A recorder that keeps the outcome calls the relay makes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def outcome(self, name: str, details: dict) -> None:
        self.calls.append(("outcome", name, details))

    def outcome_cancelled(self, name: str) -> None:
        self.calls.append(("outcome_cancelled", name))


class Harness:
    """One conversation between a :class:`Browser` and a :class:`FakeEngine`, run by the real relay."""

    def __init__(self, *, policy: relay.Policy | None = None, mode: Mode = Mode.VOICE,
                 tokens: TokenSigner | None = None) -> None:
        self.engine = FakeEngine()
        self.recorder = CallLog()
        self.conversation = relay.Conversation(
            session_id="s-1", setup=SETUP, mode=mode, scenario_id="sales-ja", engine=self.engine,
            policy=policy or relay.Policy(), emulated=True, tokens=tokens or TokenSigner("fake-engine-tests"),
            recorder=self.recorder,
        )
        self.browser: Browser | None = None
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Harness:
        server_end, client_end = socket.socketpair()
        self.task = asyncio.create_task(relay.serve(server_end, self.conversation))
        self.browser = await Browser.open(client_end)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.conversation.shutdown()
        await self.browser.closed()  # answers the close frame, as a browser does
        await asyncio.wait_for(self.task, WAIT_S)
