"""An OpenAI Realtime session's configuration: the GA session object, and ``session.update`` checked and merged. Pure.

The effective configuration is kept in its wire form (the ``session`` object of
``session.created`` / ``session.updated``); :class:`RealtimeConfig` reads the parts
the emulator acts on. :func:`apply_update` validates an update the way the GA
service does — ``session.type`` is required, beta-shaped keys (``modalities``,
``input_audio_format``, a top-level ``voice``…) are unknown parameters — and
raises :class:`~livetalk.emulator.openai.errors.RealtimeEventError` for the first
problem, leaving the configuration unchanged.

Merging: only the keys present change; ``audio``, ``audio.input`` and ``audio.output``
merge key by key, every other object is replaced (``turn_detection`` is completed
with the service's defaults) and ``null`` clears a nullable one.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from livetalk.emulator.dialogue import Wording, wording_for
from livetalk.emulator.openai import errors
from livetalk.emulator.openai.errors import RealtimeEventError
from livetalk.emulator.tools import FunctionDecl

RATE_HZ = 24000  # the only PCM rate the service takes and gives
PCM = "audio/pcm"
DEFAULT_INSTRUCTIONS = "You are a helpful assistant. Be brief."
DEFAULT_VOICE = "alloy"
DEFAULT_THRESHOLD = 0.5
DEFAULT_PREFIX_PADDING_MS = 300
DEFAULT_SILENCE_MS = 500
SEMANTIC_SILENCE_MS = {"low": 900, "medium": 500, "auto": 500, "high": 300}  # eagerness → emulated silence (ms)
THRESHOLD_FLOOR_DBFS = -60.0  # threshold 0 → frames above -60 dBFS are speech
THRESHOLD_SPAN_DB = 40.0  # threshold 1 → above -20 dBFS; the default 0.5 is -40 dBFS, the Gemini emulator's level
SPEED_RANGE = (0.25, 1.5)
MAX_OUTPUT_TOKENS = 4096
MERGED_OBJECTS = frozenset({"audio", "audio.input", "audio.output"})

Check = Callable[[str, Any], None]


def _string(path: str, value: Any) -> None:
    if not isinstance(value, str):
        raise errors.invalid_type(path, value, "a string")


def _boolean(path: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise errors.invalid_type(path, value, "a boolean")


def _integer(path: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.invalid_type(path, value, "a non-negative integer")


def _anything(path: str, value: Any) -> None:
    """Accepted as sent (prompt, tracing, truncation, reasoning: the emulator only reports them)."""


def _number(low: float, high: float) -> Check:
    def check(path: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise errors.invalid_type(path, value, "a number")
        if not low <= value <= high:
            raise errors.out_of_range(path, value, low=low, high=high)
    return check


def _enum(*choices: str) -> Check:
    def check(path: str, value: Any) -> None:
        _string(path, value)
        if value not in choices:
            raise errors.invalid_value(path, value, choices)
    return check


def _nullable(check: Check) -> Check:
    def nullable(path: str, value: Any) -> None:
        if value is not None:
            check(path, value)
    return nullable


def _list_of(check: Check) -> Check:
    def each(path: str, value: Any) -> None:
        if not isinstance(value, list):
            raise errors.invalid_type(path, value, "an array")
        for index, entry in enumerate(value):
            check(f"{path}[{index}]", entry)
    return each


def _object(fields: Mapping[str, Check], *, required: tuple[str, ...] = ()) -> Check:
    def check(path: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise errors.invalid_type(path, value, "an object")
        for name in required:
            if name not in value:
                raise errors.missing_parameter(f"{path}.{name}")
        for name, entry in value.items():
            if name not in fields:
                raise errors.unknown_parameter(f"{path}.{name}")
            fields[name](f"{path}.{name}", entry)
    return check


def _format(path: str, value: Any) -> None:
    _object({"type": _enum(PCM, "audio/pcmu", "audio/pcma"), "rate": _number(0, 1e6)})(path, value)
    if value.get("type", PCM) != PCM:
        raise RealtimeEventError(f"The emulator speaks only {PCM} at {RATE_HZ} Hz, not {value['type']}.",
                                 code="invalid_value", param=f"{path}.type")
    if value.get("rate", RATE_HZ) != RATE_HZ:
        raise errors.invalid_value(f"{path}.rate", value["rate"], (str(RATE_HZ),))


def _voice(path: str, value: Any) -> None:
    if not isinstance(value, str):
        _object({"id": _string}, required=("id",))(path, value)


def _tool(path: str, value: Any) -> None:
    if isinstance(value, Mapping) and value.get("type") == "mcp":
        _object({name: _anything for name in value})(path, value)  # reported, never called
        return
    _object({"type": _enum("function", "mcp"), "name": _string, "description": _string, "parameters": _anything},
            required=("name",))(path, value)


def _tool_choice(path: str, value: Any) -> None:
    if isinstance(value, str):
        _enum("auto", "none", "required")(path, value)
        return
    _object({"type": _enum("function", "mcp"), "name": _string, "server_label": _string},
            required=("type",))(path, value)


def _max_tokens(path: str, value: Any) -> None:
    if value != "inf":
        _number(1, MAX_OUTPUT_TOKENS)(path, value)


def _modalities(path: str, value: Any) -> None:
    _list_of(_enum("text", "audio"))(path, value)
    if len(set(value)) != 1:
        raise RealtimeEventError(
            f"Invalid '{path}': exactly one of 'text' or 'audio' is supported, not {value!r}.",
            code="invalid_value", param=path)


_TURN_DETECTION = _object({
    "type": _enum("server_vad", "semantic_vad"),
    "threshold": _number(0, 1),
    "prefix_padding_ms": _integer,
    "silence_duration_ms": _integer,
    "idle_timeout_ms": _nullable(_integer),
    "create_response": _boolean,
    "interrupt_response": _boolean,
    "eagerness": _enum("low", "medium", "high", "auto"),
}, required=("type",))
_TRANSCRIPTION = _object({"model": _string, "language": _string, "prompt": _string, "delay": _string,
                          "keywords": _list_of(_string), "languages": _list_of(_string)})
_NOISE_REDUCTION = _object({"type": _enum("near_field", "far_field"), "strength": _number(0, 1)})
_SESSION = _object({
    "type": _enum("realtime"),
    "model": _string,
    "instructions": _string,
    "output_modalities": _modalities,
    "audio": _object({
        "input": _object({
            "format": _format,
            "transcription": _nullable(_TRANSCRIPTION),
            "noise_reduction": _nullable(_NOISE_REDUCTION),
            "turn_detection": _nullable(_TURN_DETECTION),
        }),
        "output": _object({"format": _format, "voice": _voice, "speed": _number(*SPEED_RANGE)}),
    }),
    "tools": _list_of(_tool),
    "tool_choice": _tool_choice,
    "max_output_tokens": _max_tokens,
    "include": _nullable(_list_of(_enum("item.input_audio_transcription.logprobs"))),
    "tracing": _anything,
    "truncation": _anything,
    "prompt": _anything,
    "reasoning": _anything,
    "parallel_tool_calls": _boolean,
}, required=("type",))
_RESPONSE = _object({
    "output_modalities": _modalities,
    "instructions": _string,
    "tools": _list_of(_tool),
    "tool_choice": _tool_choice,
    "metadata": _anything,
    "conversation": _string,
    "input": _anything,
    "audio": _object({"output": _object({"format": _format, "voice": _voice})}),
    "max_output_tokens": _max_tokens,
    "prompt": _anything,
    "reasoning": _anything,
    "parallel_tool_calls": _boolean,
})


def check_response_options(options: Any) -> dict[str, Any]:
    """The ``response`` of a ``response.create`` (an empty dict when absent), checked.

    Raises:
        RealtimeEventError: what the real service would refuse.
    """
    if options is None:
        return {}
    _RESPONSE("response", options)
    return dict(options)


@dataclasses.dataclass(frozen=True)
class VadSettings:
    """Server turn detection as the emulator's energy VAD runs it."""

    kind: str  # server_vad | semantic_vad
    threshold_dbfs: float  # a 10 ms frame louder than this is speech
    prefix_padding_ms: int  # reported speech starts this much earlier
    silence_ms: int  # silence that ends a turn
    create_response: bool
    interrupt_response: bool


def default_session(*, session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    """The session object a new connection starts with (``session.created``)."""
    pcm = {"type": PCM, "rate": RATE_HZ}
    return {
        "type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
        "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS, "tools": [], "tool_choice": "auto",
        "max_output_tokens": "inf", "tracing": None, "truncation": "auto", "prompt": None, "expires_at": expires_at,
        "audio": {
            "input": {"format": dict(pcm), "transcription": None, "noise_reduction": None,
                      "turn_detection": _turn_detection_defaults({"type": "server_vad"})},
            "output": {"format": dict(pcm), "voice": DEFAULT_VOICE, "speed": 1.0},
        },
        "include": None,
    }


def _turn_detection_defaults(given: Mapping[str, Any]) -> dict[str, Any]:
    if given["type"] == "semantic_vad":
        base = {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}
    else:
        base = {"type": "server_vad", "threshold": DEFAULT_THRESHOLD, "prefix_padding_ms": DEFAULT_PREFIX_PADDING_MS,
                "silence_duration_ms": DEFAULT_SILENCE_MS, "idle_timeout_ms": None, "create_response": True,
                "interrupt_response": True}
    return {**base, **given}


def apply_update(session: Mapping[str, Any], update: Any, *, audio_sent: bool) -> dict[str, Any]:
    """The session object after ``update`` (the ``session`` of a ``session.update``).

    Args:
        session: the current effective session object (not modified).
        update: the client's update.
        audio_sent: whether the model has spoken yet (the voice is fixed from then on).

    Raises:
        RealtimeEventError: the first thing the real service would refuse.
    """
    if update is None:
        raise errors.missing_parameter("session")
    _SESSION("session", update)
    merged = _merge(session, update, "")
    voice = merged["audio"]["output"]["voice"]
    if audio_sent and voice != session["audio"]["output"]["voice"]:
        raise RealtimeEventError("Cannot update a conversation's voice if assistant audio is present.",
                                 code="cannot_update_voice", param="session.audio.output.voice")
    return merged


def _merge(base: Mapping[str, Any], update: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for name, value in update.items():
        path = f"{prefix}{name}"
        if path in MERGED_OBJECTS:
            merged[name] = _merge(merged.get(name) or {}, value, f"{path}.")
        elif path == "audio.input.turn_detection" and value is not None:
            merged[name] = _turn_detection_defaults(value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


class RealtimeConfig:
    """Typed reads of an effective session object."""

    def __init__(self, session: Mapping[str, Any]) -> None:
        self.session = session

    @property
    def model(self) -> str:
        """The model named in the connection URL (or an update)."""
        return str(self.session.get("model") or "")

    @property
    def instructions(self) -> str:
        """The system instructions."""
        return str(self.session.get("instructions") or "")

    @property
    def voice(self) -> str:
        """The output voice (a custom voice's id)."""
        voice = self.session["audio"]["output"]["voice"]
        return voice["id"] if isinstance(voice, Mapping) else str(voice)

    @property
    def audio_out(self) -> bool:
        """Whether responses are spoken (``["audio"]``) rather than written (``["text"]``)."""
        return "audio" in self.session["output_modalities"]

    @property
    def transcription(self) -> Mapping[str, Any] | None:
        """The input transcription settings; None when it is off."""
        return self.session["audio"]["input"].get("transcription")

    @property
    def wording(self) -> Wording:
        """The reply language: Japanese for Japanese instructions, else English."""
        return wording_for(None, self.instructions)

    @property
    def tool_choice(self) -> Any:
        """``auto`` / ``none`` / ``required`` or a forced tool."""
        return self.session.get("tool_choice", "auto")

    @property
    def functions(self) -> tuple[FunctionDecl, ...]:
        """The declared function tools."""
        return functions_of(self.session.get("tools") or [])

    @property
    def vad(self) -> VadSettings | None:
        """Server turn detection, or None when the client commits the audio buffer itself."""
        detection = self.session["audio"]["input"].get("turn_detection")
        if detection is None:
            return None
        semantic = detection["type"] == "semantic_vad"
        threshold = DEFAULT_THRESHOLD if semantic else detection["threshold"]
        return VadSettings(
            kind=detection["type"],
            threshold_dbfs=THRESHOLD_FLOOR_DBFS + THRESHOLD_SPAN_DB * threshold,
            prefix_padding_ms=0 if semantic else detection["prefix_padding_ms"],
            silence_ms=SEMANTIC_SILENCE_MS[detection["eagerness"]] if semantic else detection["silence_duration_ms"],
            create_response=detection["create_response"],
            interrupt_response=detection["interrupt_response"],
        )

    def summary(self) -> dict[str, Any]:
        """The settings the statistics report (``setup`` of the session record)."""
        audio = self.session["audio"]
        return {
            "model": self.model, "instructions": self.instructions, "voice": self.voice,
            "output_modalities": list(self.session["output_modalities"]),
            "input_format": dict(audio["input"]["format"]), "output_format": dict(audio["output"]["format"]),
            "speed": audio["output"].get("speed"),
            "transcription": copy.deepcopy(self.transcription),
            "turn_detection": copy.deepcopy(audio["input"].get("turn_detection")),
            "noise_reduction": copy.deepcopy(audio["input"].get("noise_reduction")),
            "tools": len(self.session.get("tools") or []),
            "functions": [dataclasses.asdict(function) for function in self.functions],
            "tool_choice": copy.deepcopy(self.tool_choice),
            "max_output_tokens": self.session.get("max_output_tokens"),
        }


def functions_of(tools: list[Any]) -> tuple[FunctionDecl, ...]:
    """The function tools of a (validated) ``tools`` list."""
    return tuple(FunctionDecl(tool["name"]) for tool in tools if tool.get("type", "function") == "function")
