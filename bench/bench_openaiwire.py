"""Per-message cost of the openai SDK's typed Realtime path against livetalk.openaiwire (µs), no network.

The SDK's own ``AsyncRealtimeConnection`` runs over a socket stand-in that swallows what is sent and
replays one 40 ms audio delta, so only the per-message work is timed::

    python bench/bench_openaiwire.py [--n 20000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openai.resources.realtime.realtime import AsyncRealtimeConnection  # noqa: E402

from livetalk import openaiwire  # noqa: E402

CHUNK_BYTES = 24000 * 2 * 20 // 1000  # one 20 ms frame from the browser
DELTA = json.dumps({"type": "response.output_audio.delta", "event_id": "event_1", "response_id": "resp_1",
                    "item_id": "item_1", "output_index": 0, "content_index": 0,
                    "delta": base64.b64encode(bytes(1920)).decode()}).encode()  # 40 ms of model audio


class Socket:
    """A websockets connection stand-in: sends go nowhere, every receive is the same audio delta."""

    async def send(self, message) -> None:
        pass

    async def recv(self, decode=None) -> bytes:
        return DELTA


async def timed(fn, n: int) -> float:
    for _ in range(n // 20):  # warm up
        await fn()
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - start) / n * 1e6


async def measure(n: int) -> list[tuple[str, float, float]]:
    conn = AsyncRealtimeConnection(Socket())
    state = openaiwire.SessionState()
    pcm = bytes(range(256)) * (CHUNK_BYTES // 256) + bytes(CHUNK_BYTES % 256)

    async def sdk_send() -> None:
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())

    async def our_send() -> None:
        await conn.send_raw(openaiwire.encode_append(pcm))

    async def sdk_recv() -> None:
        base64.b64decode((await conn.recv()).delta)

    async def our_recv() -> None:
        state.read(await conn.recv_bytes(), 0.0)

    return [("send 20 ms of audio", await timed(sdk_send, n), await timed(our_send, n)),
            ("receive 40 ms of audio", await timed(sdk_recv, n), await timed(our_recv, n))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="messages per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'per message':<24} {'SDK µs':>8} {'openaiwire µs':>14} {'ratio':>7}")
    for _ in range(args.rounds):
        for name, sdk, ours in asyncio.run(measure(args.n)):
            print(f"{name:<24} {sdk:>8.1f} {ours:>14.1f} {sdk / ours:>6.1f}x")


if __name__ == "__main__":
    main()
