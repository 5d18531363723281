"""Model responses of one OpenAI Realtime session: what to say, saying it paced, cancelling, truncating.

The :class:`Responder` keeps what awaits an answer (user messages and function
outputs since the last response) and produces at most one response at a time:
``response.created`` and ``rate_limits.updated`` at once, then a task that adds
the output item (an assistant message spoken in 40 ms audio deltas with its
transcript, or written in text deltas; or a ``schedule_meeting`` function call),
and ``response.done`` with usage. A cancelled (barge-in, ``response.cancel``) or
failed response closes its item as ``incomplete`` with what was sent so far.

In echo mode the session hands every appended chunk to :meth:`Responder.echo`: it
goes out at once, the same bytes, as one ``response.output_audio.delta`` of an
*echo response* (trigger ``echo``). The first chunk opens that response (created,
rate limits, an assistant item and its audio part, as a spoken one starts); it
stays open while chunks keep coming and completes once none has come for
:data:`ECHO_IDLE_S`, so a stream of chunks costs one event each, as the service's
own audio deltas do.
"""
from __future__ import annotations

import asyncio
import bisect
import dataclasses
import datetime
import json
import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from livetalk.emulator import tools
from livetalk.emulator.audio import OUTPUT_RATE_HZ, synthesize
from livetalk.emulator.control import Control
from livetalk.emulator.dialogue import (
    JAPANESE,
    Wording,
    input_transcript,
    reply_text,
    scheduling_reply,
    transcript_pieces,
)
from livetalk.emulator.errors import ClientProtocolError
from livetalk.emulator.meeting import Proposal, find_proposal
from livetalk.emulator.openai import events
from livetalk.emulator.openai.config import RealtimeConfig, functions_of
from livetalk.emulator.openai.conversation import Conversation, is_message, text_of
from livetalk.emulator.openai.errors import RealtimeEventError
from livetalk.emulator.openai.events import Ids, PartRef, Tokens
from livetalk.emulator.openai.sender import EventSender
from livetalk.emulator.openai.stats import RealtimeStats
from livetalk.emulator.reply import CHUNK_BYTES, CHUNK_MS, UserTurn

BYTES_PER_MS = OUTPUT_RATE_HZ * 2 // 1000  # PCM16 mono at 24 kHz
ARGUMENT_PIECES = 2  # function call arguments arrive in this many deltas
ECHO_IDLE_S = 0.5  # an echo response completes once no audio has been appended for this long (seconds)

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one response is made with: the session's settings, overridden by ``response.create`` options."""

    audio: bool
    voice: str
    wording: Wording
    tool_choice: Any
    functions: tuple[tools.FunctionDecl, ...]
    metadata: Any = None

    @classmethod
    def of(cls, config: RealtimeConfig, options: Mapping[str, Any]) -> Settings:
        """The session's settings with the options of a ``response.create`` applied."""
        voice = (options.get("audio") or {}).get("output", {}).get("voice", config.voice)
        instructions = options.get("instructions", config.instructions)
        return cls(
            audio="audio" in options.get("output_modalities", ["audio" if config.audio_out else "text"]),
            voice=voice["id"] if isinstance(voice, Mapping) else voice,
            wording=RealtimeConfig({"instructions": instructions}).wording,
            tool_choice=options.get("tool_choice", config.tool_choice),
            functions=functions_of(options["tools"]) if "tools" in options else config.functions,
            metadata=options.get("metadata"),
        )

    def may_call(self, name: str) -> bool:
        """Whether the model may call function ``name`` in this response."""
        return self.tool_choice != "none" and any(function.name == name for function in self.functions)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a response will do: say ``text``, or call ``schedule_meeting`` for ``proposal``."""

    turn: UserTurn
    text: str | None = None
    proposal: Proposal | None = None


@dataclasses.dataclass
class Output:
    """The output item being produced, and what of it has been sent."""

    item: dict[str, Any]
    previous_id: str | None
    ref: PartRef
    audio: bool | None  # None: a function call (no content part)
    text: str = ""  # transcript or text sent so far
    audio_bytes: int = 0


@dataclasses.dataclass
class Response:
    """One response in progress."""

    id: str
    settings: Settings
    turn: dict[str, Any]  # its record in the statistics' turns
    record: dict[str, Any]  # its record in the statistics' responses
    input_tokens: Tokens
    output: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    output_tokens: Tokens = Tokens()
    current: Output | None = None
    task: asyncio.Task[None] | None = None
    echo: bool = False  # an echo response (echo mode): one delta per appended chunk


class Responder:
    """Produces the responses of one session.

    Args:
        sender: where events go.
        stats: the session's statistics.
        conversation: the session's conversation (responses add their items to it).
        ids: the session's id source.
        control: read for ``reply_speed`` at the start of each response.
        spawn: starts a task the session owns (cancelled when it ends).
        changed: called when the conversation or the statistics changed.
    """

    def __init__(self, *, sender: EventSender, stats: RealtimeStats, conversation: Conversation, ids: Ids,
                 control: Control, spawn: Spawn, changed: Callable[[], None]) -> None:
        self._send = sender.send
        self._stats = stats
        self._conversation = conversation
        self._ids = ids
        self._control = control
        self._spawn = spawn
        self._changed = changed
        self._loop = asyncio.get_running_loop()
        self._pending: list[str] = []  # ids of inputs not answered yet, oldest first
        self._turns: dict[str, UserTurn] = {}  # user message id → what the user did
        self._calls = tools.CallLedger(stats.id, stats.tool_calls)
        self._proposals: dict[str, Proposal] = {}  # call id → the meeting it schedules
        self._spoken: dict[str, tuple[str, list[int], int]] = {}  # item id → text, char byte offsets, bytes sent
        self._turn_records: dict[str, dict[str, Any]] = {}  # assistant item id → its turn record
        self._requests = 0
        self._tokens = 0
        self._echo_at = 0.0  # loop time of the newest echoed chunk
        self.active: Response | None = None
        self.audio_sent = False

    @property
    def echoing(self) -> bool:
        """Whether an echo response is open."""
        return self.active is not None and self.active.echo

    # -- inputs -----------------------------------------------------------------------------------

    def note_user(self, item_id: str, turn: UserTurn) -> None:
        """A user message to answer."""
        self._turns[item_id] = turn
        self._pending.append(item_id)

    def note_assistant(self) -> None:
        """The client added an assistant message itself: what came before counts as answered."""
        self._pending.clear()

    def note_output(self, item: Mapping[str, Any]) -> None:
        """A ``function_call_output`` item the client added: its call is answered, and it awaits a response.

        Raises:
            RealtimeEventError: no ``function_call`` with its ``call_id`` is in the conversation.
        """
        call_id, output = item["call_id"], _parsed(item["output"])
        call = next((entry for entry in self._conversation.items()
                     if entry["type"] == "function_call" and entry.get("call_id") == call_id), None)
        if call is None:
            raise RealtimeEventError(f"Tool call ID '{call_id}' not found in conversation.", code="invalid_value",
                                     param="item.call_id")
        try:
            self._calls.answer(tools.FunctionResponse(id=call_id, name=call["name"], response=output, scheduling=None))
        except ClientProtocolError:
            pass  # a call the client seeded itself, not one the emulator made
        self._stats.tool_responses.append({"id": call_id, "name": call["name"], "response": output,
                                           "scheduling": None})
        self._pending.append(item["id"])

    # -- starting and ending ------------------------------------------------------------------------

    def start(self, *, trigger: str, config: RealtimeConfig, options: Mapping[str, Any]) -> Response:
        """Create a response now (``response.created``, ``rate_limits.updated``) and produce it in a task."""
        settings = Settings.of(config, options)
        plan = self._plan(settings)
        heard = plan.turn.text if plan.turn.text is not None else input_transcript(settings.wording, plan.turn.seconds)
        response = self._begin(trigger, settings, config, kind=plan.turn.kind, heard=heard, reply=plan.text)
        response.task = self._spawn(self._produce(response, plan))
        return response

    def echo(self, pcm: bytes, *, config: RealtimeConfig) -> None:
        """Echo mode: send ``pcm`` (PCM16 24 kHz) back at once as one audio delta of the echo response, opening
        one first if none is (a spoken or written response in progress is cancelled, as speech would)."""
        self._echo_at = self._loop.time()
        response = self.active
        if response is None or not response.echo:
            self.cancel("turn_detected")
            response = self._start_echo(config)
        output = response.current
        assert output is not None
        self._send(events.audio_delta(output.ref, pcm))
        output.audio_bytes += len(pcm)
        self._stats.audio_out_bytes += len(pcm)
        self._spoken[output.item["id"]] = ("", [], output.audio_bytes)

    def end_echo(self) -> None:
        """Complete the echo response now, if one is open (the session left echo mode)."""
        response = self.active
        if response is not None and response.echo:
            self._stop(response)
            self._finish(response, "completed")

    def _start_echo(self, config: RealtimeConfig) -> Response:
        settings = dataclasses.replace(Settings.of(config, {}), audio=True)
        response = self._begin("echo", settings, config, kind="echo", heard=None, reply=None)
        response.echo = True
        self._open_message(response)
        self.audio_sent = True
        response.task = self._spawn(self._end_echo_when_idle(response))
        return response

    async def _end_echo_when_idle(self, response: Response) -> None:
        while (left := self._echo_at + ECHO_IDLE_S - self._loop.time()) > 0:
            await asyncio.sleep(left)
        self._finish(response, "completed")

    def _begin(self, trigger: str, settings: Settings, config: RealtimeConfig, *, kind: str, heard: str | None,
               reply: str | None) -> Response:
        """A new active response: ``response.created``, ``rate_limits.updated`` and its statistics records."""
        response_id = self._ids.next("resp")
        turn = {"n": self._conversation.count("assistant"), "kind": kind, "input": heard,
                "reply": reply, "interrupted": False, "tool_call": None, "response_id": response_id,
                "item_id": None, "status": "in_progress", "said": None}
        record = {"id": response_id, "trigger": trigger, "status": "in_progress", "reason": None, "output": [],
                  "output_modalities": ["audio" if settings.audio else "text"], "usage": None,
                  "metadata": settings.metadata}
        response = Response(response_id, settings, turn, record, self._context_tokens(config))
        self.active = response
        self._send(events.response_created(self._resource(response, "in_progress")))
        self._requests += 1
        limits = events.rate_limits(requests_used=self._requests, tokens_used=self._tokens)
        self._stats.rate_limits = limits["rate_limits"]
        self._send(limits)
        self._stats.turns.append(turn)
        self._stats.responses.append(record)
        return response

    def cancel(self, reason: str) -> bool:
        """Cancel the active response (``turn_detected`` / ``client_cancelled``); False when there is none."""
        response = self.active
        if response is None:
            return False
        self._stop(response)
        self._finish(response, "cancelled", {"type": "cancelled", "reason": reason})
        return True

    def fail(self, error: RealtimeEventError) -> None:
        """End the active response (if any) as ``failed`` with ``error``."""
        response = self.active
        if response is not None:
            self._stop(response)
            body = {"type": error.type, "code": error.code, "message": error.message}
            self._finish(response, "failed", {"type": "failed", "error": body})

    def _stop(self, response: Response) -> None:
        if response.task is not None:
            response.task.cancel()

    async def _produce(self, response: Response, plan: Plan) -> None:
        if plan.proposal is not None:
            self._call(response, plan.proposal)
        else:
            assert plan.text is not None
            await self._say(response, plan.text)
        self._finish(response, "completed")

    def _finish(self, response: Response, status: str, details: Mapping[str, Any] | None = None) -> None:
        self._close(response, "completed" if status == "completed" else "incomplete")
        self.active = None
        usage = events.usage(response.input_tokens, response.output_tokens)
        self._tokens += usage["total_tokens"]
        self._send(events.response_done(self._resource(response, status, usage, details)))
        reason = (details or {}).get("reason")
        response.record.update(status=status, reason=reason, usage=usage,
                               output=[item["id"] for item in response.output])
        response.turn["status"] = status
        if reason == "turn_detected":
            self._stats.interruptions += 1
            response.turn["interrupted"] = True
        if status == "completed" and response.turn["tool_call"] is None:
            self._stats.turns_answered += 1
        self._changed()

    def _resource(self, response: Response, status: str, usage: Mapping[str, Any] | None = None,
                  details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        settings = response.settings
        return events.response_resource(
            response.id, status=status, output=response.output, audio=settings.audio, voice=settings.voice,
            conversation_id=f"conv_{self._stats.id}", metadata=settings.metadata, usage=usage,
            status_details=details)

    # -- what to say ------------------------------------------------------------------------------

    def _plan(self, settings: Settings) -> Plan:
        """Answer a function output about a meeting, else the newest user input (calling a function if it
        proposes a meeting), else the last thing the user said."""
        pending, self._pending = self._pending, []
        items = [item for item in map(self._conversation.get, pending) if item is not None]
        for item in reversed(items):
            if item["type"] == "function_call_output" and item["call_id"] in self._proposals:
                return self._scheduling_plan(item, settings)
        turn = next((self._turn_of(item) for item in reversed(items) if is_message(item, "user")), None)
        turn = turn or self._last_user_turn()
        proposal = self._proposal(turn, settings)
        if proposal is not None:
            return Plan(turn, proposal=proposal)
        number = self._conversation.count("assistant")
        return Plan(turn, text=reply_text(settings.wording, number, seconds=turn.seconds, text=turn.text))

    def _scheduling_plan(self, output: Mapping[str, Any], settings: Settings) -> Plan:
        proposal = self._proposals.pop(output["call_id"])
        when = proposal.spoken(japanese=settings.wording is JAPANESE)
        text = scheduling_reply(settings.wording, when, failed=tools.is_failure(_parsed(output["output"])))
        return Plan(UserTurn("tool", text=output["call_id"]), text=text)

    def _turn_of(self, item: Mapping[str, Any]) -> UserTurn:
        return self._turns.get(item["id"]) or UserTurn("text", text=text_of(item))

    def _last_user_turn(self) -> UserTurn:
        """The newest user message's turn (a response asked for with nothing new to answer)."""
        users = [item for item in self._conversation.items() if is_message(item, "user")]
        return self._turn_of(users[-1]) if users else UserTurn("text", text="")

    def _proposal(self, turn: UserTurn, settings: Settings) -> Proposal | None:
        if turn.text is None or not settings.may_call(tools.SCHEDULE_MEETING):
            return None
        return find_proposal(turn.text, today=datetime.date.today())

    # -- producing output -------------------------------------------------------------------------

    def _open(self, response: Response, item: dict[str, Any], *, audio: bool | None) -> Output:
        index = len(response.output)
        response.output.append(item)
        previous = self._conversation.add(item)
        output = Output(item, previous, PartRef(response.id, item["id"], index, 0), audio)
        response.current = output
        self._send(events.output_item_added(response.id, index, item))
        self._send(events.item_added(item, previous))
        return output

    async def _say(self, response: Response, text: str) -> None:
        output = self._open_message(response)
        if output.audio:
            await self._speak(output, text)
        else:
            await self._write(output, text)

    def _open_message(self, response: Response) -> Output:
        """Add the response's assistant message and its (audio or text) content part."""
        audio = response.settings.audio
        output = self._open(response, events.assistant_item(self._ids.next("item")), audio=audio)
        response.turn["item_id"] = output.item["id"]
        self._turn_records[output.item["id"]] = response.turn
        self._send(events.content_part_added(output.ref, audio=audio))
        return output

    async def _speak(self, output: Output, text: str) -> None:
        pcm, offsets = synthesize(text)
        starts = [(offsets[index], piece) for index, piece in transcript_pieces(text)]
        pace = self._pacer()
        item_id = output.item["id"]
        for begin in range(0, len(pcm), CHUNK_BYTES):
            for start, piece in starts:
                if begin <= start < begin + CHUNK_BYTES:
                    self._send(events.transcript_delta(output.ref, piece))
                    output.text += piece
            chunk = pcm[begin : begin + CHUNK_BYTES]
            self._send(events.audio_delta(output.ref, chunk))
            output.audio_bytes += len(chunk)
            self._stats.audio_out_bytes += len(chunk)
            self._spoken[item_id] = (text, offsets, output.audio_bytes)
            self.audio_sent = True
            await pace()

    async def _write(self, output: Output, text: str) -> None:
        pace = self._pacer()
        for _, piece in transcript_pieces(text):
            self._send(events.text_delta(output.ref, piece))
            output.text += piece
            await pace()

    def _pacer(self) -> Callable[[], Coroutine[Any, Any, None]]:
        """A wait that keeps each 40 ms chunk ``reply_speed`` times faster than real time (read once per reply)."""
        speed = self._control.reply_speed
        interval_s = CHUNK_MS / 1000 / speed if speed > 0 and math.isfinite(speed) else 0.0
        next_at = self._loop.time()

        async def pace() -> None:
            nonlocal next_at
            next_at += interval_s
            await asyncio.sleep(max(0.0, next_at - self._loop.time()))

        return pace

    def _call(self, response: Response, proposal: Proposal) -> None:
        record = self._calls.issue(tools.SCHEDULE_MEETING, proposal.args())
        call_id = record["id"]
        self._proposals[call_id] = proposal
        response.turn["tool_call"] = call_id
        item = events.function_call_item(self._ids.next("item"), call_id=call_id, name=tools.SCHEDULE_MEETING)
        output = self._open(response, item, audio=None)
        arguments = json.dumps(proposal.args(), ensure_ascii=False)
        step = math.ceil(len(arguments) / ARGUMENT_PIECES)
        for begin in range(0, len(arguments), step):
            self._send(events.arguments_delta(output.ref, call_id=call_id, delta=arguments[begin : begin + step]))
        item["arguments"] = arguments
        self._send(events.arguments_done(output.ref, call_id=call_id, name=tools.SCHEDULE_MEETING,
                                         arguments=arguments))
        self._changed()

    def _close(self, response: Response, status: str) -> None:
        """Finish the output item in progress (``incomplete``: with what was sent of it)."""
        output, response.current = response.current, None
        if output is None:
            return
        item = output.item
        item["status"] = status
        if output.audio is None:
            response.output_tokens += events.text_cost(item["arguments"])
        else:
            self._close_part(output)
            response.turn["said"] = output.text
            seconds = output.audio_bytes / BYTES_PER_MS / 1000
            response.output_tokens += events.text_cost(output.text) + events.audio_cost(seconds, output=True)
        self._send(events.output_item_done(response.id, output.ref.output_index, item))
        self._send(events.item_done(item, output.previous_id))

    def _close_part(self, output: Output) -> None:
        ref, text = output.ref, output.text
        if output.audio:
            output.item["content"] = [{"type": "output_audio", "transcript": text}]
            self._send(events.audio_done(ref))
            self._send(events.transcript_done(ref, text))
        else:
            output.item["content"] = [{"type": "output_text", "text": text}]
            self._send(events.text_done(ref, text))
        self._send(events.content_part_done(ref, audio=bool(output.audio), text=text))

    # -- truncation -------------------------------------------------------------------------------

    def truncate(self, item_id: Any, content_index: int, audio_end_ms: int) -> dict[str, Any]:
        """Cut an assistant message's audio (and transcript) to the first ``audio_end_ms``; return the record.

        Raises:
            RealtimeEventError: no such assistant audio, or ``audio_end_ms`` beyond its end.
        """
        item = self._conversation.get(item_id)
        if item is None or not is_message(item, "assistant"):
            raise RealtimeEventError(f"Assistant message '{item_id}' not found; only assistant messages can be "
                                     "truncated.", code="invalid_value", param="item_id")
        if self.active is not None and self.active.current is not None and self.active.current.item is item:
            self.cancel("client_cancelled")  # the part is finished (with what was sent) before it is cut
        spoken = self._spoken.get(item_id)
        if spoken is None or content_index != 0 or not item.get("content"):
            raise RealtimeEventError(f"Content part {content_index} of item '{item_id}' has no audio.",
                                     code="invalid_value", param="content_index")
        text, offsets, audio_bytes = spoken
        audio_ms = audio_bytes / BYTES_PER_MS
        if audio_end_ms > audio_ms:
            raise RealtimeEventError(f"Audio content of {audio_ms:.0f}ms is already shorter than {audio_end_ms}ms",
                                     code="invalid_value", param="audio_end_ms")
        heard = text[: bisect.bisect_left(offsets, audio_end_ms * BYTES_PER_MS)]
        item["content"] = [{"type": "output_audio", "transcript": heard}]
        record = {"item_id": item_id, "content_index": content_index, "audio_end_ms": audio_end_ms,
                  "audio_ms": round(audio_ms, 1), "said": text, "heard": heard}
        self._stats.truncations.append(record)
        turn = self._turn_records.get(item_id)
        if turn is not None:
            turn.update(heard=heard, truncated_ms=audio_end_ms)
        return record

    # -- tokens -----------------------------------------------------------------------------------

    def _context_tokens(self, config: RealtimeConfig) -> Tokens:
        """The input tokens of a response: the instructions and every item so far."""
        total = events.text_cost(config.instructions)
        for item in self._conversation.items():
            turn = self._turns.get(item["id"])
            spoken = self._spoken.get(item["id"])
            if turn is not None and turn.kind == "voice":
                total += events.audio_cost(turn.seconds, output=False)
            elif spoken is not None:
                total += events.audio_cost(spoken[2] / BYTES_PER_MS / 1000, output=False)
            else:
                total += events.text_cost(text_of(item) or item.get("arguments") or item.get("output") or "")
        return total


def _parsed(output: str) -> Any:
    """A function output as JSON when it is JSON, else the text itself."""
    try:
        return json.loads(output)
    except ValueError:
        return output
