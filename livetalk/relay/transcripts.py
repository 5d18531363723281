"""What the client has seen of each side's words: the current utterance per role, and the model's whole turn.

The protocol sends a ``transcript`` event with the **whole utterance so far** (cumulative), then one with
``final: true`` that closes it; in text mode the model's words go out as ``chunk``s instead. The recorder gets
the same pieces as they come. Nothing here touches a socket: ``tell`` sends a text event to the browser.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .. import protocol as wire
from ..protocol import Mode
from .parts import Recorder


@dataclasses.dataclass
class Utterance:
    """The current utterance of one side, as the client has seen it so far."""

    text: str = ""
    open: bool = False


class Transcripts:
    """Both sides' utterances of one conversation, and the model's turn text for ``complete``."""

    def __init__(self, mode: Mode, recorder: Recorder, tell: Callable[[str], None]) -> None:
        self._mode, self._recorder, self._tell = mode, recorder, tell
        self._utterances = {"user": Utterance(), "model": Utterance()}
        self.turn_text = ""  # the model's whole turn so far

    def model_speaking(self) -> None:
        """Model audio arrived: the user's utterance is over, the model's is open."""
        self.close("user")
        self._utterances["model"].open = True

    def add(self, role: str, text: str, finished: bool) -> None:
        """A piece of ``role``'s words (``finished``: the utterance ends with it)."""
        if role == "model":
            self.close("user")
            self.turn_text += text
            if self._mode is Mode.TEXT and text:
                self._tell(wire.chunk(text))
        utterance = self._utterances[role]
        utterance.text += text
        utterance.open = True
        self._recorder.transcript(role, text, False)
        if finished:
            self.close(role)
        elif text and self._shown(role):
            self._tell(wire.transcript(role, utterance.text, False))

    def close(self, role: str) -> None:
        """End ``role``'s open utterance (the client gets it with ``final: true``)."""
        utterance = self._utterances[role]
        if not utterance.open:
            return
        utterance.open = False
        self._recorder.transcript(role, "", True)
        if utterance.text and self._shown(role):
            self._tell(wire.transcript(role, utterance.text, True))
        utterance.text = ""

    def close_both(self) -> None:
        self.close("user")
        self.close("model")

    def take_turn(self) -> str:
        """The model's turn text so far, forgotten here (the turn is complete or was cut)."""
        text, self.turn_text = self.turn_text, ""
        return text

    def _shown(self, role: str) -> bool:
        """Whether ``role``'s words go out as transcripts (the model's are chunks in text mode)."""
        return self._mode is Mode.VOICE or role == "user"
