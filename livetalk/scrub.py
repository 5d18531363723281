"""Scrubbing secrets out of text before it is logged. Pure."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

REDACTED: Final = "[REDACTED]"
MIN_SECRET_CHARS: Final = 6  # shorter "secrets" would scrub ordinary words out of logs


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret (and its URL-quoted form) replaced.

    Values shorter than :data:`MIN_SECRET_CHARS` and None are ignored.
    """
    for secret in _usable(secrets):
        text = text.replace(secret, REDACTED)
        quoted = quote(secret, safe="")
        if quoted != secret:
            text = text.replace(quoted, REDACTED)
    return text


def _usable(secrets: Iterable[str | None]) -> list[str]:
    """Secrets worth scrubbing, longest first (so one that contains another goes whole)."""
    found = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
    return sorted(found, key=len, reverse=True)
