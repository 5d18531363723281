"""Measured coaching facts of a conversation: who spoke when, how much, how they asked and hesitated.

Pure code (numpy; no I/O beyond reading a stream it is handed). Three layers:

* :mod:`~livetalk.analytics.vad`: :class:`StereoVad`, energy-based voice activity of a
  stereo recording (left: user, right: model), fed in blocks of any size → :class:`Activity`.
* :mod:`~livetalk.analytics.language`: questions, fillers and the amount said, in Japanese
  and English, from transcript text.
* :mod:`~livetalk.analytics.metrics`: the contract's ``evaluation.metrics`` from one or
  more recording parts (:func:`measure_conversation`) or from an upload (:func:`measure_upload`).

:mod:`~livetalk.analytics.wavstream` reads a WAV from a stream in bounded memory.

Exceptions::

    AudioFormatError      the audio cannot be measured (message safe for the client)
     ├─ NotWav            not a WAV file
     ├─ CorruptWav        claims to be a WAV but is broken (an upload → 415)
     └─ UnsupportedWav    a WAV in an encoding not read here

Wiring (the recorder, at 24 kHz)::

    vad = StereoVad(24000)              # per recording
    vad.feed(block)                     # every block of stereo s16le written to audio.wav
    meta["activity"] = vad.finish().to_json()

and ``POST /feedback``::

    measure_conversation([recorded_part(meta, transcript, conversation_start=t0) for …], language=…)
    measure_upload([Utterance(t.role, t.text) for t in turns], audio_stream, language=…)
"""
from __future__ import annotations

from .language import count_fillers, count_questions, sentences, speech_rate_unit, spoken_units
from .metrics import (Metrics, Part, Utterance, measure_conversation, measure_upload, parse_transcript,
                      recorded_part, wav_activity)
from .vad import Activity, Span, StereoVad, VadSettings
from .wavstream import AudioFormatError, CorruptWav, NotWav, UnsupportedWav, WavFormat, WavReader, open_wav

__all__ = [
    "Activity", "AudioFormatError", "CorruptWav", "Metrics", "NotWav", "Part", "Span", "StereoVad",
    "UnsupportedWav", "Utterance", "VadSettings", "WavFormat", "WavReader", "count_fillers", "count_questions",
    "measure_conversation", "measure_upload", "open_wav", "parse_transcript", "recorded_part", "sentences",
    "speech_rate_unit", "spoken_units", "wav_activity",
]
