"""Resume tickets: a client whose socket dropped continues the same conversation.

Gemini gives the relay a session-resumption handle after each turn. The relay
hands the client a *resume ticket* (``ready.resume``, ``resumable`` events) that
binds that handle to the conversation's id, scenario and mode, signed with
HMAC-SHA256 under the service's ticket key and valid :data:`RESUME_TTL_S`. A new
socket with ``?resume=<ticket>`` — on any worker or instance that shares
``TICKET_SECRET`` — reopens Gemini with the handle. Pure: no I/O.

Errors::

    ResumeError    the ticket is malformed, forged or expired (``reason``)
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac

import orjson

RESUME_TTL_S = 10 * 60.0  # Gemini keeps handles for 2 h; a dropped client comes back sooner
MAX_TICKET_CHARS = 4096
_LABEL = b"livetalk resume ticket\x00"  # domain separation from access tickets


class ResumeError(ValueError):
    """A resume ticket was refused; ``reason`` is ``malformed``, ``forged`` or ``expired``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"resume ticket {reason}")
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ResumeState:
    """What a resume ticket carries."""

    session_id: str
    scenario: str
    mode: str
    handle: str
    started_at: float  # epoch seconds: when the conversation began (names its storage folder)
    segment: int  # how many sockets this conversation has had before the resuming one


def mint(secret: bytes, state: ResumeState, *, now: float, ttl_s: float = RESUME_TTL_S) -> str:
    """A signed ticket for ``state``, valid ``ttl_s`` seconds after ``now`` (epoch seconds)."""
    payload = orjson.dumps({"v": 1, "exp": round(now + ttl_s, 3), **dataclasses.asdict(state)})
    return _b64(payload) + "." + _b64(_mac(secret, payload))


def verify(secret: bytes, token: str, *, now: float) -> ResumeState:
    """The state a ticket carries, or :class:`ResumeError`."""
    if not token or len(token) > MAX_TICKET_CHARS or token.count(".") != 1:
        raise ResumeError("malformed")
    body, tag = token.split(".")
    try:
        payload, mac = _unb64(body), _unb64(tag)
    except (binascii.Error, ValueError):
        raise ResumeError("malformed") from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise ResumeError("forged")
    data = orjson.loads(payload)
    if not isinstance(data, dict) or not isinstance(data.get("exp"), (int, float)):
        raise ResumeError("malformed")
    if now >= data["exp"]:
        raise ResumeError("expired")
    fields = {f.name for f in dataclasses.fields(ResumeState)}
    try:
        return ResumeState(**{k: v for k, v in data.items() if k in fields})
    except TypeError:
        raise ResumeError("malformed") from None


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _LABEL + payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
