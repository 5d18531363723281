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

Wiring. The recorder (one detector per recording, fed on the pump thread)::

    self.vad = StereoVad(OUTPUT_RATE)                     # with the recording
    self.vad.feed(frames)                                 # each stereo block written to audio.wav
    meta["activity"] = self.vad.finish().to_json()        # in meta.json, at finalisation

``POST /feedback`` for a recorded conversation (every segment, first one first)::

    start = datetime.fromisoformat(metas[0]["started_at"])
    parts = [recorded_part(meta, transcript, conversation_start=start) for meta, transcript in segments]
    metrics = measure_conversation(parts, language=scenario.language)

(a recording made before ``activity`` was stored: pass ``activity=wav_activity(stream)``),
and for an upload (``CorruptWav`` → 415)::

    metrics = measure_upload([Utterance(t.role, t.text) for t in turns], audio, language=scenario.language)
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
