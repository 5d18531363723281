"""One model turn as the list of Live frames the emulator sends, and its usage numbers.

Pure: :func:`plan_reply` returns the frames; the session decides when to send them.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

from livetalk.emulator.audio import OUTPUT_RATE_HZ, duration_ms, synthesize
from livetalk.emulator.dialogue import transcript_pieces
from livetalk.emulator.wire import audio_part, dumps, server_content

CHUNK_MS = 40  # model audio is sent in pieces of this length
CHUNK_BYTES = OUTPUT_RATE_HZ * CHUNK_MS // 1000 * 2
AUDIO_TOKENS_PER_S = 32  # the documented rate for audio input and output
CHARS_PER_TEXT_TOKEN = 4


@dataclasses.dataclass(frozen=True)
class UserTurn:
    """What the user did: spoke for ``seconds``, or typed ``text``."""

    kind: str  # "voice" | "text"
    seconds: float = 0.0
    text: str | None = None

    @property
    def prompt_tokens(self) -> int:
        """Token count of the input, by the documented rates."""
        if self.kind == "voice":
            return max(1, math.ceil(self.seconds * AUDIO_TOKENS_PER_S))
        return text_tokens(self.text or "")


@dataclasses.dataclass(frozen=True)
class Frame:
    """One server message: its JSON bytes, the PCM bytes it carries, and whether a pause follows."""

    payload: bytes
    audio_bytes: int = 0
    tick: bool = False  # the session waits one chunk interval after sending it


def text_tokens(text: str) -> int:
    """A rough token count for ``text``: one per four characters, at least one."""
    return max(1, math.ceil(len(text) / CHARS_PER_TEXT_TOKEN))


def plan_reply(text: str, *, audio: bool, combined: bool, transcribe: bool) -> list[Frame]:
    """The frames that speak (or write) ``text``, before generationComplete.

    Args:
        text: the reply.
        audio: AUDIO modality (else TEXT parts).
        combined: 3.x style, audio and its transcript in one serverContent (else one part per message).
        transcribe: send ``outputTranscription`` pieces alongside the audio.
    """
    if not audio:
        return [_text_frame(piece) for _, piece in transcript_pieces(text)]
    return list(_audio_frames(text, combined=combined, transcribe=transcribe))


def _text_frame(piece: str) -> Frame:
    content = server_content(modelTurn={"role": "model", "parts": [{"text": piece}]})
    return Frame(dumps(content), tick=True)


def _audio_frames(text: str, *, combined: bool, transcribe: bool) -> Iterator[Frame]:
    pcm, offsets = synthesize(text)
    pieces = transcript_pieces(text) if transcribe else []
    starts = [(offsets[i] if i < len(offsets) else len(pcm), piece) for i, piece in pieces]
    for begin in range(0, len(pcm), CHUNK_BYTES):
        chunk = pcm[begin : begin + CHUNK_BYTES]
        due = [piece for start, piece in starts if begin <= start < begin + CHUNK_BYTES]
        if combined:
            fields: dict[str, Any] = {"modelTurn": {"parts": [audio_part(chunk)]}}
            if due:
                fields["outputTranscription"] = {"text": "".join(due)}
            yield Frame(dumps(server_content(**fields)), len(chunk), tick=True)
            continue
        yield Frame(dumps(server_content(modelTurn={"parts": [audio_part(chunk)]})), len(chunk), tick=True)
        if due:
            yield Frame(dumps(server_content(outputTranscription={"text": "".join(due)})))


def input_transcription(text: str) -> bytes:
    """The final ``inputTranscription`` message."""
    return dumps(server_content(inputTranscription={"text": text, "finished": True}))


def generation_complete() -> bytes:
    """``generationComplete``: the model has produced everything for this turn."""
    return dumps(server_content(generationComplete=True))


def turn_complete(turn: UserTurn, reply_text: str, *, audio_out_bytes: int) -> bytes:
    """``turnComplete`` with ``usageMetadata`` in the same message."""
    prompt = turn.prompt_tokens
    if audio_out_bytes:
        seconds = duration_ms(audio_out_bytes, OUTPUT_RATE_HZ) / 1000
        response, modality = max(1, math.ceil(seconds * AUDIO_TOKENS_PER_S)), "AUDIO"
    else:
        response, modality = text_tokens(reply_text), "TEXT"
    usage = {
        "promptTokenCount": prompt,
        "responseTokenCount": response,
        "totalTokenCount": prompt + response,
        "promptTokensDetails": [{"modality": "AUDIO" if turn.kind == "voice" else "TEXT", "tokenCount": prompt}],
        "responseTokensDetails": [{"modality": modality, "tokenCount": response}],
    }
    return dumps({"serverContent": {"turnComplete": True}, "usageMetadata": usage})


def interrupted() -> bytes:
    """``interrupted``: the user barged in and the rest of the turn is dropped."""
    return dumps(server_content(interrupted=True))


def resumption_update(handle: str) -> bytes:
    """A fresh, resumable session handle."""
    return dumps({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})


def go_away(time_left_s: float) -> bytes:
    """``goAway`` with ``timeLeft`` as a protobuf Duration string (``"5s"``)."""
    return dumps({"goAway": {"timeLeft": f"{time_left_s:g}s"}})


SETUP_COMPLETE = dumps({"setupComplete": {}})
