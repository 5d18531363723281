"""The relay: one conversation between a browser socket and an engine's upstream session, on the relay loop.

Modules: ``conversation`` (the lifecycle, both directions, limits), ``upstream`` (the engine side: sending,
receiving, replacing a dropped, closing or stalled session without losing audio), ``transcripts`` (each
side's words as the client sees them), ``tools`` (function calls answered, outcomes recorded), ``turns``
(noticing the user's turns from their audio), ``parts`` (the policy, stats, recorder and observer interfaces).
"""
from __future__ import annotations

from ..protocol import Close, ErrorCode
from ..wsio import BrowserSocket, attach, wait_closed
from .. import protocol as wire
from .conversation import Conversation, Phase
from .parts import NullObserver, NullRecorder, Observer, Policy, Recorder, Stats

__all__ = ["Conversation", "NullObserver", "NullRecorder", "Observer", "Phase", "Policy", "Recorder", "Stats",
           "refuse", "serve"]


async def serve(sock, conversation: Conversation) -> None:
    """Run ``conversation`` on an upgraded browser socket until it is over and the socket closed."""
    browser = await attach(sock, conversation.browser_protocol)
    try:
        await conversation.run()
    finally:
        await wait_closed(browser)


async def refuse(sock, code: ErrorCode, message: str, close: Close) -> None:
    """Refuse a conversation on an upgraded socket: one fatal ``error`` frame, then close."""
    browser = await attach(sock, lambda: BrowserSocket(_ignore, _nothing))
    browser.send_text(wire.error(code, message, fatal=True))
    browser.close(close, code.value)
    await wait_closed(browser)


def _ignore(_data: bytes | str) -> None:
    pass


def _nothing() -> None:
    pass
