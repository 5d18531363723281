"""Server-side recording of a conversation: one stereo WAV and a turn-aligned transcript, streamed to storage.

Modules, in the order the data flows:

``recorder``
    :class:`ConversationRecorder`, what the relay calls (non-blocking) and what publishes the files.
``pump``
    :class:`RecordingPump`, one thread per process that processes every recorder's queued events.
``worker``
    A recorder's pump-side half: events → timeline, transcript lines, activity, checkpoints.
``timeline``
    Pure: both sides' audio placed on one 24 kHz clock and handed out in final blocks.
``sink``
    A recording's storage half, and the I/O pool that writes every recording in order.
``layout``
    Where the objects live, and :func:`find_recording` by session id.
"""
from __future__ import annotations

from .layout import (
    AUDIO_NAME,
    META_NAME,
    TRANSCRIPT_NAME,
    check_session_id,
    conversation_prefix,
    find_recording,
    index_key,
)
from .pump import RecordingPump
from .recorder import ConversationRecorder

__all__ = [
    "AUDIO_NAME",
    "META_NAME",
    "TRANSCRIPT_NAME",
    "ConversationRecorder",
    "RecordingPump",
    "check_session_id",
    "conversation_prefix",
    "find_recording",
    "index_key",
]
