"""Relay benchmark: N sessions of real-time audio through the production server, on either engine.

Runs, in one go and on this machine:

1. the emulator in echo mode, as its own process: every 20 ms chunk is answered at
   once with a 24 kHz chunk that carries the same 8-byte tag (Gemini: 16 kHz in,
   upsampled; OpenAI Realtime: 24 kHz in, the same bytes back as one
   ``response.output_audio.delta``);
2. the production server, exactly as deployed: ``gunicorn -c gunicorn.conf.py app:app``,
   configured with (fake) keys and pointed at the emulator through the SDKs' own
   ``GOOGLE_GEMINI_BASE_URL`` / ``OPENAI_BASE_URL`` / ``SSL_CERT_FILE``;
3. the same load twice, side by side: straight at the emulator (what the engine alone
   costs) and through the relay. Each frame's round trip is timed by its tag.

Prints relay-added latency (p50/p99 of relay minus direct), lost frames, the
server's CPU (% of one core per session, from /proc) and RSS per session.

    python bench/bench_relay.py --sessions 50 --seconds 20                  # Gemini Live
    python bench/bench_relay.py --engine openai --sessions 50 --seconds 20  # OpenAI Realtime (sales-en-openai)
    python bench/bench_relay.py --micro        # per-message cost: SDK vs livewire
    python bench/bench_relay.py --compare uvloop=EVENT_LOOP:uvloop --compare asyncio=EVENT_LOOP:asyncio
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import ssl
import statistics
import struct
import sys
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchkit import cpu_seconds, process_tree, rss_bytes, start_emulator, start_server, stop  # noqa: E402
from livetalk import livewire, openaiwire  # noqa: E402
from livetalk.engine import ModelAudio  # noqa: E402

FRAME_MS = 20
ECHO_BYTES = 24000 * FRAME_MS // 1000 * 2  # 960: the emulator's 24 kHz reply to one frame, on either engine
TAG_BYTES = 8  # <II: session index, frame number
BENCH_KEY = "bench"  # the direct sessions' (fake) key

Decoder = Callable[[bytes], list[bytes]]  # one server message → the model audio (PCM) it carries


# --- engines ---------------------------------------------------------------------------


async def _gemini_hello(ws) -> Decoder:
    """Set up a Live session; model audio is read with livetalk.livewire."""
    await ws.send(json.dumps({"setup": {"model": "models/gemini-3.8-live",
                                        "generationConfig": {"responseModalities": ["AUDIO"]}}}))
    await ws.recv()  # setupComplete
    return lambda raw: [e.pcm for e in livewire.parse_server_message(raw) if isinstance(e, ModelAudio)]


async def _openai_hello(ws) -> Decoder:
    """Wait for ``session.created``; server events are read with livetalk.openaiwire, as the relay reads them."""
    await ws.recv()  # session.created (echo mode needs no session.update)
    state = openaiwire.SessionState()
    return lambda raw: [e.pcm for e in state.read(raw, time.monotonic()) if isinstance(e, ModelAudio)]


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """What the benchmark does differently per engine.

    Args:
        name: the engine (``--engine``).
        input_rate_hz: the browser's capture rate on this engine (``ready.input_rate``).
        query: the ``/ws/realtime`` query choosing a scenario on this engine ("" for the default scenario).
        server_env: extra server environment; ``{base_url}`` is replaced by the emulator's base URL.
        direct_path: the emulator's socket for this engine (after the base URL).
        direct_headers: the direct sessions' credentials.
        hello: opens a direct session on the socket; returns its decoder of model audio.
        encode: one frame (PCM16 at ``input_rate_hz``) as the engine's JSON text message.
    """

    name: str
    input_rate_hz: int
    query: str
    server_env: Mapping[str, str]
    direct_path: str
    direct_headers: Mapping[str, str]
    hello: Callable[..., Awaitable[Decoder]]
    encode: Callable[[bytes], str]

    @property
    def frame_bytes(self) -> int:
        """One 20 ms frame of PCM16 at the input rate (640 bytes at 16 kHz, 960 at 24 kHz)."""
        return self.input_rate_hz * FRAME_MS // 1000 * 2

    def env(self, base_url: str) -> dict[str, str]:
        """The server environment this engine adds, for an emulator at ``base_url``."""
        return {key: value.format(base_url=base_url) for key, value in self.server_env.items()}


ENGINES: Mapping[str, EngineSpec] = types.MappingProxyType({
    "gemini": EngineSpec(
        name="gemini", input_rate_hz=16000, query="", server_env={},
        direct_path="/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
        direct_headers={"x-goog-api-key": BENCH_KEY}, hello=_gemini_hello, encode=livewire.encode_audio),
    "openai": EngineSpec(
        name="openai", input_rate_hz=openaiwire.RATE_HZ, query="?scenario=sales-en-openai",
        server_env={"OPENAI_API_KEY": "bench-fake-key", "OPENAI_BASE_URL": "{base_url}/v1"},
        direct_path="/v1/realtime?model=gpt-realtime-2",
        direct_headers={"Authorization": f"Bearer {BENCH_KEY}"}, hello=_openai_hello,
        encode=openaiwire.encode_append),
})


# --- load ------------------------------------------------------------------------------


class Phases:
    """Marks when every session is streaming and when all have finished, for CPU accounting."""

    def __init__(self, n_sessions: int, on_start, on_stop) -> None:
        self.waiting = self.running = n_sessions
        self.all_ready = asyncio.Event()
        self.on_start, self.on_stop = on_start, on_stop

    async def ready(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.on_start()
            self.all_ready.set()
        await self.all_ready.wait()

    def done(self) -> None:
        self.running -= 1
        if self.running == 0:
            self.on_stop()


class Session:
    """One simulated client: sends tagged frames of ``frame_bytes`` at real time, times their echoes."""

    def __init__(self, index: int, frame_bytes: int) -> None:
        self.index = index
        self.frame_bytes = frame_bytes
        self.sent: dict[int, float] = {}
        self.rtts: list[float] = []
        self.foreign = 0

    def frame(self, seq: int) -> bytes:
        self.sent[seq] = time.perf_counter()
        return struct.pack("<II", self.index, seq) + bytes(self.frame_bytes - TAG_BYTES)

    def echo(self, pcm: bytes) -> None:
        for offset in range(0, len(pcm) - TAG_BYTES + 1, ECHO_BYTES):
            index, seq = struct.unpack_from("<II", pcm, offset)
            if index != self.index or seq not in self.sent:
                self.foreign += 1
                continue
            self.received(seq, time.perf_counter() - self.sent.pop(seq))

    def received(self, seq: int, rtt_s: float) -> None:
        """Frame ``seq``'s echo came back ``rtt_s`` seconds after it was sent."""
        self.rtts.append(rtt_s)


async def paced(session: Session, n_frames: int, send) -> None:
    start = time.perf_counter()
    for seq in range(n_frames):
        delay = start + seq * FRAME_MS / 1000 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(session.frame(seq))


async def relay_session(url: str, session: Session, n_frames: int, settle_s: float,
                        phases: Phases | None = None) -> None:
    async with websockets.connect(url, max_size=None, compression=None, open_timeout=60) as ws:
        while (ready := json.loads(await ws.recv())).get("type") != "ready":
            pass
        if ready["input_rate"] * FRAME_MS // 1000 * 2 != session.frame_bytes:
            raise SystemExit(f"the server asks for {ready['input_rate']} Hz audio on engine {ready.get('engine')}")
        if phases is not None:
            await phases.ready()

        async def receive() -> None:
            async for message in ws:
                if isinstance(message, bytes):
                    session.echo(message)

        reader = asyncio.create_task(receive())
        await paced(session, n_frames, ws.send)
        if phases is not None:
            phases.done()
        await asyncio.sleep(settle_s)
        reader.cancel()


async def direct_session(engine: EngineSpec, base_url: str, ctx: ssl.SSLContext, session: Session, n_frames: int,
                         settle_s: float) -> None:
    """One session straight at the emulator, speaking the engine's wire with the relay's own hot-path codec."""
    url = base_url.replace("https://", "wss://") + engine.direct_path
    async with websockets.connect(url, ssl=ctx, max_size=None, additional_headers=engine.direct_headers) as ws:
        decode = await engine.hello(ws)

        async def receive() -> None:
            async for raw in ws:
                for pcm in decode(raw):
                    session.echo(pcm)

        async def send(frame: bytes) -> None:
            await ws.send(engine.encode(frame), text=True)

        reader = asyncio.create_task(receive())
        await paced(session, n_frames, send)
        await asyncio.sleep(settle_s)
        reader.cancel()


async def run_load(make, n_sessions: int, frame_bytes: int) -> list[Session]:
    sessions = [Session(i, frame_bytes) for i in range(n_sessions)]
    await asyncio.gather(*(make(s) for s in sessions))
    return sessions


def summarise(sessions: list[Session], n_frames: int) -> dict:
    rtts = sorted(r for s in sessions for r in s.rtts)
    sent = len(sessions) * n_frames
    return {
        "frames": sent,
        "lost": sent - len(rtts),
        "foreign": sum(s.foreign for s in sessions),
        "p50_ms": 1000 * statistics.median(rtts) if rtts else float("nan"),
        "p99_ms": 1000 * rtts[int(len(rtts) * 0.99) - 1] if rtts else float("nan"),
    }


# --- main ------------------------------------------------------------------------------


def measure(args) -> None:
    """Direct, then relayed load on one emulator and one server; prints the report."""
    engine = ENGINES[args.engine]
    emu, base_url, ca_file = start_emulator()
    server = start_server(args.port, base_url, ca_file, args.workers, **engine.env(base_url))
    ctx = ssl.create_default_context(cafile=ca_file)
    n_frames = int(args.seconds * 1000 / FRAME_MS)
    try:
        pids = warm_up(args, engine, server)
        rss_idle = rss_bytes(pids)
        direct = summarise(asyncio.run(run_load(
            lambda s: direct_session(engine, base_url, ctx, s, n_frames, 1.0), args.sessions, engine.frame_bytes)),
            n_frames)
        relayed, cpu, wall, rss_peak = asyncio.run(relay_phase(args, engine, pids, rss_idle))
    finally:
        stop(server, emu)
    report(args, direct, relayed, cpu, wall, rss_idle, rss_peak)


def relay_url(args, engine: EngineSpec) -> str:
    """The server's browser socket, with the scenario that selects ``engine``."""
    return f"ws://127.0.0.1:{args.port}/ws/realtime{engine.query}"


def warm_up(args, engine: EngineSpec, server) -> list[int]:
    """Two short sessions (one per worker, with luck) so clients exist; returns the server's pids."""
    url = relay_url(args, engine)
    asyncio.run(run_load(lambda s: relay_session(url, s, 10, 0.5), 2, engine.frame_bytes))
    return process_tree(server.pid)


async def relay_phase(args, engine: EngineSpec, pids: list[int], rss_idle: int) -> tuple[dict, float, float, int]:
    """The load through the relay: (latency summary, server CPU s and wall s while all stream, peak RSS bytes)."""
    n_frames = int(args.seconds * 1000 / FRAME_MS)
    url = relay_url(args, engine)
    marks: dict[str, tuple[float, float]] = {}
    phases = Phases(args.sessions, lambda: marks.__setitem__("start", (cpu_seconds(pids), time.monotonic())),
                    lambda: marks.__setitem__("stop", (cpu_seconds(pids), time.monotonic())))
    rss_peak = rss_idle

    async def sample() -> None:
        nonlocal rss_peak
        while True:
            await asyncio.sleep(1.0)
            rss_peak = max(rss_peak, rss_bytes(pids))

    sampler = asyncio.create_task(sample())
    try:
        sessions = await run_load(lambda s: relay_session(url, s, n_frames, 1.0, phases), args.sessions,
                                  engine.frame_bytes)
    finally:
        sampler.cancel()
    (cpu_start, wall_start), (cpu_stop, wall_stop) = marks["start"], marks["stop"]
    return summarise(sessions, n_frames), cpu_stop - cpu_start, wall_stop - wall_start, rss_peak


def relay_cpu(args, base_url: str, ca_file: str, env: dict[str, str]) -> tuple[dict, float]:
    """One production server with ``env``: the relay phase alone; (latency summary, % of a core per session)."""
    engine = ENGINES[args.engine]
    env = {**engine.env(base_url), **env}
    cwd = Path(env.pop("CHECKOUT", ROOT))
    server = start_server(args.port, base_url, ca_file, args.workers, cwd=cwd, **env)
    try:
        pids = warm_up(args, engine, server)
        summary, cpu, wall, _ = asyncio.run(relay_phase(args, engine, pids, 0))
    finally:
        stop(server)
    return summary, 100 * cpu / wall / args.sessions


def compare(args) -> None:
    """Variants of the server's environment, run in turn for ``--rounds`` rounds on one machine state."""
    variants = [_variant(spec) for spec in args.compare]
    emu, base_url, ca_file = start_emulator()
    results: dict[str, list[float]] = {name: [] for name, _ in variants}
    print(f"engine {args.engine}", flush=True)
    try:
        for round_ in range(args.rounds):
            for name, env in variants:
                summary, per_session = relay_cpu(args, base_url, ca_file, env)
                results[name].append(per_session)
                print(f"round {round_ + 1} {name:<12} {per_session:.3f} % of a core per session, "
                      f"p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms, lost {summary['lost']}",
                      flush=True)
    finally:
        emu.terminate()
        emu.wait(5)
    for name, values in results.items():
        print(f"{name:<12} median {statistics.median(values):.3f} % per session "
              f"(range {min(values):.3f}-{max(values):.3f}, {len(values)} runs)")


def _variant(spec: str) -> tuple[str, dict[str, str]]:
    """``name=KEY:VALUE,KEY:VALUE`` as (name, environment); ``CHECKOUT:<dir>`` serves another checkout."""
    name, _, settings = spec.partition("=")
    env = dict(item.split(":", 1) for item in settings.split(",") if item)
    return name, env


def report(args, direct: dict, relayed: dict, cpu_s: float, wall_s: float, rss_idle: int, rss_peak: int) -> None:
    n = args.sessions
    engine = ENGINES[args.engine]
    print(f"relay benchmark, engine {engine.name}: {n} sessions x {args.seconds:g} s of "
          f"{engine.input_rate_hz // 1000} kHz audio in {FRAME_MS} ms frames, "
          f"{args.workers} gunicorn workers, {os.cpu_count()} cores")
    print(f"{'path':<8} {'frames':>8} {'lost':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, s in (("direct", direct), ("relay", relayed)):
        print(f"{name:<8} {s['frames']:>8} {s['lost']:>6} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}")
    print(f"relay-added latency: p50 {relayed['p50_ms'] - direct['p50_ms']:+.2f} ms, "
          f"p99 {relayed['p99_ms'] - direct['p99_ms']:+.2f} ms")
    print(f"lost frames through the relay: {relayed['lost']}; audio delivered to the wrong session: "
          f"{relayed['foreign']}")
    print(f"server CPU: {100 * cpu_s / wall_s:.1f} % of a core in all, "
          f"{100 * cpu_s / wall_s / n:.3f} % of a core per session")
    print(f"server RSS: {rss_idle / 2**20:.1f} MiB idle, {rss_peak / 2**20:.1f} MiB peak, "
          f"{(rss_peak - rss_idle) / n / 2**20:.3f} MiB per session")


def micro() -> None:
    """Per-message cost of the SDK's typed path against livetalk.livewire (µs)."""
    from google.genai import live as sdk_live
    from google.genai import types

    class Socket:
        frame = json.dumps({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
            "mimeType": "audio/pcm;rate=24000", "data": "A" * 1280}}]}}}).encode()

        async def send(self, message) -> None:
            pass

        async def recv(self, decode=False) -> bytes:
            return self.frame

    class Api:
        vertexai = False

    ws = Socket()
    session = sdk_live.AsyncSession(api_client=Api(), websocket=ws)
    pcm = bytes(ENGINES["gemini"].frame_bytes)
    n = 20000

    async def timed(fn) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        return (time.perf_counter() - start) / n * 1e6

    async def sdk_send() -> None:
        await session.send_realtime_input(audio=types.Blob(data=pcm, mime_type="audio/pcm;rate=16000"))

    async def our_send() -> None:
        await ws.send(livewire.encode_audio(pcm))

    async def sdk_recv() -> None:
        (await session._receive()).data

    async def our_recv() -> None:
        livewire.parse_server_message(await ws.recv())

    async def main() -> None:
        rows = [("send audio chunk", await timed(sdk_send), await timed(our_send)),
                ("receive audio chunk", await timed(sdk_recv), await timed(our_recv))]
        print(f"{'per message':<22} {'SDK µs':>8} {'livewire µs':>12} {'ratio':>7}")
        for name, sdk, ours in rows:
            print(f"{name:<22} {sdk:>8.1f} {ours:>12.1f} {sdk / ours:>6.1f}x")

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=list(ENGINES), default="gemini",
                        help="the engine the sessions' scenario uses (also for --compare)")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="audio streamed per session")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--micro", action="store_true", help="only the per-message micro-benchmark")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=KEY:VALUE,...",
                        help="compare server environments side by side (repeat), e.g. asyncio=EVENT_LOOP:asyncio")
    parser.add_argument("--rounds", type=int, default=3, help="--compare: rounds, each variant once per round")
    args = parser.parse_args()
    if args.micro:
        micro()
    elif args.compare:
        compare(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
