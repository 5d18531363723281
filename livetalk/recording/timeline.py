"""The recording's timeline: both sides' audio on one 24 kHz clock, handed out in final blocks. Pure.

Placement. User audio arrives in real time: a chunk is placed so that it ends at its arrival time, back to
back with the previous chunk unless that leaves a gap or overlap beyond the jitter allowance. Model audio
arrives in bursts faster than real time and the client plays it sequentially, so a chunk starts at
``max(arrival, end of the previous model chunk)``. Audio becomes final :data:`COMMIT_LAG_S` behind "now";
model audio scheduled later stays in memory (up to :data:`MAX_LOOKAHEAD_S`) so that an interruption can drop
what the client never played.

Memory. Each channel is kept as blocks of :data:`BLOCK_S` (24 KB), created when audio lands in them and
handed out whole once final; the user's audio is upsampled in integer arithmetic in batches the pump keeps
small. No allocation on this path comes near glibc's mmap threshold (128 KiB): when a process frees an
mmapped array, glibc raises that threshold to the array's size, later arrays of that size come from the heap
instead, and a worker that recorded conversations with 1.5 MB per-conversation buffers grew by ~0.3 MB of RSS
per conversation that it never gave back (bench/bench_memory.py, docs/performance.md).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

INPUT_RATE = 16000  # Hz, user audio from the browser
OUTPUT_RATE = 24000  # Hz, model audio and the recording
CHANNELS = 2  # left: user, right: model
FRAME_BYTES = 2 * CHANNELS  # one stereo s16le frame

COMMIT_LAG_S = 1.0  # audio older than now - this is final and handed out
BLOCK_S = 0.5  # the unit of memory and of output
USER_JITTER_S = 0.25  # a user chunk this early/late still continues the previous one
USER_MAX_AHEAD_S = 1.0  # a user stream running further ahead than this is re-anchored on arrival time
USER_WINDOW_S = 8.0  # user audio may be placed at most this far past the commit point
MAX_LOOKAHEAD_S = 30.0  # unplayed model audio held in memory; later audio is dropped (and counted)
VOICE_PEAK = 1000  # a user chunk peaking above this (of 32767) counts as speech for transcript timing

BLOCK = int(BLOCK_S * OUTPUT_RATE)  # frames per block
_LAG = int(COMMIT_LAG_S * OUTPUT_RATE)
_JITTER = int(USER_JITTER_S * OUTPUT_RATE)
_MAX_AHEAD = int(USER_MAX_AHEAD_S * OUTPUT_RATE)
_USER_LIMIT = int(USER_WINDOW_S * OUTPUT_RATE)
_MODEL_LIMIT = int((MAX_LOOKAHEAD_S + COMMIT_LAG_S) * OUTPUT_RATE) + 2 * BLOCK


def frame_at(t: float, t0: float) -> int:
    """The timeline frame of clock time ``t`` (seconds) on a timeline that starts at ``t0``."""
    return max(int(round((t - t0) * OUTPUT_RATE)), 0)


def ms(frame: int) -> int:
    """A timeline frame in whole milliseconds."""
    return frame * 1000 // OUTPUT_RATE


def samples(pcm: bytes) -> int:
    """How many PCM16 samples ``pcm`` holds; ValueError for an odd length."""
    if len(pcm) & 1:
        raise ValueError("PCM16 audio must be a whole number of samples")
    return len(pcm) >> 1


class Track:
    """One channel from the commit point on, as :data:`BLOCK`-sample blocks created on demand.

    Args:
        limit: how many frames past the commit point audio may be placed; beyond that it is dropped.
    """

    def __init__(self, limit: int) -> None:
        self.blocks: dict[int, np.ndarray] = {}  # block number -> int16[BLOCK]
        self.base = 0  # absolute frame of the commit point (block-aligned until the final drain)
        self.end = 0  # absolute frame just past the last sample placed
        self.limit = limit

    def place(self, start: int, pcm: np.ndarray) -> int:
        """Write ``pcm`` at absolute frame ``start`` (overwriting); returns how many samples did not fit."""
        if start < self.base:
            pcm, start = pcm[self.base - start:], self.base
        fit = len(pcm[:max(self.base + self.limit - start, 0)])
        at, done = start, 0
        while done < fit:
            number, offset = divmod(at, BLOCK)
            block = self.blocks.get(number)
            if block is None:
                block = self.blocks[number] = np.zeros(BLOCK, dtype=np.int16)
            k = min(BLOCK - offset, fit - done)
            block[offset:offset + k] = pcm[done:done + k]
            at, done = at + k, done + k
        if fit:
            self.end = max(self.end, start + fit)
        return len(pcm) - fit

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` ≤ :data:`BLOCK` samples (silence where none were placed); the commit point moves by ``n``."""
        block = self.blocks.pop(self.base // BLOCK, None)
        self.base += n
        if block is None:
            return np.zeros(n, dtype=np.int16)
        return block[:n]

    def truncate(self, at: int) -> None:
        """Silence everything from absolute frame ``at`` on."""
        at = max(at, self.base)
        for number in [b for b in self.blocks if (b + 1) * BLOCK > at]:
            first = number * BLOCK
            if first >= at:
                del self.blocks[number]
            else:
                self.blocks[number][at - first:] = 0
        self.end = min(self.end, at)


class Upsampler:
    """16 kHz → 24 kHz by linear interpolation, continuous across chunks, in integer arithmetic."""

    def __init__(self) -> None:
        self.seen = 0  # input samples so far
        self.made = 0  # output samples so far
        self.last = 0  # the previous chunk's last input sample

    def counts(self, lengths: list[int]) -> list[int]:
        """How many output samples each of these next input chunks (in samples) yields, in order."""
        out, seen, made = [], self.seen, self.made
        for n in lengths:
            seen += n
            upto = 3 * (seen - 1) // 2 + 1 if seen else 0
            out.append(upto - made)
            made = upto
        return out

    def __call__(self, pcm16k: np.ndarray) -> np.ndarray:
        if not len(pcm16k):
            return pcm16k
        first = self.seen - 1  # input index of x[0]
        x = np.empty(len(pcm16k) + 1, dtype=np.int32)
        x[0] = self.last if self.seen else pcm16k[0]
        x[1:] = pcm16k
        self.seen += len(pcm16k)
        upto = 3 * (self.seen - 1) // 2  # last output index whose input position 2n/3 is known
        thirds = np.arange(self.made, upto + 1, dtype=np.int32) * 2 - 3 * first  # 3 × position in x
        self.made, self.last = upto + 1, int(pcm16k[-1])
        i, r = np.divmod(thirds, 3)
        weighted = x[i] * (3 - r) + x[np.minimum(i + 1, len(x) - 1)] * r
        return ((2 * weighted + 3) // 6).astype(np.int16)  # weighted / 3, rounded half up


class Mixer:
    """Places user and model audio on one 24 kHz timeline and hands out final stereo blocks.

    Placement is decided per chunk (plain integers); the sample copies are deferred and done per run of
    back-to-back chunks (:meth:`flush`), before anything reads the tracks.
    """

    def __init__(self) -> None:
        self.committed = 0
        self.user, self.model = Track(_USER_LIMIT), Track(_MODEL_LIMIT)
        self.user_cursor = self.model_cursor = 0
        self.upsample = Upsampler()
        self.dropped_model = 0  # frames beyond the look-ahead window
        self._staged = np.zeros(0, dtype=np.int16)  # this batch's user audio, upsampled
        self._chunks: Iterator[tuple[int, bool]] = iter(())  # (samples, loud) per staged user chunk
        self._offset = 0  # where the next user chunk starts in _staged
        self._user_runs: list[list[int]] = []  # [start frame, offset in _staged, length]
        self._model_runs: list[tuple[int, list[bytes]]] = []  # (start frame, back-to-back chunks)
        self._model_run_end = -1

    def stage_user(self, chunks: list[bytes]) -> None:
        """Upsample a batch's user chunks in one go; :meth:`add_user` then takes them in order."""
        if not chunks:
            return
        lengths = [samples(c) for c in chunks]
        counts = self.upsample.counts(lengths)
        pcm = np.frombuffer(b"".join(chunks), dtype="<i2")
        self._staged = self.upsample(pcm)
        self._offset = 0
        # Whether each chunk is speech, judged on what arrived (the upsampled values lie within its range).
        starts = np.fromiter(itertools.accumulate(lengths[:-1], initial=0), dtype=np.intp, count=len(lengths))
        loud = (np.maximum.reduceat(pcm, starts) >= VOICE_PEAK) | (np.minimum.reduceat(pcm, starts) <= -VOICE_PEAK)
        self._chunks = iter(zip(counts, loud.tolist()))

    def add_user(self, now: int) -> tuple[int, int, bool]:
        """Place the next staged user chunk, heard until ``now``: its (start, end) frames, whether it is speech."""
        n, loud = next(self._chunks)
        offset, self._offset = self._offset, self._offset + n
        nominal = now - n
        drift = self.user_cursor - nominal
        start = self.user_cursor
        if drift < -_JITTER or drift > _MAX_AHEAD:
            start = nominal
        start = max(start, self.committed)
        if n:
            last = self._user_runs[-1] if self._user_runs else None
            if last is not None and last[0] + last[2] == start and last[1] + last[2] == offset:
                last[2] += n
            else:
                self._user_runs.append([start, offset, n])
        self.user_cursor = start + n
        return start, self.user_cursor, loud

    def add_model(self, now: int, pcm24k: bytes) -> int:
        """Schedule model audio; returns the frame where it starts playing."""
        start = max(now, self.model_cursor, self.committed)
        if start == self._model_run_end:
            self._model_runs[-1][1].append(pcm24k)
        else:
            self._model_runs.append((start, [pcm24k]))
        self.model_cursor = self._model_run_end = start + samples(pcm24k)
        return start

    def flush(self) -> None:
        """Copy the placed chunks into the tracks."""
        for start, offset, n in self._user_runs:
            self.user.place(start, self._staged[offset:offset + n])
        for start, pieces in self._model_runs:
            pcm = np.frombuffer(pieces[0] if len(pieces) == 1 else b"".join(pieces), dtype="<i2")
            self.dropped_model += self.model.place(start, pcm)
        self._user_runs.clear()
        self._model_runs.clear()
        self._model_run_end = -1

    def interrupt(self, now: int) -> None:
        """The client dropped the model audio it had not played by ``now``."""
        self.flush()
        self.model.truncate(now)
        self.model_cursor = min(self.model_cursor, max(now, self.committed))

    def due(self, now: int) -> bool:
        """Whether a whole block can no longer change."""
        return now - _LAG - self.committed >= BLOCK

    def ready(self, now: int) -> Iterator[bytes]:
        """Stereo blocks that can no longer change, each :data:`BLOCK` frames."""
        if self.due(now):
            self.flush()
            while now - _LAG - self.committed >= BLOCK:
                yield self._take(BLOCK)

    def drain(self) -> Iterator[bytes]:
        """Everything still held, up to the end of the last placed sample, in blocks."""
        self.flush()
        upto = max(self.user.end, self.model.end)
        while self.committed < upto:
            yield self._take(min(upto - self.committed, BLOCK))

    def _take(self, n: int) -> bytes:
        stereo = np.empty((n, CHANNELS), dtype="<i2")
        stereo[:, 0], stereo[:, 1] = self.user.take(n), self.model.take(n)
        self.committed += n
        return stereo.tobytes()
