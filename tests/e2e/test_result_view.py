"""The result view in a real Chromium: measured facts, who spoke when, the quoted moments, the outcome.

Scripted tests feed the page a known grade (the relay's socket and /feedback answered by the test);
the others run a real conversation through the server and the emulator, or kill the production
server's workers in the middle of one.
"""
from __future__ import annotations

import json
import os
import re
import signal

import pytest
from playwright.sync_api import expect

from tests.gunicorn_helpers import worker_pids
from tests.helpers import wait_until

from .browserkit import UNIT_MS, UNIT_S, ScriptedRelay, expect_error, expect_state, start, utterances

pytestmark = pytest.mark.timeout(int(30 * UNIT_S))
SCORE = re.compile(r"^\d{1,3}$")

METRICS = {
    "duration_s": 312.4, "talk_s": {"user": 121.0, "model": 98.5}, "talk_share_user": 0.55,
    "longest_monologue_s": {"user": 24.1, "model": 9.8}, "turns": {"user": 14, "model": 15},
    "questions_user": 9, "fillers_user": 6, "interruptions": {"by_user": 2, "by_model": 0},
    "response_latency_s": {"user_p50": 0.9, "model_p50": 0.7}, "speech_rate_user": 310.0,
    "speech_rate_unit": "chars_per_min",
    "timeline": [{"role": "model", "start_s": 0.5, "end_s": 40.0, "interruption": False},
                 {"role": "user", "start_s": 42.3, "end_s": 45.0, "interruption": False},
                 {"role": "user", "start_s": 120.0, "end_s": 150.0, "interruption": True},
                 {"role": "model", "start_s": 151.0, "end_s": 300.0, "interruption": False}],
}
GRADED = {
    "session_id": "s-1",
    "feedback": "# 評価レポート\n\n**総合スコア: 81 / 100**\n\n## 計測値\n- 会話の長さ: 312.4 秒\n",
    "evaluation": {
        "score": 81, "summary": "課題を丁寧に引き出し、具体的な日時でアポイントを獲得しました。",
        "good_points": ["質問が具体的"], "improvements": ["割り込みを減らす"],
        "criteria": [{"name": "課題の引き出し（質問力）", "score": 85, "comment": "良い", "evidence": ["お困りのことは？"]}],
        "metrics": METRICS,
        "outcome": {"appointment": True, "details": {"date": "2026-12-03", "time": "14:00", "topic": "demo"}},
        "evidence_refs": [{"criterion": "課題の引き出し（質問力）", "quote": "お困りのことは？", "role": "user",
                           "start_s": 42.3, "end_s": 45.0},
                          {"criterion": "傾聴", "quote": "言われていない言葉", "role": None, "start_s": None,
                           "end_s": None}],
    },
    "stored": {"log": "file:///t/transcript.jsonl", "audio": "file:///t/audio.wav", "feedback": "file:///t/f.md"},
}


def graded_page(open_page, url: str, *, viewport: dict | None = None, locale: str = "ja-JP"):
    """A page whose scripted conversation ended and was graded with GRADED."""
    page = open_page(url, viewport=viewport, locale=locale)
    page.route("**/feedback", lambda route: route.fulfill(status=200, content_type="application/json",
                                                          body=json.dumps(GRADED)))
    relay = ScriptedRelay(page)
    start(page, mode="text")
    ws = relay.wait_socket(1, page)
    relay.send(ws, type="ready", session_id="s-1", input_rate=16000, output_rate=24000, scenario="sales-ja",
               mode="text", resume=None, emulated=False)
    expect_state(page, "live")
    page.get_by_test_id("end").click()
    relay.wait_message(1, "end", page)
    relay.send(ws, type="ended", session_id="s-1", recording=None)
    expect_state(page, "done")
    return page


def say(page, text: str) -> None:
    """Type a turn and send it (the conversation is live)."""
    box = page.get_by_test_id("text-input")
    box.fill(text)
    box.press("Enter")


def live_page(open_page, url: str, wav):
    """A page in a live voice conversation (the fake microphone plays ``wav``)."""
    page = open_page(url, wav=wav)
    start(page)
    expect_state(page, "live")
    return page


def recorded_transcript(data_dir, session_id: str) -> str:
    """What the recording's transcript.jsonl holds so far ("" before its first checkpoint)."""
    found = list(data_dir.glob(f"conversations/*/*/*/{session_id}/transcript.jsonl"))
    return found[0].read_text() if found else ""


def test_the_grade_shows_the_facts_the_timeline_the_moments_and_the_outcome(live_server, open_page, snap):
    """Cards carry each measured fact, the timeline each stretch, quotes their moment, the badge the outcome."""
    page = graded_page(open_page, live_server.url)
    cards = page.get_by_test_id("metrics").locator("[data-metric]")
    expect(cards).to_have_count(10)
    values = {cards.nth(i).get_attribute("data-metric"): cards.nth(i).get_attribute("data-value") for i in range(10)}
    assert float(values["talk_share_user"]) == METRICS["talk_share_user"]
    assert json.loads(values["interruptions"]) == METRICS["interruptions"]
    expect(page.locator('[data-metric="talk_share_user"]')).to_contain_text("55 %")
    expect(page.locator('[data-metric="interruptions"]')).to_contain_text("要注意")

    stretches = page.get_by_test_id("timeline").locator("> *")
    expect(stretches).to_have_count(len(METRICS["timeline"]))
    for i, stretch in enumerate(METRICS["timeline"]):
        bar = stretches.nth(i)
        assert (bar.get_attribute("data-role"), float(bar.get_attribute("data-start-s")),
                float(bar.get_attribute("data-end-s")), bar.get_attribute("data-interruption")) == (
            stretch["role"], stretch["start_s"], stretch["end_s"], str(stretch["interruption"]).lower())
    boxes = [stretches.nth(i).bounding_box() for i in range(4)]
    assert boxes[0]["y"] > boxes[1]["y"], "the customer's lane is below the user's"
    assert boxes[1]["x"] < boxes[2]["x"] < boxes[3]["x"], "later stretches lie further right"

    buttons = page.get_by_test_id("evidence").locator("button[data-t]")
    expect(buttons).to_have_count(1)
    expect(buttons.first).to_have_attribute("data-t", "42.3")
    expect(page.get_by_test_id("evidence")).to_contain_text("言われていない言葉")  # untimed: shown, not a button
    expect(page.get_by_test_id("recording")).to_have_attribute("src", "/api/conversations/s-1/audio")
    badge = page.get_by_test_id("outcome")
    expect(badge).to_have_attribute("data-outcome", "appointment")
    expect(badge).to_contain_text("2026-12-03 14:00")
    snap(page, "done-measured")


def test_the_full_report_has_a_disclosure_marker_that_turns_when_open(live_server, open_page):
    """The report's summary shows a marker (the browser's own is gone with its flex layout) that turns open."""
    page = graded_page(open_page, live_server.url)
    marker = """() => {
      const style = getComputedStyle(document.querySelector("details.report summary"), "::before");
      return {content: style.content, width: style.borderLeftWidth, transform: style.transform};
    }"""
    closed = page.evaluate(marker)
    assert closed["content"] != "none" and float(closed["width"].removesuffix("px")) > 0
    page.locator("details.report summary").click()
    page.wait_for_function("() => document.querySelector('details.report').open")
    page.wait_for_function("""(before) => getComputedStyle(document.querySelector("details.report summary"),
                              "::before").transform !== before""", arg=closed["transform"])


def test_on_a_phone_the_grade_is_brought_into_view_and_focused(live_server, open_page, snap):
    """On a 390 px phone, the grade (below the conversation) is scrolled to and focused when it arrives."""
    page = graded_page(open_page, live_server.url, viewport={"width": 390, "height": 844}, locale="en-US")
    title = page.get_by_test_id("feedback").locator(".feedback-title")
    expect(title).to_be_focused()
    expect(title).to_be_in_viewport()
    assert page.evaluate("window.scrollY") > 0
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    snap(page, "done-measured-phone")


def test_a_real_conversation_is_measured_on_the_page(live_server, emu, open_page, silence, snap):
    """Speech, a proposal the customer accepts, End: the page shows the server's facts and the agreed meeting."""
    page = live_page(open_page, live_server.url, silence)
    say(page, "12月3日の14時にデモはいかがでしょうか")
    expect(utterances(page, "model", final=True).last).to_be_visible(timeout=4 * UNIT_MS)
    with page.expect_response("**/feedback", timeout=6 * UNIT_MS) as graded:
        page.get_by_test_id("end").click()
    evaluation = graded.value.json()["evaluation"]
    expect_state(page, "done", timeout_ms=4 * UNIT_MS)
    cards = page.get_by_test_id("metrics").locator("[data-metric]")
    expect(cards).to_have_count(10)
    for i in range(10):
        name, value = cards.nth(i).get_attribute("data-metric"), cards.nth(i).get_attribute("data-value")
        measured = evaluation["metrics"][name]
        assert (json.loads(value) if value else None) == measured, name
    expect(page.get_by_test_id("timeline").locator("> *")).to_have_count(len(evaluation["metrics"]["timeline"]))
    expect(page.get_by_test_id("outcome")).to_have_attribute("data-outcome", "appointment")
    snap(page, "done-real-conversation")


def test_an_evidence_quote_plays_the_recording_from_its_moment(live_server, emu, open_page, silence):
    """Clicking a quote plays the conversation's recording from the moment it was said (±0.5 s)."""
    page = live_page(open_page, live_server.url, silence)
    for text in ("本日はお時間をいただきありがとうございます。", "社内の問い合わせでお困りのことはありますか？"):
        say(page, text)
        expect(utterances(page, "model", final=True)).not_to_have_count(0, timeout=4 * UNIT_MS)
        page.wait_for_function("() => window.liveTalk.stats().queuedMs === 0", timeout=4 * UNIT_MS)
    page.get_by_test_id("end").click()
    expect_state(page, "done", timeout_ms=6 * UNIT_MS)
    recording = page.get_by_test_id("recording")
    page.wait_for_function("() => document.querySelector('[data-testid=recording]').readyState >= 1",
                           timeout=2 * UNIT_MS)
    buttons = page.get_by_test_id("evidence").locator("button[data-t]")
    times = [float(buttons.nth(i).get_attribute("data-t")) for i in range(buttons.count())]
    t = max(times)
    assert t > 2.0, f"a quote of the second turn, said well after the start: {times}"
    buttons.nth(times.index(t)).click()
    page.wait_for_function("(t) => { const a = document.querySelector('[data-testid=recording]');"
                           " return !a.paused && Math.abs(a.currentTime - t) <= 0.5; }", arg=t, timeout=UNIT_MS)
    assert recording.evaluate("a => a.duration") > t


def test_what_was_recorded_before_a_server_crash_can_be_graded(crashable_server, emu, open_page, silence, snap):
    """Workers SIGKILLed mid-reply (no resume ticket yet): the page offers to grade what was recorded, and does."""
    emu.control.reply_speed = 0.1  # the reply is still being spoken when the workers die
    page = live_page(open_page, crashable_server.url, silence)
    say(page, "御社の問い合わせ対応で、いちばんお困りのことは何でしょうか？")
    expect(utterances(page, "model")).not_to_have_count(0, timeout=4 * UNIT_MS)
    session_id = page.evaluate("window.liveTalk.stats().sessionId")
    wait_until(lambda: "いちばんお困り" in recorded_transcript(crashable_server.data_dir, session_id),
               timeout_s=4 * UNIT_S, interval_s=0.1)  # a checkpoint holds the question
    for pid in worker_pids(crashable_server.process.pid):
        os.kill(pid, signal.SIGKILL)
    expect_state(page, "error", timeout_ms=3 * UNIT_MS)
    expect_error(page, "connection_lost")
    grade = page.get_by_test_id("grade-recorded")
    expect(grade).to_be_visible()
    snap(page, "error-grade-recorded")
    grade.click()
    expect_state(page, "done", timeout_ms=6 * UNIT_MS)
    expect(page.get_by_test_id("feedback")).to_have_attribute("data-score", SCORE)
    expect(page.get_by_test_id("metrics").locator("[data-metric]")).to_have_count(10)
    expect(grade).to_be_hidden()
    expect(page.get_by_test_id("error")).to_be_empty()
