"""Who spoke when: energy-based voice activity of a stereo recording, streamed.

The recording is interleaved stereo PCM s16le, the user on the left and the model on
the right. :class:`StereoVad` takes it in blocks of any size and gives, per channel,
the spans of speech (:class:`Activity`). The spans depend on the samples only, never on
where the blocks were cut.

Per channel and per frame (:attr:`VadSettings.frame_s`, 20 ms):

1. **Level** ``L``: the frame's RMS in dBFS (0 dBFS is a full-scale square wave; a
   full-scale sine is −3 dBFS).
2. **Noise floor** ``N``: follows the quietest frames down at once and creeps up by
   ``noise_rise_db_per_s`` while the level stays above it, never above
   ``noise_cap_dbfs`` (so loud speech is heard however long it lasts). It starts at the
   cap. Frames of digital silence (below ``digital_silence_dbfs``, e.g. a gap in the
   stream filled with zeros) leave it where it is: a gap is not the room getting quieter.
3. **Hysteresis**: a frame starts speech when ``L > max(abs_on_dbfs, N + snr_on_db)``;
   speech goes on while ``L > max(abs_off_dbfs, N + snr_off_db)``.
4. **Runs to segments**: runs of speech frames shorter than ``min_run_s`` are clicks and
   are dropped; runs separated by a pause of at most ``hangover_s`` are one segment (the
   pause counts as speech); segments shorter than ``min_segment_s`` are dropped.

The floor's slow rise is the trade-off: speech that never dips (a minute-long steady
tone) is still heard, but when the background noise jumps up (a fan switched on, 25 dB
louder) the new noise counts as speech for a few seconds (about 6 s at 3 dB/s) until
the floor has caught up.

Cost (``bench/bench_analytics.py``, this 2-core machine): about 110 µs of CPU per second
of audio in the recorder's live blocks of 0.5–0.75 s, about 60 µs in 5 s blocks, i.e.
near 0.01 % of a core per live conversation; a few numpy calls per block and a little
Python per run of speech. Memory: the segments found (about 9 KiB for 15 minutes), less
than one frame of carried bytes, and temporaries while a block is analysed (about three
times the block's size).

Exceptions: ``ValueError`` for settings that contradict each other (see
:class:`VadSettings`); nothing else is raised by design.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

FULL_SCALE_SQ = 32768.0 ** 2  # a full-scale square wave's mean square: 0 dBFS
SILENT_DBFS = -120.0  # the level given to an all-zero frame
SAMPLE_BYTES = 2  # s16le
CHANNELS = 2  # left: user, right: model
ROLES = ("user", "model")  # channel order
JSON_DECIMALS = 3  # span times are kept to the millisecond when stored


@dataclasses.dataclass(frozen=True, kw_only=True)
class VadSettings:
    """Tuning of :class:`StereoVad`; levels in dBFS, differences in dB, times in seconds.

    Args:
        frame_s: analysis frame length (20 ms).
        abs_on_dbfs: a frame quieter than this never starts speech, whatever the noise floor.
        abs_off_dbfs: ... and never continues it.
        snr_on_db: speech starts this far above the noise floor.
        snr_off_db: speech continues while this far above it (hysteresis: ≤ ``snr_on_db``).
        noise_cap_dbfs: the noise floor never rises above this, so speech louder than
            ``noise_cap_dbfs + snr_on_db`` is always heard.
        noise_rise_db_per_s: how fast the noise floor creeps up while the level is above it.
        digital_silence_dbfs: frames quieter than this do not lower the noise floor.
        min_run_s: shorter runs of loud frames are clicks, not speech (a 20 ms click straddling
            two frames makes a run of 40 ms).
        hangover_s: pauses up to this long inside speech are merged into one segment.
        min_segment_s: shorter segments (after merging) are dropped.
    """

    frame_s: float = 0.020
    abs_on_dbfs: float = -50.0
    abs_off_dbfs: float = -55.0
    snr_on_db: float = 10.0
    snr_off_db: float = 6.0
    noise_cap_dbfs: float = -45.0
    noise_rise_db_per_s: float = 3.0
    digital_silence_dbfs: float = -90.0
    min_run_s: float = 0.060
    hangover_s: float = 0.300
    min_segment_s: float = 0.100

    def __post_init__(self) -> None:
        if not 0.001 <= self.frame_s <= 0.1:
            raise ValueError("frame_s must be between 0.001 and 0.1 seconds")
        if self.abs_off_dbfs > self.abs_on_dbfs or self.snr_off_db > self.snr_on_db:
            raise ValueError("the 'off' thresholds must not be above the 'on' ones (hysteresis)")
        if min(self.noise_rise_db_per_s, self.min_run_s, self.hangover_s, self.min_segment_s) < 0:
            raise ValueError("rise rate and durations must not be negative")


class Span(NamedTuple):
    """A stretch of speech, in seconds from the start of the recording."""

    start_s: float
    end_s: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


@dataclasses.dataclass(frozen=True)
class Activity:
    """The speech found in one stereo recording: spans per side, and the recording's length (s)."""

    user: tuple[Span, ...]
    model: tuple[Span, ...]
    duration_s: float

    @classmethod
    def silent(cls, duration_s: float = 0.0) -> Activity:
        """A recording (e.g. a resumed segment that carried no audio) in which nobody spoke."""
        return cls((), (), float(duration_s))

    def side(self, role: str) -> tuple[Span, ...]:
        """The spans of ``"user"`` or ``"model"``."""
        return self.user if role == "user" else self.model

    def to_json(self) -> dict[str, Any]:
        """``{"duration_s", "user": [[start_s, end_s], …], "model": […]}``, times to the millisecond."""
        return {"duration_s": round(self.duration_s, JSON_DECIMALS),
                **{role: [[round(s, JSON_DECIMALS), round(e, JSON_DECIMALS)] for s, e in self.side(role)]
                   for role in ROLES}}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Activity:
        """The inverse of :meth:`to_json`; ``ValueError`` when ``value`` is not of that shape."""
        try:
            spans = {role: tuple(Span(float(s), float(e)) for s, e in value[role]) for role in ROLES}
            duration = float(value["duration_s"])
        except (KeyError, TypeError, ValueError):
            raise ValueError('activity must be {"duration_s": s, "user": [[s, e], …], "model": [[s, e], …]}') from None
        for side in spans.values():
            if any(not (0 <= s <= e) for s, e in side):
                raise ValueError("activity spans must satisfy 0 <= start <= end")
        return cls(spans["user"], spans["model"], duration)


class _Segmenter:
    """One channel's runs of speech frames → segments (frame indices), as runs come in."""

    def __init__(self, *, min_run: int, hangover: int, min_segment: int) -> None:
        self.min_run, self.hangover, self.min_segment = min_run, hangover, min_segment
        self.run_start: int | None = None  # a run still going at the end of the last block
        self.open: list[int] | None = None  # [start, end] of the segment still able to grow
        self.segments: list[tuple[int, int]] = []

    def transitions(self, starts: list[int], ends: list[int]) -> None:
        """Runs starting at ``starts`` and ending at ``ends`` (absolute frames, in order, alternating)."""
        if self.run_start is not None and ends and (not starts or ends[0] <= starts[0]):
            self._run(self.run_start, ends.pop(0))
            self.run_start = None
        for start, end in zip(starts, ends):
            self._run(start, end)
        if len(starts) > len(ends):
            self.run_start = starts[-1]

    def provisional(self, end: int) -> list[tuple[int, int]]:
        """The segments as if the stream ended at frame ``end``, leaving this segmenter as it is."""
        copy = _Segmenter(min_run=self.min_run, hangover=self.hangover, min_segment=self.min_segment)
        copy.run_start, copy.segments = self.run_start, list(self.segments)
        copy.open = list(self.open) if self.open is not None else None
        copy.finish(end)
        return copy.segments

    def finish(self, end: int) -> None:
        """The stream ended at frame ``end``: close what is open."""
        if self.run_start is not None:
            self._run(self.run_start, end)
            self.run_start = None
        self._close()

    def _run(self, start: int, end: int) -> None:
        if end - start < self.min_run:
            return
        if self.open is not None and start - self.open[1] <= self.hangover:
            self.open[1] = end
            return
        self._close()
        self.open = [start, end]

    def _close(self) -> None:
        if self.open is not None and self.open[1] - self.open[0] >= self.min_segment:
            self.segments.append((self.open[0], self.open[1]))
        self.open = None


class StereoVad:
    """Streams a stereo s16le recording in blocks of any size; :meth:`finish` gives the :class:`Activity`.

    Args:
        sample_rate: frames per second of the stream (the relay records at 24000 Hz).
        settings: the tuning (:class:`VadSettings`).

    Not thread-safe: feed it from one thread. Construction does no I/O.
    """

    def __init__(self, sample_rate: int = 24000, *, settings: VadSettings | None = None) -> None:
        if sample_rate < 1000:
            raise ValueError("sample_rate must be at least 1000 Hz")
        self.settings = s = settings or VadSettings()
        self.sample_rate = int(sample_rate)
        self.frame = max(1, round(s.frame_s * sample_rate))  # samples per channel per frame
        self._frame_bytes = self.frame * CHANNELS * SAMPLE_BYTES
        self._frame_s = self.frame / self.sample_rate
        self._rise = s.noise_rise_db_per_s * self._frame_s  # dB per frame
        self._full_scale_db = 10.0 * math.log10(self.frame * FULL_SCALE_SQ)  # a frame's energy at 0 dBFS, in dB
        self._silent_energy = 10.0 ** ((SILENT_DBFS + self._full_scale_db) / 10.0)
        frames = functools.partial(_to_frames, frame_s=self._frame_s)
        self._segmenters = [_Segmenter(min_run=frames(s.min_run_s), hangover=frames(s.hangover_s),
                                       min_segment=frames(s.min_segment_s)) for _ in ROLES]
        self._rest = b""  # bytes of an incomplete frame
        self._frames = 0  # whole frames analysed so far
        self._bytes = 0  # bytes fed so far
        self._floor_min = np.full(CHANNELS, np.inf)  # running min of L - rise * k (see _noise_floor)
        self._voiced = np.zeros(CHANNELS, dtype=bool)  # the last frame's state, per channel
        self._finished: Activity | None = None

    @property
    def fed_s(self) -> float:
        """Seconds of stereo audio fed so far."""
        return self._bytes / (CHANNELS * SAMPLE_BYTES) / self.sample_rate

    def feed(self, pcm: bytes | bytearray | memoryview) -> None:
        """Analyse the next block of interleaved stereo s16le (any length, even a split sample)."""
        if self._finished is not None:
            raise RuntimeError("this StereoVad has finished")
        self._bytes += len(pcm)
        data = self._rest + bytes(pcm) if self._rest else pcm
        whole = len(data) - len(data) % self._frame_bytes
        self._rest = bytes(data[whole:])
        if whole:
            samples = np.frombuffer(data, dtype="<i2", count=whole // SAMPLE_BYTES)
            self._analyse(samples.reshape(-1, self.frame, CHANNELS))

    def finish(self) -> Activity:
        """Close the segments still open and return what was found (idempotent).

        A trailing incomplete frame (under :attr:`VadSettings.frame_s`) is not analysed.
        """
        if self._finished is None:
            for segmenter in self._segmenters:
                segmenter.finish(self._frames)
            self._finished = self._activity([seg.segments for seg in self._segmenters])
        return self._finished

    def so_far(self) -> Activity:
        """What :meth:`finish` would return if the stream ended here; feeding may go on.

        For checkpoints of a recording in progress: speech still going on is cut at the
        end of the audio fed, and a pause at the end may yet turn out to be inside a segment.
        Costs a copy of the segments found (a few KiB).
        """
        if self._finished is not None:
            return self._finished
        return self._activity([seg.provisional(self._frames) for seg in self._segmenters])

    def _activity(self, segments: list[list[tuple[int, int]]]) -> Activity:
        user, model = (tuple(Span(a * self._frame_s, b * self._frame_s) for a, b in side) for side in segments)
        return Activity(user, model, self.fed_s)

    def _analyse(self, frames: np.ndarray) -> None:
        """Frames of shape (n, frame, 2) → per-frame speech flags → runs → segments."""
        level = self._levels(frames)
        index = np.arange(self._frames, self._frames + len(level), dtype=np.float64)
        voiced = self._hysteresis(level, self._noise_floor(level, index))
        previous = np.concatenate((self._voiced[None, :], voiced[:-1]))
        rows, channels = np.nonzero(voiced != previous)  # row-major: in time order within each channel
        if len(rows):
            edges: list[tuple[list[int], list[int]]] = [([], []) for _ in ROLES]
            for row, channel, starts in zip(rows.tolist(), channels.tolist(), voiced[rows, channels].tolist()):
                edges[channel][0 if starts else 1].append(self._frames + row)
            for segmenter, (starts, ends) in zip(self._segmenters, edges):
                segmenter.transitions(starts, ends)
        self._voiced = voiced[-1].copy()
        self._frames += len(level)

    def _levels(self, frames: np.ndarray) -> np.ndarray:
        """Per frame and channel, the RMS level in dBFS (at least :data:`SILENT_DBFS`); shape (n, 2).

        Squares are summed in float64: integers below 2**53 add exactly in any order,
        so a frame's level does not depend on the block it came in.
        """
        energy = np.empty((len(frames), CHANNELS))
        channel = np.empty(frames.shape[:2])
        for c in range(CHANNELS):
            channel[...] = frames[:, :, c]
            energy[:, c] = np.einsum("ij,ij->i", channel, channel)
        np.maximum(energy, self._silent_energy, out=energy)
        return 10.0 * np.log10(energy) - self._full_scale_db

    def _noise_floor(self, level: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``N_k = min(cap, N_{k-1} + rise, L_k)`` for every frame k, in closed form.

        Unrolled, ``N_k = min(cap, rise·k + min_{j≤k}(L_j − rise·j))``: a running minimum
        that carries across blocks as one number per channel. Digital silence is +inf here.
        """
        s = self.settings
        ramp = (self._rise * index)[:, None]
        shifted = np.where(level >= s.digital_silence_dbfs, level - ramp, np.inf)
        running = np.minimum(np.minimum.accumulate(shifted, axis=0), self._floor_min)
        self._floor_min = running[-1].copy()
        return np.minimum(s.noise_cap_dbfs, running + ramp)

    def _hysteresis(self, level: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """Per frame and channel, speech or not: loud frames start it, quiet ones end it, others keep it.

        A frame is speech when the last frame that started speech comes after the last
        one that ended it; the previous block's last state stands in as row 0.
        """
        s = self.settings
        start = level > np.maximum(s.abs_on_dbfs, floor + s.snr_on_db)
        stop = level <= np.maximum(s.abs_off_dbfs, floor + s.snr_off_db)
        rows = np.arange(1, len(level) + 1)[:, None]
        last_start = np.maximum.accumulate(np.where(start, rows, np.where(self._voiced, 0, -1)), axis=0)
        last_stop = np.maximum.accumulate(np.where(stop, rows, np.where(self._voiced, -1, 0)), axis=0)
        return last_start > last_stop


def _to_frames(seconds: float, *, frame_s: float) -> int:
    """``seconds`` in whole frames, rounded up (a limit is never undercut); float noise aside."""
    return math.ceil(seconds / frame_s - 1e-9)
