"""Function calling: a proposed meeting makes the emulator call `schedule_meeting` and wait for the response."""
from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import pytest
from google.genai import errors, types

from tests.emulator_helpers import (  # noqa: F401  (emu, fresh_control, client are fixtures)
    API_KEY,
    TIMEOUT_S,
    client,
    emu,
    fresh_control,
    joined,
    live_config,
    newest_session,
    raw_connect,
    receive_turn,
    recv_json,
    recv_until,
    run,
    send_audio,
    silence,
    tone,
)
from livetalk.emulator.meeting import find_proposal, topic_of
from livetalk.emulator.tools import parse_functions

MODEL = "gemini-3.8-live"
SCHEDULE = types.FunctionDeclaration(
    name="schedule_meeting",
    description="Book the meeting the customer agreed to.",
    parameters=types.Schema(type="OBJECT", properties={
        "date": types.Schema(type="STRING"), "time": types.Schema(type="STRING"),
        "topic": types.Schema(type="STRING")}),
)


def next_date(month: int, day: int) -> str:
    """The next occurrence of month/day from today, as YYYY-MM-DD."""
    today = datetime.date.today()
    year = today.year if (month, day) >= (today.month, today.day) else today.year + 1
    return datetime.date(year, month, day).isoformat()


def tool_config(language: str = "en-US", *, behavior: str | None = None) -> types.LiveConnectConfig:
    """A session that declares schedule_meeting (optionally NON_BLOCKING)."""
    declaration = SCHEDULE.model_copy(update={"behavior": types.Behavior(behavior)}) if behavior else SCHEDULE
    return live_config(speech_config=types.SpeechConfig(language_code=language),
                       tools=[types.Tool(function_declarations=[declaration])])


async def until(session: Any, field: str) -> Any:
    """Read messages until one has ``field`` set; return that field's value."""
    while True:
        async for message in session.receive():
            value = getattr(message, field)
            if value:
                return value


# -- the date and time in what the user said ---------------------------------------------------

TODAY = datetime.date(2026, 11, 20)


@pytest.mark.parametrize(
    "text, args",
    [
        ("12月3日の14時にデモはいかがでしょうか", {"date": "2026-12-03", "time": "14:00", "topic": "demo"}),
        ("12月3日14時から打ち合わせ", {"date": "2026-12-03", "time": "14:00", "topic": "meeting"}),
        ("１２月３日午後２時半に商談をお願いできますか", {"date": "2026-12-03", "time": "14:30", "topic": "meeting"}),
        ("How about a demo on December 3 at 2 pm?", {"date": "2026-12-03", "time": "14:00", "topic": "demo"}),
        ("December 3rd at 14:00", {"date": "2026-12-03", "time": "14:00", "topic": "meeting"}),
        ("Could we meet on the 5th of January at 9:30 a.m.?", {"date": "2027-01-05", "time": "09:30",
                                                               "topic": "meeting"}),
        ("11月20日の10時でいかがですか", {"date": "2026-11-20", "time": "10:00", "topic": "meeting"}),
        ("11月19日の10時でいかがですか", {"date": "2027-11-19", "time": "10:00", "topic": "meeting"}),
    ],
)
def test_a_proposed_date_and_time_become_schedule_arguments(text, args):
    """Japanese and English proposals give YYYY-MM-DD (the next occurrence from today), HH:MM and a topic."""
    assert find_proposal(text, today=TODAY).args() == args


@pytest.mark.parametrize(
    "text",
    ["来週の火曜日にデモはいかがですか", "Can we talk at 2 pm?", "December 3 works", "12月3日に1時間ほどデモを",
     "2月30日の10時", "December 3 at 25:00"],
)
def test_without_a_valid_date_and_time_there_is_no_proposal(text):
    """A relative day, a time without a date, a date without a time, or an impossible one proposes nothing."""
    assert find_proposal(text, today=TODAY) is None


def test_topic_defaults_to_meeting():
    """Without a demo or meeting word the topic is "meeting"; デモ/demo wins over meeting words."""
    assert (topic_of("12月3日の14時に"), topic_of("デモの打ち合わせ")) == ("meeting", "demo")


@pytest.mark.parametrize("key", ["functionDeclarations", "function_declarations"])
def test_declarations_are_read_in_both_spellings(key):
    """Function declarations are found under camelCase and snake_case keys; NON_BLOCKING is noted."""
    tools = [{"googleSearch": {}}, {key: [{"name": "schedule_meeting", "behavior": "NON_BLOCKING"}, {"name": "x"}]}]
    assert [(f.name, f.non_blocking) for f in parse_functions(tools)] == [("schedule_meeting", True), ("x", False)]


# -- through the SDK ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "language, proposal, confirmation",
    [("en-US", "How about a demo on December 3 at 2 pm?", "Great, December 3 at 2 pm works for me."),
     ("ja-JP", "12月3日の14時にデモはいかがでしょうか", "では12月3日の14時にお待ちしております。")],
)
def test_typed_proposal_calls_schedule_meeting_and_confirms_after_the_response(emu, client, language, proposal,
                                                                               confirmation):
    """toolCall with the date, time and topic; nothing more until the tool response; then a spoken confirmation."""

    async def scenario() -> tuple[types.LiveServerToolCall, list[types.LiveServerMessage]]:
        async with client.aio.live.connect(model=MODEL, config=tool_config(language)) as session:
            await session.send_realtime_input(text=proposal)
            call = await until(session, "tool_call")
            emu.control.wait_for(lambda: emu.control.sessions()[-1]["tool_calls"], TIMEOUT_S)
            assert emu.control.sessions()[-1]["turns_answered"] == 0  # no reply before the response
            fc = call.function_calls[0]
            await session.send_tool_response(function_responses=[
                types.FunctionResponse(id=fc.id, name=fc.name, response={"ok": True, "event_id": "ev-1"})])
            return call, await receive_turn(session)

    call, reply = run(scenario())
    [fc] = call.function_calls
    assert fc.name == "schedule_meeting" and fc.id
    assert fc.args == {"date": next_date(12, 3), "time": "14:00", "topic": "demo"}
    said = joined(reply, "output_transcription")
    assert confirmation in said and said.startswith("[")
    assert any(m.data for m in reply) and reply[-1].server_content.turn_complete
    stats = newest_session(emu)
    [record] = stats["tool_calls"]
    assert (record["id"], record["status"], record["response"]) == (fc.id, "answered", {"ok": True, "event_id": "ev-1"})
    assert stats["tool_responses"] == [{"id": fc.id, "name": "schedule_meeting",
                                        "response": {"ok": True, "event_id": "ev-1"}, "scheduling": None}]
    assert stats["setup"]["functions"] == [{"name": "schedule_meeting", "non_blocking": False}]
    assert stats["client_messages"]["tool_response"] == 1


def test_call_ids_are_unique_across_calls_and_sessions(emu, client):
    """Every toolCall gets an id never used before, in this session or another."""

    async def two_calls() -> list[str]:
        async with client.aio.live.connect(model=MODEL, config=tool_config()) as session:
            ids = []
            for text in ("Demo on December 3 at 2 pm?", "Or December 4 at 10:00?"):
                await session.send_realtime_input(text=text)
                ids.append((await until(session, "tool_call")).function_calls[0].id)
            return ids

    ids = run(two_calls()) + run(two_calls())
    assert len(set(ids)) == 4


def test_unanswered_call_is_cancelled_after_the_timeout_and_the_session_carries_on(emu, client):
    """No response within tool_timeout_s: toolCallCancellation with the id, then turns are answered as usual."""
    emu.control.tool_timeout_s = 0.2

    async def scenario() -> tuple[str, list[str], str]:
        async with client.aio.live.connect(model=MODEL, config=tool_config()) as session:
            await session.send_realtime_input(text="A demo on December 3 at 2 pm?")
            call_id = (await until(session, "tool_call")).function_calls[0].id
            cancelled = await until(session, "tool_call_cancellation")
            await session.send_realtime_input(text="Shall we go on?")
            return call_id, cancelled.ids, joined(await receive_turn(session), "output_transcription")

    call_id, cancelled, said = run(scenario())
    assert cancelled == [call_id] and '"Shall we go on?"' in said
    [record] = newest_session(emu)["tool_calls"]
    assert (record["status"], record["cancel_reason"]) == ("cancelled", "timeout")


def test_speaking_again_cancels_the_call_and_a_late_response_is_ignored(emu, client):
    """A new user turn before the response cancels the call; a response for it afterwards changes nothing."""

    async def scenario() -> tuple[list[str], str, str]:
        async with client.aio.live.connect(model=MODEL, config=tool_config()) as session:
            await session.send_realtime_input(text="A demo on December 3 at 2 pm?")
            fc = (await until(session, "tool_call")).function_calls[0]
            await send_audio(session, tone(400) + silence(800))
            cancelled = await until(session, "tool_call_cancellation")
            spoken = joined(await receive_turn(session), "input_transcription")
            await session.send_tool_response(function_responses=[
                types.FunctionResponse(id=fc.id, name=fc.name, response={"ok": True})])
            await session.send_realtime_input(text="hello")
            return cancelled.ids, spoken, joined(await receive_turn(session), "output_transcription")

    cancelled, spoken, said = run(scenario())
    assert len(cancelled) == 1 and spoken == "(speech 0.4 s)"
    assert '"hello"' in said and "works for me" not in said
    stats = newest_session(emu)
    assert stats["tool_calls"][0]["cancel_reason"] == "user_turn" and stats["tool_calls"][0]["response"] is None
    assert len(stats["tool_responses"]) == 1 and stats["open"] is False


def test_response_for_an_unknown_id_closes_1007(emu, client):
    """A function response whose id was never issued ends the session with 1007, like Gemini."""

    async def scenario() -> None:
        async with client.aio.live.connect(model=MODEL, config=tool_config()) as session:
            await session.send_tool_response(function_responses=[
                types.FunctionResponse(id="no-such-call", name="schedule_meeting", response={"ok": True})])
            while True:
                async for _ in session.receive():
                    pass

    with pytest.raises(errors.APIError) as caught:
        run(scenario())
    assert caught.value.code == 1007
    assert "no-such-call" in newest_session(emu)["close_reason"]


@pytest.mark.parametrize("behavior, spoken", [("NON_BLOCKING", False), (None, True)])
def test_silent_scheduling_is_accepted_and_honoured_for_non_blocking_functions(emu, client, behavior, spoken):
    """scheduling SILENT is accepted; for a NON_BLOCKING function the result is taken without a spoken reply."""

    async def scenario() -> str:
        async with client.aio.live.connect(model=MODEL, config=tool_config(behavior=behavior)) as session:
            await session.send_realtime_input(text="A demo on December 3 at 2 pm?")
            fc = (await until(session, "tool_call")).function_calls[0]
            await session.send_tool_response(function_responses=[types.FunctionResponse(
                id=fc.id, name=fc.name, response={"ok": True}, scheduling=types.FunctionResponseScheduling.SILENT)])
            turns = [joined(await receive_turn(session), "output_transcription")] if spoken else []
            await session.send_realtime_input(text="next")  # answered next, whether or not anything was said
            turns.append(joined(await receive_turn(session), "output_transcription"))
            return turns

    said = run(scenario())
    assert ["works for me" in turn for turn in said] == ([True, False] if spoken else [False])
    assert '"next"' in said[-1]
    stats = newest_session(emu)
    assert stats["tool_calls"][0]["scheduling"] == "SILENT" and stats["turns_answered"] == 1 + spoken


def test_a_failed_result_makes_the_model_ask_for_another_time(emu, client):
    """A response reporting an error is answered by asking for another slot, not by confirming."""

    async def scenario() -> str:
        async with client.aio.live.connect(model=MODEL, config=tool_config("ja-JP")) as session:
            await session.send_realtime_input(text="12月3日の14時にデモはいかがでしょうか")
            fc = (await until(session, "tool_call")).function_calls[0]
            await session.send_tool_response(function_responses=[
                types.FunctionResponse(id=fc.id, name=fc.name, response={"error": "calendar unavailable"})])
            return joined(await receive_turn(session), "output_transcription")

    said = run(scenario())
    assert "別の候補" in said and "お待ちしております" not in said


def test_without_the_declaration_a_proposal_is_an_ordinary_turn(client):
    """No schedule_meeting declared: the proposal gets the usual reply and no toolCall."""

    async def scenario() -> list[types.LiveServerMessage]:
        async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="A demo on December 3 at 2 pm?")
            return await receive_turn(session)

    messages = run(scenario())
    assert not any(m.tool_call for m in messages) and "[emulator]" in joined(messages, "output_transcription")


def test_spoken_proposal_heard_through_the_hear_trigger_calls_the_function(emu, client):
    """`!emu hear <words>` makes the next spoken turn transcribe as those words, so speech can propose too."""

    async def scenario() -> tuple[str, types.LiveServerToolCall]:
        async with client.aio.live.connect(model=MODEL, config=tool_config("ja-JP")) as session:
            await session.send_realtime_input(text="!emu hear 12月3日の14時にデモはいかがでしょうか")
            await send_audio(session, tone(800) + silence(800))
            heard = ""
            while True:
                async for message in session.receive():
                    content = message.server_content
                    if content and content.input_transcription:
                        heard += content.input_transcription.text
                    if message.tool_call:
                        return heard, message.tool_call

    heard, call = run(scenario())
    assert heard == "12月3日の14時にデモはいかがでしょうか"
    assert call.function_calls[0].args["date"] == next_date(12, 3)


@pytest.mark.parametrize(
    "declarations, responses",
    [("function_declarations", "function_responses"), ("functionDeclarations", "functionResponses")],
)
def test_raw_wire_in_both_spellings(emu, declarations, responses):
    """Declarations and responses in snake_case or camelCase drive the same toolCall and confirmation."""

    async def scenario() -> list[dict[str, Any]]:
        ws = await raw_connect(emu, **{"x-goog-api-key": API_KEY})
        setup = {"model": "models/x", "tools": [{declarations: [{"name": "schedule_meeting"}]}],
                 "output_audio_transcription": {}}
        await ws.send(json.dumps({"setup": setup}))
        await recv_json(ws)
        await ws.send(json.dumps({"realtime_input": {"text": "December 3rd at 14:00 for a demo?"}}))
        call = await recv_json(ws)
        call_id = call["toolCall"]["functionCalls"][0]["id"]
        await ws.send(json.dumps({"tool_response": {responses: [{"id": call_id, "name": "schedule_meeting",
                                                                  "response": {"result": "booked"}}]}}))
        messages = [call, *await recv_until(ws, "turnComplete")]
        await ws.close()
        return messages

    messages = run(scenario())
    assert messages[0]["toolCall"]["functionCalls"][0]["args"]["time"] == "14:00"
    said = "".join(m["serverContent"].get("outputTranscription", {}).get("text", "") for m in messages[1:])
    assert "December 3 at 2 pm works for me" in said


def test_bad_scheduling_value_is_an_invalid_argument(emu):
    """An unknown scheduling value in a function response closes with 1007."""

    async def scenario() -> int:
        ws = await raw_connect(emu, **{"x-goog-api-key": API_KEY})
        await ws.send(json.dumps({"setup": {"model": "models/x"}}))
        await recv_json(ws)
        await ws.send(json.dumps({"toolResponse": {"functionResponses": [{"id": "x", "scheduling": "LOUDLY"}]}}))
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT_S)
        return ws.close_code

    assert run(scenario()) == 1007
