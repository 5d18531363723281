"""The recorder's pump-side half: a conversation's events turned into the timeline, transcript lines and bytes.

:class:`RecordingWorker` runs on the pump thread only. It places each side's audio on the
:mod:`~livetalk.recording.timeline`, closes transcript lines (``start_ms``/``end_ms`` on the recording's clock),
counts turns and barge-ins, measures who spoke when (:class:`~livetalk.analytics.StereoVad`) on every block it
writes, and hands bytes to its :class:`~livetalk.recording.sink.Sink`, with a checkpoint every
``checkpoint_s`` of audio and the final ``meta.json`` at the end.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..analytics import StereoVad
from ..wav import wav_header
from .layout import AUDIO_NAME, META_NAME, TRANSCRIPT_NAME
from .sink import Sink, Snapshot
from .timeline import CHANNELS, FRAME_BYTES, OUTPUT_RATE, Mixer, frame_at, ms

if TYPE_CHECKING:
    from .recorder import ConversationRecorder

log = logging.getLogger("livetalk.recording")


@dataclasses.dataclass
class Utterance:
    """One transcript line being written: its role, frames on the timeline, words and whether it was cut."""

    role: str
    start: int  # frame
    end: int
    parts: list[str] = dataclasses.field(default_factory=list)
    interrupted: bool = False

    def line(self) -> dict[str, Any]:
        return {"role": self.role, "text": "".join(self.parts).strip(), "start_ms": ms(self.start),
                "end_ms": ms(max(self.end, self.start)), "interrupted": self.interrupted}



class RecordingWorker:
    """The recorder's pump-side half: events → timeline and transcript → bytes for the sink."""

    def __init__(self, rec: ConversationRecorder, sink: Sink) -> None:
        self.rec = rec
        self.sink = sink
        self.mixer = Mixer(rec.input_rate)
        self.frames_written = 0
        self.open: dict[str, Utterance] = {}
        self.turns = {"user": 0, "model": 0}
        self.interruptions = 0
        self.outcome: dict[str, Any] | None = None  # meta.json's "outcome"
        self.vad = StereoVad(OUTPUT_RATE)  # who spoke when, measured on the blocks written
        self.voice: tuple[int, int] | None = None  # user speech heard since their last utterance
        self.now = 0
        self._checkpoint_frames = max(int(rec.checkpoint_s * OUTPUT_RATE), 1)
        self._next_checkpoint = self._checkpoint_frames
        self._handlers: dict[str, Callable[[int, Any], None]] = {
            "user": self._on_user, "model": self._on_model, "text": self._on_text,
            "turn": self._on_turn, "interrupt": self._on_interrupt, "outcome": self._on_outcome,
        }

    # --- events ----------------------------------------------------------------------------

    def process(self, events: list[tuple[str, float, Any, int]]) -> None:
        """Handle a batch of events, in order, as if one at a time."""
        if self.sink.failed:
            return
        try:
            self.mixer.stage_user([payload for kind, _, payload, _ in events if kind == "user"])
            t0, handlers = self.rec._t0, self._handlers
            for kind, t, payload, _ in events:
                handlers[kind](self._advance(frame_at(t, t0)), payload)
            self.mixer.flush()
        except Exception:  # a bug here must not take the conversation down with it
            log.exception("recording %s failed", self.rec.session_id)
            self.sink.fail("internal error")

    def _advance(self, frame: int) -> int:
        """Move "now" to ``frame`` (never back); commit first, so windows slide before anything is placed."""
        if frame > self.now:
            self.now = frame
        if self.mixer.due(self.now):
            for block in self.mixer.ready(self.now):
                self._write_audio(block)
        return self.now

    def _on_user(self, now: int, _pcm: bytes) -> None:
        start, end, loud = self.mixer.add_user(now)  # the staged samples of this chunk
        if loud:
            self.voice = (self.voice[0] if self.voice else start, end)

    def _on_model(self, now: int, pcm: bytes) -> None:
        start = self.mixer.add_model(now, pcm)
        utterance = self._utterance("model", start)
        utterance.end = self.mixer.model_cursor

    def _on_text(self, now: int, payload: tuple[str, str, bool]) -> None:
        role, text, final = payload
        if not text and role not in self.open:
            return  # e.g. the relay closing an utterance this recorder already closed
        if role == "model":
            utterance = self._utterance(role, max(now, self.mixer.model_cursor))
            utterance.end = max(utterance.end, self.mixer.model_cursor)
        else:
            # Transcription lags speech: time the utterance by the speech heard, when there was some.
            start, end = self.voice or (now, now)
            utterance = self._utterance(role, min(start, now))
            utterance.end = max(utterance.end, end)
        utterance.parts.append(text)
        if final:
            self._close(role)

    def _on_turn(self, now: int, _: None) -> None:
        self._close("user")
        self._close("model")

    def _on_interrupt(self, now: int, _: None) -> None:
        self.interruptions += 1
        self.mixer.interrupt(now)
        model = self.open.get("model")
        if model is not None:
            model.interrupted = True
            model.end = min(model.end, self.mixer.model_cursor)
            self._close("model")

    def _on_outcome(self, now: int, payload: tuple[str, dict[str, Any] | None]) -> None:
        name, details = payload
        line = {"role": "outcome", "name": name, "details": details, "cancelled": details is None,
                "start_ms": ms(now), "end_ms": ms(now)}
        if details is not None:
            self.outcome = {name: True, "details": details}
        elif self.outcome is not None and name in self.outcome:  # only the outcome that call reached
            self.outcome = None
        self.sink.add_line(json.dumps(line, ensure_ascii=False, default=str).encode() + b"\n")
        # An agreed meeting is worth more than the audio around it: stored at the next block, not interval.
        self._next_checkpoint = min(self._next_checkpoint, self.mixer.committed + 1)

    def _utterance(self, role: str, start: int) -> Utterance:
        utterance = self.open.get(role)
        if utterance is None:
            if role == "model":
                self._close("user")  # the model starting to answer ends the user's utterance
            utterance = self.open[role] = Utterance(role, start, start)
        return utterance

    def _close(self, role: str) -> None:
        utterance = self.open.pop(role, None)
        if role == "user":
            self.voice = None
        if utterance is None or self.sink.failed:
            return
        line = utterance.line()
        if not line["text"]:
            return
        self.turns[role] += 1
        self.sink.add_line(json.dumps(line, ensure_ascii=False).encode() + b"\n")

    def _write_audio(self, frames: bytes) -> None:
        if not frames or self.sink.failed:
            return
        self.sink.append_audio(frames)
        self.vad.feed(frames)
        self.frames_written += len(frames) // FRAME_BYTES
        if self.mixer.committed >= self._next_checkpoint:
            self._next_checkpoint = self.mixer.committed + self._checkpoint_frames
            self.sink.checkpoint(self._snapshot(self.mixer.committed / OUTPUT_RATE, None, self.rec.dropped_events))

    # --- finalize --------------------------------------------------------------------------

    def finish(self, t: float, reason: str, *, dropped_events: int,
               on_done: Callable[[str | None], None]) -> None:
        """Close the utterances, write out the timeline and have the sink publish; ``on_done(uri or None)``."""
        snapshot = None
        try:
            if not self.sink.failed:
                for role in ("user", "model"):
                    self._close(role)
                for block in self.mixer.drain():
                    self._write_audio(block)
                self.vad.finish()
                snapshot = self._snapshot(max(t - self.rec._t0, 0.0), reason, dropped_events)
        except Exception:
            log.exception("recording %s could not be finalised", self.rec.session_id)
            self.sink.fail("internal error")
        self.sink.publish(snapshot, on_done)

    def _snapshot(self, elapsed: float, reason: str | None, dropped_events: int) -> Snapshot:
        """What the files say after ``elapsed`` seconds; ``reason`` None means the conversation goes on."""
        meta = self._meta(elapsed, reason, dropped_events)
        header = wav_header(self.frames_written * FRAME_BYTES, sample_rate=OUTPUT_RATE, channels=CHANNELS)
        return Snapshot(audio_header=header if self.frames_written else None, transcript=self.sink.transcript(),
                        meta=meta, index=self._index(meta))

    def _meta(self, elapsed: float, reason: str | None, dropped_events: int) -> dict[str, Any]:
        rec = self.rec
        return {
            "session_id": rec.session_id,
            "scenario_id": rec.scenario_id,
            "engine": rec.engine,
            "learner_id": rec.learner_id,
            "conversation_started_at": rec.started_at.isoformat(),
            "started_at": rec.recording_started_at.isoformat(),  # this recording's (a continuation's own)
            "ended_at": (rec.recording_started_at + dt.timedelta(seconds=elapsed)).isoformat(),
            "duration_s": round(elapsed, 3),
            "reason": reason,
            "complete": reason is not None,  # False: a checkpoint of a conversation still going on (or cut off)
            "segment": rec.segment,
            "turns": dict(self.turns),
            "interruptions": self.interruptions,
            "outcome": self.outcome,
            "audio": None if not self.frames_written else {
                "key": self.sink.key(AUDIO_NAME), "sample_rate": OUTPUT_RATE, "channels": ["user", "model"],
                "duration_s": round(self.frames_written / OUTPUT_RATE, 3),
            },
            "transcript": self.sink.key(TRANSCRIPT_NAME),
            "dropped": {"events": dropped_events, "model_audio_ms": ms(self.mixer.dropped_model)},
            "activity": self.vad.so_far().to_json(),  # so far: finish() has run at the end
        }

    def _index(self, meta: dict[str, Any]) -> dict[str, Any] | None:
        """The ``sessions/<id>.json`` entry (segment 0 only)."""
        if self.rec.segment:
            return None
        index = {k: meta[k] for k in ("session_id", "scenario_id", "learner_id", "started_at", "ended_at")}
        index.update(prefix=self.rec.key_prefix, audio=meta["audio"] and meta["audio"]["key"],
                     transcript=self.sink.key(TRANSCRIPT_NAME), meta=self.sink.key(META_NAME))
        return index
