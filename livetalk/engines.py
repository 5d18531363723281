"""The AI services conversations and grading use: Gemini and OpenAI, real with a key, emulated without one.

:class:`Engines` is owned by :class:`~livetalk.services.Services`. It builds each service's client on first use,
hands the relay the :class:`~livetalk.engine.Engine` a scenario names, and in demo mode points the clients at the
built-in emulator (:mod:`livetalk.emulator`, which speaks both Gemini's and OpenAI's wire protocols): the one the
gunicorn master started for the instance (``EMULATOR_URL``), or one embedded in this process (werkzeug, tests).
Nothing here does I/O at construction.
"""
from __future__ import annotations

import logging
import ssl
import threading
from typing import TYPE_CHECKING, Any

from .config import Settings

if TYPE_CHECKING:
    from google import genai

    from .emulator import Emulator
    from .engine import Engine

log = logging.getLogger("livetalk")

ENGINE_NAMES = ("gemini", "openai")


class Engines:
    """Clients and engines for the configured AI services. Thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()  # building a client may start the embedded emulator under the same lock
        self._emulator: Emulator | None = None
        self._genai: genai.Client | None = None
        self._openai: Any = None
        self._openai_sync: Any = None

    def emulated(self, name: str) -> bool:
        """Whether engine ``name`` is the built-in emulator (no key for it)."""
        return self.settings.openai_emulated if name == "openai" else self.settings.emulated

    def engine(self, name: str) -> Engine:
        """The engine a scenario names (``gemini`` or ``openai``)."""
        if name == "openai":
            from .openai_engine import OpenAIEngine

            return OpenAIEngine(self.openai_client(), model=self.settings.openai_realtime_model,
                                websocket_options=self._openai_websocket_options())
        from .live import GeminiEngine

        return GeminiEngine(self.genai_client())

    def voice(self, name: str, scenario_voice: str) -> str:
        """The voice for a scenario on engine ``name`` (``GEMINI_VOICE`` overrides Gemini scenarios' voices)."""
        if name == "gemini" and self.settings.gemini_voice:
            return self.settings.gemini_voice
        return scenario_voice

    def model(self, name: str) -> str:
        """The live model engine ``name`` is asked for."""
        return self.settings.openai_realtime_model if name == "openai" else self.settings.gemini_live_model

    # --- clients ------------------------------------------------------------------------

    def genai_client(self) -> genai.Client:
        """The google-genai client: the real API, or the emulator."""
        with self._lock:
            if self._genai is None:
                self._genai = self._build_genai()
            return self._genai

    def openai_client(self) -> Any:
        """The ``openai.AsyncOpenAI`` client: the real API, or the emulator."""
        with self._lock:
            if self._openai is None:
                self._openai = self._build_openai()
            return self._openai

    def _build_genai(self) -> genai.Client:
        from google import genai
        from google.genai import types

        version = self.settings.gemini_api_version
        if not self.settings.emulated:
            # The SDK reads GOOGLE_GEMINI_BASE_URL and SSL_CERT_FILE itself.
            return genai.Client(api_key=self.settings.gemini_api_key,
                                http_options=types.HttpOptions(api_version=version))
        base_url, ca_file = self._endpoint()
        context = ssl.create_default_context(cafile=ca_file)
        return genai.Client(api_key="emulated-no-key", http_options=types.HttpOptions(
            base_url=base_url, api_version=version, async_client_args={"ssl": context}, client_args={"verify": context},
        ))

    def _build_openai(self) -> Any:
        from openai import AsyncOpenAI

        if not self.settings.openai_emulated:
            # The SDK reads OPENAI_BASE_URL and SSL_CERT_FILE itself.
            return AsyncOpenAI(api_key=self.settings.openai_api_key)
        base_url, _ca_file = self._endpoint()
        return AsyncOpenAI(api_key="emulated-no-key", base_url=f"{base_url}/v1")

    def _openai_websocket_options(self) -> dict[str, Any]:
        """The emulator's certificate for the OpenAI realtime socket (the real service needs nothing)."""
        if not self.settings.openai_emulated:
            return {}
        return {"ssl": ssl.create_default_context(cafile=self._endpoint()[1])}

    # --- grading --------------------------------------------------------------------------

    def grader_name(self) -> str:
        """Who grades: Gemini Flash when Gemini is there (a key or the emulator), OpenAI with only its key."""
        return "openai" if self.settings.emulated and not self.settings.openai_emulated else "gemini"

    def grading_client(self) -> Any:
        """The client the grader calls (google-genai, or a synchronous ``openai.OpenAI``)."""
        if self.grader_name() == "gemini":
            return self.genai_client()
        with self._lock:
            if self._openai_sync is None:
                from openai import OpenAI

                self._openai_sync = OpenAI(api_key=self.settings.openai_api_key)
            return self._openai_sync

    # --- the emulator -----------------------------------------------------------------------

    def _endpoint(self) -> tuple[str, str]:
        """``(base URL, CA file)`` of the emulator: the instance's, or one embedded in this process."""
        if self.settings.emulator_url:
            return self.settings.emulator_url, str(self.settings.emulator_ca_file)
        emu = self.embedded_emulator()
        return emu.base_url, str(emu.ca_file)

    def embedded_emulator(self) -> Emulator | None:
        """The emulator started in this process (on first call) when some engine has no key and the instance
        runs none."""
        if not self.settings.needs_emulator or self.settings.emulator_url:
            return None
        with self._lock:
            if self._emulator is None:
                from .emulator import Emulator

                self._emulator = Emulator(host="127.0.0.1", port=0).start()
                log.warning("%s: using the built-in EMULATOR at %s (replies are synthetic)",
                            missing_keys(self.settings), self._emulator.base_url)
            return self._emulator

    def close(self) -> None:
        """Stop the embedded emulator, forget the clients."""
        with self._lock:
            emu, self._emulator = self._emulator, None
            self._genai = self._openai = self._openai_sync = None
        if emu is not None:
            emu.stop()


def missing_keys(settings: Settings) -> str:
    missing = [name for name, absent in (("GEMINI_API_KEY", settings.emulated),
                                         ("OPENAI_API_KEY", settings.openai_emulated)) if absent]
    return " and ".join(missing) + (" is" if len(missing) == 1 else " are") + " not set"
