"""Relay benchmark: N sessions of real-time 16 kHz audio through the production server.

Runs, in one go and on this machine:

1. the Gemini emulator in echo mode, as its own process (every 20 ms chunk is
   answered at once with a 24 kHz chunk that carries the same 8-byte tag);
2. the production server, exactly as deployed: ``gunicorn -c gunicorn.conf.py app:app``,
   configured with a (fake) key and pointed at the emulator through the SDK's own
   ``GOOGLE_GEMINI_BASE_URL`` / ``SSL_CERT_FILE``;
3. the same load twice, side by side: straight at the emulator (what Gemini alone
   costs) and through the relay. Each frame's round trip is timed by its tag.

Prints relay-added latency (p50/p99 of relay minus direct), lost frames, the
server's CPU (% of one core per session, from /proc) and RSS per session.

    python bench/bench_relay.py --sessions 50 --seconds 20
    python bench/bench_relay.py --micro        # per-message cost: SDK vs livewire
    python bench/bench_relay.py --compare uvloop=EVENT_LOOP:uvloop --compare asyncio=EVENT_LOOP:asyncio
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import struct
import sys
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchkit import cpu_seconds, process_tree, rss_bytes, start_emulator, start_server, stop  # noqa: E402
from livetalk import livewire  # noqa: E402

FRAME_MS = 20
FRAME_BYTES = 16000 * FRAME_MS // 1000 * 2  # 640
ECHO_BYTES = FRAME_BYTES * 3 // 2  # the emulator's 24 kHz reply to one frame


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
    """One simulated client: sends tagged frames at real time, times their echoes."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.sent: dict[int, float] = {}
        self.rtts: list[float] = []
        self.foreign = 0

    def frame(self, seq: int) -> bytes:
        self.sent[seq] = time.perf_counter()
        return struct.pack("<II", self.index, seq) + bytes(FRAME_BYTES - 8)

    def echo(self, pcm: bytes) -> None:
        for offset in range(0, len(pcm) - 7, ECHO_BYTES):
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
        while json.loads(await ws.recv()).get("type") != "ready":
            pass
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


async def direct_session(base_url: str, ctx: ssl.SSLContext, session: Session, n_frames: int,
                         settle_s: float) -> None:
    url = base_url.replace("https://", "wss://") + \
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    async with websockets.connect(url, ssl=ctx, max_size=None, additional_headers={"x-goog-api-key": "bench"}) as ws:
        await ws.send(json.dumps({"setup": {"model": "models/gemini-3.8-live",
                                            "generationConfig": {"responseModalities": ["AUDIO"]}}}))
        await ws.recv()  # setupComplete

        async def receive() -> None:
            async for raw in ws:
                for event in livewire.parse_server_message(raw):
                    if isinstance(event, livewire.ModelAudio):
                        session.echo(event.pcm)

        async def send(frame: bytes) -> None:
            await ws.send(livewire.encode_audio(frame), text=True)

        reader = asyncio.create_task(receive())
        await paced(session, n_frames, send)
        await asyncio.sleep(settle_s)
        reader.cancel()


async def run_load(make, n_sessions: int, n_frames: int) -> list[Session]:
    sessions = [Session(i) for i in range(n_sessions)]
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
    emu, base_url, ca_file = start_emulator()
    server = start_server(args.port, base_url, ca_file, args.workers)
    ctx = ssl.create_default_context(cafile=ca_file)
    n_frames = int(args.seconds * 1000 / FRAME_MS)
    url = f"ws://127.0.0.1:{args.port}/ws/realtime"
    try:
        asyncio.run(run_load(lambda s: relay_session(url, s, 10, 0.5), 2, 10))  # warm up every worker
        pids = process_tree(server.pid)
        rss_idle = rss_bytes(pids)
        direct = summarise(asyncio.run(run_load(
            lambda s: direct_session(base_url, ctx, s, n_frames, 1.0), args.sessions, n_frames)), n_frames)
        marks: dict[str, tuple[float, float]] = {}
        phases_factory = lambda: Phases(  # noqa: E731
            args.sessions,
            lambda: marks.__setitem__("start", (cpu_seconds(pids), time.monotonic())),
            lambda: marks.__setitem__("stop", (cpu_seconds(pids), time.monotonic())),
        )
        rss_peak = [rss_idle]

        async def relay_with_rss() -> list[Session]:
            async def sample() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    rss_peak[0] = max(rss_peak[0], rss_bytes(pids))
            sampler = asyncio.create_task(sample())
            phases = phases_factory()
            try:
                return await run_load(lambda s: relay_session(url, s, n_frames, 1.0, phases),
                                      args.sessions, n_frames)
            finally:
                sampler.cancel()

        relayed = summarise(asyncio.run(relay_with_rss()), n_frames)
        cpu = marks["stop"][0] - marks["start"][0]
        wall = marks["stop"][1] - marks["start"][1]
    finally:
        stop(server, emu)
    report(args, direct, relayed, cpu, wall, rss_idle, rss_peak[0])


def relay_cpu(args, base_url: str, ca_file: str, env: dict[str, str]) -> tuple[dict, float]:
    """One production server with ``env``: the relay phase alone; (latency summary, % of a core per session)."""
    env = dict(env)
    cwd = Path(env.pop("CHECKOUT", ROOT))
    server = start_server(args.port, base_url, ca_file, args.workers, cwd=cwd, **env)
    n_frames = int(args.seconds * 1000 / FRAME_MS)
    url = f"ws://127.0.0.1:{args.port}/ws/realtime"
    marks: dict[str, tuple[float, float]] = {}
    try:
        asyncio.run(run_load(lambda s: relay_session(url, s, 10, 0.5), 2, 10))  # warm up every worker
        pids = process_tree(server.pid)
        phases = lambda: Phases(  # noqa: E731
            args.sessions,
            lambda: marks.__setitem__("start", (cpu_seconds(pids), time.monotonic())),
            lambda: marks.__setitem__("stop", (cpu_seconds(pids), time.monotonic())),
        )

        async def load() -> list[Session]:
            progress = phases()
            return await run_load(lambda s: relay_session(url, s, n_frames, 1.0, progress), args.sessions, n_frames)

        summary = summarise(asyncio.run(load()), n_frames)
    finally:
        stop(server)
    cpu, wall = marks["stop"][0] - marks["start"][0], marks["stop"][1] - marks["start"][1]
    return summary, 100 * cpu / wall / args.sessions


def compare(args) -> None:
    """Variants of the server's environment, run in turn for ``--rounds`` rounds on one machine state."""
    variants = [_variant(spec) for spec in args.compare]
    emu, base_url, ca_file = start_emulator()
    results: dict[str, list[float]] = {name: [] for name, _ in variants}
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
    print(f"relay benchmark: {n} sessions x {args.seconds:g} s of 16 kHz audio in {FRAME_MS} ms frames, "
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
    pcm = bytes(FRAME_BYTES)
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
