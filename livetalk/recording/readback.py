"""A recorded conversation read back as one: every segment's meta, transcript and audio on one timeline.

A conversation resumed on new sockets is recorded as segment 0 (its folder) and ``segment-<n>/`` folders
inside it (:mod:`~livetalk.recording.layout`); a recording cut short (a killed worker) is read as far
as its last checkpoint (``"complete": false``). Everything here is in **conversation time**: seconds
from the start of segment 0.

Where a segment starts (its offset): its ``meta.json`` ``started_at`` less segment 0's, but never before
the end of the previous segment (clocks of two instances may disagree by a little). A segment recorded
before metas told a continuation's own start (no ``conversation_started_at``) follows the previous one
end to end. A segment ends ``max(duration_s, its audio's length)`` after its offset.

The audio (:meth:`RecordedConversation.audio_pieces`) is one WAV: a header, then each segment's samples
at its offset, with silence between them. The gap between two segments is real time by default, so a
player's position is conversation time; ``max_gap_s`` shortens it (the grader need not hear minutes of
silence while a client reconnected).

Reads through a :class:`~livetalk.storage.Storage`; any call may raise
:class:`~livetalk.storage.StorageError`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from ..analytics import Activity, AudioFormatError, Part, WavFormat, open_wav, recorded_part, wav_activity
from ..evidence import Line
from ..storage import ObjectNotFound, Storage
from ..storage.joined import Piece, Span, Zeros
from ..wav import wav_header
from .layout import META_NAME, TRANSCRIPT_NAME, find_recording

log = logging.getLogger("livetalk.recording")

SPEECH_ROLES = ("user", "model")  # transcript lines of other roles (an outcome) are not speech
_SEGMENT_META = re.compile(r"segment-(\d+)/" + re.escape(META_NAME))


@dataclasses.dataclass(frozen=True)
class Segment:
    """One socket's recording: its number, folder, meta, transcript and where it sits in the conversation."""

    number: int
    folder: str
    meta: dict[str, Any]
    transcript: bytes
    offset_s: float = 0.0

    @property
    def audio_key(self) -> str | None:
        audio = self.meta.get("audio")
        return audio.get("key") if isinstance(audio, dict) else None

    def length_s(self) -> float:
        """Seconds from its start to its end: the longer of the meta's duration and its audio's."""
        audio = self.meta.get("audio")
        known = [self.meta.get("duration_s"), audio.get("duration_s") if isinstance(audio, dict) else None]
        return max([float(k) for k in known if isinstance(k, (int, float))], default=0.0)

    def items(self) -> list[dict[str, Any]]:
        """Its transcript's lines as objects (a line that is not one is skipped)."""
        items = []
        for raw in self.transcript.decode("utf-8", "replace").splitlines():
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if isinstance(item, dict):
                items.append(item)
        return items


@dataclasses.dataclass(frozen=True)
class RecordedConversation:
    """A conversation's segments, in order, placed on its timeline, and its session index entry."""

    session_id: str
    scenario_id: str | None
    prefix: str
    segments: tuple[Segment, ...]
    index: dict[str, Any] = dataclasses.field(default_factory=dict)  # sessions/<id>.json (who owns it, …)

    @property
    def has_audio(self) -> bool:
        return any(segment.audio_key for segment in self.segments)

    def lines(self) -> list[Line]:
        """What both sides said, in order, with times in conversation time (outcome lines left out)."""
        lines = []
        for segment in self.segments:
            for item in segment.items():
                if item.get("role") in SPEECH_ROLES and isinstance(item.get("text"), str) and item["text"].strip():
                    lines.append(Line(item["role"], item["text"], _at(item.get("start_ms"), segment.offset_s),
                                      _at(item.get("end_ms"), segment.offset_s)))
        return lines

    def outcome(self) -> dict[str, Any] | None:
        """What the conversation achieved: its outcome lines replayed in order (a cancelled one withdrawn)."""
        outcome = None
        for segment in self.segments:
            for item in segment.items():
                name = item.get("name")
                if item.get("role") != "outcome" or not isinstance(name, str):
                    continue
                if isinstance(item.get("details"), dict) and not item.get("cancelled"):
                    outcome = {name: True, "details": item["details"]}
                elif outcome is not None and name in outcome:
                    outcome = None
        return outcome

    def parts(self, storage: Storage) -> list[Part]:
        """The segments as analytics parts (speech from meta.json's activity; an older recording's measured
        from its audio, in bounded memory)."""
        start = _started(self.segments[0].meta) if self.segments else None
        parts = []
        for segment in self.segments:
            activity = None
            if "activity" not in segment.meta and segment.audio_key:
                activity = _measure_audio(storage, segment.audio_key)
            part = recorded_part(segment.meta, segment.transcript, conversation_start=start, activity=activity)
            parts.append(dataclasses.replace(part, offset_s=segment.offset_s))
        return parts

    def duration_s(self) -> float:
        """From the start of the first segment to the end of the last."""
        return max((segment.offset_s + segment.length_s() for segment in self.segments), default=0.0)

    def audio_pieces(self, storage: Storage, *, max_gap_s: float | None = None) -> list[Piece] | None:
        """One WAV as pieces (header, each segment's samples, silence between); None without audio.

        Gaps between segments last as long as they did, or at most ``max_gap_s``. A segment whose
        audio is not the recorder's format (or cannot be read) is left out.
        """
        layout: list[tuple[Segment, Span, WavFormat]] = []
        for segment in self.segments:
            found = _samples(storage, segment.audio_key) if segment.audio_key else None
            if found is not None and (not layout or found[1] == layout[0][2]):
                layout.append((segment, *found))
        if not layout:
            return None
        fmt = layout[0][2]
        pieces: list[Piece] = []
        at = 0  # bytes of samples placed so far
        for segment, span, _ in layout:
            gap = int(round(segment.offset_s * fmt.sample_rate)) * fmt.frame_bytes - at
            if max_gap_s is not None:
                gap = min(gap, int(max_gap_s * fmt.sample_rate) * fmt.frame_bytes)
            if gap > 0:
                pieces.append(Zeros(gap))
                at += gap
            pieces.append(span)
            at += span.length
        header = wav_header(at, sample_rate=fmt.sample_rate, channels=fmt.channels, sample_bits=fmt.bits)
        return [header, *pieces]


def read_conversation(storage: Storage, session_id: str) -> RecordedConversation | None:
    """The recorded conversation ``session_id`` (every segment), or None when nothing was recorded.

    Raises ValueError for an unsafe id.
    """
    entry = find_recording(storage, session_id)
    if entry is None:
        return None
    prefix = str(entry["prefix"])
    folders = {0: prefix}
    for key in storage.list(prefix):
        match = _SEGMENT_META.fullmatch(key[len(prefix) + 1:])
        if match:
            folders[int(match.group(1))] = f"{prefix}/segment-{match.group(1)}"
    segments = [segment for number in sorted(folders) if (segment := _segment(storage, number, folders[number]))]
    return RecordedConversation(session_id, entry.get("scenario_id"), prefix, tuple(_placed(segments)), entry)


def _segment(storage: Storage, number: int, folder: str) -> Segment | None:
    try:
        meta = json.loads(storage.read(f"{folder}/{META_NAME}"))
    except (ObjectNotFound, ValueError):
        return None
    try:
        transcript = storage.read(f"{folder}/{TRANSCRIPT_NAME}")
    except ObjectNotFound:
        transcript = b""
    return Segment(number, folder, meta, transcript) if isinstance(meta, dict) else None


def _placed(segments: Sequence[Segment]) -> list[Segment]:
    """The segments with their offsets (see the module docstring)."""
    placed: list[Segment] = []
    start = _started(segments[0].meta) if segments else None
    for segment in segments:
        end_of_previous = placed[-1].offset_s + placed[-1].length_s() if placed else 0.0
        offset = end_of_previous
        began = _started(segment.meta)
        if placed and "conversation_started_at" in segment.meta and began is not None and start is not None:
            offset = max((began - start).total_seconds(), end_of_previous)
        placed.append(dataclasses.replace(segment, offset_s=offset))
    return placed


def _started(meta: dict[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(meta["started_at"])
    except (KeyError, TypeError, ValueError):
        return None


def _samples(storage: Storage, key: str) -> tuple[Span, WavFormat] | None:
    """Where a stored WAV's samples are (whole frames) and their format; None if it cannot be read."""
    size = storage.size(key)
    with storage.open_read(key) as stream:
        try:
            reader = open_wav(stream)
        except AudioFormatError:
            log.warning("a recording of %s cannot be read as WAV", key)
            return None
        offset = stream.tell()
    fmt = reader.format
    length = size - offset if reader.data_bytes is None else min(reader.data_bytes, size - offset)
    return Span(key, offset, length - length % fmt.frame_bytes), fmt


def _measure_audio(storage: Storage, key: str) -> Activity | None:
    try:
        with storage.open_read(key) as stream:
            return wav_activity(stream)
    except AudioFormatError:
        return None


def _at(value: Any, offset_s: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return offset_s + value / 1000.0
