"""The OpenAI Realtime engine: its hot-path wire against the SDK's own, the session it configures, turns,
barge-in, tool calls, conversation handles and errors — through the unmodified ``openai`` SDK against the
emulator."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import random
import time
import typing
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import ConversationItemParam, realtime_audio_config_output_param

import prompts
from livetalk import engine as ev
from livetalk import openai_engine, openaiwire
from livetalk.engine import LiveSetup, UpstreamClosed, UpstreamQuota, UpstreamUnavailable, Vad
from livetalk.openai_engine import OpenAIEngine, session_config, turn_detection
from livetalk.openaiwire import History, SessionState, decode_handle, encode_handle
from tests.emulator_helpers import API_KEY, TIMEOUT_S, chunks, emu, fresh_control, newest_session, run  # noqa: F401
from tests.openai_emulator_helpers import MODEL, RATE_HZ, pcm_silence, pcm_tone

MEETING = prompts.SCHEDULE_MEETING
SETUP = LiveSetup(model="gemini-live", system_instruction="You are a buyer. Answer briefly.", voice="cedar", vad=Vad())
PUSH_TO_TALK = LiveSetup(model="gemini-live", system_instruction="You are a buyer.", voice="cedar",
                         vad=Vad(automatic=False))
PROPOSAL = "How about a demo on December 3 at 2 pm?"
LONG_JAPANESE = "本日はお時間をいただきありがとうございます。社内の問い合わせ対応について詳しく伺えますでしょうか。" * 20
KANA_AND_KANJI = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん" \
                 "社内問合対応費用導入検討予算情報部長営業資料手順書設計安全懸念日程確認"


def varied_japanese(chars: int, seed: int) -> str:
    """Japanese-looking text that, like real speech, does not repeat itself (deflate cannot shrink it much)."""
    pick = random.Random(seed).choice
    return "".join(pick(KANA_AND_KANJI) if i % 25 else "。" for i in range(1, chars + 1))


def engine_for(emu, **options: Any) -> OpenAIEngine:
    """The engine as the service builds it, reaching the emulator (its CA trusted through websocket options)."""
    client = AsyncOpenAI(api_key=API_KEY, base_url=emu.openai_base_url, max_retries=0)
    return OpenAIEngine(client, model=MODEL, websocket_options={"ssl": emu.client_ssl_context()}, **options)


@contextlib.asynccontextmanager
async def session(emu, setup: LiveSetup = SETUP, **options: Any) -> AsyncIterator[Any]:
    """An open upstream session, closed afterwards."""
    upstream = await engine_for(emu, **options).connect(setup, timeout_s=TIMEOUT_S)
    try:
        yield upstream
    finally:
        await upstream.close()


async def until(upstream: Any, kind: type) -> list[ev.Event]:
    """Events up to and including the first message that holds an event of ``kind``."""
    events: list[ev.Event] = []
    while not any(isinstance(event, kind) for event in events):
        events += await asyncio.wait_for(upstream.receive(), TIMEOUT_S)
    return events


async def speak(upstream: Any, pcm: bytes) -> None:
    """Stream PCM16 at 24 kHz in 20 ms frames, as the relay does."""
    for piece in chunks(pcm, 20, rate_hz=RATE_HZ):
        await upstream.send_audio(piece)


def of(events: list[ev.Event], kind: type) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def said(events: list[ev.Event], role: str) -> str:
    return "".join(event.text for event in of(events, ev.Transcription) if event.role == role)


def frame(**event: Any) -> bytes:
    return json.dumps(event).encode()


# -- the hot-path wire against the SDK ----------------------------------------------------------


class _Socket:
    """Stands in for the SDK's websocket: records what the SDK sends, replays one frame."""

    def __init__(self, reply: bytes = b"{}") -> None:
        self.sent: list[str] = []
        self.reply = reply

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self, decode: bool | None = None) -> bytes:
        return self.reply


def test_audio_append_is_the_json_the_sdk_sends():
    """encode_append is, parsed, exactly the SDK's input_audio_buffer.append event, sent as text."""
    pcm = bytes(range(256)) * 4
    socket = _Socket()
    asyncio.run(AsyncRealtimeConnection(socket).input_audio_buffer.append(audio=base64.b64encode(pcm).decode()))
    ours = openaiwire.encode_append(pcm)
    assert isinstance(ours, str) and json.loads(ours) == json.loads(socket.sent[0])


@pytest.mark.parametrize("event, read", [
    ({"type": "response.output_audio.delta", "event_id": "e1", "response_id": "r1", "item_id": "i1",
      "output_index": 0, "content_index": 0, "delta": base64.b64encode(bytes(range(250, 256)) * 80).decode()},
     lambda sdk: [ev.ModelAudio(base64.b64decode(sdk.delta))]),
    ({"type": "response.output_audio_transcript.delta", "event_id": "e2", "response_id": "r1", "item_id": "i1",
      "output_index": 0, "content_index": 0, "delta": "はい、"},
     lambda sdk: [ev.Transcription("model", sdk.delta, False)]),
    ({"type": "response.function_call_arguments.done", "event_id": "e3", "response_id": "r1", "item_id": "i2",
      "output_index": 0, "call_id": "call_1", "name": "schedule_meeting",
      "arguments": '{"date": "2026-12-03", "time": "14:00"}'},
     lambda sdk: [ev.ToolCall((ev.FunctionCall(sdk.call_id, sdk.name, json.loads(sdk.arguments)),))]),
])
def test_server_events_read_as_the_sdk_reads_them(event, read):
    """Audio, transcripts and function calls decode to what the SDK's typed event holds."""
    raw = frame(**event)
    socket = _Socket(raw)
    sdk_event = asyncio.run(AsyncRealtimeConnection(socket).recv())
    assert SessionState().read(raw, 0.0) == read(sdk_event)


def test_the_voices_are_the_ones_the_sdk_knows():
    """OPENAI_VOICES is the SDK's list of built-in voices (an upgrade that adds one fails here)."""
    literal = next(arg for arg in typing.get_args(realtime_audio_config_output_param.Voice)
                   if typing.get_origin(arg) is typing.Literal)
    assert openai_engine.OPENAI_VOICES == set(typing.get_args(literal))


# -- server events → engine events (pure) --------------------------------------------------------


@pytest.mark.parametrize("event, events", [
    ({"type": "conversation.item.input_audio_transcription.delta", "item_id": "u1", "delta": "見積"},
     [ev.Transcription("user", "見積", False)]),
    ({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1", "transcript": "見積もり"},
     [ev.Transcription("user", "見積もり", True)]),
    ({"type": "conversation.item.input_audio_transcription.failed", "item_id": "u1", "error": {}},
     [ev.Transcription("user", "", True)]),
    ({"type": "response.output_audio_transcript.done", "item_id": "m1", "transcript": "はい"},
     [ev.Transcription("model", "はい", True)]),
    ({"type": "response.output_text.delta", "item_id": "m1", "delta": "It is noon."}, [ev.ModelText("It is noon.")]),
    ({"type": "response.done", "response": {"status": "completed", "usage": {"total_tokens": 35},
                                            "output": [{"type": "message"}]}},
     [ev.TurnComplete({"totalTokenCount": 35}), ev.Resumption(encode_handle([]), True)]),
    ({"type": "response.done", "response": {"status": "completed", "usage": {"total_tokens": 12},
                                            "output": [{"type": "function_call"}]}},
     [ev.Usage({"totalTokenCount": 12}), ev.Resumption(encode_handle([]), True)]),
    ({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value", "message": "Bad."}},
     [ev.ServerError(None, "invalid_value: Bad.")]),
    ({"type": "error", "error": {"type": "invalid_request_error", "code": "response_cancel_not_active",
                                 "message": "No.", "event_id": openaiwire.QUIET_EVENT_PREFIX + "cancel"}}, []),
    ({"type": "input_audio_buffer.speech_started", "item_id": "u2", "audio_start_ms": 0}, []),
    ({"type": "rate_limits.updated", "rate_limits": []}, []),
])
def test_server_events_become_engine_events(event, events):
    """Each server event the relay acts on becomes its engine event; races we caused and bookkeeping do not."""
    assert SessionState().read(frame(**event), 0.0) == events


def test_streamed_transcripts_end_with_an_empty_finished_piece():
    """After deltas, the done event only closes the utterance (the text is not repeated)."""
    state = SessionState()
    state.read(frame(type="response.output_audio_transcript.delta", item_id="m1", delta="はい"), 0.0)
    done = state.read(frame(type="response.output_audio_transcript.done", item_id="m1", transcript="はい"), 0.0)
    assert done == [ev.Transcription("model", "", True)]


def _audio(item: str, ms: int) -> bytes:
    return frame(type="response.output_audio.delta", item_id=item, delta=base64.b64encode(bytes(48 * ms)).decode())


def test_speech_while_the_audio_still_plays_is_a_barge_in_and_later_audio_of_that_item_is_dropped():
    """Speech within the playout of the audio forwarded interrupts it; the rest of that item is not forwarded;
    speech after the playout ended interrupts nothing."""
    state = SessionState()
    state.read(frame(type="conversation.item.added", item={"type": "message", "role": "assistant", "id": "m1"}), 0.0)
    state.read(_audio("m1", 1000), 10.0)  # plays 10.0–11.0 s
    assert state.playing(10.9) and not state.playing(11.1)
    assert state.read(frame(type="input_audio_buffer.speech_started", item_id="u1"), 10.4) == [ev.Interrupted()]
    assert state.read(_audio("m1", 40), 10.41) == []
    assert not state.playing(10.42)
    assert state.take_truncation(400) == ("m1", 400) and state.take_truncation(400) is None
    state.read(_audio("m2", 200), 20.0)
    assert state.read(frame(type="input_audio_buffer.speech_started", item_id="u2"), 20.5) == []


@pytest.mark.parametrize("played_ms, cut_ms", [(250, 250), (-5, 0), (10_000, 1040)])
def test_truncation_is_clamped_to_the_audio_the_item_has(played_ms, cut_ms):
    """What the page says it played is clamped to 0…the item's audio (late audio included)."""
    state = SessionState()
    state.read(frame(type="conversation.item.added", item={"type": "message", "role": "assistant", "id": "m1"}), 0.0)
    state.read(_audio("m1", 1000), 0.0)
    state.interrupt(0.5)
    state.read(_audio("m1", 40), 0.6)
    assert state.take_truncation(played_ms) == ("m1", cut_ms)


# -- the conversation handle -----------------------------------------------------------------------


def test_a_handle_round_trips_the_conversation():
    """Roles and texts (Japanese, quotes, emoji) come back as they went in, oldest first."""
    turns = [("user", "「見積もり」をお願いします"), ("model", 'Sure — "next week" 🙂'), ("user", "OK")]
    handle = encode_handle(turns)
    assert handle.startswith(openaiwire.HANDLE_PREFIX) and decode_handle(handle) == turns
    assert all(c.isalnum() or c in "-_." for c in handle)


def test_a_handle_keeps_the_last_ten_messages_each_capped():
    """Only the newest HANDLE_TURNS messages with text are kept, each cut to HANDLE_TURN_CHARS with an ellipsis."""
    turns = [("user" if n % 2 == 0 else "model", f"message {n} " + "x" * 300) for n in range(14)] + [("user", " ")]
    decoded = decode_handle(encode_handle(turns))
    assert len(decoded) == openaiwire.HANDLE_TURNS and decoded[0][1].startswith("message 4 ")
    assert all(len(text) == openaiwire.HANDLE_TURN_CHARS and text.endswith("…") for _, text in decoded)


def test_long_japanese_turns_fit_the_size_cap_dropping_the_oldest():
    """Ten long Japanese messages exceed 2,500 characters: the oldest go until the handle fits, newest kept."""
    turns = [("user" if n % 2 == 0 else "model", f"{n}番目:" + varied_japanese(400, n)) for n in range(10)]
    handle = encode_handle(turns)
    decoded = decode_handle(handle)
    assert len(handle) <= openaiwire.MAX_HANDLE_CHARS
    assert 1 <= len(decoded) < 10 and decoded[-1][1].startswith("9番目:")
    assert decoded == [(role, text[: openaiwire.HANDLE_TURN_CHARS - 1] + "…") for role, text in turns[-len(decoded):]]


def test_a_single_message_too_large_for_the_cap_is_shortened():
    """With a tiny cap the last message is cut further rather than dropped."""
    handle = encode_handle([("user", LONG_JAPANESE)], max_chars=120)
    assert len(handle) <= 120 and LONG_JAPANESE.startswith(decode_handle(handle)[0][1].rstrip("…"))


@pytest.mark.parametrize("handle", [
    "gemini-handle-123", "oa1.!!!", "oa1." + base64.urlsafe_b64encode(b"not deflate").decode(),
    openaiwire._pack([["x", "who"]]), openaiwire._pack({"u": "text"}),  # type: ignore[arg-type]
])
def test_handles_that_are_not_ours_are_refused(handle):
    """Another engine's handle, bad base64, bad deflate and wrong shapes raise ValueError."""
    with pytest.raises(ValueError):
        decode_handle(handle)


def test_a_truncated_answer_keeps_what_was_heard_in_the_handle():
    """After a truncation the model message keeps the share of its text the user heard."""
    history = History([("user", "hi")])
    history.add("m1", "model", "0123456789")
    history.add_audio("m1", 48 * 1000)
    history.heard("m1", 300)
    assert history.turns() == [("user", "hi"), ("model", "012")]


# -- the session configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("vad, detection", [
    (Vad(), {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 100, "silence_duration_ms": 700,
             "create_response": True, "interrupt_response": True}),
    (Vad(start_sensitivity="START_SENSITIVITY_HIGH", end_sensitivity="END_SENSITIVITY_HIGH", prefix_ms=300,
         silence_ms=800), {"type": "server_vad", "threshold": 0.4, "prefix_padding_ms": 300,
                           "silence_duration_ms": 600, "create_response": True, "interrupt_response": True}),
    (Vad(end_sensitivity="END_SENSITIVITY_HIGH", silence_ms=200, start_sensitivity="UNSPECIFIED"),
     {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 100, "silence_duration_ms": 200,
      "create_response": True, "interrupt_response": True}),
    (Vad(automatic=False), None),
])
def test_vad_settings_map_to_server_vad(vad, detection):
    """Sensitivities become the threshold, end sensitivity shortens the silence, push-to-talk turns VAD off."""
    assert turn_detection(vad) == detection


@pytest.mark.parametrize("name, voice", [("marin", "marin"), ("Cedar", "cedar"), ("voice_1234", {"id": "voice_1234"}),
                                         ("Kore", "marin")])
def test_scenario_voices_map_to_openai_voices(name, voice):
    """OpenAI voices pass, custom voice ids become objects, Gemini voice names fall back to the default."""
    engine = OpenAIEngine(AsyncOpenAI(api_key=API_KEY), model=MODEL)
    assert engine.voice_for(name) == voice


def test_the_session_is_configured_once_as_the_setup_says(emu):
    """One GA session.update: instructions, 24 kHz PCM both ways, transcription, tuned server VAD, the voice and
    the tools; the emulator's effective session agrees."""
    setup = LiveSetup(model="gemini-live", system_instruction="あなたは見込み客です。", voice="Kore",
                      vad=Vad(silence_ms=900), tools=(MEETING,))

    async def scenario() -> None:
        async with session(emu, setup):
            pass

    run(scenario())
    stats = newest_session(emu)
    assert stats["client_messages"] == {"session.update": 1}
    assert stats["raw_setup"] == session_config(setup, voice="marin")
    effective = stats["setup"]
    assert effective["instructions"] == "あなたは見込み客です。" and effective["voice"] == "marin"
    assert effective["turn_detection"]["silence_duration_ms"] == 900 and effective["turn_detection"]["threshold"] == 0.6
    assert effective["transcription"]["model"] == openai_engine.TRANSCRIPTION_MODEL
    assert effective["functions"] == [{"name": "schedule_meeting", "non_blocking": False}]
    assert stats["raw_setup"]["tools"][0]["parameters"] == MEETING.parameters


# -- turns -------------------------------------------------------------------------------------------------


def test_a_voice_turn_is_transcribed_answered_aloud_and_completed_with_usage(emu):
    """Speech → the user's transcript, 24 kHz model audio with its transcript, TurnComplete with the response's
    total tokens, then a handle holding both messages."""

    async def scenario() -> list[ev.Event]:
        async with session(emu) as upstream:
            await speak(upstream, pcm_silence(300) + pcm_tone(1000) + pcm_silence(900))
            return await until(upstream, ev.TurnComplete)

    events = run(scenario())
    stats = newest_session(emu)
    reply = stats["turns"][0]["reply"]
    assert said(events, "user") == "(speech 1.0 s)" and said(events, "model") == reply
    assert sorted(e.role for e in of(events, ev.Transcription) if e.finished) == ["model", "user"]
    assert sum(len(e.pcm) for e in of(events, ev.ModelAudio)) == stats["audio_out_bytes"] > 0
    total = stats["responses"][0]["usage"]["total_tokens"]
    assert events[-2:] == [ev.TurnComplete({ev.USAGE_TOTAL_TOKENS: total}),
                           ev.Resumption(encode_handle([("user", "(speech 1.0 s)"), ("model", reply)]), True)]
    assert stats["audio_in_ms"] == 2200 and not stats["errors"]


def test_a_typed_turn_is_a_user_message_and_a_response(emu):
    """send_text adds an input_text user message and asks for a response, which is answered aloud."""

    async def scenario() -> list[ev.Event]:
        async with session(emu) as upstream:
            await upstream.send_text("「見積もり」をお願いします")
            return await until(upstream, ev.TurnComplete)

    events = run(scenario())
    stats = newest_session(emu)
    assert stats["history"][0]["text"] == "「見積もり」をお願いします" and stats["text_turns"] == 1
    assert said(events, "model") == stats["turns"][0]["reply"] and of(events, ev.ModelAudio)


def test_a_text_engine_gets_written_answers(emu):
    """With modality text the session asks for text and the answer arrives as ModelText, no audio."""

    async def scenario() -> list[ev.Event]:
        async with session(emu, modality="text") as upstream:
            await upstream.send_text("hello")
            return await until(upstream, ev.TurnComplete)

    events = run(scenario())
    assert "".join(e.text for e in of(events, ev.ModelText)) == newest_session(emu)["turns"][0]["reply"]
    assert not of(events, ev.ModelAudio) and newest_session(emu)["setup"]["output_modalities"] == ["text"]


def test_push_to_talk_commits_at_activity_end_and_asks_for_a_response(emu):
    """Without server VAD: activity start clears, activity end commits the speech and asks for the answer; a
    press without audio sends no commit (no empty-buffer error)."""

    async def scenario() -> list[ev.Event]:
        async with session(emu, PUSH_TO_TALK) as upstream:
            await upstream.send_activity_start()
            await upstream.send_activity_end()
            await upstream.send_activity_start()
            await speak(upstream, pcm_tone(600))
            await upstream.send_activity_end()
            return await until(upstream, ev.TurnComplete)

    events = run(scenario())
    stats = newest_session(emu)
    assert said(events, "user") == "(speech 0.6 s)" and stats["setup"]["turn_detection"] is None
    assert stats["client_messages"]["input_audio_buffer.commit"] == 1 and not stats["errors"]


def test_audio_end_mid_speech_commits_and_answers_and_otherwise_sends_nothing(emu):
    """The microphone stopping while server VAD hears speech ends the turn at once; stopping in silence (or
    twice) commits nothing, so the service never sees an empty commit."""

    async def scenario() -> list[ev.Event]:
        async with session(emu) as upstream:
            await speak(upstream, pcm_silence(300))
            await upstream.send_audio_end()
            await speak(upstream, pcm_tone(600))
            emu.control.wait_for(lambda: newest_open(emu)["server_events"].get("input_audio_buffer.speech_started"),
                                 TIMEOUT_S)
            assert await upstream.receive() == []  # speech_started: nothing plays, nothing to interrupt
            await upstream.send_audio_end()
            events = await until(upstream, ev.TurnComplete)
            await upstream.send_audio_end()
            return events

    events = run(scenario())
    stats = newest_session(emu)
    assert said(events, "user") == "(speech 0.9 s)"  # the whole buffer: the silence before the speech too
    assert stats["client_messages"]["input_audio_buffer.commit"] == 1 and not stats["errors"]


def newest_open(emu) -> dict[str, Any]:
    return emu.control.sessions()[-1]


# -- barge-in ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("played_ms", [500, 60_000])
def test_speech_over_the_playing_answer_interrupts_it_and_playback_truncates_it(emu, played_ms):
    """Speech while the forwarded answer still plays → Interrupted; send_playback truncates that item at what was
    played (clamped to its audio), and the next handle keeps only the part heard."""

    async def scenario() -> tuple[list[ev.Event], list[ev.Event]]:
        async with session(emu) as upstream:
            await upstream.send_text("Tell me more, please")
            first = await until(upstream, ev.TurnComplete)
            await speak(upstream, pcm_tone(300))
            interrupted = await until(upstream, ev.Interrupted)
            await upstream.send_playback(played_ms)
            after = await until(upstream, ev.Resumption)
            await speak(upstream, pcm_silence(900))
            return first, interrupted + after + await until(upstream, ev.TurnComplete)

    first, later = run(scenario())
    stats = newest_session(emu)
    audio_ms = sum(len(e.pcm) for e in of(first, ev.ModelAudio)) // 48
    truncation = stats["truncations"][0]
    assert truncation["item_id"] == stats["turns"][0]["item_id"]
    assert truncation["audio_end_ms"] == min(played_ms, audio_ms) and not stats["errors"]
    reply = said(first, "model")
    heard = decode_handle(of(later, ev.Resumption)[0].handle)[1][1]
    assert reply.startswith(heard) and (len(heard) < len(reply)) == (played_ms < audio_ms)
    assert stats["turns_answered"] == 2


def test_a_typed_turn_over_a_streaming_answer_cancels_it(emu):
    """Typing while the answer is still being generated: Interrupted, the response is cancelled, its late audio
    dropped, and the typed turn is answered."""
    emu.control.reply_speed = 2.0  # paced: the answer is still streaming when the user types

    async def scenario() -> list[ev.Event]:
        async with session(emu) as upstream:
            await upstream.send_text("Tell me a long story")
            events = []
            while len(of(events, ev.ModelAudio)) < 5:
                events += await asyncio.wait_for(upstream.receive(), TIMEOUT_S)
            await upstream.send_text("Stop, please")
            events += await until(upstream, ev.Interrupted)
            tail = await until(upstream, ev.TurnComplete)
            return events + tail + await until(upstream, ev.TurnComplete)

    events = run(scenario())
    stats = newest_session(emu)
    assert [r["status"] for r in stats["responses"]] == ["cancelled", "completed"]
    assert stats["responses"][0]["reason"] == "client_cancelled" and not stats["errors"]
    cut = events.index(ev.Interrupted())
    first_turn_end = events.index(next(e for e in events if isinstance(e, ev.TurnComplete)))
    assert not of(events[cut:first_turn_end], ev.ModelAudio)  # the cancelled answer's late audio is not forwarded
    assert "Stop, please" in said(events[first_turn_end:], "model")


def test_a_typed_turn_while_an_answer_is_being_prepared_replaces_it(emu):
    """Typing after response.created but before any audio cancels that response without an Interrupted (nothing
    was heard) and the typed turn is answered, with no 'active response' error."""
    emu.control.reply_speed = 2.0

    async def scenario() -> list[ev.Event]:
        async with session(emu) as upstream:
            await upstream.send_text("first")
            for _ in ("conversation.item.added", "conversation.item.done", "response.created"):
                assert await asyncio.wait_for(upstream.receive(), TIMEOUT_S) == []
            await upstream.send_text("second")
            return await until(upstream, ev.TurnComplete) + await until(upstream, ev.TurnComplete)

    events = run(scenario())
    stats = newest_session(emu)
    assert [r["status"] for r in stats["responses"]] == ["cancelled", "completed"] and not stats["errors"]
    assert not of(events, ev.Interrupted) and '"second"' in said(events, "model")


# -- tool calls ---------------------------------------------------------------------------------------------


def test_a_function_call_is_answered_silently(emu):
    """A proposal becomes ToolCall(FunctionCall(call id, name, parsed args)); send_tool_result adds its
    function_call_output and asks for no response."""
    setup = LiveSetup(model="gemini-live", system_instruction="You are a buyer.", voice="cedar", vad=Vad(),
                      tools=(MEETING,))

    async def scenario() -> list[ev.Event]:
        async with session(emu, setup) as upstream:
            await upstream.send_text(PROPOSAL)
            events = await until(upstream, ev.Usage)
            call = of(events, ev.ToolCall)[0].calls[0]
            await upstream.send_tool_result(call.id, call.name, {"result": "ok"})
            emu.control.wait_for(lambda: newest_open(emu)["tool_responses"], TIMEOUT_S)
            return events

    events = run(scenario())
    stats = newest_session(emu)
    call = of(events, ev.ToolCall)[0].calls[0]
    assert call.id == stats["tool_calls"][0]["id"] and call.name == "schedule_meeting"
    assert call.args == stats["tool_calls"][0]["args"] and call.args["time"] == "14:00"
    assert stats["tool_responses"][0]["response"] == {"result": "ok"}
    assert stats["client_messages"]["response.create"] == 1 and not of(events, ev.TurnComplete)


# -- resumption by conversation handle -----------------------------------------------------------------------


def test_a_handle_seeds_a_new_session_without_a_response(emu):
    """connect with a handle adds its messages as user input_text / assistant output_text items, asks for no
    response, and the next handle carries them on."""
    turns = [("user", "社内の問い合わせが多くて困っています。"), ("model", "[エミュレーター] どのような問い合わせですか？"),
             ("user", "パスワードの再設定です。")]

    async def scenario() -> list[ev.Event]:
        async with session(emu, dataclasses.replace(SETUP, resume_handle=encode_handle(turns))) as upstream:
            emu.control.wait_for(lambda: len(newest_open(emu)["history"]) == 3, TIMEOUT_S)
            assert not newest_open(emu)["responses"]
            await upstream.send_text("費用はどのくらいですか？")
            return await until(upstream, ev.TurnComplete)

    events = run(scenario())
    stats = newest_session(emu)
    assert [(h["role"], h["text"]) for h in stats["history"][:3]] == [
        ("user", turns[0][1]), ("assistant", turns[1][1]), ("user", turns[2][1])]
    assert [c["type"] for c in stats["conversation"][:3]] == ["message"] * 3
    handle_turns = decode_handle(of(events, ev.Resumption)[-1].handle)
    assert handle_turns[:4] == [*turns, ("user", "費用はどのくらいですか？")] and handle_turns[4][0] == "model"


@pytest.mark.parametrize("role", ["user", "model"])
def test_seed_items_are_items_the_sdk_types_allow(role):
    """The seeded messages are GA conversation items by the SDK's own types (user input_text, assistant
    output_text, a client id of at most 32 characters)."""
    adapter = pydantic.TypeAdapter(ConversationItemParam)
    item = openai_engine._seed_item(9, role, "はい")
    assert list(adapter.validate_python(item, strict=True)["content"]) == item["content"]  # content is lazy
    assert len(item["id"]) <= 32
    swapped = {**item, "role": "assistant" if role == "user" else "user"}  # the other role's part type: refused
    with pytest.raises(pydantic.ValidationError):
        list(adapter.validate_python(swapped, strict=True)["content"])


def test_a_handle_that_is_not_ours_is_refused_before_connecting(emu):
    """A Gemini handle (or garbage) is an unrecoverable 1007; no session is opened."""

    async def scenario() -> None:
        await engine_for(emu).connect(dataclasses.replace(SETUP, resume_handle="CiQ1MjM0"), timeout_s=TIMEOUT_S)

    with pytest.raises(UpstreamClosed) as info:
        run(scenario())
    assert info.value.code == 1007 and not info.value.recoverable and not emu.control.sessions()


# -- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arm, error, code, reason", [
    (lambda c: c.fault_next("quota"), UpstreamQuota, 429, "insufficient_quota"),
    (lambda c: c.fault_next("reject", status=429), UpstreamQuota, 429, "rate_limit_exceeded"),
    (lambda c: c.fault_next("reject", status=401), UpstreamClosed, 401, "HTTP 401 at handshake: invalid_request_error"),
    (lambda c: c.fault_next("reject", status=403), UpstreamClosed, 403, "HTTP 403 at handshake: invalid_request_error"),
    (lambda c: c.fault_next("reject", status=503), UpstreamUnavailable, None, None),
    (lambda c: c.fault_next("close", code=1011, when="setup"), UpstreamClosed, 1011, None),
    (lambda c: c.fault_next("quota", when="setup"), UpstreamQuota, 1011, "insufficient_quota"),
])
def test_refused_handshakes_and_setups_map_to_the_engine_errors(emu, arm, error, code, reason):
    """Quota and rate limits → UpstreamQuota; 401/403 → unrecoverable UpstreamClosed; 5xx → UpstreamUnavailable;
    a close before the session is configured → its close."""
    arm(emu.control)

    async def scenario() -> None:
        await engine_for(emu).connect(SETUP, timeout_s=TIMEOUT_S)

    with pytest.raises(ev.UpstreamError) as info:
        run(scenario())
    assert type(info.value) is error
    if code is not None:
        assert info.value.code == code and (reason is None or info.value.reason == reason)
        assert info.value.recoverable is (code == 1011 and error is UpstreamClosed)


@pytest.mark.parametrize("fault, error, code, recoverable", [
    ({"kind": "close", "code": 1011, "reason": "Internal error"}, UpstreamClosed, 1011, True),
    ({"kind": "close", "code": 1008, "reason": "policy"}, UpstreamClosed, 1008, False),
    ({"kind": "drop"}, UpstreamClosed, 1006, True),
    ({"kind": "quota"}, UpstreamQuota, 1011, False),
])
def test_closes_mid_session_end_receive_with_the_right_recoverable_flag(emu, fault, error, code, recoverable):
    """A 1011 or a TCP drop may be continued by a new session; a policy close cannot; quota is UpstreamQuota."""
    emu.control.fault_next(fault.pop("kind"), when="first_audio", **fault)

    async def scenario() -> None:
        async with session(emu) as upstream:
            await speak(upstream, pcm_silence(100))
            while True:
                await asyncio.wait_for(upstream.receive(), TIMEOUT_S)

    with pytest.raises(UpstreamClosed) as info:
        run(scenario())
    assert type(info.value) is error and info.value.code == code and info.value.recoverable is recoverable


@pytest.mark.parametrize("when", ["setup", "first_audio"])
def test_error_events_are_server_errors_and_the_session_goes_on(emu, when):
    """An error event (during setup too) becomes ServerError; the session still answers."""
    emu.control.fault_next("server_error", when=when)

    async def scenario() -> list[ev.Event]:
        async with session(emu) as upstream:
            await speak(upstream, pcm_silence(100))
            events = await until(upstream, ev.ServerError)
            await upstream.send_text("hello")
            return events + await until(upstream, ev.TurnComplete)

    events = run(scenario())
    assert of(events, ev.ServerError)[0].message.startswith("server_error: The server had an error")


def test_an_unanswered_handshake_times_out_as_unavailable(emu):
    """A handshake that never completes is UpstreamUnavailable within the connect timeout."""
    emu.control.fault_next("hang")

    async def scenario() -> float:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await engine_for(emu).connect(SETUP, timeout_s=0.5)
        return time.monotonic() - started

    assert run(scenario()) < 1.5


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_a_connect_abandoned_mid_setup_closes_its_session(emu, how):
    """A session opened but not yet configured when connect times out (UpstreamUnavailable) or is cancelled is
    closed, not leaked."""
    emu.control.fault_next("delay", ms=3000)  # session.updated comes 3 s late

    async def scenario() -> None:
        connecting = asyncio.ensure_future(engine_for(emu).connect(SETUP, timeout_s=1.0 if how == "timeout" else 10))
        if how == "cancel":
            configuring = lambda: any(s["client_messages"] for s in emu.control.sessions(open_only=True))  # noqa: E731
            await asyncio.get_running_loop().run_in_executor(None, emu.control.wait_for, configuring, TIMEOUT_S)
            connecting.cancel()
        with pytest.raises(UpstreamUnavailable if how == "timeout" else asyncio.CancelledError):
            await connecting

    run(scenario())
    assert newest_session(emu)["close_code"] == 1000  # closed by the engine, not left to the garbage collector


class MutingProxy:
    """A TCP relay to the emulator whose server-to-client direction can be muted (the service stops answering)."""

    def __init__(self, port: int) -> None:
        self._port = port
        self.muted = False
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _serve(self, client_reader, client_writer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        for source, sink, mutable in ((client_reader, writer, False), (reader, client_writer, True)):
            task = asyncio.get_running_loop().create_task(self._pump(source, sink, mutable))
            self._tasks.add(task)

    async def _pump(self, source, sink, mutable: bool) -> None:
        try:
            while data := await source.read(65536):
                if not (mutable and self.muted):
                    sink.write(data)
                    await sink.drain()
        finally:
            sink.close()


@pytest.mark.parametrize("close_timeout_s, bound_s", [(openai_engine.CLOSE_TIMEOUT_S, (0.0, 1.0)), (1.2, (1.1, 3.5))])
def test_close_ends_within_its_timeout_when_openai_stops_answering(emu, close_timeout_s, bound_s):
    """close() gives up on a close handshake OpenAI never answers after about its close timeout (within a second
    by default), and never raises."""

    async def scenario() -> float:
        proxy = MutingProxy(emu.port)
        port = await proxy.start()
        client = AsyncOpenAI(api_key=API_KEY, base_url=f"https://127.0.0.1:{port}/v1", max_retries=0)
        engine = OpenAIEngine(client, model=MODEL, websocket_options={"ssl": emu.client_ssl_context()},
                              close_timeout_s=close_timeout_s)
        upstream = await engine.connect(SETUP, timeout_s=TIMEOUT_S)
        proxy.muted = True
        started = time.monotonic()
        await upstream.close()
        await upstream.close()
        elapsed = time.monotonic() - started
        await proxy.stop()
        return elapsed

    low, high = bound_s
    assert low <= run(scenario()) < high


@pytest.mark.parametrize("code, reason, recoverable", [
    (1000, "", True), (1001, "going away", True), (1006, "", True), (1011, "Internal error", True),
    (1012, "restart", True), (1008, "policy", False), (3000, "invalid_request_error.invalid_api_key", False),
])
def test_which_closes_a_new_session_may_continue(code, reason, recoverable):
    """Normal, abnormal and server-side failures are worth a new session; refusals are not."""
    error = openai_engine._closed(code, reason)
    assert type(error) is UpstreamClosed and error.recoverable is recoverable
