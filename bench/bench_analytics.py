"""What measuring a conversation costs: the streaming voice detector, and the metrics at the end.

Renders a realistic 15-minute stereo recording at 24 kHz (turns of tone speech on both
sides over -55 dBFS noise, plus the emulator's synthesised replies), then:

* feeds it to :class:`livetalk.analytics.StereoVad` in blocks of the sizes the recorder
  writes (0.5-0.75 s live, 0.5-5 s at most) and of fixed sizes, and prints µs of CPU per second of audio and the
  share of one core that a live conversation costs;
* prints the peak memory the detector holds while streaming (tracemalloc);
* times :func:`livetalk.analytics.measure_conversation` on the result and a 200-line transcript.

    python bench/bench_analytics.py [--minutes 15] [--repeat 5]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from livetalk.analytics import Part, StereoVad, Utterance, measure_conversation  # noqa: E402
from livetalk.emulator.audio import synthesize  # noqa: E402

RATE = 24000
FRAME_BYTES = 4
NOISE_DBFS = -55.0
REPLY = "はい、承知しました。来週の火曜日でしたら、午後二時からお時間を頂けますでしょうか。"


def conversation(minutes: float, seed: int = 1) -> bytes:
    """Alternating turns: the user as a tone of 3-12 s, the model as the emulator's reply; noise under both."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * RATE)
    stereo = rng.standard_normal((n, 2)) * 32768 * 10 ** (NOISE_DBFS / 20)
    reply = np.frombuffer(synthesize(REPLY)[0], dtype="<i2").astype(np.float64)
    t, side = 0.5, 0
    while True:
        start = int(t * RATE)
        if side == 0:
            length = int(rng.uniform(3, 12) * RATE)
            if start + length > n:
                break
            stereo[start:start + length, 0] += 3000 * np.sin(2 * np.pi * 180 * np.arange(length) / RATE)
        else:
            length = len(reply)
            if start + length > n:
                break
            stereo[start:start + length, 1] += reply
        t += length / RATE + rng.uniform(0.3, 1.5)
        side ^= 1
    return np.clip(np.rint(stereo), -32768, 32767).astype("<i2").tobytes()


def recorder_blocks(total: int, *, shortest_s: float = 0.5, longest_s: float = 5.0, seed: int = 2) -> list[int]:
    """Random block sizes between the recorder's bounds (live, its pump writes 0.5-0.75 s at a time)."""
    rng = random.Random(seed)
    sizes, done = [], 0
    while done < total:
        sizes.append(FRAME_BYTES * rng.randint(int(shortest_s * RATE), int(longest_s * RATE)))
        done += sizes[-1]
    return sizes


def stream(audio: bytes, sizes: list[int]) -> tuple[float, StereoVad]:
    """Process-CPU seconds to feed ``audio`` in blocks of ``sizes`` and finish."""
    view = memoryview(audio)
    blocks = []
    position = 0
    for size in sizes:
        blocks.append(view[position:position + size])
        position += size
    vad = StereoVad(RATE)
    began = time.process_time()
    for block in blocks:
        vad.feed(block)
    vad.finish()
    return time.process_time() - began, vad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    audio = conversation(args.minutes)
    seconds = len(audio) / FRAME_BYTES / RATE
    print(f"{seconds:.0f} s of stereo audio at {RATE} Hz ({len(audio) / 2**20:.1f} MiB)")
    cases = {"live recorder (0.5-0.75 s)": recorder_blocks(len(audio), longest_s=0.75),
             "recorder bounds (0.5-5 s)": recorder_blocks(len(audio))}
    for block_s in (0.02, 0.25, 1.0, 5.0):
        size = int(block_s * RATE) * FRAME_BYTES
        cases[f"fixed {block_s:g} s blocks"] = [size] * (len(audio) // size + 1)
    vad = None
    for name, sizes in cases.items():
        runs = [stream(audio, sizes) for _ in range(args.repeat)]
        per_s = [cpu / seconds * 1e6 for cpu, _ in runs]
        vad = runs[0][1]
        print(f"{name:28s} {min(per_s):7.1f}-{max(per_s):7.1f} µs per s of audio "
              f"(median {statistics.median(per_s):.1f}; {statistics.median(per_s) / 1e4:.4f} % of a core live)")
    activity = vad.finish()
    print(f"segments found: user {len(activity.user)}, model {len(activity.model)}")

    tracemalloc.start()
    sizes = recorder_blocks(len(audio))
    view, position, vad = memoryview(audio), 0, StereoVad(RATE)
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for size in sizes:
        vad.feed(view[position:position + size])
        position += size
    held = tracemalloc.get_traced_memory()[0] - base
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    print(f"memory held after streaming: {held / 1024:.1f} KiB; peak while feeding a block: {peak / 2**20:.2f} MiB "
          f"(largest block {max(sizes) / 2**20:.2f} MiB)")

    log = [Utterance("user" if i % 2 == 0 else "model", "えーと、あの、ご予算はいかがでしょうか？ まあ、来週でも。")
           for i in range(200)]
    times = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        measure_conversation([Part(0.0, activity, log)], language="ja-JP")
        times.append(time.perf_counter() - began)
    print(f"measure_conversation (200 lines, {len(activity.user) + len(activity.model)} segments): "
          f"{min(times) * 1e3:.2f}-{max(times) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
