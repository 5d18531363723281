"""The parts of a Live ``setup`` message the emulator acts on or reports.

Pure: :func:`parse_setup` reads keys in either spelling; a missing ``model`` or an
optional field of the wrong kind is a :class:`ClientProtocolError` (close 1007).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from livetalk.emulator.audio import DEFAULT_SILENCE_MS
from livetalk.emulator.dialogue import Wording, wording_for
from livetalk.emulator.errors import ClientProtocolError
from livetalk.emulator.tools import FunctionDecl, parse_functions
from livetalk.emulator.wire import has, pick, pick_path, text_of_parts

COMBINED_STYLE_MARKER = "3."  # models named like gemini-3.x put audio and transcript in one message


@dataclasses.dataclass(frozen=True, kw_only=True)
class SessionConfig:
    """What a Live session was set up with."""

    model: str
    system_instruction: str = ""
    voice: str | None = None
    language_code: str | None = None
    response_modalities: tuple[str, ...] = ()
    input_transcription: bool = False
    output_transcription: bool = False
    automatic_activity: bool = True
    silence_ms: int = DEFAULT_SILENCE_MS
    prefix_padding_ms: int | None = None
    start_sensitivity: str | None = None
    end_sensitivity: str | None = None
    activity_handling: str | None = None
    resumption: bool = False
    resume_handle: str | None = None
    tools: int = 0  # function declarations offered
    functions: tuple[FunctionDecl, ...] = ()  # the declared functions
    temperature: float | None = None
    compression: bool = False
    proactive_audio: bool = False
    affective_dialog: bool = False

    @property
    def audio_out(self) -> bool:
        """Whether the model answers with audio (the default) rather than text."""
        return "TEXT" not in self.response_modalities or "AUDIO" in self.response_modalities

    @property
    def combined(self) -> bool:
        """3.x event style: audio and its transcript in the same serverContent."""
        return COMBINED_STYLE_MARKER in self.model

    def function(self, name: str) -> FunctionDecl | None:
        """The declared function called ``name``, if any."""
        return next((f for f in self.functions if f.name == name), None)

    @property
    def wording(self) -> Wording:
        """The reply language: from the language code, else from the system instruction."""
        return wording_for(self.language_code, self.system_instruction)

    def summary(self) -> dict[str, Any]:
        """The fields as a plain dict, for statistics."""
        data = dataclasses.asdict(self)
        data["response_modalities"] = list(self.response_modalities)
        data["functions"] = [dataclasses.asdict(function) for function in self.functions]
        return data


def parse_setup(setup: Any) -> SessionConfig:
    """Read a ``setup`` message body. Raises ClientProtocolError without a model."""
    if not isinstance(setup, Mapping) or not isinstance(setup.get("model"), str) or not setup["model"]:
        raise ClientProtocolError("Request contains an invalid argument: setup.model is required.")
    generation = pick(setup, "generationConfig", {})
    speech = pick(generation, "speechConfig", {})
    realtime = pick(setup, "realtimeInputConfig", {})
    detection = pick(realtime, "automaticActivityDetection", {})
    resumption = pick(setup, "sessionResumption")
    functions = parse_functions(pick(setup, "tools", ()))
    return SessionConfig(
        model=setup["model"],
        system_instruction=_instruction_text(pick(setup, "systemInstruction")),
        voice=pick_path(speech, "voiceConfig", "prebuiltVoiceConfig", "voiceName"),
        language_code=pick(speech, "languageCode"),
        response_modalities=tuple(str(m).upper() for m in _list(generation, "responseModalities")),
        input_transcription=has(setup, "inputAudioTranscription"),
        output_transcription=has(setup, "outputAudioTranscription"),
        automatic_activity=not pick(detection, "disabled", False),
        silence_ms=_milliseconds(detection, "silenceDurationMs", DEFAULT_SILENCE_MS),
        prefix_padding_ms=pick(detection, "prefixPaddingMs"),
        start_sensitivity=pick(detection, "startOfSpeechSensitivity"),
        end_sensitivity=pick(detection, "endOfSpeechSensitivity"),
        activity_handling=pick(realtime, "activityHandling"),
        resumption=resumption is not None,
        resume_handle=pick(resumption, "handle") or None,
        tools=len(functions),
        functions=functions,
        temperature=pick(generation, "temperature"),
        compression=has(setup, "contextWindowCompression"),
        proactive_audio=bool(pick_path(setup, "proactivity", "proactiveAudio", default=False)),
        affective_dialog=bool(pick(generation, "enableAffectiveDialog", False)),
    )


def _instruction_text(instruction: Any) -> str:
    if isinstance(instruction, str):
        return instruction
    return text_of_parts(pick(instruction, "parts"))


def _list(obj: Any, camel: str) -> list[Any]:
    value = pick(obj, camel, [])
    if not isinstance(value, list):
        raise ClientProtocolError(f"Invalid value at 'setup.{camel}': expected a list.")
    return value


def _milliseconds(obj: Any, camel: str, default: int) -> int:
    value = pick(obj, camel, default)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise ClientProtocolError(f"Invalid value at 'setup.{camel}': expected a number of milliseconds.")
    return int(value)
