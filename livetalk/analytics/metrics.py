"""Measured coaching facts of one conversation: the ``evaluation.metrics`` object of the HTTP contract.

Inputs are one or more :class:`Part` (a recording segment: when it started within the
conversation, the speech found in its audio, its transcript). A conversation resumed
over several sockets is several parts; their speech is placed on one timeline by their
offsets and measured as one conversation.

Definitions (these are what trainees are shown):

``duration_s``
    From the start of the first part to the end of the last (a gap between parts counts).
``talk_s``
    Per side, the time that side's audio carried speech (the energy-based detector of
    :mod:`livetalk.analytics.vad`: pauses up to 0.3 s inside speech count as speech), not
    the length of the transcript.
``talk_share_user``
    ``talk_s.user / (talk_s.user + talk_s.model)``; null when neither spoke.
``turns``
    Per side, how many times that side took the floor: a turn is a run of one side's
    speech that the other side does not break. Speech wholly inside the other side's speech
    (a *backchannel*: はい, uh-huh, while the other goes on) takes no turn. Without usable
    audio, turns are counted from the transcript: consecutive lines of one side are one turn.
``longest_monologue_s``
    Per side, the longest time that side held the floor without the other speaking: a
    turn from its first speech to its last, less any overlap with the turns around it.
    Pauses inside the turn count; backchannels do not break it.
``interruptions``
    ``by_user``: times the user started speaking while the model's audio was playing and
    went on after the model stopped (a barge-in); ``by_model`` the reverse. Speech that
    starts and ends inside the other's is a backchannel, not an interruption.
``response_latency_s``
    ``user_p50``: the median gap from the end of a model turn to the start of the user's
    next turn; ``model_p50`` the reverse. Turns that start before the other side has
    finished (interruptions) are not latencies. Null when there is none.
``questions_user``, ``fillers_user``
    Counted in the user's transcript by the rules of :mod:`livetalk.analytics.language`.
``speech_rate_user``, ``speech_rate_unit``
    What the user said (spoken characters for Japanese, words for English) per minute of
    the user's ``talk_s``; null when the user spoke under a second. The unit follows the
    scenario's language.
``timeline``
    Every stretch of speech, in order: ``{"role", "start_s", "end_s", "interruption"}``,
    seconds from the start of the conversation; ``interruption`` marks barge-ins.

Fields the inputs cannot support are null: every timing (talk, share, monologue,
interruptions, latency, rate, timeline) needs audio for every part; ``duration_s`` needs
audio or transcript times. Seconds are rounded to 0.01 s, the share to 3 decimals, the
rate to 0.1.

Exceptions: :func:`measure_upload` and :func:`wav_activity` raise
:class:`~livetalk.analytics.wavstream.CorruptWav` for a WAV whose structure is broken;
the rest raise ``ValueError`` for inputs of the wrong shape.
"""
from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import io
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, NamedTuple, TypedDict

from .language import SpeechRateUnit, count_fillers, count_questions, speech_rate_unit, spoken_units
from .vad import ROLES, Activity, StereoVad, VadSettings
from .wavstream import BLOCK_FRAMES, NotWav, UnsupportedWav, open_wav

SECONDS_DECIMALS = 2
SHARE_DECIMALS = 3
RATE_DECIMALS = 1
MIN_RATE_TALK_S = 1.0  # below this much user speech a rate per minute means nothing
STEREO = 2
_OTHER = {"user": "model", "model": "user"}


class Utterance(NamedTuple):
    """One line of a conversation: ``role`` ``"user"`` or ``"model"``; times in seconds within its part, if known."""

    role: str
    text: str
    start_s: float | None = None
    end_s: float | None = None
    interrupted: bool = False


@dataclasses.dataclass(frozen=True)
class Part:
    """One recording segment of a conversation.

    Args:
        offset_s: when the part started, in seconds from the start of the conversation
            (the first part's start; 0 for a conversation of one part).
        activity: the speech found in its audio, or None without usable audio.
        utterances: its transcript, in order.
        duration_s: its length in seconds, if known (else the audio's length, else the
            last utterance's end).
    """

    offset_s: float = 0.0
    activity: Activity | None = None
    utterances: Sequence[Utterance] = ()
    duration_s: float | None = None

    def length_s(self) -> float | None:
        """The part's length in seconds from what is known, or None."""
        known = [self.duration_s, self.activity and self.activity.duration_s,
                 *(u.end_s for u in self.utterances)]
        known = [k for k in known if isinstance(k, (int, float))]
        return max(known) if known else None


class PerSide(TypedDict):
    user: float
    model: float


class TurnCounts(TypedDict):
    user: int
    model: int


class Interruptions(TypedDict):
    by_user: int
    by_model: int


class Latency(TypedDict):
    user_p50: float | None
    model_p50: float | None


class TimelineEntry(TypedDict):
    role: str
    start_s: float
    end_s: float
    interruption: bool


class Metrics(TypedDict):
    """The contract's ``evaluation.metrics`` object (JSON-ready), plus ``timeline``."""

    duration_s: float | None
    talk_s: PerSide | None
    talk_share_user: float | None
    longest_monologue_s: PerSide | None
    turns: TurnCounts
    questions_user: int
    fillers_user: int
    interruptions: Interruptions | None
    response_latency_s: Latency | None
    speech_rate_user: float | None
    speech_rate_unit: SpeechRateUnit
    timeline: list[TimelineEntry] | None


@dataclasses.dataclass(frozen=True)
class _Segment:
    role: str
    start: float
    end: float
    interruption: bool = False
    backchannel: bool = False


@dataclasses.dataclass
class _Turn:
    role: str
    start: float
    end: float


# --- inputs ---------------------------------------------------------------------------------------


def parse_transcript(data: bytes | str) -> list[Utterance]:
    """The utterances of a recorder ``transcript.jsonl`` (``{"role", "text", "start_ms", "end_ms", "interrupted"}``).

    Lines that are not such objects are skipped.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    utterances = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
            role, words = item["role"], item["text"]
            if role not in ROLES or not isinstance(words, str):
                continue
            utterances.append(Utterance(role, words, _ms_to_s(item.get("start_ms")), _ms_to_s(item.get("end_ms")),
                                        bool(item.get("interrupted", False))))
        except (ValueError, TypeError, KeyError):
            continue
    return utterances


def recorded_part(meta: Mapping[str, Any], transcript: bytes | str, *, conversation_start: dt.datetime,
                  activity: Activity | None = None) -> Part:
    """A :class:`Part` from a recorder segment's ``meta.json`` and ``transcript.jsonl``.

    Args:
        meta: the segment's meta (``started_at``, ``duration_s``, ``audio``, and ``activity``
            when the recorder stored :meth:`Activity.to_json` there).
        transcript: the segment's transcript.jsonl.
        conversation_start: the first segment's ``started_at`` (aware datetime).
        activity: the segment's speech when measured otherwise (e.g. by :func:`wav_activity`
            on its audio); by default ``meta["activity"]``, or silence when it has no audio.
    """
    try:
        started = dt.datetime.fromisoformat(meta["started_at"])
        offset = (started - conversation_start).total_seconds()
    except (KeyError, TypeError, ValueError):
        raise ValueError("meta.started_at must be an ISO 8601 time with a UTC offset") from None
    duration = meta.get("duration_s")
    if activity is None and meta.get("activity") is not None:
        activity = Activity.from_json(meta["activity"])
    if activity is None and not meta.get("audio"):
        activity = Activity.silent(duration or 0.0)
    return Part(offset, activity, parse_transcript(transcript), duration)


def wav_activity(stream: BinaryIO, *, settings: VadSettings | None = None,
                 block_frames: int = BLOCK_FRAMES) -> Activity | None:
    """The speech in a stereo WAV (left: user, right: model, any rate and sample format), read in blocks.

    Returns None for a WAV that is not stereo. Raises
    :class:`~livetalk.analytics.wavstream.NotWav`, ``CorruptWav`` or ``UnsupportedWav``.
    """
    reader = open_wav(stream)
    if reader.format.channels != STEREO:
        return None
    vad = StereoVad(reader.format.sample_rate, settings=settings)
    for block in reader.blocks(block_frames=block_frames):
        vad.feed(block)
    return vad.finish()


# --- the measures ---------------------------------------------------------------------------------


def measure_upload(utterances: Sequence[Utterance], audio: BinaryIO | bytes | None = None, *, language: str,
                   settings: VadSettings | None = None) -> Metrics:
    """The metrics of an uploaded conversation: its log, and its audio (bytes or a binary stream) if any.

    A stereo WAV (left: user, right: model) gives the timings; any other audio (mono, more
    channels, not a WAV, an encoding not read here) gives none, and neither does no audio:
    questions, fillers and turns then come from the log alone. A stream is read from its
    position to its end in blocks (seek it back to reuse it).

    Raises :class:`~livetalk.analytics.wavstream.CorruptWav` when the audio claims to be a
    WAV but its structure is broken.
    """
    activity = None
    if isinstance(audio, (bytes, bytearray, memoryview)):
        audio = io.BytesIO(audio)
    if audio is not None:
        try:
            activity = wav_activity(audio, settings=settings)
        except (NotWav, UnsupportedWav):
            activity = None
    return measure_conversation([Part(0.0, activity, tuple(utterances))], language=language)


def measure_conversation(parts: Sequence[Part], *, language: str) -> Metrics:
    """The metrics of a conversation made of ``parts`` (several for a resumed one), as JSON-ready values.

    ``language`` is the scenario's BCP-47 tag (``ja-JP``, ``en-US``); it picks the unit of
    the speech rate. See the module docstring for every definition.
    """
    unit = speech_rate_unit(language)
    user_text = [u.text for part in parts for u in part.utterances if u.role == "user"]
    metrics: Metrics = {
        "duration_s": _seconds(_duration(parts)),
        "talk_s": None, "talk_share_user": None, "longest_monologue_s": None,
        "turns": _text_turns(u for part in parts for u in part.utterances),
        "questions_user": sum(map(count_questions, user_text)),
        "fillers_user": sum(map(count_fillers, user_text)),
        "interruptions": None, "response_latency_s": None,
        "speech_rate_user": None, "speech_rate_unit": unit,
        "timeline": None,
    }
    if parts and all(part.activity is not None for part in parts):
        spoken = sum(spoken_units(text, unit) for text in user_text)
        metrics.update(_timings(_segments(_timeline(parts)), spoken))
    return metrics


def _timings(segments: list[_Segment], spoken_user: int) -> dict[str, Any]:
    talk = {role: sum(s.end - s.start for s in segments if s.role == role) for role in ROLES}
    turns = _turns(segments)
    both = talk["user"] + talk["model"]
    latency = _latencies(turns)
    return {
        "talk_s": {role: _seconds(talk[role]) for role in ROLES},
        "talk_share_user": round(talk["user"] / both, SHARE_DECIMALS) if both > 0 else None,
        "longest_monologue_s": {role: _seconds(m) for role, m in _monologues(turns).items()},
        "turns": {role: sum(t.role == role for t in turns) for role in ROLES},
        "interruptions": {f"by_{role}": sum(s.interruption and s.role == role for s in segments) for role in ROLES},
        "response_latency_s": {f"{role}_p50": _seconds(statistics.median(gaps)) if gaps else None
                               for role, gaps in latency.items()},
        "speech_rate_user": (round(spoken_user / (talk["user"] / 60.0), RATE_DECIMALS)
                             if talk["user"] >= MIN_RATE_TALK_S else None),
        "timeline": [{"role": s.role, "start_s": _seconds(s.start), "end_s": _seconds(s.end),
                      "interruption": s.interruption} for s in segments],
    }


def _duration(parts: Sequence[Part]) -> float | None:
    ends = [(part.offset_s, part.offset_s + length) for part in parts if (length := part.length_s()) is not None]
    if not ends:
        return None
    return max(end for _, end in ends) - min(part.offset_s for part in parts)


def _timeline(parts: Sequence[Part]) -> dict[str, list[tuple[float, float]]]:
    """Each side's speech on the conversation's timeline: spans shifted by their part's offset, overlaps joined."""
    spans = {role: sorted((part.offset_s + s, part.offset_s + e) for part in parts
                          for s, e in part.activity.side(role))  # type: ignore[union-attr]
             for role in ROLES}
    return {role: _union(side) for role, side in spans.items()}


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    joined: list[list[float]] = []
    for start, end in spans:
        if joined and start <= joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], end)
        else:
            joined.append([start, end])
    return [(s, e) for s, e in joined]


def _segments(spans: dict[str, list[tuple[float, float]]]) -> list[_Segment]:
    """Every span of both sides in order of start, each marked as an interruption, a backchannel or neither."""
    starts = {role: [s for s, _ in side] for role, side in spans.items()}
    segments = []
    for role, side in spans.items():
        other, other_starts = spans[_OTHER[role]], starts[_OTHER[role]]
        for start, end in side:
            i = bisect.bisect_left(other_starts, start) - 1  # the other side's last span starting before this
            inside = i >= 0 and start < other[i][1]
            segments.append(_Segment(role, start, end, interruption=inside and end > other[i][1],
                                     backchannel=inside and end <= other[i][1]))
    return sorted(segments, key=lambda s: (s.start, s.end, s.role))


def _turns(segments: list[_Segment]) -> list[_Turn]:
    turns: list[_Turn] = []
    for segment in segments:
        if segment.backchannel:
            continue
        if turns and turns[-1].role == segment.role:
            turns[-1].end = max(turns[-1].end, segment.end)
        else:
            turns.append(_Turn(segment.role, segment.start, segment.end))
    return turns


def _monologues(turns: list[_Turn]) -> dict[str, float]:
    longest = {role: 0.0 for role in ROLES}
    for i, turn in enumerate(turns):
        after_previous = max(turn.start, turns[i - 1].end) if i else turn.start
        before_next = min(turn.end, turns[i + 1].start) if i + 1 < len(turns) else turn.end
        longest[turn.role] = max(longest[turn.role], before_next - after_previous)  # ≥ 0: turns alternate
    return longest


def _latencies(turns: list[_Turn]) -> dict[str, list[float]]:
    """Per side, the gaps before each of its turns that answered the other's (overlaps excluded)."""
    gaps: dict[str, list[float]] = {role: [] for role in ROLES}
    for before, turn in zip(turns, turns[1:]):
        if turn.start >= before.end:
            gaps[turn.role].append(turn.start - before.end)
    return gaps


def _text_turns(utterances: Iterable[Utterance]) -> TurnCounts:
    counts = {role: 0 for role in ROLES}
    last = None
    for utterance in utterances:
        if utterance.role in counts and utterance.text.strip() and utterance.role != last:
            counts[utterance.role] += 1
            last = utterance.role
    return {"user": counts["user"], "model": counts["model"]}


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, SECONDS_DECIMALS)


def _ms_to_s(value: Any) -> float | None:
    return value / 1000.0 if isinstance(value, (int, float)) and not isinstance(value, bool) else None
