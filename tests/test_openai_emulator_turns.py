"""The OpenAI Realtime emulator's turn-taking through the unmodified ``openai`` SDK: barge-in, truncation,
response.cancel, schedule_meeting function calls and rate limits."""
from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from tests.emulator_helpers import emu, fresh_control, newest_session, run  # noqa: F401  (fixtures)
from tests.openai_emulator_helpers import (
    JAPANESE,
    SCHEDULE_TOOL,
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
    until_count,
)

ENGLISH_PROPOSAL = "How about a demo on December 3 at 2 pm?"
JAPANESE_PROPOSAL = "12月3日の14時にデモはいかがでしょうか"
CALL_RESPONSE = ["response.created", "rate_limits.updated", "response.output_item.added", "conversation.item.added",
                 "response.function_call_arguments.delta", "response.function_call_arguments.done",
                 "response.output_item.done", "conversation.item.done", "response.done"]


def next_december_3() -> str:
    """The date the emulator proposes for "December 3": this year's, or next year's once it has passed."""
    today = datetime.date.today()
    year = today.year if datetime.date(today.year, 12, 3) >= today else today.year + 1
    return f"{year}-12-03"


# -- barge-in, truncation, cancel ---------------------------------------------------------------


def test_speech_during_a_reply_cancels_it_and_truncate_cuts_the_transcript_to_what_was_heard(emu):
    """Barge-in: speech_started, the reply ends cancelled (turn_detected) with what was sent; truncating it to
    500 ms keeps the transcript that was heard and is recorded; the new speech is answered."""
    emu.control.reply_speed = 2.0  # paced: the reply is still playing when the user speaks

    async def scenario() -> tuple[list[Any], list[Any], list[Any], Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            await say(conn, "Tell me more, please")
            head = await until_count(conn, "response.output_audio.delta", 15)  # 600 ms of reply audio
            await send_audio(conn, pcm_tone(300) + pcm_silence(600))
            cancelled = await until(conn, "response.done")
            item_id = cancelled[-1].response.output[0].id
            await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=500)
            later = await until(conn, "conversation.item.truncated")
            later += await until(conn, "response.done")
            await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=60_000)
            return head, cancelled, later, await recv(conn)

    head, cancelled, later, too_long = run(scenario())
    assert "input_audio_buffer.speech_started" in types_of(cancelled)
    done = cancelled[-1].response
    assert done.status == "cancelled" and done.status_details.reason == "turn_detected"
    partial = joined(head + cancelled, "response.output_audio_transcript.delta")
    assert done.output[0].status == "incomplete" and done.output[0].content[0].transcript == partial
    said = '[emulator] I heard "Tell me more, please". Please go on.'
    assert said.startswith(partial) and len(partial) < len(said)
    truncated = of_type(later, "conversation.item.truncated")[0]
    assert (truncated.item_id, truncated.content_index, truncated.audio_end_ms) == (done.output[0].id, 0, 500)
    assert later[-1].response.status == "completed"
    assert of_type(later, "response.output_audio_transcript.done")[-1].transcript.endswith("0.3 s of speech.")
    assert error_of(too_long)["param"] == "audio_end_ms"
    stats = newest_session(emu)
    heard = "[emula"  # '[' sounds 120 ms, each letter 80 ms: six characters start before 500 ms
    assert stats["truncations"] == [{"item_id": done.output[0].id, "content_index": 0, "audio_end_ms": 500,
                                     "audio_ms": stats["truncations"][0]["audio_ms"], "said": said, "heard": heard}]
    assert stats["truncations"][0]["audio_ms"] >= 600
    assert stats["interruptions"] == 1 and stats["turns"][0]["interrupted"] and stats["turns"][0]["heard"] == heard
    assert stats["conversation"][1]["text"] == heard and stats["responses"][0]["reason"] == "turn_detected"


def test_with_interrupt_response_off_speech_does_not_cut_the_reply(emu):
    """interrupt_response false: speech is still detected, the reply finishes, and no new response starts over it."""
    emu.control.reply_speed = 2.0

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, audio={"input": {"turn_detection": {"type": "server_vad",
                                                                      "interrupt_response": False}}})
            await say(conn, "hi")
            await until_count(conn, "response.output_audio.delta", 3)
            await send_audio(conn, pcm_tone(300) + pcm_silence(600))
            return await until(conn, "response.done")

    events = run(scenario())
    assert types_of(events).index("input_audio_buffer.speech_stopped") < len(events) - 1
    assert events[-1].response.status == "completed" and not of_type(events, "response.created")
    assert newest_session(emu)["interruptions"] == 0


def test_truncating_the_reply_still_playing_cancels_it_first(emu):
    """A truncate of the item being spoken ends its response (client_cancelled), then truncates it."""
    emu.control.reply_speed = 2.0

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await say(conn, "hello")
            events = await until_count(conn, "response.output_audio.delta", 10)
            item_id = of_type(events, "response.output_item.added")[0].item.id
            await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=200)
            return events + await until(conn, "conversation.item.truncated")

    events = run(scenario())
    done = of_type(events, "response.done")[0].response
    assert done.status == "cancelled" and done.status_details.reason == "client_cancelled"
    assert types_of(events)[-2:] == ["response.done", "conversation.item.truncated"]
    assert newest_session(emu)["truncations"][0]["heard"] == "[e"  # 'e' starts at 120 ms, 'm' only at 200 ms


def test_response_cancel_stops_the_reply_and_refuses_what_cannot_be_done(emu):
    """response.create during a reply is refused; response.cancel ends it cancelled (client_cancelled); a second
    cancel finds nothing to cancel."""
    emu.control.reply_speed = 2.0

    async def scenario() -> tuple[list[Any], Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            await say(conn, "hello")
            events = await until_count(conn, "response.output_audio.delta", 2)
            await conn.response.create()
            await conn.response.cancel(response_id="resp_other")
            await conn.response.cancel()
            events += await until(conn, "response.done")
            await conn.response.cancel()
            return events, await recv(conn)

    events, second = run(scenario())
    refused = [error_of(event)["code"] for event in of_type(events, "error")]
    assert refused == ["conversation_already_has_active_response", "response_cancel_not_active"]
    done = events[-1].response
    assert done.status == "cancelled" and done.status_details.reason == "client_cancelled"
    assert of_type(events, "response.output_item.done")[0].item.status == "incomplete"
    assert error_of(second)["code"] == "response_cancel_not_active"
    assert newest_session(emu)["interruptions"] == 0


# -- function calls -----------------------------------------------------------------------------


@pytest.mark.parametrize("instructions, proposal, confirmation", [
    (JAPANESE, JAPANESE_PROPOSAL, "[エミュレーター] では12月3日の14時にお待ちしております。"),
    ("You are a buyer.", ENGLISH_PROPOSAL, "[emulator] Great, December 3 at 2 pm works for me."),
])
def test_a_proposed_meeting_is_a_function_call_whose_output_is_confirmed_aloud(emu, instructions, proposal,
                                                                                  confirmation):
    """With schedule_meeting declared, a typed proposal gets a function_call item (call_id, JSON arguments); its
    function_call_output and a response.create get a spoken confirmation."""

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, instructions=instructions, tools=[SCHEDULE_TOOL])
            await say(conn, proposal)
            call = (await until(conn, "response.done"))[2:]
            call_id = of_type(call, "response.function_call_arguments.done")[0].call_id
            await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call_id,
                                                      "output": json.dumps({"ok": True, "event_id": "ev1"})})
            output = await until(conn, "conversation.item.done")
            await conn.response.create()
            return call, output, await until(conn, "response.done")

    call, output, confirmed = run(scenario())
    assert types_of(call) == CALL_RESPONSE
    arguments = of_type(call, "response.function_call_arguments.done")[0]
    assert arguments.name == "schedule_meeting"
    assert json.loads(arguments.arguments) == {"date": next_december_3(), "time": "14:00", "topic": "demo"}
    assert joined(call, "response.function_call_arguments.delta") == arguments.arguments
    item = call[-1].response.output[0]
    assert (item.type, item.call_id, item.status, item.arguments) == (
        "function_call", arguments.call_id, "completed", arguments.arguments)
    assert output[0].item.type == "function_call_output" and output[0].previous_item_id == item.id
    assert of_type(confirmed, "response.output_audio_transcript.done")[0].transcript == confirmation
    stats = newest_session(emu)
    assert [(call["name"], call["status"], call["response"]) for call in stats["tool_calls"]] == [
        ("schedule_meeting", "answered", {"ok": True, "event_id": "ev1"})]
    assert [turn["kind"] for turn in stats["turns"]] == ["text", "tool"]
    assert stats["turns"][0]["tool_call"] == arguments.call_id and stats["turns_answered"] == 1


def test_a_spoken_proposal_heard_through_the_trigger_is_a_function_call(emu):
    """`!emu hear <words>` typed (its response.create gets no answer) makes the next spoken turn those words."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, tools=[SCHEDULE_TOOL])
            await say(conn, f"!emu hear {ENGLISH_PROPOSAL}")
            await send_audio(conn, pcm_tone(800) + pcm_silence(600))
            return await until(conn, "response.done")

    events = run(scenario())
    assert types_of(events)[:3] == ["conversation.item.added", "conversation.item.done",
                                    "input_audio_buffer.speech_started"]  # nothing answered the trigger
    heard = of_type(events, "conversation.item.input_audio_transcription.completed")[0].transcript
    assert heard == ENGLISH_PROPOSAL
    arguments = json.loads(of_type(events, "response.function_call_arguments.done")[0].arguments)
    assert arguments == {"date": next_december_3(), "time": "14:00", "topic": "demo"}
    stats = newest_session(emu)
    assert stats["client_messages"]["trigger"] == 1 and stats["text_turns"] == 0


@pytest.mark.parametrize("output, tool_choice, expected", [
    ('{"error": "the calendar is full"}', "auto",
     "[emulator] Sorry, December 3 at 2 pm does not work on my side after all. Could you suggest another time?"),
    (None, "none", f'[emulator] I heard "{ENGLISH_PROPOSAL[:23]}…". Please go on.'),
])
def test_a_failed_booking_is_declined_and_tool_choice_none_calls_nothing(emu, output, tool_choice, expected):
    """A function output reporting an error gets a request for another time; tool_choice none gets a plain reply."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn, tools=[SCHEDULE_TOOL], tool_choice=tool_choice)
            await say(conn, ENGLISH_PROPOSAL)
            events = await until(conn, "response.done")
            if output is not None:
                call_id = events[-1].response.output[0].call_id
                await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call_id,
                                                          "output": output})
                await conn.response.create()
                events = await until(conn, "response.done")
            return events

    events = run(scenario())
    assert of_type(events, "response.output_audio_transcript.done")[0].transcript == expected


def test_rate_limits_shrink_with_each_response(emu):
    """rate_limits.updated follows response.created; requests and tokens remaining go down response by response."""

    async def scenario() -> list[Any]:
        async with connect(emu) as conn:
            await opened(conn)
            await configure(conn)
            events = []
            for text in ("one", "two"):
                await say(conn, text)
                events += await until(conn, "response.done")
            return events

    events = run(scenario())
    first, second = [{limit.name: limit for limit in event.rate_limits}
                     for event in of_type(events, "rate_limits.updated")]
    assert first["requests"].remaining - second["requests"].remaining == 1
    spent = of_type(events, "response.done")[0].response.usage.total_tokens
    assert first["tokens"].remaining - second["tokens"].remaining == spent
    assert first["requests"].limit == second["requests"].limit and first["tokens"].reset_seconds > 0
    assert [limit["name"] for limit in newest_session(emu)["rate_limits"]] == ["requests", "tokens"]
