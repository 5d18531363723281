"""The OpenAI Realtime wire on the hot path, and what a client must remember of a session: pure, no I/O.

The ``openai`` SDK opens the socket (URL, key, TLS) and sends the rare client events through its typed
methods. The two kinds of message that repeat many times a second per conversation are handled here
instead, on the SDK's public ``send_raw`` / ``recv_bytes``: an ``input_audio_buffer.append`` of 20 ms
(50 a second) costs 137–213 µs through the SDK's ``input_audio_buffer.append`` (TypedDict transform +
``json.dumps``) against 5.7–9.3 µs for :func:`encode_append` + ``send_raw``; a 40 ms audio delta costs
62–83 µs through the SDK's ``recv`` (``construct_type_unchecked`` over the whole server event union)
against 10–15 µs for ``recv_bytes`` + :meth:`SessionState.read`. Per conversation that is ~11 ms against
~0.6 ms of CPU a second (``python bench/bench_openaiwire.py``, 2-core VM shared with other work, five runs).
tests/test_openai_engine.py checks the JSON against the SDK's own serialisation and parsing.

:class:`SessionState` turns server events into the engine's events (:mod:`livetalk.engine`) and keeps what
the client side needs to know: whether the model's audio is still playing (a playout clock over the audio
it forwarded), whether a response is active, the user's uncommitted audio, the item a barge-in cut, and the
conversation so far (:class:`History`) from which the resumption handle is made.

**Resumption handle** (:func:`encode_handle` / :func:`decode_handle`). OpenAI sessions cannot be resumed,
so the handle carries the conversation itself: ``oa1.`` followed by unpadded URL-safe base64 of the raw
DEFLATE (level 9) of the compact UTF-8 JSON ``[["u", "user text"], ["m", "model text"], …]`` — the last
:data:`HANDLE_TURNS` messages that have text, oldest first, each cut to :data:`HANDLE_TURN_CHARS`
characters (with "…"). When the whole handle would exceed :data:`MAX_HANDLE_CHARS` characters, the oldest
messages are dropped until it fits. A model message cut by a barge-in keeps the share of its transcript the
user heard (proportional to the milliseconds played, an estimate: speech is not evenly paced).
"""
from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import zlib
from collections.abc import Callable, Iterable

import orjson

from .engine import (
    USAGE_TOTAL_TOKENS,
    Event,
    FunctionCall,
    Interrupted,
    ModelAudio,
    ModelText,
    Resumption,
    ServerError,
    ToolCall,
    Transcription,
    TurnComplete,
    Usage,
)

RATE_HZ = 24000  # PCM16 mono, both directions
BYTES_PER_MS = RATE_HZ * 2 // 1000
QUIET_EVENT_PREFIX = "lt_quiet_"  # client events whose errors are expected races: logged, never reported
MAX_ERROR_CHARS = 200

HANDLE_PREFIX = "oa1."
HANDLE_TURNS = 10  # messages a handle keeps (the streaming-chat system kept its last ten)
HANDLE_TURN_CHARS = 200  # characters kept of each message
MAX_HANDLE_CHARS = 2500  # the handle travels in a signed resume ticket to the browser
MAX_HANDLE_JSON_BYTES = 64 * 1024  # a handle never inflates beyond this
HISTORY_KEEP = 4 * HANDLE_TURNS  # conversation items remembered (function calls and empty ones included)
_ROLE_CODES = {"user": "u", "model": "m"}
_CODE_ROLES = {code: role for role, code in _ROLE_CODES.items()}

_APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'
_APPEND_TAIL = '"}'


def encode_append(pcm: bytes) -> str:
    """An ``input_audio_buffer.append`` event for PCM16 mono at 24 kHz (JSON text)."""
    return _APPEND_HEAD + base64.b64encode(pcm).decode("ascii") + _APPEND_TAIL


# --- the conversation and its handle -------------------------------------------------------


@dataclasses.dataclass
class _Entry:
    role: str  # "user" or "model"
    text: str = ""
    audio_bytes: int = 0  # model audio the service sent for this item
    heard_ms: int | None = None  # the item was truncated to this much audio

    def heard_text(self) -> str:
        if self.heard_ms is None or not self.audio_bytes:
            return self.text
        share = min(1.0, self.heard_ms * BYTES_PER_MS / self.audio_bytes)
        return self.text[: round(len(self.text) * share)]


class History:
    """The conversation's messages in the service's order, by item id; only the newest ``keep`` are held.

    Args:
        turns: messages a resumed session was seeded with, ``(role, text)`` oldest first.
        keep: how many items to remember.
    """

    def __init__(self, turns: Iterable[tuple[str, str]] = (), *, keep: int = HISTORY_KEEP) -> None:
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._keep = keep
        for n, (role, text) in enumerate(turns):
            self.add(f"seed_{n}", role, text)

    def add(self, item_id: str, role: str, text: str = "") -> None:
        """A message the service added (``role`` "user" or "model")."""
        self._entries[item_id] = _Entry(role, text)
        while len(self._entries) > self._keep:
            self._entries.popitem(last=False)

    def set_text(self, item_id: str, text: str) -> None:
        """The final text (transcript) of an item."""
        entry = self._entries.get(item_id)
        if entry is not None:
            entry.text = text

    def add_audio(self, item_id: str, nbytes: int) -> None:
        """Model audio the service sent for an item."""
        entry = self._entries.get(item_id)
        if entry is not None:
            entry.audio_bytes += nbytes

    def audio_ms(self, item_id: str) -> int | None:
        """Milliseconds of audio the service sent for an item (None for an unknown item)."""
        entry = self._entries.get(item_id)
        return None if entry is None else entry.audio_bytes // BYTES_PER_MS

    def heard(self, item_id: str, ms: int) -> None:
        """The item was truncated to its first ``ms`` of audio: only what was heard is kept."""
        entry = self._entries.get(item_id)
        if entry is not None:
            entry.heard_ms = ms

    def turns(self) -> list[tuple[str, str]]:
        """``(role, text)`` of every message with text, oldest first (model messages as heard)."""
        pairs = ((entry.role, entry.heard_text()) for entry in self._entries.values())
        return [(role, text) for role, text in pairs if text.strip()]


def encode_handle(turns: Iterable[tuple[str, str]], *, max_turns: int = HANDLE_TURNS,
                  max_turn_chars: int = HANDLE_TURN_CHARS, max_chars: int = MAX_HANDLE_CHARS) -> str:
    """A resumption handle for the conversation ``turns`` (``(role, text)``, oldest first); see the module doc."""
    kept = [[_ROLE_CODES[role], _cut(text.strip(), max_turn_chars)] for role, text in turns if text.strip()]
    kept = kept[-max_turns:] if max_turns > 0 else []
    handle = _pack(kept)
    while len(handle) > max_chars and kept:
        if len(kept) > 1:
            kept = kept[1:]
        else:
            kept[0][1] = _cut(kept[0][1], len(kept[0][1]) // 2)
        handle = _pack(kept)
    return handle


def decode_handle(handle: str) -> list[tuple[str, str]]:
    """The ``(role, text)`` messages of a handle made by :func:`encode_handle`.

    Raises:
        ValueError: not such a handle.
    """
    if not handle.startswith(HANDLE_PREFIX):
        raise ValueError("not an OpenAI conversation handle")
    body = handle[len(HANDLE_PREFIX) :]
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        raw = inflater.decompress(packed, MAX_HANDLE_JSON_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("the handle is truncated or too large")
        turns = orjson.loads(raw)
    except (binascii.Error, zlib.error, orjson.JSONDecodeError) as exc:
        raise ValueError(f"the handle does not decode ({type(exc).__name__})") from None
    if not isinstance(turns, list) or not all(_is_turn(turn) for turn in turns):
        raise ValueError("the handle does not hold a conversation")
    return [(_CODE_ROLES[code], text) for code, text in turns]


def _pack(turns: list[list[str]]) -> str:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    packed = deflater.compress(orjson.dumps(turns)) + deflater.flush()
    return HANDLE_PREFIX + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max(max_chars - 1, 0)] + "…"


def _is_turn(turn: object) -> bool:
    return (isinstance(turn, list) and len(turn) == 2 and turn[0] in _CODE_ROLES and isinstance(turn[1], str))


# --- server events ---------------------------------------------------------------------------

_INTERRUPTED = Interrupted()
_USER_DONE = Transcription("user", "", True)
_MODEL_DONE = Transcription("model", "", True)


class SessionState:
    """What the client knows of one Realtime session; :meth:`read` turns each server event into engine events.

    Args:
        history: the conversation so far (a resumed session starts with its seeded messages).
        server_commits: server VAD commits the user's audio (its ``committed`` empties our count of
            appended audio); without it only the client commits, and counts for itself.
        on_quiet_error: told of ``error`` events answering a client event whose id starts with
            :data:`QUIET_EVENT_PREFIX` (expected races; they are not reported as :class:`ServerError`).
    """

    def __init__(self, history: History | None = None, *, server_commits: bool = True,
                 on_quiet_error: Callable[[dict], None] | None = None) -> None:
        self.history = history or History()
        self._server_commits = server_commits
        self.appended_bytes = 0  # the user's audio appended since the last commit, clear or turn
        self.speaking = False  # server VAD heard speech start and not yet its end
        self.response_active = False
        self._on_quiet_error = on_quiet_error
        self._play_end = 0.0  # when the model audio forwarded so far ends playing (monotonic seconds)
        self._audio_item: str | None = None  # the item the newest model audio belongs to
        self._response_audio = False  # the active response has sent audio
        self._muted: str | None = None  # a barged-in item: its late audio and transcript are dropped
        self._cut_item: str | None = None  # the barged-in item still to be truncated to what was played
        self._streamed: set[str] = set()  # items whose transcript came in deltas
        self._pending: list[Event] = []
        self._handlers: dict[str, Callable[[dict, float], list[Event]]] = {
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_audio_transcript.delta": self._on_model_transcript_delta,
            "response.output_audio_transcript.done": self._on_model_transcript_done,
            "response.output_text.delta": self._on_text_delta,
            "response.output_text.done": self._on_text_done,
            "conversation.item.input_audio_transcription.delta": self._on_user_transcript_delta,
            "conversation.item.input_audio_transcription.completed": self._on_user_transcript_done,
            "conversation.item.input_audio_transcription.failed": self._on_user_transcript_failed,
            "conversation.item.added": self._on_item_added,
            "conversation.item.truncated": self._on_truncated,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.committed": self._on_committed,
            "response.created": self._on_response_created,
            "response.done": self._on_response_done,
            "response.function_call_arguments.done": self._on_function_call,
            "error": self._on_error,
        }

    # -- the client side ------------------------------------------------------------------------

    def playing(self, now: float) -> bool:
        """Whether model audio is still being generated or played (``now`` in monotonic seconds)."""
        return now < self._play_end or (self.response_active and self._response_audio)

    def interrupt(self, now: float) -> None:
        """The user took the turn over the model (typed, push-to-talk): :class:`Interrupted` goes out with the
        next event read."""
        self._barge_in(now)
        self._pending.append(_INTERRUPTED)

    def take_truncation(self, played_ms: int) -> tuple[str, int] | None:
        """After a barge-in, the item to truncate and where (``played_ms`` clamped to the audio it has).

        None when no barged-in item awaits truncation. What the user did not hear leaves the history too.
        """
        item_id, self._cut_item = self._cut_item, None
        audio_ms = None if item_id is None else self.history.audio_ms(item_id)
        if item_id is None or audio_ms is None:
            return None
        end_ms = max(0, min(int(played_ms), audio_ms))
        self.history.heard(item_id, end_ms)
        return item_id, end_ms

    def handle(self) -> str:
        """The resumption handle of the conversation so far."""
        return encode_handle(self.history.turns())

    # -- server events ---------------------------------------------------------------------------

    def read(self, raw: bytes | str, now: float) -> list[Event]:
        """The engine events of one server event (``now``: monotonic seconds, for the playout clock)."""
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [*self._take_pending(), ServerError(None, "OpenAI sent a frame that is not JSON")]
        handler = self._handlers.get(event.get("type")) if isinstance(event, dict) else None
        events = handler(event, now) if handler is not None else []
        if self._pending:
            return [*self._take_pending(), *events]
        return events

    def _take_pending(self) -> list[Event]:
        pending, self._pending = self._pending, []
        return pending

    def _barge_in(self, now: float) -> None:
        self._muted = self._cut_item = self._audio_item
        self._play_end = now
        self._response_audio = False

    def _on_audio_delta(self, event: dict, now: float) -> list[Event]:
        item_id = event.get("item_id")
        pcm = base64.b64decode(event.get("delta") or "")
        self.history.add_audio(item_id, len(pcm))
        if item_id == self._muted:
            return []
        self._audio_item = item_id
        self._response_audio = True
        self._play_end = max(self._play_end, now) + len(pcm) / (BYTES_PER_MS * 1000)
        return [ModelAudio(pcm)]

    def _on_model_transcript_delta(self, event: dict, now: float) -> list[Event]:
        return self._delta("model", event, event.get("delta"))

    def _on_model_transcript_done(self, event: dict, now: float) -> list[Event]:
        return self._done("model", event, event.get("transcript"))

    def _on_text_delta(self, event: dict, now: float) -> list[Event]:
        text = event.get("delta")
        if not text or event.get("item_id") == self._muted:
            return []
        return [ModelText(text)]

    def _on_text_done(self, event: dict, now: float) -> list[Event]:
        self.history.set_text(event.get("item_id"), event.get("text") or "")
        return []

    def _on_user_transcript_delta(self, event: dict, now: float) -> list[Event]:
        return self._delta("user", event, event.get("delta"))

    def _on_user_transcript_done(self, event: dict, now: float) -> list[Event]:
        return self._done("user", event, event.get("transcript"))

    def _on_user_transcript_failed(self, event: dict, now: float) -> list[Event]:
        self._streamed.discard(event.get("item_id"))
        return [_USER_DONE]

    def _delta(self, role: str, event: dict, text: str | None) -> list[Event]:
        item_id = event.get("item_id")
        if not text or item_id == self._muted:
            return []
        self._streamed.add(item_id)
        return [Transcription(role, text, False)]

    def _done(self, role: str, event: dict, text: str | None) -> list[Event]:
        item_id = event.get("item_id")
        self.history.set_text(item_id, text or "")
        streamed = item_id in self._streamed
        self._streamed.discard(item_id)
        if item_id == self._muted:
            return []
        if streamed:
            return [_USER_DONE if role == "user" else _MODEL_DONE]
        return [Transcription(role, text or "", True)]

    def _on_item_added(self, event: dict, now: float) -> list[Event]:
        item = event.get("item") or {}
        role = {"user": "user", "assistant": "model"}.get(item.get("role"))
        if item.get("type") == "message" and role is not None:
            texts = (part.get("text") for part in item.get("content") or () if isinstance(part, dict))
            self.history.add(item.get("id"), role, "".join(text for text in texts if isinstance(text, str)))
        return []

    def _on_truncated(self, event: dict, now: float) -> list[Event]:
        return [Resumption(self.handle(), True)]

    def _on_speech_started(self, event: dict, now: float) -> list[Event]:
        self.speaking = True
        if not self.playing(now):
            return []
        self._barge_in(now)
        return [_INTERRUPTED]

    def _on_speech_stopped(self, event: dict, now: float) -> list[Event]:
        self.speaking = False
        return []

    def _on_committed(self, event: dict, now: float) -> list[Event]:
        self.speaking = False
        if self._server_commits:
            self.appended_bytes = 0
        return []

    def _on_response_created(self, event: dict, now: float) -> list[Event]:
        self.response_active = True
        self._response_audio = False
        return []

    def _on_response_done(self, event: dict, now: float) -> list[Event]:
        self.response_active = False
        self._response_audio = False
        response = event.get("response") or {}
        total = (response.get("usage") or {}).get("total_tokens")
        usage = {USAGE_TOTAL_TOKENS: total} if isinstance(total, int) else None
        spoke = any(isinstance(item, dict) and item.get("type") == "message" for item in response.get("output") or ())
        done: Event = TurnComplete(usage) if spoke or usage is None else Usage(usage)
        return [done, Resumption(self.handle(), True)]

    def _on_function_call(self, event: dict, now: float) -> list[Event]:
        try:
            args = orjson.loads(event.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {}
        call = FunctionCall(str(event.get("call_id") or ""), str(event.get("name") or ""),
                            args if isinstance(args, dict) else {})
        return [ToolCall((call,))]

    def _on_error(self, event: dict, now: float) -> list[Event]:
        error = event.get("error") or {}
        if str(error.get("event_id") or "").startswith(QUIET_EVENT_PREFIX):
            if self._on_quiet_error is not None:
                self._on_quiet_error(error)
            return []
        label = error.get("code") or error.get("type") or "error"
        return [ServerError(None, f"{label}: {error.get('message') or ''}"[:MAX_ERROR_CHARS])]
