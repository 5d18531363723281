"""Noticing, from the user's audio alone, when they speak and when they have finished a turn. Pure.

The relay needs this to know when the engine owes an answer (a stalled upstream says nothing) and when
the conversation is at rest (a good moment to hand over to a new upstream session). It looks at each
frame's peak only: cheap (a few µs per 20 ms frame), and the engine does the real voice detection.
"""
from __future__ import annotations

import numpy as np

SPEECH_PEAK = 1000  # a frame peaking above this (of 32767) is speech, as the recording's transcript timing has it
MIN_SPEECH_S = 0.3  # shorter bursts (a click, a cough) are not a turn
LOOK_EVERY_S = 0.1  # one frame is looked at per this much audio: turns are judged in ~0.1 s steps


class TurnTracker:
    """Feed the user's frames; learn when speech starts and when a spoken turn has ended.

    Args:
        silence_s: how long the user must be quiet for a turn to have ended (the scenario's VAD silence).
        rate_hz: sample rate of the frames (PCM16 mono).
    """

    def __init__(self, *, silence_s: float, rate_hz: int) -> None:
        self._silence = silence_s * rate_hz
        self._min_speech = MIN_SPEECH_S * rate_hz
        self._look_every = LOOK_EVERY_S * rate_hz
        self._unseen = self._look_every  # samples since a frame was last looked at
        self._spoken = 0  # samples of speech in the current turn
        self._quiet = 0  # samples of quiet since the last speech

    def feed(self, pcm: bytes) -> tuple[bool, bool]:
        """``(speaking, turn_ended)`` for one frame: whether it is speech, whether it ended a spoken turn.

        Only one frame per :data:`LOOK_EVERY_S` is looked at; it stands for the audio since the last one.
        """
        self._unseen += len(pcm) >> 1
        if self._unseen < self._look_every:
            return False, False
        span, self._unseen = self._unseen, 0
        samples = np.frombuffer(pcm, dtype="<i2")
        if samples.max() > SPEECH_PEAK or samples.min() < -SPEECH_PEAK:
            self._spoken += span
            self._quiet = 0
            return True, False
        if not self._spoken:
            return False, False
        self._quiet += span
        if self._quiet < self._silence:
            return False, False
        ended = self._spoken >= self._min_speech
        self._spoken = self._quiet = 0
        return False, ended
