"""One typed, frozen view of the service's configuration.

Everything the service reads from its environment is read here, once, by
:func:`Settings.from_env`. A bad value raises :class:`ConfigError`, which names
the variable and the form it expects. The google-genai SDK's own variables
(``GOOGLE_GEMINI_BASE_URL``, ``SSL_CERT_FILE``) are deliberately *not* read here:
the SDK reads them itself, so an operator (or an acceptance check) can point the
unmodified SDK at any Gemini stand-in.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_LIVE_MODEL = "gemini-3.8-live"
DEFAULT_GRADING_MODEL = "gemini-3.8-flash"
DEFAULT_PORT = 8080


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """The service's settings. Construct with :meth:`from_env` or directly in tests."""

    gemini_api_key: str | None = None
    gemini_live_model: str = DEFAULT_LIVE_MODEL
    gemini_grading_model: str = DEFAULT_GRADING_MODEL
    gemini_api_version: str = "v1beta"
    gemini_voice: str | None = None  # overrides every scenario's voice when set
    data_dir: Path = Path("data")
    gcs_bucket_name: str | None = None
    port: int = DEFAULT_PORT
    log_level: str = "INFO"
    log_format: str = "text"  # "json" (Cloud Logging; the default on Cloud Run) or "text" (a terminal)
    # The instance: set by the gunicorn master for its workers (gunicorn.conf.py).
    instance_dir: Path | None = None  # state the workers of this instance share (limit counters)
    emulator_url: str | None = None  # an emulator already running for this instance (demo mode)
    emulator_ca_file: str | None = None  # the CA certificate that emulator's TLS is signed with
    gunicorn_threads: int = 100  # request threads per worker process
    event_loop: str = "uvloop"  # the relay's event loop: "uvloop" (libuv) or "asyncio" (the standard one)
    # Conversation limits.
    max_sessions: int = 160  # concurrent conversations per instance (all workers together)
    session_max_s: float = 15 * 60.0  # whole-conversation cap
    session_warning_s: float = 60.0  # `session_limit` warning this long before the cap
    idle_timeout_s: float = 120.0  # no client frame for this long ends it
    upstream_connect_timeout_s: float = 10.0
    ping_interval_s: float = 20.0  # WebSocket pings to the browser; 2.5 intervals without an answer drop it
    recording_checkpoint_s: float = 30.0  # the recording so far is readable in storage this often
    upstream_stall_s: float = 9.0  # the engine silent this long after the user's turn: resume on a new connection
    # Security.
    allowed_origins: tuple[str, ...] = ()  # empty: same origin only
    trust_forwarded_for: int = 0  # how many proxies in X-Forwarded-For to trust
    max_sockets_per_ip: int = 8
    new_sockets_per_ip_per_min: int = 30
    feedback_per_ip_per_min: int = 20
    require_ticket: bool = False
    ticket_secret: str | None = None
    ticket_ttl_s: float = 120.0
    max_request_bytes: int = 64 * 1024 * 1024
    redis_url: str | None = None  # limits shared by every instance (Memorystore); unset: per instance
    # Metrics (GET /metrics, Prometheus text format).
    metrics_enabled: bool = False  # off: a public service exposes nothing
    metrics_local_only: bool = True  # served only to this instance itself (a sidecar on localhost)
    metrics_dir: Path | None = None  # where gunicorn's workers share their values (set by the master)
    version: str | None = None  # the deployed revision (APP_VERSION, or Cloud Run's K_REVISION)

    @property
    def emulated(self) -> bool:
        """True when no API key is configured: the built-in Gemini emulator is used."""
        return not self.gemini_api_key

    @property
    def storage_kind(self) -> str:
        """``"gcs"`` when a bucket is configured, else ``"local"``."""
        return "gcs" if self.gcs_bucket_name else "local"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default: ``os.environ``, after loading ``.env``)."""
        if environ is None:
            _load_dotenv()
            environ = os.environ
        env = _Reader(environ)
        return cls(
            gemini_api_key=env.str("GEMINI_API_KEY"),
            gemini_live_model=env.str("GEMINI_LIVE_MODEL") or DEFAULT_LIVE_MODEL,
            gemini_grading_model=env.str("GEMINI_GRADING_MODEL") or DEFAULT_GRADING_MODEL,
            gemini_api_version=env.choice("GEMINI_API_VERSION", ("v1", "v1beta", "v1alpha"), "v1beta"),
            gemini_voice=env.str("GEMINI_VOICE"),
            data_dir=Path(env.str("DATA_DIR") or "data"),
            gcs_bucket_name=env.str("GCS_BUCKET_NAME"),
            port=env.int("PORT", DEFAULT_PORT, low=1, high=65535),
            log_level=env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True),
            log_format=env.choice("LOG_FORMAT", ("json", "text"), "json" if env.str("K_SERVICE") else "text",
                                  lower=True),
            instance_dir=env.path("INSTANCE_STATE_DIR"),
            emulator_url=env.str("EMULATOR_URL"),
            emulator_ca_file=env.str("EMULATOR_CA_FILE"),
            gunicorn_threads=env.int("GUNICORN_THREADS", 100, low=1),
            event_loop=env.choice("EVENT_LOOP", ("uvloop", "asyncio"), "uvloop", lower=True),
            max_sessions=env.int("MAX_SESSIONS", 160, low=1),
            session_max_s=env.float("SESSION_MAX_SECONDS", 15 * 60.0, low=1),
            session_warning_s=env.float("SESSION_WARNING_SECONDS", 60.0, low=0),
            idle_timeout_s=env.float("IDLE_TIMEOUT_SECONDS", 120.0, low=1),
            upstream_connect_timeout_s=env.float("UPSTREAM_CONNECT_TIMEOUT_SECONDS", 10.0, low=0.1),
            ping_interval_s=env.float("PING_INTERVAL_SECONDS", 20.0, low=0.05),
            upstream_stall_s=env.float("UPSTREAM_STALL_SECONDS", 9.0, low=0.1),
            recording_checkpoint_s=env.float("RECORDING_CHECKPOINT_SECONDS", 30.0, low=0.5),
            allowed_origins=env.list("ALLOWED_ORIGINS"),
            trust_forwarded_for=env.int("TRUST_FORWARDED_FOR", 0, low=0, high=10),
            max_sockets_per_ip=env.int("MAX_SOCKETS_PER_IP", 8, low=1),
            new_sockets_per_ip_per_min=env.int("NEW_SOCKETS_PER_IP_PER_MINUTE", 30, low=1),
            feedback_per_ip_per_min=env.int("FEEDBACK_PER_IP_PER_MINUTE", 20, low=1),
            require_ticket=env.bool("REQUIRE_TICKET", False),
            ticket_secret=env.str("TICKET_SECRET"),
            ticket_ttl_s=env.float("TICKET_TTL_SECONDS", 120.0, low=1),
            max_request_bytes=env.int("MAX_REQUEST_BYTES", 64 * 1024 * 1024, low=1024),
            redis_url=env.str("REDIS_URL"),
            metrics_enabled=env.bool("METRICS_ENABLED", False),
            metrics_local_only=env.bool("METRICS_LOCAL_ONLY", True),
            metrics_dir=env.path("PROMETHEUS_MULTIPROC_DIR"),  # prometheus_client reads it too
            version=env.str("APP_VERSION") or env.str("K_REVISION"),
        )


def _load_dotenv() -> None:
    """Load ``.env`` from the working directory without overriding real variables."""
    from dotenv import load_dotenv

    load_dotenv(Path.cwd() / ".env", override=False)


class _Reader:
    """Typed accessors over an environment mapping; errors name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = environ

    def str(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def int(self, name: str, default: int, *, low: int | None = None, high: int | None = None) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        return _check_range(name, value, low, high)

    def float(self, name: str, default: float, *, low: float | None = None) -> float:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number (seconds), got {raw!r}") from None
        return _check_range(name, value, low, None)

    def bool(self, name: str, default: bool) -> bool:
        raw = self.str(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, options: tuple[str, ...], default: str, *, upper: bool = False,
               lower: bool = False) -> str:
        raw = self.str(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower() if lower else raw
        if value not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}; got {raw!r}")
        return value

    def path(self, name: str) -> Path | None:
        raw = self.str(name)
        return Path(raw) if raw else None

    def list(self, name: str) -> tuple[str, ...]:
        raw = self.str(name)
        if raw is None:
            return ()
        return tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())


def _check_range(name: str, value, low, high):
    if low is not None and value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be at most {high}, got {value}")
    return value
