"""livetalk.scrub: secrets never reach a log line."""
from __future__ import annotations

import pytest

from livetalk.scrub import REDACTED, redact

FAKE_KEY = "FAKE-gemini-key-security-test-0123456789"


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (f"key={FAKE_KEY}&x=1", (FAKE_KEY,), f"key={REDACTED}&x=1"),
        (f"{FAKE_KEY} and again {FAKE_KEY}", (FAKE_KEY,), f"{REDACTED} and again {REDACTED}"),
        ("a+b/c=secret!", ("a+b/c=secret!",), REDACTED),
        ("q=a%2Bb%2Fc%3Dsecret%21", ("a+b/c=secret!",), f"q={REDACTED}"),  # URL-quoted form
        ("nothing here", (FAKE_KEY, None, ""), "nothing here"),
        ("short abc stays", ("abc",), "short abc stays"),  # too short to be a secret
    ],
)
def test_redact_table(text, secrets, expected):
    """Known secrets (and their URL-quoted form) are replaced; empty or tiny values are ignored."""
    assert redact(text, secrets) == expected
