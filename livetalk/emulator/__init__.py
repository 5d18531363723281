"""A Gemini emulator that speaks the real Gemini Live and REST wire protocol over TLS.

Point the unmodified google-genai SDK at it with ``GOOGLE_GEMINI_BASE_URL`` and
``SSL_CERT_FILE`` (see :meth:`Emulator.env`), or with ``HttpOptions(base_url=…)``
and an SSL context trusting :attr:`Emulator.ca_file`. Used for offline demos and
as the tests' stand-in for Gemini::

    emu = Emulator().start()
    emu.control.fault_next("close", code=1011, when="first_audio")
    ...
    emu.stop()

Modules: ``emulator`` (thread lifecycle), ``server`` (TLS port, routing),
``http11`` (HTTP/1.1 through h11), ``live`` (one Live session), ``rest``
(generateContent, Files API, control routes), ``control`` (faults, mode,
statistics), and pure helpers ``wire``, ``audio``, ``dialogue``, ``reply``,
``tools`` (function calls), ``meeting`` (dates and times in what users say),
``grader`` (answers to grading requests), ``schema``, ``prompt``, ``media``
(audio checks), ``websocket``, ``session_config``, ``files``, ``certs``, ``triggers``
(``!emu`` commands). The subpackage ``openai`` serves the OpenAI Realtime API on the
same port (``wss://…/v1/realtime``; ``Emulator.openai_base_url`` is the SDK's base URL).
``python -m livetalk.emulator`` runs it as a process (see ``__main__``).

Exceptions (``errors``)::

    EmulatorError
     ├── FaultSpecError       bad fault/mode description (also ValueError)
     ├── ClientProtocolError  a Live client broke the protocol → close 1007
     ├── RestError            a REST call fails → Google-style error JSON
     └── RealtimeEventError   an OpenAI Realtime client event is refused → an ``error`` event (``openai.errors``)
"""
from __future__ import annotations

from livetalk.emulator.control import Control, Fault, FaultKind, Mode, Moment
from livetalk.emulator.emulator import Emulator
from livetalk.emulator.errors import ClientProtocolError, EmulatorError, FaultSpecError, RestError

__all__ = [
    "ClientProtocolError",
    "Control",
    "Emulator",
    "EmulatorError",
    "Fault",
    "FaultKind",
    "FaultSpecError",
    "Mode",
    "Moment",
    "RestError",
]
