"""An OpenAI Realtime API emulator on the Gemini emulator's TLS port: ``wss://HOST:PORT/v1/realtime?model=M``.

The unmodified ``openai`` SDK talks to it with ``AsyncOpenAI(base_url="https://HOST:PORT/v1")``
and the emulator's CA trusted (``SSL_CERT_FILE``, or an SSL context passed as
``websocket_connection_options={"ssl": ctx}``). It speaks the GA event shapes of
``openai.types.realtime``: session created/updated, server VAD on appended PCM16 at
24 kHz, input transcription, conversation items, paced spoken (or written) responses
with usage, barge-in, truncation, ``schedule_meeting`` function calls, ``error`` events
and the emulator's faults (see ``livetalk/emulator/README.md``). The same port serves the Responses API's
``POST /v1/responses`` with structured outputs (``rest``), for grading.

Modules: ``endpoint`` (handshake, credentials), ``rest`` (the Responses API), ``session`` (client events, VAD,
faults, triggers), ``responses`` (what the model says and how), ``sender`` (event
numbering, latency, stall), and pure ``config`` (session object, ``session.update``),
``conversation`` (items), ``events`` (server event shapes, usage), ``errors``, ``stats``.

Exceptions::

    EmulatorError (livetalk.emulator.errors)
     ├── RealtimeEventError   a client event the service refuses → one ``error`` event; the session goes on
     └── ResponsesError       a Responses API request cannot be served → HTTP status + OpenAI error body
"""
from __future__ import annotations

from livetalk.emulator.openai.endpoint import RealtimeEndpoint
from livetalk.emulator.openai.errors import RealtimeEventError
from livetalk.emulator.openai.rest import ResponsesApi, ResponsesError
from livetalk.emulator.openai.stats import RealtimeStats

__all__ = ["RealtimeEndpoint", "RealtimeEventError", "RealtimeStats", "ResponsesApi", "ResponsesError"]
