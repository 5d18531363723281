"""Chaos soak: many conversations through the production server while the upstream misbehaves.

Runs, on this machine:

1. the Gemini emulator in echo mode, as its own process (each 20 ms frame comes straight back,
   tagged, so every frame's round trip is timed; a resumption handle follows each second of audio);
2. the production server, ``gunicorn -c gunicorn.conf.py app:app``, pointed at it, recording to a
   temporary ``DATA_DIR``, with ``UPSTREAM_STALL_SECONDS`` set low (``--stall-seconds``);
3. a short direct run against the emulator (what the emulator alone costs: the latency baseline);
4. ``--conversations`` slots, each running conversations back to back (60–120 s each, staggered)
   until ``--minutes`` are up. Every conversation streams tagged 16 kHz frames in real time and, at
   a random moment (``--seed``), types one fault as an ``!emu`` text turn:

   ``goaway``  ``!emu goaway <s>``: the relay hands over to a new session at the next resumable point;
   ``close``   ``!emu close 1011 The service is currently unavailable.``: a recoverable close;
   ``drop``    ``!emu drop``: TCP abort, no close frame;
   ``stall``   ``!emu stall``, then a typed turn the stalled session never answers;
   ``slow``    ``!emu slow <ms>`` for a few seconds, then ``!emu slow 0``: no reconnect expected.

   It then sends ``end`` and waits for ``ended``. Afterwards each recording is read back with the
   project's own reader (``livetalk.recording.readback``) and its WAV read to the end.

A frame is *in a fault window* when it was sent between its conversation's fault and the moment
the upstream was healthy again plus a grace (``resumed`` + 1 s; for ``slow``, the lift + the delay
+ 1 s). Frames lost there are the hand-over's price (a dropped or stalled session swallows what it
was sent); every other frame must come back. Prints:

- conversations started / survived to their planned end (``ended``, no fatal ``error``), per fault;
- reconnects by reason, faults recovered, the slowest recovery (fault → ``resumed``);
- user audio frames sent, lost outside fault windows (target 0) and inside them;
- p50/p99 round trip of frames outside fault windows, the direct baseline, and the difference
  (relay-added latency outside reconnects);
- recordings complete and readable (``complete`` in every meta, the WAV read through, at least as
  long as the audio sent and no longer than the conversation lasted, the typed turns in the transcript);
- the server's RSS at the start and the end (and peak), and its CPU.

Exits 1 when a target is missed: every conversation survives, every fault is recovered, 0 frames
lost outside fault windows, no echo in the wrong conversation, every recording complete.

    python bench/soak.py                  # 30 conversations at once for 5 minutes
    python bench/soak.py --quick          # 6 at once for 1 minute, 20-40 s each: a smoke run
    python bench/soak.py --conversations 10 --minutes 2 --seed 7 --stall-seconds 2
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_relay import FRAME_MS, Session, direct_session, paced, relay_session, run_load, summarise  # noqa: E402
from bench.benchkit import cpu_seconds, process_tree, rss_bytes, start_emulator, start_server, stop  # noqa: E402
from livetalk.analytics import AudioFormatError, open_wav  # noqa: E402
from livetalk.recording.readback import read_conversation  # noqa: E402
from livetalk.storage import LocalStorage, StorageError  # noqa: E402
from livetalk.storage.joined import open_joined  # noqa: E402

FAULT_KINDS = ("goaway", "close", "drop", "stall", "slow")
EXPECTED_REASON = {"goaway": "go_away", "close": "upstream_closed", "drop": "upstream_closed", "stall": "stall"}
CLOSE_1011 = "!emu close 1011 The service is currently unavailable."  # Gemini's recoverable 1011
STALL_FOLLOW_UP = "Are you still there?"  # the typed turn the stalled session never answers
STALL_FOLLOW_UP_S = 0.2  # between `!emu stall` and the turn it freezes on
GRACE_S = 1.0  # a fault window ends this long after the upstream is healthy again
FIRST_FAULT_S = 3.0  # faults come after the first resumption handles (one per second of audio)
STAGGER_S = 5.0  # the first conversations of all slots start within this
ECHO_SETTLE_S = 2.0  # after the last frame, wait at most this for outstanding echoes
ENDED_TIMEOUT_S = 20.0  # `end` → `ended`
WAV_EARLY_S = 0.1  # a recording may be this much shorter than the audio sent (placement jitter)
WAV_LATE_S = 0.5  # or this much longer than the conversation lasted (ready → ended): one block of the timeline,
# plus, after a `slow` fault, its delay: the delayed echoes come in a burst when it is lifted, and the recording
# plays model audio back to back as a client would, so the model's channel ends that much later
RSS_SAMPLE_S = 1.0


# --- the plan --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """One fault: its kind, when (s after ready), its parameters (GoAway time left s, slow ms and for how long s)."""

    kind: str
    at_s: float
    goaway_s: float = 0.0
    slow_ms: int = 0
    slow_for_s: float = 0.0

    def texts(self) -> list[tuple[float, str]]:
        """The typed turns that inject it, each with its delay (s) after the previous one."""
        return {
            "goaway": [(0.0, f"!emu goaway {self.goaway_s:.0f}")],
            "close": [(0.0, CLOSE_1011)],
            "drop": [(0.0, "!emu drop")],
            "stall": [(0.0, "!emu stall"), (STALL_FOLLOW_UP_S, STALL_FOLLOW_UP)],
            "slow": [(0.0, f"!emu slow {self.slow_ms}"), (self.slow_for_s, "!emu slow 0")],
        }[self.kind]


@dataclasses.dataclass(frozen=True)
class Plan:
    """One conversation: its number (the frames' tag), slot, start (s after the soak began), length (s), fault."""

    index: int
    slot: int
    start_s: float
    length_s: float
    fault: FaultPlan

    @property
    def n_frames(self) -> int:
        return int(self.length_s * 1000 / FRAME_MS)


def plan_soak(rng: random.Random, slots: int, total_s: float, lengths: tuple[float, float]) -> list[Plan]:
    """Conversations for ``slots`` slots run back to back over ``total_s``, faults spread evenly over kinds."""
    spans = []
    for slot in range(slots):
        t = slot * STAGGER_S / slots
        while total_s - t >= lengths[0]:
            length = min(rng.uniform(*lengths), total_s - t)
            spans.append((slot, t, length))
            t += length
    kinds = [FAULT_KINDS[i % len(FAULT_KINDS)] for i in range(len(spans))]
    rng.shuffle(kinds)
    return [Plan(i, slot, start, length, plan_fault(rng, kind, length))
            for i, ((slot, start, length), kind) in enumerate(zip(spans, kinds))]


def plan_fault(rng: random.Random, kind: str, length_s: float) -> FaultPlan:
    """A fault of ``kind`` between 20 % and 50 % of a conversation of ``length_s``."""
    at_s = rng.uniform(max(FIRST_FAULT_S, 0.2 * length_s), max(FIRST_FAULT_S, 0.5 * length_s))
    return FaultPlan(kind, at_s, goaway_s=rng.uniform(6, 20), slow_ms=rng.randrange(200, 1001, 50),
                     slow_for_s=rng.uniform(3, 0.25 * length_s))


# --- one conversation ----------------------------------------------------------------------


class SoakFrames(Session):
    """The tagged frames of one conversation: when each was sent and how long its echo took (s)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.sent_at: dict[int, float] = {}
        self.rtt: dict[int, float] = {}

    def frame(self, seq: int) -> bytes:
        data = super().frame(seq)
        self.sent_at[seq] = self.sent[seq]
        return data

    def received(self, seq: int, rtt_s: float) -> None:
        self.rtt[seq] = rtt_s


@dataclasses.dataclass
class Outcome:
    """What happened to one conversation (times are ``time.perf_counter()`` seconds)."""

    plan: Plan
    frames: SoakFrames
    session_id: str | None = None
    ready_at: float | None = None
    fault_at: float | None = None
    slow_lifted_at: float | None = None
    ended_at: float | None = None
    last_frame_at: float | None = None
    reconnects: list[tuple[float, str]] = dataclasses.field(default_factory=list)  # (reconnecting at, reason)
    resumed: list[float] = dataclasses.field(default_factory=list)
    fatal: str | None = None  # a fatal error, or why the conversation did not reach its end
    typed: list[str] = dataclasses.field(default_factory=list)

    @property
    def survived(self) -> bool:
        return self.ended_at is not None and self.fatal is None

    def sent_s(self) -> float:
        """Seconds of audio sent."""
        return len(self.frames.sent_at) * FRAME_MS / 1000

    def lasted_s(self) -> float:
        """Seconds from ``ready`` to ``ended`` (nan if either never came)."""
        if self.ready_at is None or self.ended_at is None:
            return float("nan")
        return self.ended_at - self.ready_at

    def recovered_at(self) -> float | None:
        """When the upstream was healthy again after the fault (None: never, before the end)."""
        if self.fault_at is None:
            return None
        if self.plan.fault.kind == "slow":
            return None if self.slow_lifted_at is None else self.slow_lifted_at + self.plan.fault.slow_ms / 1000
        return next((t for t in self.resumed if t >= self.fault_at), None)

    def window(self) -> tuple[float, float] | None:
        """The fault window (see the module docstring); to the end of the conversation if never recovered."""
        if self.fault_at is None:
            return None
        recovered = self.recovered_at()
        return self.fault_at, (recovered + GRACE_S if recovered is not None else float("inf"))


class Client:
    """One conversation's socket: reads events and echoes, types the fault, ends the conversation."""

    def __init__(self, ws, outcome: Outcome) -> None:
        self.ws = ws
        self.out = outcome
        self.ended = asyncio.Event()

    async def read(self) -> None:
        async for message in self.ws:
            if isinstance(message, bytes):
                self.out.frames.echo(message)
            else:
                event = json.loads(message)
                getattr(self, f"_on_{event.get('type')}", self._on_other)(event)

    def _on_reconnecting(self, event: dict) -> None:
        self.out.reconnects.append((time.perf_counter(), event.get("reason", "?")))

    def _on_resumed(self, _event: dict) -> None:
        self.out.resumed.append(time.perf_counter())

    def _on_error(self, event: dict) -> None:
        if event.get("fatal"):
            self.out.fatal = f"{event.get('code')}: {event.get('message')}"

    def _on_ended(self, event: dict) -> None:
        self.out.ended_at = time.perf_counter()
        self.ended.set()

    def _on_other(self, _event: dict) -> None:
        pass

    async def type(self, text: str) -> None:
        await self.ws.send(json.dumps({"type": "text", "text": text}))
        self.out.typed.append(text)

    async def inject(self, started: float) -> None:
        """Type the planned fault at its time (s after ``started``)."""
        fault = self.out.plan.fault
        await asyncio.sleep(max(0.0, started + fault.at_s - time.perf_counter()))
        for delay_s, text in fault.texts():
            await asyncio.sleep(delay_s)
            await self.type(text)
            if self.out.fault_at is None:
                self.out.fault_at = time.perf_counter()
        if fault.kind == "slow":
            self.out.slow_lifted_at = time.perf_counter()

    async def finish(self) -> None:
        """Let outstanding echoes come back, then `end` and wait for `ended`."""
        deadline = time.perf_counter() + ECHO_SETTLE_S
        while self.out.frames.sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await self.ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(self.ended.wait(), ENDED_TIMEOUT_S)


async def converse(url: str, plan: Plan) -> Outcome:
    """Run one planned conversation; never raises (a failure is recorded in the outcome)."""
    outcome = Outcome(plan, SoakFrames(plan.index))
    try:
        async with websockets.connect(url, max_size=None, compression=None, open_timeout=30) as ws:
            ready = json.loads(await ws.recv())
            if ready.get("type") != "ready":
                outcome.fatal = f"no ready: {ready}"
                return outcome
            outcome.session_id, outcome.ready_at = ready["session_id"], time.perf_counter()
            await _stream(Client(ws, outcome), plan)
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as exc:
        outcome.fatal = outcome.fatal or f"{type(exc).__name__}: {exc}"
    return outcome


async def _stream(client: Client, plan: Plan) -> None:
    reader = asyncio.create_task(client.read())
    started = time.perf_counter()
    injector = asyncio.create_task(client.inject(started))
    try:
        await paced(client.out.frames, plan.n_frames, client.ws.send)
        client.out.last_frame_at = time.perf_counter()
        await injector  # a planned fault is typed before the end, however late
        await client.finish()
    finally:
        injector.cancel()
        reader.cancel()


async def run_slot(url: str, plans: list[Plan], t0: float) -> list[Outcome]:
    """One slot's conversations, one after another, each no earlier than its planned start."""
    outcomes = []
    for plan in plans:
        await asyncio.sleep(max(0.0, t0 + plan.start_s - time.perf_counter()))
        outcomes.append(await converse(url, plan))
    return outcomes


async def run_soak(url: str, plans: list[Plan], pids: list[int]) -> tuple[list[Outcome], int]:
    """All slots at once; returns the outcomes and the server's peak RSS (bytes) meanwhile."""
    slots: dict[int, list[Plan]] = {}
    for plan in plans:
        slots.setdefault(plan.slot, []).append(plan)
    peak = [rss_bytes(pids)]
    sampler = asyncio.create_task(_sample_rss(pids, peak))
    t0 = time.perf_counter()
    try:
        results = await asyncio.gather(*(run_slot(url, slot, t0) for slot in slots.values()))
    finally:
        sampler.cancel()
    return sorted((o for r in results for o in r), key=lambda o: o.plan.index), peak[0]


async def _sample_rss(pids: list[int], peak: list[int]) -> None:
    while True:
        await asyncio.sleep(RSS_SAMPLE_S)
        peak[0] = max(peak[0], rss_bytes(pids))


# --- frames and latency -----------------------------------------------------------------------


@dataclasses.dataclass
class FrameCount:
    """Frames of one or more conversations: sent, lost outside / inside fault windows, clean round trips (s)."""

    sent: int = 0
    lost_outside: int = 0
    lost_inside: int = 0
    clean_rtts: list[float] = dataclasses.field(default_factory=list)

    def add(self, other: FrameCount) -> None:
        self.sent += other.sent
        self.lost_outside += other.lost_outside
        self.lost_inside += other.lost_inside
        self.clean_rtts += other.clean_rtts


def count_frames(outcome: Outcome) -> FrameCount:
    """Classify a conversation's frames by its fault window. Frames sent after a conversation died are not
    counted as lost (the conversation's death is reported instead)."""
    frames, window = outcome.frames, outcome.window()
    count = FrameCount(sent=len(frames.sent_at))
    for seq, sent_at in frames.sent_at.items():
        inside = window is not None and window[0] <= sent_at <= window[1]
        if seq in frames.rtt:
            if not inside:
                count.clean_rtts.append(frames.rtt[seq])
        elif inside:
            count.lost_inside += 1
        elif outcome.survived:
            count.lost_outside += 1
    return count


def percentile_ms(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of seconds, in ms (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q) - 1))]


# --- recordings -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecordingCheck:
    """A conversation's recording as read back: what was wrong with it (None: complete and readable)."""

    problem: str | None
    wav_s: float = 0.0


def check_recording(storage: LocalStorage, outcome: Outcome) -> RecordingCheck:
    """Read the recording back as the product does: complete metas, the WAV read through, the typed turns."""
    if outcome.session_id is None:
        return RecordingCheck("no session")
    try:
        recording = read_conversation(storage, outcome.session_id)
        if recording is None:
            return RecordingCheck("not found")
        if not all(segment.meta.get("complete") for segment in recording.segments):
            return RecordingCheck("meta.json not complete")
        wav_s = _wav_seconds(storage, recording)
    except (StorageError, AudioFormatError, OSError) as exc:
        return RecordingCheck(f"unreadable: {type(exc).__name__}: {exc}")
    if wav_s is None:
        return RecordingCheck("no readable audio")
    sent_s, lasted_s = outcome.sent_s(), outcome.lasted_s()
    late_s = WAV_LATE_S + (outcome.plan.fault.slow_ms / 1000 if outcome.plan.fault.kind == "slow" else 0.0)
    if not sent_s - WAV_EARLY_S <= wav_s <= lasted_s + late_s:
        return RecordingCheck(f"WAV {wav_s:.2f} s for {sent_s:.2f} s of audio sent in {lasted_s:.2f} s", wav_s)
    said = {line.text for line in recording.lines() if line.role == "user"}
    missing = [text for text in outcome.typed if text not in said]
    return RecordingCheck(f"typed turns missing from the transcript: {missing}" if missing else None, wav_s)


def _wav_seconds(storage: LocalStorage, recording) -> float | None:
    """The conversation's WAV (as the product joins it), read to the end; its length in seconds."""
    pieces = recording.audio_pieces(storage)
    if pieces is None:
        return None
    with open_joined(storage, pieces) as stream:
        reader = open_wav(stream)
        n_bytes = sum(len(block) for block in reader.blocks())
        if reader.truncated:
            raise AudioFormatError("the WAV is shorter than its header says")
    return n_bytes / reader.format.frame_bytes / reader.format.sample_rate


# --- report -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Machine:
    """The server's resources over the soak: RSS (bytes) at start, end and peak; CPU seconds and wall seconds."""

    rss_start: int
    rss_end: int
    rss_peak: int
    cpu_s: float
    wall_s: float


def report(args, outcomes: list[Outcome], checks: list[RecordingCheck], direct: dict, machine: Machine) -> bool:
    """Print the soak's figures; True when every target is met."""
    frames = FrameCount()
    for outcome in outcomes:
        frames.add(count_frames(outcome))
    lengths = "-".join(f"{x:g}" for x in args.lengths)
    print(f"chaos soak: {args.conversations} conversations at once for {args.minutes:g} min ({lengths} s each), "
          f"seed {args.seed}, {args.workers} gunicorn workers, {os.cpu_count()} cores, "
          f"UPSTREAM_STALL_SECONDS={args.stall_seconds:g}")
    survived = sum(o.survived for o in outcomes)
    print(f"conversations: {len(outcomes)} started, {survived} survived to their planned end")
    recovered = _fault_table(outcomes)
    _reconnect_line(outcomes)
    print(f"user audio frames: {frames.sent} sent, {frames.lost_outside} lost outside fault windows, "
          f"{frames.lost_inside} lost inside them (hand-over); echoes in the wrong conversation or twice: "
          f"{sum(o.frames.foreign for o in outcomes)}")
    _latency_lines(frames, direct)
    complete = sum(c.problem is None for c in checks)
    extra = [c.wav_s - o.sent_s() for o, c in zip(outcomes, checks) if c.wav_s]
    print(f"recordings complete and readable: {complete}/{len(checks)} (WAV longer than the audio sent by "
          f"{min(extra, default=float('nan')):.2f} to {max(extra, default=float('nan')):.2f} s)")
    for outcome, check in zip(outcomes, checks):
        if check.problem:
            print(f"  conversation {outcome.plan.index} ({outcome.plan.fault.kind}, {outcome.session_id}): "
                  f"{check.problem}")
    _machine_lines(machine)
    return _verdict(outcomes, frames, complete, recovered)


def _fault_table(outcomes: list[Outcome]) -> int:
    """Per fault kind: injected, survived, recovered, frames lost in the window, slowest recovery. Returns
    how many faults were recovered."""
    print(f"{'fault':<8} {'injected':>8} {'survived':>8} {'recovered':>9} {'lost in window':>14} "
          f"{'slowest recovery s':>18}")
    total = 0
    for kind in FAULT_KINDS:
        mine = [o for o in outcomes if o.plan.fault.kind == kind]
        injected = [o for o in mine if o.fault_at is not None]
        recovered = [o for o in injected if o.recovered_at() is not None and _as_expected(o)]
        total += len(recovered)
        slowest = max((o.recovered_at() - o.fault_at for o in recovered), default=float("nan"))
        lost = sum(count_frames(o).lost_inside for o in mine)
        print(f"{kind:<8} {len(injected):>8} {sum(o.survived for o in mine):>8} {len(recovered):>9} {lost:>14} "
              f"{slowest:>18.2f}")
    for outcome in outcomes:
        if not outcome.survived:
            print(f"  conversation {outcome.plan.index} ({outcome.plan.fault.kind}) died: {outcome.fatal}")
    return total


def _as_expected(outcome: Outcome) -> bool:
    """Whether the reconnects match the fault: one of the expected reason (none for ``slow``)."""
    reasons = [reason for _, reason in outcome.reconnects]
    expected = EXPECTED_REASON.get(outcome.plan.fault.kind)
    return reasons == ([expected] if expected else [])


def _reconnect_line(outcomes: list[Outcome]) -> None:
    reasons: dict[str, int] = {}
    for outcome in outcomes:
        for _, reason in outcome.reconnects:
            reasons[reason] = reasons.get(reason, 0) + 1
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items())) or "none"
    unexpected = [o.plan.index for o in outcomes if o.fault_at is not None and not _as_expected(o)]
    print(f"reconnects: {sum(reasons.values())} ({detail}); conversations whose reconnects did not match "
          f"their fault: {len(unexpected)}{' ' + str(unexpected) if unexpected else ''}")


def _latency_lines(frames: FrameCount, direct: dict) -> None:
    p50, p99 = percentile_ms(frames.clean_rtts, 0.5), percentile_ms(frames.clean_rtts, 0.99)
    print(f"round trip outside fault windows ({len(frames.clean_rtts)} frames): p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
          f"direct baseline p50 {direct['p50_ms']:.2f} ms, p99 {direct['p99_ms']:.2f} ms")
    print(f"relay-added latency outside reconnects: p50 {p50 - direct['p50_ms']:+.2f} ms, "
          f"p99 {p99 - direct['p99_ms']:+.2f} ms")


def _machine_lines(m: Machine) -> None:
    mib = 2**20
    print(f"server RSS: {m.rss_start / mib:.1f} MiB at start, {m.rss_end / mib:.1f} MiB at end "
          f"(peak {m.rss_peak / mib:.1f} MiB); server CPU {100 * m.cpu_s / m.wall_s:.1f} % of a core on average")


def _verdict(outcomes: list[Outcome], frames: FrameCount, complete: int, recovered: int) -> bool:
    misses = []
    if sum(o.survived for o in outcomes) < len(outcomes):
        misses.append("a conversation did not survive")
    if recovered < len(outcomes):
        misses.append("a fault was not recovered as expected")
    if frames.lost_outside:
        misses.append("frames lost outside fault windows")
    if any(o.frames.foreign for o in outcomes):
        misses.append("echoes in the wrong conversation")
    if complete < len(outcomes):
        misses.append("an incomplete or unreadable recording")
    print("targets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
    return not misses


# --- main -------------------------------------------------------------------------------------


def baseline(base_url: str, ca_file: str, n_sessions: int, seconds: float) -> dict:
    """The direct path's round trips (n sessions straight at the emulator): the latency baseline."""
    ctx = ssl.create_default_context(cafile=ca_file)
    n_frames = int(seconds * 1000 / FRAME_MS)
    sessions = asyncio.run(run_load(lambda s: direct_session(base_url, ctx, s, n_frames, 1.0), n_sessions, n_frames))
    return summarise(sessions, n_frames)


def soak(args) -> bool:
    """Start everything, run the soak, check the recordings, report; True when every target is met."""
    plans = plan_soak(random.Random(args.seed), args.conversations, args.minutes * 60, tuple(args.lengths))
    data_dir = Path(tempfile.mkdtemp(prefix="livetalk-soak-"))
    emu, base_url, ca_file = start_emulator("echo")
    server = start_server(args.port, base_url, ca_file, args.workers, DATA_DIR=str(data_dir),
                          UPSTREAM_STALL_SECONDS=str(args.stall_seconds))
    url = f"ws://127.0.0.1:{args.port}/ws/realtime"
    try:
        asyncio.run(run_load(lambda s: relay_session(url, s, 10, 0.5), 2, 10))  # warm up every worker
        pids = process_tree(server.pid)
        direct = baseline(base_url, ca_file, args.conversations, args.baseline_seconds)
        rss_start, cpu_start, wall_start = rss_bytes(pids), cpu_seconds(pids), time.monotonic()
        outcomes, rss_peak = asyncio.run(run_soak(url, plans, pids))
        machine = Machine(rss_start, rss_bytes(pids), rss_peak, cpu_seconds(pids) - cpu_start,
                          time.monotonic() - wall_start)
    finally:
        stop(server, emu)
    try:
        storage = LocalStorage(data_dir)
        checks = [check_recording(storage, outcome) for outcome in outcomes]
    finally:
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    return report(args, outcomes, checks, direct, machine)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=30, help="conversations at once (slots)")
    parser.add_argument("--minutes", type=float, default=5.0, help="how long new conversations are started")
    parser.add_argument("--lengths", type=float, nargs=2, default=[60.0, 120.0], metavar=("MIN_S", "MAX_S"),
                        help="a conversation's planned length, drawn between these (s)")
    parser.add_argument("--seed", type=int, default=1, help="seeds lengths, faults and their moments")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--stall-seconds", type=float, default=2.0, help="the server's UPSTREAM_STALL_SECONDS")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="length of the direct baseline run")
    parser.add_argument("--keep-data", action="store_true", help="keep the recordings' DATA_DIR")
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 conversations, 1 minute, 20-40 s each")
    args = parser.parse_args(argv)
    if args.quick:
        args.conversations, args.minutes, args.lengths, args.baseline_seconds = 6, 1.0, [20.0, 40.0], 5.0
    return args


def main() -> None:
    sys.exit(0 if soak(parse_args()) else 1)


if __name__ == "__main__":
    main()
