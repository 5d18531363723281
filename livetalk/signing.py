"""Signed tokens the service hands out and takes back: access tickets, resume tickets, learner cookies.

One :class:`TokenSigner`, built from the service's secret (``TICKET_SECRET``),
mints and verifies all three kinds with itsdangerous (HMAC-SHA256, URL-safe).
Each kind signs under its own salt, so a token of one kind is never accepted as
another. The expiry travels inside the signed payload, in epoch milliseconds,
and is checked against the caller's explicit ``now``: itsdangerous' own clock is
never used, so tests drive time by hand. Pure: no I/O.

A token is ``<payload>.<signature>``: the payload is itsdangerous' base64url
JSON (prefixed with ``.`` when zlib made it shorter), the signature 43 base64url
characters. Anything longer than its kind allows, or of another shape, is
refused as ``malformed`` before any decoding or MAC work.

Exceptions::

    ValueError
     └── TokenError              a token was refused; ``.reason`` says why, never the token itself
          ├── TicketError        relay access ticket: missing, malformed, forged, expired, wrong-scenario
          ├── ResumeError        resume ticket: malformed, forged, expired
          └── LearnerCookieError learner cookie: missing, malformed, forged, expired
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
import typing
from typing import TYPE_CHECKING, Any, ClassVar, Final

from itsdangerous import BadData, BadSignature, URLSafeSerializer

if TYPE_CHECKING:
    from .config import Settings

SECRET_BYTES: Final = 32  # size of the per-process random secret when none is configured
TICKET_NONCE_BYTES: Final = 9  # makes two tickets minted in the same millisecond differ
RESUME_TTL_S: Final = 10 * 60.0  # Gemini keeps handles for 2 h; a dropped client comes back sooner
LEARNER_TTL_S: Final = 400 * 24 * 3600.0  # browsers cap a cookie's Max-Age at 400 days
TICKET_MAX_CHARS: Final = 512
RESUME_MAX_CHARS: Final = 4096  # a Gemini resumption handle is long
LEARNER_MAX_CHARS: Final = 512
_SALT_PREFIX: Final = "livetalk token v1: "
_SIGNATURE_CHARS: Final = 43  # an HMAC-SHA256 tag (32 bytes) in unpadded base64url
_SHAPE: Final = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{%d}" % _SIGNATURE_CHARS)


class TokenError(ValueError):
    """A token was refused; ``reason`` is one of the subclass's :attr:`REASONS`."""

    LABEL: ClassVar[str] = "token"
    REASONS: ClassVar[tuple[str, ...]] = ("missing", "malformed", "forged", "expired")
    ON_MISSING: ClassVar[str] = "missing"  # the reason for an absent or empty token

    def __init__(self, reason: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown {self.LABEL} refusal reason {reason!r}")
        super().__init__(f"{self.LABEL} refused: {reason}")
        self.reason = reason


class TicketError(TokenError):
    """A relay access ticket was refused."""

    LABEL = "ticket"
    REASONS = ("missing", "malformed", "forged", "expired", "wrong-scenario")


class ResumeError(TokenError):
    """A resume ticket was refused (an empty one counts as malformed, as the socket route only passes one given)."""

    LABEL = "resume ticket"
    REASONS = ("malformed", "forged", "expired")
    ON_MISSING = "malformed"


class LearnerCookieError(TokenError):
    """A learner cookie was refused."""

    LABEL = "learner cookie"


@dataclasses.dataclass(frozen=True)
class ResumeState:
    """What a resume ticket carries."""

    session_id: str
    scenario: str
    mode: str
    handle: str
    started_at: float  # epoch seconds: when the conversation began (names its storage folder)
    segment: int  # how many sockets this conversation has had before the resuming one


@dataclasses.dataclass(frozen=True)
class _Kind:
    """One kind of token: its salt (derived from ``name``), its length bound and its error."""

    name: str
    max_chars: int
    error: type[TokenError]


_TICKET: Final = _Kind("access ticket", TICKET_MAX_CHARS, TicketError)
_RESUME: Final = _Kind("resume ticket", RESUME_MAX_CHARS, ResumeError)
_LEARNER: Final = _Kind("learner cookie", LEARNER_MAX_CHARS, LearnerCookieError)


class TokenSigner:
    """Mints and verifies the service's signed tokens under one secret.

    ``secret`` is ``TICKET_SECRET``. With None a random secret lives only as long
    as this process, so a token minted by one process is refused ("forged") by
    every other: another Cloud Run instance, or another gunicorn worker of the
    same instance. With more than one process, configure ``TICKET_SECRET`` (the
    deploy workflow takes it from Secret Manager; gunicorn.conf.py makes one up
    in the master before workers fork).
    """

    def __init__(self, secret: str | bytes | None) -> None:
        key = secret or secrets.token_bytes(SECRET_BYTES)
        self._serializers = {
            kind: URLSafeSerializer(
                key,
                salt=_SALT_PREFIX + kind.name,
                signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
            )
            for kind in (_TICKET, _RESUME, _LEARNER)
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSigner:
        """The signer for ``TICKET_SECRET``."""
        return cls(settings.ticket_secret)

    # --- relay access tickets ----------------------------------------------------------

    def mint_ticket(self, scenario: str, *, now: float, ttl_s: float) -> tuple[str, float]:
        """A ticket for ``scenario``, valid ``ttl_s`` seconds after ``now`` (epoch seconds).

        Returns ``(token, expires_at)`` with ``expires_at`` in epoch seconds
        (millisecond precision). Two tickets never share a token (a random nonce).
        """
        nonce = secrets.token_urlsafe(TICKET_NONCE_BYTES)
        return self._mint(_TICKET, {"n": nonce, "s": scenario}, now=now, ttl_s=ttl_s)

    def verify_ticket(self, token: str | None, *, scenario: str, now: float) -> None:
        """Accept ``token`` for ``scenario`` at ``now`` (epoch seconds) or raise :class:`TicketError`.

        Checks in this order: present, well formed, genuine, unexpired, for this
        scenario. Pass the resolved scenario id (the default scenario's id when
        the client named none), as it was at minting.
        """
        data = self._open(_TICKET, token, now=now)
        if not isinstance(data.get("s"), str):
            raise TicketError("malformed")
        if data["s"] != scenario:
            raise TicketError("wrong-scenario")

    # --- resume tickets ----------------------------------------------------------------

    def mint_resume(self, state: ResumeState, *, now: float, ttl_s: float = RESUME_TTL_S) -> str:
        """A resume ticket for ``state``, valid ``ttl_s`` seconds after ``now`` (epoch seconds)."""
        return self._mint(_RESUME, dataclasses.asdict(state), now=now, ttl_s=ttl_s)[0]

    def verify_resume(self, token: str | None, *, now: float) -> ResumeState:
        """The state a resume ticket carries at ``now`` (epoch seconds), or :class:`ResumeError`."""
        data = self._open(_RESUME, token, now=now)
        fields = {}
        for name, kind in typing.get_type_hints(ResumeState).items():
            value = data.get(name)
            if kind is float and type(value) is int:
                value = float(value)
            if type(value) is not kind:
                raise ResumeError("malformed")
            fields[name] = value
        return ResumeState(**fields)

    # --- learner cookies ---------------------------------------------------------------

    def mint_learner(self, learner_id: str, *, now: float, ttl_s: float = LEARNER_TTL_S) -> str:
        """A cookie value naming ``learner_id``, valid ``ttl_s`` seconds after ``now`` (epoch seconds)."""
        return self._mint(_LEARNER, {"id": learner_id}, now=now, ttl_s=ttl_s)[0]

    def verify_learner(self, token: str | None, *, now: float) -> str:
        """The learner id a cookie value names at ``now`` (epoch seconds), or :class:`LearnerCookieError`."""
        learner_id = self._open(_LEARNER, token, now=now).get("id")
        if not isinstance(learner_id, str):
            raise LearnerCookieError("malformed")
        return learner_id

    # --- shared ------------------------------------------------------------------------

    def _mint(self, kind: _Kind, fields: dict[str, Any], *, now: float, ttl_s: float) -> tuple[str, float]:
        """``(token, expires_at)``: ``fields`` and the expiry signed under ``kind``'s salt."""
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        expires_ms = int((now + ttl_s) * 1000)
        token = self._serializers[kind].dumps({"e": expires_ms, **fields})
        if len(token) > kind.max_chars:
            raise ValueError(f"a {kind.name} would be {len(token)} characters, over {kind.max_chars}")
        return token, expires_ms / 1000

    def _open(self, kind: _Kind, token: str | None, *, now: float) -> dict[str, Any]:
        """The payload of a genuine, unexpired ``token`` of ``kind``; its error otherwise."""
        if not token:
            raise kind.error(kind.error.ON_MISSING)
        if len(token) > kind.max_chars or not _well_formed(token):
            raise kind.error("malformed")
        try:
            data = self._serializers[kind].loads(token)
        except BadSignature:
            raise kind.error("forged") from None
        except BadData:  # genuine but undecodable: only our own bug or a reused key
            raise kind.error("malformed") from None
        expires_ms = data.get("e") if isinstance(data, dict) else None
        if type(expires_ms) is not int:
            raise kind.error("malformed")
        if now * 1000 >= expires_ms:
            raise kind.error("expired")
        return data


def _well_formed(token: str) -> bool:
    """Whether ``token`` has a token's shape, with the one canonical encoding of its signature.

    Base64 leaves 2 spare bits in the signature's last character; a decoder
    ignores them, so without this check 4 different strings would carry the
    same valid signature and an altered token would still pass.
    """
    if not _SHAPE.fullmatch(token):
        return False
    signature = token[-_SIGNATURE_CHARS:]
    decoded = base64.urlsafe_b64decode(signature + "=")
    return base64.urlsafe_b64encode(decoded).decode("ascii").rstrip("=") == signature
