"""Memory benchmark: does a worker's RSS stay flat over many short conversations?

Starts the emulator (converse mode, so the model answers and both sides are recorded) and the production server
(``gunicorn -c gunicorn.conf.py app:app``, recording on), then runs ``--conversations`` short conversations,
``--parallel`` at a time, each: open the socket, wait for ``ready``, stream ``--audio-s`` seconds of a tone in
20 ms frames at real time, send ``end``, wait for the close. Prints each worker's RSS after every ``--every``
conversations and the growth from the first checkpoint to the last (target: at most +50 MB per worker between
100 and 1,000 conversations).

    python bench/bench_memory.py --conversations 1000 --parallel 20
    python bench/bench_memory.py --checkout ../older-checkout     # the same load on another version
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import struct
import sys
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchkit import rss_bytes, start_emulator, start_server, stop, workers as worker_pids  # noqa: E402

FRAME_MS = 20
RATE = 16000


def tone_frames(seconds: float) -> list[bytes]:
    """A 440 Hz tone at a speaking level, cut into 20 ms PCM16 frames."""
    n = int(RATE * FRAME_MS / 1000)
    total = int(seconds * 1000 / FRAME_MS)
    return [struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * 440 * (k * n + i) / RATE)) for i in range(n)))
            for k in range(total)]


async def conversation(url: str, frames: list[bytes]) -> bool:
    """One short conversation; True when it ended with ``ended``."""
    async with websockets.connect(url, max_size=None, compression=None, open_timeout=60) as ws:
        while json.loads(await ws.recv()).get("type") != "ready":
            pass
        start = time.perf_counter()
        for i, frame in enumerate(frames):
            delay = start + i * FRAME_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(frame)
        await ws.send(json.dumps({"type": "end"}))
        async for message in ws:
            if isinstance(message, str) and json.loads(message).get("type") == "ended":
                return True
    return False


async def run(url: str, args, workers: list[int]) -> list[tuple[int, list[int]]]:
    frames = tone_frames(args.audio_s)
    checkpoints: list[tuple[int, list[int]]] = []
    done = ok = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.conversations):
        queue.put_nowait(i)

    async def client() -> None:
        nonlocal done, ok
        while not queue.empty():
            queue.get_nowait()
            try:
                ended = await conversation(url, frames)
                ok += ended
            except (OSError, websockets.WebSocketException) as exc:
                print(f"conversation failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            done += 1
            if done % args.every == 0:
                await asyncio.sleep(1.0)  # let the recordings finish publishing
                rss = [rss_bytes([pid]) for pid in workers]
                checkpoints.append((done, rss))
                print(f"{done:>6} conversations ({ok} ended normally): "
                      + "  ".join(f"worker {k}: {r / 2**20:7.1f} MiB" for k, r in enumerate(rss)), flush=True)

    await asyncio.gather(*(client() for _ in range(args.parallel)))
    return checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--audio-s", type=float, default=1.0, help="seconds of audio each conversation sends")
    parser.add_argument("--every", type=int, default=100, help="report RSS after this many conversations")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--checkout", type=Path, default=ROOT,
                        help="the checkout whose server to measure (another one compares versions)")
    args = parser.parse_args()
    emu, base_url, ca_file = start_emulator("converse")
    server = start_server(args.port, base_url, ca_file, args.workers, cwd=args.checkout)
    try:
        workers = worker_pids(server.pid)
        print(f"memory benchmark: {args.conversations} conversations, {args.parallel} at a time, "
              f"{args.audio_s:g} s of audio each, {len(workers)} workers, recording on")
        print("idle: " + "  ".join(f"worker {k}: {rss_bytes([p]) / 2**20:7.1f} MiB" for k, p in enumerate(workers)))
        checkpoints = asyncio.run(run(f"ws://127.0.0.1:{args.port}/ws/realtime", args, workers))
    finally:
        stop(server, emu)
    if len(checkpoints) >= 2:
        (n0, first), (n1, last) = checkpoints[0], checkpoints[-1]
        growth = [(b - a) / 2**20 for a, b in zip(first, last)]
        print(f"growth from {n0} to {n1} conversations: "
              + "  ".join(f"worker {k}: {g:+.1f} MiB" for k, g in enumerate(growth))
              + "  (target: at most +50 MiB each)")


if __name__ == "__main__":
    main()
