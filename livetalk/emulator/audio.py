"""Pure audio helpers: PCM16 statistics, an energy VAD, a toy speech synthesiser, echo.

All PCM is signed 16-bit little-endian mono. Times are in milliseconds unless a
name says otherwise; levels are in dBFS (0 dBFS = full-scale square wave).
"""
from __future__ import annotations

import array
import enum
import functools
import math
import operator
import sys
import unicodedata

FULL_SCALE = 32768.0
OUTPUT_RATE_HZ = 24000
SPEECH_THRESHOLD_DBFS = -40.0  # a 10 ms frame louder than this counts as speech
VAD_FRAME_MS = 10
MIN_TURN_SPEECH_MS = 200  # shorter bursts followed by silence are ignored as noise
BARGE_IN_SPEECH_MS = 100  # continuous speech that interrupts the model
DEFAULT_SILENCE_MS = 700  # silence that ends a user turn, unless setup says otherwise

VOICED_MS = {"cjk": 110, "latin": 80}  # one "syllable" per character
PAUSE_MS = {"space": 50, "punct": 120}
SYLLABLE_FADE_MS = 12
SYNTH_PEAK = FULL_SCALE * 10 ** (-12 / 20)  # -12 dBFS
_HARMONICS = ((1, 1.0), (2, 0.35), (3, 0.15))
_BIG_ENDIAN = sys.byteorder == "big"


def samples(pcm: bytes) -> array.array:
    """The PCM16 samples of ``pcm`` (a trailing odd byte is ignored)."""
    data = array.array("h", pcm[: len(pcm) & ~1])
    if _BIG_ENDIAN:
        data.byteswap()
    return data


def sum_squares(data: array.array) -> int:
    """Σ x² over the samples (for RMS over many chunks)."""
    return sum(map(operator.mul, data, data))


def dbfs(rms: float) -> float:
    """An RMS sample value as dBFS (``-inf`` for silence)."""
    return 20 * math.log10(rms / FULL_SCALE) if rms > 0 else float("-inf")


def duration_ms(n_bytes: int, rate_hz: int) -> float:
    """How long ``n_bytes`` of PCM16 last at ``rate_hz``."""
    return n_bytes / 2 / rate_hz * 1000.0


class VadEvent(enum.Enum):
    """What :meth:`EnergyVad.feed` noticed in a chunk."""

    BARGE_IN = "barge_in"  # speech has lasted BARGE_IN_SPEECH_MS
    TURN_END = "turn_end"  # enough speech, then enough silence


class EnergyVad:
    """Frame-energy voice activity detection on a stream of PCM16 chunks.

    Args:
        silence_ms: silence after speech that ends a turn (ms).
        threshold_dbfs: frame level above which a frame is speech.
        min_speech_ms: speech a turn needs before silence can end it (ms).
    """

    def __init__(
        self,
        *,
        silence_ms: float = DEFAULT_SILENCE_MS,
        threshold_dbfs: float = SPEECH_THRESHOLD_DBFS,
        min_speech_ms: float = MIN_TURN_SPEECH_MS,
    ) -> None:
        self.silence_ms = silence_ms
        self.min_speech_ms = min_speech_ms
        self._threshold_sq = (FULL_SCALE * 10 ** (threshold_dbfs / 20)) ** 2
        self._clock_ms = 0.0
        self._run_ms = 0.0
        self._quiet_ms = 0.0
        self.turn_ms = 0.0  # span of the turn the last TURN_END ended
        self.turn_start_ms = 0.0  # where that turn's first speech frame started, on :attr:`clock_ms`
        self.reset_turn()

    def reset_turn(self) -> None:
        """Forget the speech of the current turn."""
        self.speech_ms = 0.0
        self._first_ms: float | None = None
        self._last_ms = 0.0

    def flush(self) -> float | None:
        """End the current turn now (end of stream): its span in ms, or None without speech."""
        if self.speech_ms <= 0:
            return None
        span = self.span_ms
        self.reset_turn()
        return span

    @property
    def clock_ms(self) -> float:
        """How much audio has been analysed since the VAD was made (ms)."""
        return self._clock_ms

    @property
    def speech_start_ms(self) -> float | None:
        """Where the current turn's first speech frame starts on :attr:`clock_ms`; None before any speech."""
        return self._first_ms

    @property
    def span_ms(self) -> float:
        """From the start of the turn's first speech frame to the end of its last (ms)."""
        return 0.0 if self._first_ms is None else self._last_ms - self._first_ms

    def feed(self, data: array.array, rate_hz: int) -> list[VadEvent]:
        """Analyse one chunk of samples at ``rate_hz``; return what happened in it."""
        events: list[VadEvent] = []
        step = max(1, rate_hz * VAD_FRAME_MS // 1000)
        for start in range(0, len(data), step):
            frame = data[start : start + step]
            self._on_frame(frame, len(frame) * 1000.0 / rate_hz, events)
        return events

    def _on_frame(self, frame: array.array, frame_ms: float, events: list[VadEvent]) -> None:
        loud = sum_squares(frame) > self._threshold_sq * len(frame)
        self._clock_ms += frame_ms
        if loud:
            self._on_speech_frame(frame_ms, events)
        else:
            self._on_quiet_frame(frame_ms, events)

    def _on_speech_frame(self, frame_ms: float, events: list[VadEvent]) -> None:
        if self._first_ms is None:
            self._first_ms = self._clock_ms - frame_ms
        self._last_ms = self._clock_ms
        self.speech_ms += frame_ms
        self._quiet_ms = 0.0
        before = self._run_ms
        self._run_ms += frame_ms
        if before < BARGE_IN_SPEECH_MS <= self._run_ms:
            events.append(VadEvent.BARGE_IN)

    def _on_quiet_frame(self, frame_ms: float, events: list[VadEvent]) -> None:
        self._run_ms = 0.0
        self._quiet_ms += frame_ms
        if self._first_ms is None or self._quiet_ms < self.silence_ms:
            return
        if self.speech_ms >= self.min_speech_ms:
            self.turn_ms, self.turn_start_ms = self.span_ms, self._first_ms
            events.append(VadEvent.TURN_END)
        self.reset_turn()  # shorter: a click or a cough, not a turn


def _char_class(char: str) -> str:
    category = unicodedata.category(char)
    if category[0] in "LN":
        return "cjk" if ord(char) >= 0x3000 else "latin"
    return "space" if category[0] == "Z" or char.isspace() else "punct"


@functools.lru_cache(maxsize=4096)
def _syllable(char: str) -> bytes:
    """One character's sound: a short harmonic tone (or a pause), PCM16 at 24 kHz."""
    kind = _char_class(char)
    n = OUTPUT_RATE_HZ * (VOICED_MS.get(kind) or PAUSE_MS[kind]) // 1000
    if kind not in VOICED_MS:
        return bytes(2 * n)
    freq = 140.0 + (ord(char) * 7919) % 160  # 140–300 Hz, fixed per character
    fade = OUTPUT_RATE_HZ * SYLLABLE_FADE_MS // 1000
    norm = SYNTH_PEAK / sum(weight for _, weight in _HARMONICS)
    out = array.array("h", bytes(2 * n))
    for i in range(n):
        gain = min(1.0, i / fade, (n - 1 - i) / fade)
        phase = 2 * math.pi * freq * i / OUTPUT_RATE_HZ
        value = sum(weight * math.sin(k * phase) for k, weight in _HARMONICS)
        out[i] = int(norm * gain * value)
    if _BIG_ENDIAN:
        out.byteswap()
    return out.tobytes()


def synthesize(text: str) -> tuple[bytes, list[int]]:
    """Speak ``text`` as one tone per character at 24 kHz.

    Returns:
        The PCM16 bytes and, for each character of ``text``, the byte offset where
        its sound starts (so a transcript can be kept in step with the audio).
    """
    pieces: list[bytes] = []
    offsets: list[int] = []
    position = 0
    for char in text:
        offsets.append(position)
        sound = _syllable(char)
        pieces.append(sound)
        position += len(sound)
    return b"".join(pieces), offsets


def echo_reply(pcm: bytes) -> bytes:
    """The echo-mode answer to one input chunk.

    It is ``len(pcm) * 1.5`` bytes (rounded to even, as 16 kHz → 24 kHz would be):
    a nearest-neighbour upsample of ``pcm`` whose first 8 bytes are replaced by a
    copy of the input's first 8 bytes, so a benchmark can match reply to request.
    """
    out_bytes = (len(pcm) * 3 // 2 + 1) & ~1
    src = array.array("h", pcm[: len(pcm) & ~1])
    out = array.array("h", bytes(out_bytes))
    pairs = len(src) // 2
    if pairs:
        out[0 : 3 * pairs : 3] = src[0 : 2 * pairs : 2]
        out[1 : 3 * pairs : 3] = src[1 : 2 * pairs : 2]
        out[2 : 3 * pairs : 3] = src[1 : 2 * pairs : 2]
    if src and 3 * pairs < len(out):
        out[3 * pairs :] = array.array("h", [src[-1]]) * (len(out) - 3 * pairs)
    tag = pcm[:8]
    return tag + out.tobytes()[len(tag) :]
