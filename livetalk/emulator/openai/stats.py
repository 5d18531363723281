"""What one OpenAI Realtime session received and sent: the Gemini record plus the Realtime API's own parts."""
from __future__ import annotations

import dataclasses
from typing import Any

from livetalk.emulator.control import SessionStats


@dataclasses.dataclass(kw_only=True)
class RealtimeStats(SessionStats):
    """A Realtime session's statistics (written by the loop thread only).

    Besides the common fields (``setup`` holds the effective session settings,
    ``client_messages`` counts client events by type, ``turns`` one record per
    response), it records every server event type sent, the ``error`` events sent,
    the responses, the conversation's items, the truncations and the last rate limits.
    """

    engine: str = "openai"
    server_events: dict[str, int] = dataclasses.field(default_factory=dict)  # event type → count
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # type, code, message, param, event_id
    responses: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # id, trigger, status, reason, usage…
    conversation: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # id, type, role, text, status…
    truncations: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # item_id, audio_end_ms, heard…
    rate_limits: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # the last rate_limits.updated

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly snapshot.

        Records are copied one level deep; the loop thread replaces nested values
        rather than changing them, so the copies stay consistent.
        """
        data = super().as_dict()
        data["server_events"] = dict(self.server_events)
        for name in ("errors", "responses", "conversation", "truncations", "rate_limits"):
            data[name] = [dict(record) for record in list(getattr(self, name))]
        return data
