"""Memory while recording a long conversation: it must stay flat, not grow with length.

Simulates a conversation (default 15 minutes) faster than real time on a fake clock:
the user streams 20 ms frames at 16 kHz, the model answers every few seconds with a
burst of 24 kHz audio, some answers are interrupted, both sides are transcribed.
Prints RSS and traced Python allocations once per simulated minute, then the growth
between the first and the last minute.

    python bench/bench_recording.py [--minutes 15] [--store local|gcs]

``--store gcs`` runs against fake-gcs-server (needs scripts/install-gcs-emulator.sh).
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livetalk.recording import ConversationRecorder  # noqa: E402
from livetalk.storage import GcsStorage, LocalStorage  # noqa: E402

FRAME_S = 0.02  # user frame length
MODEL_CHUNK_S = 0.1  # one upstream model audio message
TURN_S = 12.0  # one exchange: user speaks, model answers
MODEL_REPLY_S = 5.0  # audio per model answer
BACKLOG_LIMIT = 1024 * 1024  # bytes queued for the writer before the simulation waits


def rss_kib() -> int:
    """Resident set size of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tone(seconds: float, rate: int, freq: float) -> bytes:
    n = int(seconds * rate)
    return b"".join(int(8000 * math.sin(2 * math.pi * freq * i / rate)).to_bytes(2, "little", signed=True)
                    for i in range(n))


class FakeClock:
    """A monotonic clock the simulation advances by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def simulate(recorder: ConversationRecorder, clock: FakeClock, minutes: float, report) -> None:
    user_frame = tone(FRAME_S, 16000, 300)
    model_chunk = tone(MODEL_CHUNK_S, 24000, 500)
    frames_per_turn = int(TURN_S / FRAME_S)
    turn = 0
    next_minute = 60.0
    while clock.t - 1000.0 < minutes * 60:
        for i in range(frames_per_turn):
            clock.t += FRAME_S
            recorder.user_audio(user_frame)
            if i == frames_per_turn // 3:
                recorder.transcript("user", f"question number {turn} ", False)
                recorder.transcript("user", "about the product?", True)
                for _ in range(int(MODEL_REPLY_S / MODEL_CHUNK_S)):  # a burst, faster than real time
                    recorder.model_audio(model_chunk)
                recorder.transcript("model", f"answer {turn}.", False)
            if i == frames_per_turn // 2 and turn % 3 == 0:
                recorder.interrupted()
            if i == frames_per_turn * 2 // 3:
                recorder.turn_complete()
            while recorder.backlog_bytes > BACKLOG_LIMIT:
                time.sleep(0.001)  # a real-time producer never gets this far ahead of the writer
            if clock.t - 1000.0 >= next_minute:
                report(next_minute / 60)
                next_minute += 60.0
        turn += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--store", choices=("local", "gcs"), default="local")
    args = parser.parse_args()

    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "gcs":
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from gcs_helpers import FakeGcsServer

            server = FakeGcsServer(tmp).start()
            os.environ["STORAGE_EMULATOR_HOST"] = server.url
            storage = GcsStorage(server.new_bucket(), client=server.client())
        else:
            storage = LocalStorage(tmp)
        clock = FakeClock()
        recorder = ConversationRecorder(storage, session_id="bench-session", scenario_id="sales-ja",
                                        started_at=dt.datetime.now(dt.timezone.utc), clock=clock)
        tracemalloc.start()
        samples: list[tuple[float, int, int]] = []

        def report(minute: float) -> None:
            current, peak = tracemalloc.get_traced_memory()
            samples.append((minute, rss_kib(), peak))
            print(f"minute {minute:5.1f}  rss {rss_kib() / 1024:7.1f} MiB  traced now {current / 2**20:6.2f} MiB"
                  f"  traced peak {peak / 2**20:6.2f} MiB", flush=True)

        started = time.perf_counter()
        simulate(recorder, clock, args.minutes, report)
        uri = recorder.finalize("end")
        elapsed = time.perf_counter() - started
        report(args.minutes)
        meta = storage.read(f"{recorder.key_prefix}/meta.json").decode()
        audio_bytes = storage.size(f"{recorder.key_prefix}/audio.wav")
        if server is not None:
            server.stop()

    first, last = samples[0], samples[-1]
    print(f"\nrecorded {args.minutes:g} min in {elapsed:.1f} s ({args.minutes * 60 / elapsed:.0f}x real time)"
          f" to {uri}; audio.wav {audio_bytes / 2**20:.1f} MiB")
    print(f"RSS growth minute {first[0]:g} -> end: {(last[1] - first[1]) / 1024:+.1f} MiB;"
          f" traced peak {last[2] / 2**20:.2f} MiB")
    print("dropped:", meta[meta.index('"dropped"'):].split("}")[0] + "}")


if __name__ == "__main__":
    main()
