"""Memory while recording a long conversation: it must stay flat, not grow with length.

Simulates a conversation (default 15 minutes) faster than real time on a fake clock:
the user streams 20 ms frames at 16 kHz, the model answers every few seconds with a
burst of 24 kHz audio, some answers are interrupted, both sides are transcribed.
Prints RSS and traced Python allocations once per simulated minute, then the growth
between the first and the last minute.

    python bench/bench_recording.py [--minutes 15] [--store local|gcs]
    python bench/bench_recording.py --hot-path [--sessions 50] [--seconds 10]

``--hot-path`` measures what recording costs the relay instead: µs per relay-side call,
then N conversations fed in real time (a 20 ms user frame and a 20 ms model chunk per
session every 20 ms, as the relay does) from one thread standing in for the relay loop,
once without and once with recording: the CPU spent off that thread (the recording's
own threads), and how late the loop's 20 ms ticks fire.

``--store gcs`` runs against fake-gcs-server (needs scripts/install-gcs-emulator.sh).
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livetalk.recording import ConversationRecorder, RecordingPump  # noqa: E402
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


# --- --hot-path: what recording costs the relay loop ----------------------------------------

_batches = itertools.count()


def new_recorders(storage, pump: RecordingPump, n: int, clock=time.monotonic) -> list[ConversationRecorder]:
    started = dt.datetime.now(dt.timezone.utc)
    batch = next(_batches)
    return [ConversationRecorder(storage, session_id=f"hot-{batch}-{i}", scenario_id="sales-ja", started_at=started,
                                 clock=clock, pump=pump) for i in range(n)]


def per_call_us(storage, pump: RecordingPump, n_sessions: int, rounds: int = 400) -> dict[str, float]:
    """µs per relay-side call, round-robin over ``n_sessions`` recorders (well inside the queue budget)."""
    user, model = bytes(640), bytes(960)
    out = {}
    for name, call in (("user_audio", lambda r: r.user_audio(user)), ("model_audio", lambda r: r.model_audio(model)),
                       ("transcript", lambda r: r.transcript("user", "word ", False))):
        recorders = new_recorders(storage, pump, n_sessions)
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(rounds):
                for rec in recorders:
                    call(rec)
            best = min(best, (time.perf_counter() - started) / (rounds * n_sessions) * 1e6)
        out[name] = best
        for rec in recorders:
            rec.finalize("end")
    return out


def real_time(storage, pump: RecordingPump, n_sessions: int, seconds: float, record: bool) -> dict[str, float]:
    """N conversations in real time from one "relay loop" thread; CPU on and off that thread, tick lateness."""
    recorders = new_recorders(storage, pump, n_sessions) if record else []
    user, model = bytes(640), bytes(960)
    late: list[float] = []
    loop_cpu = [0.0]

    def relay_loop() -> None:
        cpu0 = time.thread_time()
        start = time.monotonic()
        for tick in range(int(seconds / FRAME_S)):
            due = start + tick * FRAME_S
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            late.append(time.monotonic() - due)
            for rec in recorders:
                rec.user_audio(user)
                rec.model_audio(model)
                if tick % 150 == 75:
                    rec.transcript("user", "a question ", True)
                    rec.transcript("model", "an answer.", False)
                elif tick % 150 == 149:
                    rec.turn_complete()
        loop_cpu[0] = time.thread_time() - cpu0

    cpu0, wall0 = time.process_time(), time.monotonic()
    thread = threading.Thread(target=relay_loop, name="relay-loop")
    thread.start()
    thread.join()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    started = time.monotonic()
    uris = [rec.finalize("end") for rec in recorders]
    finalize_s = time.monotonic() - started
    late.sort()
    return {"wall": wall, "loop_cpu": loop_cpu[0], "other_cpu": cpu - loop_cpu[0], "finalize_s": finalize_s,
            "late_p50_ms": 1000 * statistics.median(late), "late_p99_ms": 1000 * late[int(len(late) * 0.99) - 1],
            "late_max_ms": 1000 * late[-1], "published": sum(u is not None for u in uris)}


def hot_path(sessions: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(tmp)
        pump = RecordingPump()
        calls = per_call_us(storage, pump, sessions)
        print("relay-side calls: " + ", ".join(f"{k} {v:.2f} µs" for k, v in calls.items()))
        print(f"{sessions} sessions x {seconds:g} s in real time (user + model chunk per session per 20 ms):")
        print(f"{'recording':<10} {'loop CPU %':>10} {'other CPU %':>11} {'per session %':>13} "
              f"{'late p50 ms':>11} {'p99 ms':>7} {'max ms':>7} {'finalize s':>10}")
        for record in (False, True):
            r = real_time(storage, pump, sessions, seconds, record)
            loop, other = 100 * r["loop_cpu"] / r["wall"], 100 * r["other_cpu"] / r["wall"]
            print(f"{'on' if record else 'off':<10} {loop:>10.2f} {other:>11.2f} "
                  f"{(loop + other) / sessions:>13.4f} {r['late_p50_ms']:>11.2f} {r['late_p99_ms']:>7.2f} "
                  f"{r['late_max_ms']:>7.2f} {r['finalize_s']:>10.2f}")
            if record:
                print(f"published {r['published']}/{sessions}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--store", choices=("local", "gcs"), default="local")
    parser.add_argument("--hot-path", action="store_true", help="cost to the relay loop instead of memory")
    parser.add_argument("--sessions", type=int, default=50, help="--hot-path: conversations at once")
    parser.add_argument("--seconds", type=float, default=10.0, help="--hot-path: real-time seconds")
    args = parser.parse_args()
    if args.hot_path:
        hot_path(args.sessions, args.seconds)
        return

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
                                        started_at=dt.datetime.now(dt.timezone.utc), clock=clock,
                                        pump=RecordingPump())
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
