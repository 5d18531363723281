"""Filters on every log line: secrets scrubbed out, and requests for static files kept out of the INFO log."""
from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from ..scrub import REDACTED, redact

SECRET_ENV_VARS: Final = ("GEMINI_API_KEY", "TICKET_SECRET", "OPENAI_API_KEY", "REDIS_URL")
SENSITIVE_QUERY_PARAMS: Final = ("token", "resume", "key")  # never written to an access log
QUIET_PATHS: Final = ("/static/", "/favicon.svg", "/favicon.ico")  # logged at DEBUG only


class RedactFilter(logging.Filter):
    """Scrubs secrets from a record before any formatter sees it. Never drops a record.

    ``secrets`` are the values themselves; ``secret_env`` names environment
    variables whose values are read when the filter is built (so a logging
    config dict, which gunicorn may print, never has to hold a secret).
    """

    def __init__(self, secrets: Iterable[str | None] = (), secret_env: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s) + tuple(
            os.environ[name] for name in secret_env if os.environ.get(name)
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        if not isinstance(record.args, Mapping):  # gunicorn's access record keeps its dict
            record.msg = self._scrub(record.getMessage())
            record.args = None
        else:
            record.args = self._scrub(dict(record.args))
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = self._scrub(dict(fields))
        return True

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self.secrets)
        if isinstance(value, Mapping):
            return {self._scrub(str(k)): self._scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._scrub(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return redact(str(value), self.secrets)


def redact_query(query: str, names: Iterable[str] = SENSITIVE_QUERY_PARAMS) -> str:
    """``query`` with the values of the named parameters replaced by ``[REDACTED]``."""
    hidden = {name.lower() for name in names}
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if k.lower() in hidden else v) for k, v in pairs], safe="[]")


class QuietStaticFilter(logging.Filter):
    """Drops access records for the page's static files unless ``level`` is DEBUG.

    A page load fetches a dozen scripts and styles; at INFO they would drown the lines that matter.
    """

    def __init__(self, level: str = "INFO") -> None:
        super().__init__()
        self.verbose = logging.getLevelName(level.upper()) == logging.DEBUG

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args if isinstance(record.args, Mapping) else None
        path = str(atoms.get("U") or "") if atoms else ""
        return self.verbose or not path.startswith(QUIET_PATHS)
