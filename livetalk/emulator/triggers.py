"""``!emu`` triggers typed into a session (Gemini or OpenAI Realtime): recognised and dispatched. Pure.

A session keeps a table of handlers by command word; :func:`dispatch` runs the one
named, and logs (never raises) an unknown command or arguments its handler refuses
with a ``ValueError`` — typed text is client input and must not end a session.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

logger = logging.getLogger("livetalk.emulator")

TRIGGER_PREFIX = "!emu "

Handler = Callable[[list[str]], None]


def trigger_words(text: str) -> list[str] | None:
    """The words after ``!emu `` when ``text`` is a trigger, else None."""
    return text[len(TRIGGER_PREFIX) :].split() if text.startswith(TRIGGER_PREFIX) else None


def dispatch(handlers: Mapping[str, Handler], words: list[str], *, session: str) -> None:
    """Run the handler of ``words[0]`` (case-insensitive) with the remaining words."""
    command = words[0].lower() if words else ""
    handler = handlers.get(command)
    if handler is None:
        logger.warning("session %s: unknown trigger %r", session, command)
        return
    try:
        handler(words[1:])
    except ValueError:
        logger.warning("session %s: bad arguments for trigger %r", session, command)
