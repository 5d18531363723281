"""The OpenAI Realtime emulator driven through the unmodified ``openai`` SDK: sessions, voice and typed turns,
text replies, seeded history, statistics, bad client events and credentials."""
from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import ssl
import subprocess
import sys
from typing import Any

import pytest
from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from livetalk.emulator import Emulator
from livetalk.emulator.openai.config import apply_update, default_session
from tests.emulator_helpers import (  # noqa: F401  (emu, fresh_control are fixtures)
    API_KEY,
    LIVE_MODEL,
    TIMEOUT_S,
    emu,
    fresh_control,
    http,
    live_config,
    newest_session,
    receive_turn,
    run,
    sdk_client,
)
from tests.openai_emulator_helpers import (
    JAPANESE,
    MODEL,
    SCHEDULE_TOOL,
    audio_of,
    configure,
    connect,
    error_of,
    joined,
    of_type,
    opened,
    pcm_silence,
    pcm_tone,
    recv,
    say,
    send_audio,
    types_of,
    until,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOICE_TURN = [  # what a voice turn with server VAD and transcription looks like, in order
    "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
    "conversation.item.added", "conversation.item.done",
    "conversation.item.input_audio_transcription.delta", "conversation.item.input_audio_transcription.completed",
    "response.created", "rate_limits.updated", "response.output_item.added", "conversation.item.added",
    "response.content_part.added",
]
SPOKEN_END = ["response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done",
              "response.output_item.done", "conversation.item.done", "response.done"]


# -- session ------------------------------------------------------------------------------------


def test_session_created_then_updated_with_the_full_effective_configuration(emu):
    """session.created carries the GA defaults; session.update changes only what it names and is echoed whole."""

    async def scenario() -> tuple[Any, Any]:
        async with connect(emu) as conn:
            created = await opened(conn)
            updated = await configure(conn, instructions=JAPANESE, tools=[SCHEDULE_TOOL], audio={
                "input": {"transcription": {"model": "gpt-4o-transcribe", "language": "ja"},
                          "turn_detection": {"type": "server_vad", "threshold": 0.7, "silence_duration_ms": 400}},
                "output": {"voice": "marin"}})
            return created.session, updated.session

    created, updated = run(scenario())
    assert created.type == "realtime" and created.model == MODEL and created.output_modalities == ["audio"]
    assert created.audio.input.format.type == "audio/pcm" and created.audio.input.format.rate == 24000
    assert created.audio.output.format.rate == 24000 and created.audio.input.transcription is None
    assert created.audio.input.turn_detection.type == "server_vad"
    detection = updated.audio.input.turn_detection
    assert (detection.threshold, detection.silence_duration_ms, detection.prefix_padding_ms) == (0.7, 400, 300)
    assert detection.create_response and detection.interrupt_response
    assert updated.audio.output.voice == "marin" and updated.audio.input.format.rate == 24000
    assert updated.audio.input.transcription.language == "ja" and updated.instructions == JAPANESE
    assert [tool.name for tool in updated.tools] == ["schedule_meeting"]
    stats = emu.control.sessions()[-1]
    assert stats["engine"] == "openai" and stats["credential"] == "bearer" and stats["model"] == MODEL
    assert stats["setup"]["turn_detection"]["threshold"] == 0.7 and stats["setup"]["voice"] == "marin"
    assert stats["setup"]["functions"] == [{"name": "schedule_meeting", "non_blocking": False}]


@pytest.mark.parametrize("session, code, param", [
    ({"modalities": ["audio"], "voice": "alloy", "input_audio_format": "pcm16"},
     "missing_required_parameter", "session.type"),
    ({"type": "realtime", "modalities": ["text"]}, "unknown_parameter", "session.modalities"),
    ({"type": "realtime", "input_audio_format": "pcm16"}, "unknown_parameter", "session.input_audio_format"),
    ({"type": "realtime", "turn_detection": {"type": "server_vad"}}, "unknown_parameter", "session.turn_detection"),
    ({"type": "realtime", "input_audio_transcription": {"model": "whisper-1"}}, "unknown_parameter",
     "session.input_audio_transcription"),
    ({"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}, "invalid_value",
     "session.audio.input.format.rate"),
    ({"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}}},
     "decimal_above_max_value", "session.audio.input.turn_detection.threshold"),
    ({"type": "realtime", "output_modalities": ["audio", "text"]}, "invalid_value", "session.output_modalities"),
    ({"type": "transcription"}, "invalid_value", "session.type"),
    ({"type": "realtime", "tools": [{"type": "function", "description": "no name"}]}, "missing_required_parameter",
     "session.tools[0].name"),
])
def test_session_update_the_ga_service_refuses_gets_an_error_event_and_changes_nothing(emu, session, code, param):
    """Beta-shaped or invalid updates are answered with the service's error event; the session keeps its settings."""

    async def scenario() -> tuple[Any, Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await conn.send({"type": "session.update", "event_id": "evt_client_1", "session": session})
            error = await recv(conn)
            return error, await configure(conn)  # the session still answers

    error, updated = run(scenario())
    body = error_of(error)
    assert (body["type"], body["code"], body["param"], body["event_id"]) == (
        "invalid_request_error", code, param, "evt_client_1")
    assert body["message"]
    assert updated.session.audio.input.format.rate == 24000 and updated.session.output_modalities == ["audio"]
    assert emu.control.sessions()[-1]["errors"] == [body]


def test_the_voice_is_fixed_once_the_model_has_spoken(emu):
    """Before any audio the voice may change; after a spoken reply a different voice is refused (the same is not)."""

    async def scenario() -> tuple[Any, Any, Any]:
        async with connect(emu) as conn:
            await opened(conn)
            early = await configure(conn, audio={"output": {"voice": "cedar"}})
            await say(conn, "hi")
            await until(conn, "response.done")
            await conn.session.update(session={"type": "realtime", "audio": {"output": {"voice": "marin"}}})
            refused = await recv(conn)
            same = await configure(conn, audio={"output": {"voice": "cedar"}})
            return early, refused, same

    early, refused, same = run(scenario())
    assert early.session.audio.output.voice == "cedar" and same.session.audio.output.voice == "cedar"
    assert error_of(refused)["code"] == "cannot_update_voice"
    assert error_of(refused)["param"] == "session.audio.output.voice"


# -- voice turns --------------------------------------------------------------------------------


@pytest.mark.parametrize("instructions, heard, tag", [
    ("You are a buyer.", "(speech 1.0 s)", "[emulator]"),
    (JAPANESE, "（音声 1.0 秒）", "[エミュレーター]"),
])
def test_voice_turn_with_server_vad_is_transcribed_and_answered_with_24khz_audio(emu, instructions, heard, tag):
    """Half a second of silence, a second of tone, silence: VAD events with their times, the transcription, paced
    24 kHz speech with its transcript, and response.done with usage."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, instructions=instructions)
            await send_audio(conn, pcm_silence(500) + pcm_tone(1000) + pcm_silence(700))
            return await until(conn, "response.done")

    events = run(scenario())
    names = types_of(events)
    assert names[: len(VOICE_TURN)] == VOICE_TURN
    assert names[-len(SPOKEN_END):] == SPOKEN_END
    started, stopped = events[0], events[1]
    assert started.audio_start_ms == 500 - 300  # speech at 500 ms, less the 300 ms prefix padding
    assert stopped.audio_end_ms == 500 + 1000 + 500  # speech end plus the 500 ms silence
    user_item = started.item_id
    assert stopped.item_id == user_item and of_type(events, "input_audio_buffer.committed")[0].item_id == user_item
    completed = of_type(events, "conversation.item.input_audio_transcription.completed")[0]
    assert completed.transcript == heard and completed.item_id == user_item
    assert joined(events, "conversation.item.input_audio_transcription.delta") == heard
    transcript = of_type(events, "response.output_audio_transcript.done")[0].transcript
    assert transcript.startswith(tag) and joined(events, "response.output_audio_transcript.delta") == transcript
    seconds = len(audio_of(events)) / 48000
    assert 0.05 * len(transcript) < seconds < 0.15 * len(transcript)
    done = events[-1].response
    assert done.status == "completed" and done.output[0].content[0].transcript == transcript
    assert done.output[0].role == "assistant" and done.output[0].status == "completed"
    usage = done.usage
    assert usage.input_token_details.audio_tokens == 10  # one second of user audio
    assert usage.output_token_details.audio_tokens == math.ceil(seconds * 20) and usage.output_token_details.text_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert of_type(events, "conversation.item.added")[1].previous_item_id == user_item


@pytest.mark.parametrize("detection, silence_ms", [
    ({"type": "semantic_vad", "eagerness": "high"}, 300),
    ({"type": "server_vad", "silence_duration_ms": 900, "prefix_padding_ms": 0}, 900),
])
def test_turn_detection_settings_shape_the_turn(emu, detection, silence_ms):
    """The configured end-of-turn silence (semantic_vad: by eagerness) decides audio_end_ms."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, audio={"input": {"turn_detection": detection}})
            await send_audio(conn, pcm_tone(400) + pcm_silence(1000))
            return await until(conn, "response.done")

    events = run(scenario())
    started, stopped = of_type(events, "input_audio_buffer.speech_started")[0], events[1]
    assert started.audio_start_ms == 0 and stopped.audio_end_ms == 400 + silence_ms
    assert events[-1].response.status == "completed"


def test_statistics_count_exactly_what_the_client_received(emu):
    """The session record's per-type server event counts equal what the SDK received; audio in is measured."""

    async def scenario() -> dict[str, int]:
        async with connect(emu) as conn:
            received = [await opened(conn)]
            received += [await configure(conn)]
            await send_audio(conn, pcm_tone(600) + pcm_silence(600))
            received += await until(conn, "response.done")
        counts: dict[str, int] = {}
        for event in received:
            counts[event.type] = counts.get(event.type, 0) + 1
        return counts

    counts = run(scenario())
    stats = newest_session(emu)
    assert stats["server_events"] == counts and stats["messages_out"] == sum(counts.values())
    assert stats["audio_rate_hz"] == 24000 and stats["audio_in_ms"] == 1200.0 and stats["audio_in_dbfs"] < -10
    assert stats["client_messages"]["input_audio_buffer.append"] == stats["audio_chunks"] == 30
    assert stats["turns"][0]["kind"] == "voice" and stats["turns"][0]["input"] == "(speech 0.6 s)"
    assert stats["turns_answered"] == 1 and stats["close_code"] == 1000
    assert [(item["type"], item["role"]) for item in stats["conversation"]] == [("message", "user"),
                                                                                ("message", "assistant")]


def test_manual_commit_without_turn_detection_gives_no_response_until_asked(emu):
    """With turn_detection null: no VAD events; commit makes the user item; response.create answers it."""

    async def scenario() -> tuple[list[Any], list[Any]]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, audio={"input": {"turn_detection": None,
                                                   "transcription": {"model": "gpt-4o-transcribe"}}})
            await send_audio(conn, pcm_tone(800) + pcm_silence(800))
            await conn.input_audio_buffer.commit()
            committed = await until(conn, "conversation.item.input_audio_transcription.completed")
            await conn.response.create()
            return committed, await until(conn, "response.done")

    committed, answered = run(scenario())
    assert types_of(committed) == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
                                   "conversation.item.input_audio_transcription.delta",
                                   "conversation.item.input_audio_transcription.completed"]
    assert committed[-1].transcript == "(speech 1.6 s)"  # the whole buffer, not just the speech
    assert answered[-1].response.status == "completed"
    transcript = of_type(answered, "response.output_audio_transcript.done")[0].transcript
    assert "1.6 s of speech" in transcript


def test_clear_discards_the_buffer(emu):
    """input_audio_buffer.clear answers cleared; a commit after it finds the buffer empty."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, audio={"input": {"turn_detection": None}})
            await send_audio(conn, pcm_tone(500))
            await conn.input_audio_buffer.clear()
            await conn.input_audio_buffer.commit()
            return [await recv(conn), await recv(conn)]

    cleared, error = run(scenario())
    assert cleared.type == "input_audio_buffer.cleared"
    assert error_of(error)["code"] == "input_audio_buffer_commit_empty"


# -- typed turns and text -----------------------------------------------------------------------


def test_typed_turns_are_answered_in_turn_and_quote_the_user(emu):
    """A user text item is added (added, done) without a reply; response.create answers it; replies are numbered."""

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            await say(conn, "Hello there", respond=False)
            added = [await recv(conn), await recv(conn)]
            await conn.response.create()
            first = await until(conn, "response.done")
            await say(conn, "What does it cost?")
            return added, first, await until(conn, "response.done")

    added, first, second = run(scenario())
    assert [event.type for event in added] == ["conversation.item.added", "conversation.item.done"]
    assert added[0].item.content[0].text == "Hello there" and added[0].item.role == "user"
    assert first[0].type == "response.created" and first[0].response.status == "in_progress"
    assert of_type(first, "response.output_audio_transcript.done")[0].transcript == \
        '[emulator] I heard "Hello there". Please go on.'
    assert types_of(second[:3]) == ["conversation.item.added", "conversation.item.done", "response.created"]
    assert of_type(second, "response.output_audio_transcript.done")[0].transcript == \
        '[emulator] Thanks, that was "What does it cost?".'
    stats = emu.control.sessions()[-1]
    assert stats["text_turns"] == 2 and [turn["input"] for turn in stats["turns"]] == ["Hello there",
                                                                                      "What does it cost?"]


def test_text_modality_writes_the_reply_instead_of_speaking_it(emu):
    """output_modalities ["text"]: output_text deltas and done, an output_text part, no audio, no audio tokens."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, output_modalities=["text"])
            await say(conn, "Hi")
            return await until(conn, "response.done")

    events = run(scenario())
    assert types_of(events) == [
        "conversation.item.added", "conversation.item.done", "response.created", "rate_limits.updated",
        "response.output_item.added", "conversation.item.added", "response.content_part.added", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "conversation.item.done", "response.done"]
    text = of_type(events, "response.output_text.done")[0].text
    assert text == '[emulator] I heard "Hi". Please go on.' and joined(events, "response.output_text.delta") == text
    assert of_type(events, "response.content_part.added")[0].part.type == "text"
    done = events[-1].response
    assert done.output_modalities == ["text"] and done.output[0].content[0].type == "output_text"
    assert done.usage.output_token_details.audio_tokens == 0 and not audio_of(events)


def test_response_create_options_override_the_session_for_one_response(emu):
    """A response.create asking for text and echoing metadata gets both; the next response speaks again."""

    async def scenario() -> tuple[list[Any], list[Any]]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            await say(conn, "one", respond=False)
            await conn.response.create(response={"output_modalities": ["text"], "metadata": {"topic": "x"}})
            written = await until(conn, "response.done")
            await say(conn, "two")
            return written, await until(conn, "response.done")

    written, spoken = run(scenario())
    assert written[-1].response.metadata == {"topic": "x"} and of_type(written, "response.output_text.done")
    assert audio_of(spoken) and spoken[-1].response.output_modalities == ["audio"]


def test_seeded_history_is_the_context_of_the_next_response(emu):
    """User and assistant messages created by the client form the history: the reply continues its numbering."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            history = [("user", "input_text", "Hi, I am Ken."), ("assistant", "output_text", "[emulator] Hello Ken."),
                       ("user", "input_text", "Pricing, please.")]
            for role, kind, text in history:
                await conn.conversation.item.create(item={"type": "message", "role": role,
                                                          "content": [{"type": kind, "text": text}]})
                await until(conn, "conversation.item.done")
            await conn.response.create()
            return await until(conn, "response.done")

    events = run(scenario())
    said = of_type(events, "response.output_audio_transcript.done")[0].transcript
    assert said == '[emulator] Thanks, that was "Pricing, please.".'  # reply number 1, not 0
    stats = emu.control.sessions()[-1]
    assert [(entry["role"], entry["text"]) for entry in stats["history"]] == [
        ("user", "Hi, I am Ken."), ("assistant", "[emulator] Hello Ken."), ("user", "Pricing, please.")]
    assert [item["role"] for item in stats["conversation"]] == ["user", "assistant", "user", "assistant"]
    assert events[-1].response.usage.input_token_details.text_tokens > 10


def test_items_can_be_inserted_retrieved_and_deleted(emu):
    """previous_item_id places an item (``root``: first); retrieve returns it; delete removes it."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            for text, after in (("second", None), ("first", "root")):
                await conn.conversation.item.create(
                    item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
                    **({"previous_item_id": after} if after else {}))
            added = [event for event in [await recv(conn) for _ in range(4)] if event.type.endswith("added")]
            await conn.conversation.item.retrieve(item_id=added[1].item.id)
            await conn.conversation.item.delete(item_id=added[0].item.id)
            return [*added, await recv(conn), await recv(conn)]

    second, first, retrieved, deleted = run(scenario())
    assert second.previous_item_id is None and first.previous_item_id is None
    assert retrieved.type == "conversation.item.retrieved" and retrieved.item.content[0].text == "first"
    assert deleted.type == "conversation.item.deleted" and deleted.item_id == second.item.id
    assert [item["text"] for item in emu.control.sessions()[-1]["conversation"]] == ["first"]


def test_a_seeded_function_call_and_its_output_are_accepted(emu):
    """A function_call item and its function_call_output from the client (a restored conversation) are added."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await conn.conversation.item.create(item={"type": "function_call", "call_id": "call_old",
                                                      "name": "schedule_meeting", "arguments": "{}"})
            await conn.conversation.item.create(item={"type": "function_call_output", "call_id": "call_old",
                                                      "output": '{"ok": true}'})
            return [await recv(conn) for _ in range(4)]

    events = run(scenario())
    assert types_of(events) == ["conversation.item.added", "conversation.item.done"] * 2
    assert events[2].item.type == "function_call_output" and events[2].previous_item_id == events[0].item.id
    stats = newest_session(emu)
    assert stats["errors"] == [] and stats["tool_calls"] == []
    assert stats["tool_responses"] == [{"id": "call_old", "name": "schedule_meeting", "response": {"ok": True},
                                        "scheduling": None}]


# -- echo mode ----------------------------------------------------------------------------------

ECHO_START = ["response.created", "rate_limits.updated", "response.output_item.added", "conversation.item.added",
              "response.content_part.added", "response.output_audio.delta"]


def tagged(n: int) -> list[bytes]:
    """``n`` loud 20 ms chunks at 24 kHz (960 bytes), each starting with its own 8-byte tag."""
    return [i.to_bytes(8, "little") + pcm_tone(20)[8:] for i in range(n)]


def test_echo_mode_answers_each_append_at_once_with_the_same_bytes(emu):
    """In echo mode every append comes straight back, byte for byte, as one audio delta of one echo response,
    which completes once the appends pause; the next append opens a new one. No VAD, no transcripts."""
    emu.control.set_mode("echo", count=1)
    sent = tagged(25)

    async def scenario() -> tuple[list[Any], list[Any]]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            for piece in sent:
                await conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
            first = await until(conn, "response.done")
            await conn.input_audio_buffer.append(audio=base64.b64encode(sent[0]).decode())
            return first, await until(conn, "response.done")

    first, second = run(scenario())
    deltas = of_type(first, "response.output_audio.delta")
    assert [base64.b64decode(delta.delta) for delta in deltas] == sent
    assert types_of(first) == [*ECHO_START, *SPOKEN_END]
    assert types_of(second) == [*ECHO_START, *SPOKEN_END]
    done = first[-1].response
    assert done.status == "completed" and done.output[0].role == "assistant"
    assert done.usage.output_token_details.audio_tokens == math.ceil(25 * 0.020 * 20)
    assert {delta.response_id for delta in deltas} == {done.id} != {second[-1].response.id}
    stats = newest_session(emu)
    assert stats["mode"] == "echo" and [r["trigger"] for r in stats["responses"]] == ["echo", "echo"]
    assert stats["audio_out_bytes"] == 26 * 960 and stats["interruptions"] == 0
    assert emu.control.take_mode().value == "converse"  # the queued mode was for one session only


def test_echo_trigger_switches_one_session_to_echo_and_back(emu):
    """'!emu echo' makes the session echo appends (the response.create after it is not answered);
    '!emu converse' completes the echo response at once and brings server VAD and spoken replies back."""

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            await say(conn, "!emu echo")
            await until(conn, "conversation.item.done")
            await conn.input_audio_buffer.append(audio=base64.b64encode(b"TAG12345" + bytes(952)).decode())
            echoed = await until(conn, "response.output_audio.delta")
            await say(conn, "!emu converse", respond=False)
            ended = await until(conn, "response.done")
            await send_audio(conn, pcm_tone(600) + pcm_silence(700))
            return echoed, ended, await until(conn, "response.done")

    echoed, ended, answered = run(scenario())
    assert types_of(echoed) == ECHO_START and base64.b64decode(echoed[-1].delta) == b"TAG12345" + bytes(952)
    assert types_of(ended)[-len(SPOKEN_END):] == SPOKEN_END and ended[-1].response.status == "completed"
    assert answered[0].type == "input_audio_buffer.speech_started"
    assert of_type(answered, "response.output_audio_transcript.done")[0].transcript.startswith("[emulator]")
    assert newest_session(emu)["mode"] == "converse"


# -- bad client events --------------------------------------------------------------------------


@pytest.mark.parametrize("frame, code, param", [
    ("not json", "invalid_json", None),
    ("[1, 2]", "invalid_json", None),
    ({}, "missing_required_parameter", "type"),
    ({"type": 7}, "invalid_type", "type"),
    ({"type": "session.delete"}, "invalid_value", "type"),
    ({"type": "response.create", "surprise": 1}, "unknown_parameter", "surprise"),
    ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
    ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_type", "audio"),
    ({"type": "input_audio_buffer.append", "audio": "@@not base64@@"}, "invalid_value", "audio"),
    ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
    ({"type": "conversation.item.create", "item": "hi"}, "invalid_type", "item"),
    ({"type": "conversation.item.create", "item": {"role": "user", "content": []}}, "missing_required_parameter",
     "item.type"),
    ({"type": "conversation.item.create", "item": {"type": "message", "role": "robot", "content": []}},
     "invalid_value", "item.role"),
    ({"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",
                                                   "content": [{"type": "input_text", "text": "x"}]}},
     "invalid_value", "item.content[0].type"),
    ({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                   "content": [{"type": "input_text", "text": 3}]}},
     "invalid_type", "item.content[0].text"),
    ({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_nope",
                                                   "output": "{}"}}, "invalid_value", "item.call_id"),
    ({"type": "conversation.item.create", "previous_item_id": "item_nope",
      "item": {"type": "message", "role": "user", "content": []}}, "invalid_value", "previous_item_id"),
    ({"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0, "audio_end_ms": 10},
     "invalid_value", "item_id"),
    ({"type": "conversation.item.truncate", "item_id": "x", "content_index": -1, "audio_end_ms": 10},
     "invalid_type", "content_index"),
    ({"type": "conversation.item.delete", "item_id": "item_nope"}, "invalid_value", "item_id"),
    ({"type": "conversation.item.retrieve"}, "missing_required_parameter", "item_id"),
    ({"type": "response.cancel"}, "response_cancel_not_active", None),
    ({"type": "response.create", "response": {"modalities": ["text"]}}, "unknown_parameter", "response.modalities"),
    ({"type": "session.update", "session": None}, "missing_required_parameter", "session"),
])
def test_bad_client_events_get_an_error_event_and_the_session_goes_on(emu, frame, code, param):
    """Whatever bytes a client sends, the answer is an error event of the service's shape, never a close."""

    async def scenario() -> tuple[Any, Any]:
        async with connect(emu) as conn:
            await opened(conn)
            if isinstance(frame, dict):
                await conn.send_raw(json.dumps({**frame, "event_id": "evt_bad"}))
            else:
                await conn.send_raw(frame)
            error = await recv(conn)
            await say(conn, "still there?")
            return error, (await until(conn, "response.done"))[-1]

    error, done = run(scenario())
    body = error_of(error)
    assert (body["type"], body["code"], body["param"]) == ("invalid_request_error", code, param)
    assert body["event_id"] == ("evt_bad" if isinstance(frame, dict) else None) and body["message"]
    assert done.response.status == "completed"
    stats = newest_session(emu)
    assert stats["close_code"] == 1000 and stats["errors"] == [body]


# -- credentials and endpoints ------------------------------------------------------------------


@pytest.mark.parametrize("api_key, headers, model, code", [
    ("right-key", {"Authorization": "Basic cmlnaHQta2V5"}, MODEL, "missing_api_key"),  # no Bearer key
    ("wrong-key", {}, MODEL, "invalid_api_key"),
    ("right-key", {}, None, "missing_required_parameter"),
])
def test_refused_sessions_get_an_error_event_then_a_3000_close(api_key, headers, model, code):
    """No key, a key other than the configured one, or no model: an error event, then close 3000 <type>.<code>."""

    async def scenario(emulator: Emulator) -> tuple[Any, ConnectionClosedError]:
        async with connect(emulator, model=model, api_key=api_key, headers=headers) as conn:
            error = await recv(conn)
            with pytest.raises(ConnectionClosedError) as closed:
                await recv(conn)
            return error, closed.value

    with Emulator(api_key="right-key", reply_speed=0) as emulator:
        error, closed = run(scenario(emulator))
        stats = emulator.control.wait_sessions(1, TIMEOUT_S, closed=True)[0]
    assert error_of(error)["code"] == code
    assert closed.rcvd.code == 3000 and closed.rcvd.reason == f"invalid_request_error.{code}"
    assert stats["close_code"] == 3000 and stats["credential"] == ("none" if headers else "bearer")


def test_stopping_the_emulator_closes_realtime_sessions_with_1001():
    """Emulator.stop() ends an open Realtime session at once with 1001 (going away)."""
    emulator = Emulator(reply_speed=0).start()

    async def scenario() -> ConnectionClosedOK:
        async with connect(emulator) as conn:
            await opened(conn)
            stopping = asyncio.get_running_loop().run_in_executor(None, emulator.stop)
            with pytest.raises(ConnectionClosedOK) as closed:
                await recv(conn)
            await stopping
            return closed.value

    try:
        closed = run(scenario())
    finally:
        emulator.stop()
    assert closed.rcvd.code == 1001 and not emulator.running


def test_the_sdk_finds_the_emulator_through_environment_variables_alone(emu, monkeypatch):
    """OPENAI_BASE_URL and SSL_CERT_FILE (from emu.env()) are all the SDK needs."""
    for name, value in emu.env().items():
        monkeypatch.setenv(name, value)

    async def scenario() -> Any:
        async with AsyncOpenAI(api_key=API_KEY).realtime.connect(model=MODEL) as conn:
            return await opened(conn)

    assert run(scenario()).session.model == MODEL
    assert emu.env()["OPENAI_BASE_URL"] == emu.base_url + "/v1"


def test_one_port_serves_gemini_live_and_openai_realtime_side_by_side(emu):
    """A Gemini Live session and an OpenAI Realtime session run at once; each gets its own kind of answer."""
    gemini = sdk_client(emu)

    async def openai_turn() -> str:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            await say(conn, "hello openai")
            events = await until(conn, "response.done")
            return of_type(events, "response.output_audio_transcript.done")[0].transcript

    async def gemini_turn() -> bool:
        async with gemini.aio.live.connect(model=LIVE_MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="hello gemini")
            messages = await receive_turn(session)
            return bool(messages[-1].server_content.turn_complete)

    async def both() -> tuple[str, bool]:
        return await asyncio.gather(openai_turn(), gemini_turn())

    said, completed = run(both())
    assert said == '[emulator] I heard "hello openai". Please go on.' and completed
    # A session of the test before may still be closing: count engines, not sessions.
    engines = {stats["engine"] for stats in emu.control.wait_sessions(2, TIMEOUT_S, closed=True)}
    assert engines == {"gemini", "openai"}


def test_command_line_emulator_serves_openai_realtime_and_prints_its_base_url():
    """`python -m livetalk.emulator` prints an OPENAI_BASE_URL export, and the SDK reaches Realtime through it."""
    process = subprocess.Popen([sys.executable, "-m", "livetalk.emulator", "--port", "0", "--log-level", "WARNING"],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        lines = [process.stdout.readline().strip() for _ in range(6)]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))
        assert exports["OPENAI_BASE_URL"] == lines[0].removeprefix("base_url: ") + "/v1"

        async def scenario() -> Any:
            client = AsyncOpenAI(api_key=API_KEY, base_url=exports["OPENAI_BASE_URL"])
            context = ssl.create_default_context(cafile=exports["SSL_CERT_FILE"])
            async with client.realtime.connect(model=MODEL, websocket_connection_options={"ssl": context}) as conn:
                return await opened(conn)

        assert run(scenario()).session.type == "realtime"
    finally:
        process.terminate()
        process.wait(TIMEOUT_S)
        process.stdout.close()


def test_plain_http_on_the_realtime_path_is_not_found(emu):
    """A GET without an upgrade on /v1/realtime is a REST 404, not a crash."""
    status, body = http(emu, "GET", "/v1/realtime?model=x")
    assert status == 404 and body["error"]["code"] == 404


# -- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize("update, path, expected", [
    ({"audio": {"output": {"voice": "marin"}}}, ("audio", "input", "transcription"), {"model": "whisper-1"}),
    ({"audio": {"output": {"voice": "marin"}}}, ("audio", "output", "voice"), "marin"),
    ({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.8}}}},
     ("audio", "input", "turn_detection"),
     {"type": "server_vad", "threshold": 0.8, "prefix_padding_ms": 300, "silence_duration_ms": 500,
      "idle_timeout_ms": None, "create_response": True, "interrupt_response": True}),
    ({"audio": {"input": {"turn_detection": None}}}, ("audio", "input", "turn_detection"), None),
    ({"tools": []}, ("tools",), []),
    ({"instructions": ""}, ("instructions",), ""),
    ({"output_modalities": ["text"]}, ("audio", "output", "format"), {"type": "audio/pcm", "rate": 24000}),
])
def test_session_updates_merge_audio_key_by_key_and_replace_everything_else(update, path, expected):
    """Only named keys change: audio objects merge, turn_detection gets the service defaults, null and [] clear."""
    session = default_session(session_id="sess_x", model=MODEL, expires_at=0)
    session = apply_update(session, {"type": "realtime", "tools": [SCHEDULE_TOOL], "instructions": "Be kind.",
                                     "audio": {"input": {"transcription": {"model": "whisper-1"}}}},
                           audio_sent=False)
    merged = apply_update(session, {"type": "realtime", **update}, audio_sent=False)
    value: Any = merged
    for key in path:
        value = value[key]
    assert value == expected
