"""The conversation page in a real Chromium, against the real server and the Gemini emulator.

The fake microphone plays a speech WAV (see conftest.py). Each test states one behaviour a
person relies on; the page is driven through its automation hooks (page contract) only.
"""
from __future__ import annotations

import json
import math
import re
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from .browserkit import (
    BYTES_PER_MS_IN,
    BYTES_PER_MS_OUT,
    TRANSCRIPT,
    UNIT_MS,
    UNIT_S,
    ScriptedRelay,
    expect_error,
    expect_state,
    new_session,
    session_ids,
    start,
    stats,
    utterances,
    wait_stats,
)

pytestmark = pytest.mark.timeout(int(30 * UNIT_S))

STATS_KEYS = {"capturedMs", "sentBytes", "receivedBytes", "playedMs", "queuedMs", "interruptions"}
FADE_MS = 4  # the player's fade-out on flush and underrun


# --- the page itself ---------------------------------------------------------------------------


def test_page_works_offline_under_the_strict_content_security_policy(live_server, open_page, snap):
    """Every asset comes from the app itself, nothing inline is needed, and the scenarios load."""
    from livetalk.headers import content_security_policy

    requests: list[str] = []
    page = open_page(None)
    page.on("request", lambda r: requests.append(r.url))

    def with_csp(route):
        response = route.fetch()
        route.fulfill(response=response,
                      headers={**response.headers, "content-security-policy": content_security_policy()})

    page.route(live_server.url + "/", with_csp)
    page.goto(live_server.url + "/")
    page.wait_for_function("() => window.liveTalk !== undefined")

    scenarios = json.loads(urllib.request.urlopen(live_server.url + "/scenarios", timeout=UNIT_S).read())
    options = page.get_by_test_id("scenario").locator("option")
    expect(options).to_have_count(len(scenarios))
    assert [options.nth(i).get_attribute("value") for i in range(len(scenarios))] == [s["id"] for s in scenarios]
    expect_state(page, "idle")
    expect(page.get_by_test_id("start")).to_be_enabled()
    expect(page.get_by_test_id("error")).to_be_empty()
    assert STATS_KEYS <= set(stats(page))
    assert page.evaluate("window.__cspViolations") == []
    assert page.problems.console_errors == [] and page.problems.page_errors == []
    foreign = [u for u in requests if not u.startswith((live_server.url, "data:"))]
    assert foreign == [], f"requests outside the app: {foreign}"
    snap(page, "idle")


def test_japanese_first_english_for_an_english_browser_and_a_switch_between(live_server, open_page):
    """The page follows the browser's language (wording and first scenario); the language button switches it."""
    ja = open_page(live_server.url, locale="ja-JP")
    expect(ja.get_by_test_id("start")).to_have_text("会話を開始")
    assert ja.evaluate("document.documentElement.lang") == "ja"

    en = open_page(live_server.url, locale="en-US")
    expect(en.get_by_test_id("start")).to_have_text("Start conversation")
    scenarios = json.loads(urllib.request.urlopen(live_server.url + "/scenarios", timeout=UNIT_S).read())
    english = [s["id"] for s in scenarios if s["language"].lower().startswith("en")]
    if english:  # an English speaker starts on an English scenario
        expect(en.get_by_test_id("scenario")).to_have_value(english[0])
    expect(en.get_by_test_id("status")).to_contain_text("Ready")
    en.get_by_role("button", name="日本語に切り替える").click()
    expect(en.get_by_test_id("start")).to_have_text("会話を開始")
    en.reload()
    expect(en.get_by_test_id("start")).to_have_text("会話を開始")


def test_the_page_fits_a_phone_screen(live_server, open_page, snap):
    """On a 390 px wide phone nothing scrolls sideways, even mid-conversation, and controls are easy to tap."""
    page = open_page(live_server.url, viewport={"width": 390, "height": 844}, locale="en-US")
    expect(page.get_by_test_id("start")).to_be_enabled()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for test_id in ("start", "end", "send"):
        box = page.get_by_test_id(test_id).bounding_box()
        assert box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= 390, test_id
    snap(page, "idle-phone")
    start(page, mode="text")
    expect_state(page, "live")
    page.get_by_test_id("text-input").fill("Could you tell me about your current helpdesk workload?")
    page.get_by_test_id("text-input").press("Enter")
    expect(utterances(page, "model", final=True)).to_have_count(1, timeout=4 * UNIT_MS)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    snap(page, "live-phone")


# --- a spoken conversation ---------------------------------------------------------------------


def test_spoken_turn_arrives_intact_both_sides_are_transcribed_and_the_reply_is_played(
        live_server, emulator, open_page, speech_once, snap):
    """The microphone's speech reaches Gemini whole, both sides appear, the reply is heard, and End grades it."""
    page = open_page(live_server.url, wav=speech_once)
    before = session_ids(emulator)
    start(page)
    expect_state(page, "live")
    at_live = stats(page)
    assert at_live["capturedMs"] < speech_once.speech_start_s * 1000, "streaming must start before the speech"
    expect(page.get_by_test_id("status")).to_contain_text("会話中")

    # Capture runs at real time: 16 kHz out of the 48 kHz microphone, 1 s of audio per second.
    t0, c0 = time.monotonic(), stats(page)["capturedMs"]
    time.sleep(2.0)
    rate = (stats(page)["capturedMs"] - c0) / ((time.monotonic() - t0) * 1000)
    assert 0.9 < rate < 1.1, f"captured {rate:.2f} s of audio per second"

    # Both sides transcribed: the emulator's transcription of the speech, then its reply.
    expect(utterances(page, "user", final=True).first).to_contain_text("音声", timeout=3 * UNIT_MS)
    expect(utterances(page, "model").first).to_contain_text("エミュレーター", timeout=2 * UNIT_MS)
    snap(page, "live")

    # The reply is played out in full: every received millisecond is played (or was dropped by a flush).
    expect(utterances(page, "model", final=True).last).to_be_visible(timeout=4 * UNIT_MS)
    s = wait_stats(page, "s.receivedAudioBytes > 0 && s.queuedMs === 0", timeout_ms=2 * UNIT_MS)
    received_ms = s["receivedAudioBytes"] / BYTES_PER_MS_OUT
    assert s["playedMs"] > 1000
    assert abs(s["playedMs"] + s["flushedMs"] - received_ms) <= FADE_MS * (1 + s["interruptions"]) + 1, s

    # Wait for the end of the utterance, then End: the mic stops and the conversation is graded.
    wait_stats(page, f"s.capturedMs > {(speech_once.speech_end_s + 0.5) * 1000}", timeout_ms=2 * UNIT_MS)
    page.get_by_test_id("end").click()
    expect_state(page, "done", timeout_ms=6 * UNIT_MS)
    end = stats(page)
    assert end["inputLevel"] == 0 and end["queuedMs"] == 0

    # What Gemini heard is what the microphone played: every frame sent, the whole utterance, same energy.
    session = new_session(emulator, before)
    sent_ms = end["sentAudioBytes"] / BYTES_PER_MS_IN
    assert session["audio_rate_hz"] == 16000
    assert abs(session["audio_in_ms"] - sent_ms) <= 20, (session["audio_in_ms"], sent_ms)
    assert end["capturedMs"] - at_live["capturedMs"] - 100 <= sent_ms <= end["capturedMs"]
    heard_energy = (session["audio_in_rms"] / 32768) ** 2 * session["audio_in_ms"] / 1000
    ratio_db = 10 * math.log10(heard_energy / speech_once.energy)
    # Chrome's echo cancellation, noise suppression and auto gain (all requested) may change the level a little.
    assert -6 < ratio_db < 6, f"energy heard differs from the WAV's by {ratio_db:.1f} dB"
    # The emulator timed the utterance (first to last 10 ms frame above -40 dBFS, to 0.1 s) as the WAV holds it.
    assert session["turns_answered"] >= 1
    heard_s = float(re.search(r"\d+(?:\.\d+)?", session["turns"][0]["input"]).group())
    assert abs(heard_s - speech_once.speech_s) <= 0.2, (heard_s, speech_once.speech_s)

    expect(page.get_by_test_id("feedback")).not_to_be_empty()
    snap(page, "done")


def test_ending_a_conversation_grades_it_and_shows_the_evaluation(live_server, open_page, silence, snap):
    """End asks /feedback for this conversation's grade, shows progress, then the score and its reasons."""
    page = open_page(live_server.url, wav=silence)
    start(page, mode="text")
    expect_state(page, "live")
    page.get_by_test_id("text-input").fill("御社の課題を教えていただけますか")
    page.get_by_test_id("send").click()
    expect(utterances(page, "model", final=True).last).to_contain_text("エミュレーター", timeout=4 * UNIT_MS)
    page.get_by_test_id("end").click()
    expect_state(page, "done", timeout_ms=12 * UNIT_MS)
    feedback = page.get_by_test_id("feedback")
    expect(feedback).to_have_attribute("data-score", re.compile(r"^\d{1,3}$"))
    expect(feedback.locator(".score-card")).to_be_visible()
    expect(feedback.locator("table.criteria tbody tr").first).to_be_visible()
    snap(page, "done-graded")


def test_speaking_over_the_reply_drops_queued_audio_at_once(live_server, emulator, open_page, speech_loop, snap):
    """When the user barges in, `interrupted` empties the playback queue within 50 ms and is counted."""
    page = open_page(live_server.url, wav=speech_loop)
    before = session_ids(emulator)
    start(page)
    expect_state(page, "live")
    barge_in = page.evaluate(
        """async (timeoutMs) => {
          const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
          const deadline = performance.now() + timeoutMs;
          let s = window.liveTalk.stats();
          while (performance.now() < deadline) {
            const queued = s.queuedMs;
            await sleep(2);
            const now = window.liveTalk.stats();
            if (now.interruptions > s.interruptions && now.queuedAtLastFlushMs > 200) {
              const t = performance.now();
              while (window.liveTalk.stats().queuedMs > 0 && performance.now() - t < 1000) await sleep(1);
              return { queuedBefore: queued, emptyAfterMs: performance.now() - t, stats: window.liveTalk.stats() };
            }
            s = now;
          }
          return null;
        }""",
        8 * UNIT_MS,
    )
    assert barge_in is not None, "no interruption arrived while model audio was queued"
    # From the `interrupted` event to an empty queue in the audio thread (+ the 4 ms fade): the part the
    # page controls. lastFlushMs adds the output device's latency, which the page cannot change.
    assert barge_in["emptyAfterMs"] < 50, barge_in
    assert barge_in["stats"]["lastFlushAckMs"] + FADE_MS <= 50, barge_in
    assert barge_in["stats"]["interruptions"] >= 1
    expect(page.locator(f'{TRANSCRIPT}[data-role="model"][data-interrupted="true"]').first).to_be_visible()
    snap(page, "live-interrupted")
    session = new_session(emulator, before)
    assert session["interruptions"] >= 1
    page.get_by_test_id("end").click()
    expect_state(page, "done", timeout_ms=6 * UNIT_MS)


# --- typed turns -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["voice", "text"])
def test_a_typed_turn_is_shown_and_answered(live_server, emulator, open_page, silence, mode):
    """A message typed and sent with Enter appears at once and gets the model's reply, in either mode."""
    page = open_page(live_server.url, wav=silence)
    before = session_ids(emulator)
    start(page, mode=mode)
    expect_state(page, "live")
    box = page.get_by_test_id("text-input")
    box.fill("予算はどのくらいですか")
    box.press("Enter")
    expect(box).to_have_value("")
    expect(utterances(page, "user", final=True).last).to_contain_text("予算はどのくらいですか")
    reply = utterances(page, "model", final=True).last
    expect(reply).to_contain_text("「予算はどのくらいですか」", timeout=4 * UNIT_MS)
    session = new_session(emulator, before)
    assert session["text_turns"] == 1
    if mode == "text":
        assert stats(page)["capturedMs"] == 0, "text mode never opens the microphone"
    else:
        wait_stats(page, "s.playedMs > 500")
    page.get_by_test_id("send").click()  # an empty box sends nothing
    expect(utterances(page, "user")).to_have_count(1)


def test_the_page_can_be_used_with_the_keyboard_alone(live_server, emulator, open_page):
    """Tab reaches every control in order; arrows pick the mode; Enter starts, sends and ends."""
    page = open_page(live_server.url)
    expect(page.get_by_test_id("start")).to_be_enabled()
    focused = []
    for _ in range(12):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.dataset.testid || document.activeElement.id"))
    assert focused.index("scenario") < focused.index("mode-voice") < focused.index("start")
    page.get_by_test_id("mode-voice").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("mode-text")).to_be_checked()
    page.get_by_test_id("start").focus()
    page.keyboard.press("Enter")
    expect_state(page, "live")
    page.get_by_test_id("text-input").focus()
    page.keyboard.type("hello")
    page.keyboard.press("Enter")
    expect(utterances(page, "model", final=True).last).to_contain_text("hello", timeout=4 * UNIT_MS)
    page.get_by_test_id("end").focus()
    page.keyboard.press("Enter")
    expect_state(page, "done", timeout_ms=6 * UNIT_MS)


# --- errors in plain language --------------------------------------------------------------------


def test_a_denied_microphone_says_how_to_allow_it(live_server, emulator, open_page, silence, snap):
    """If the user refuses the microphone, the page says how to allow it and opens no conversation."""
    page = open_page(live_server.url, wav=silence, auto_allow=False)
    before = session_ids(emulator)
    start(page)
    expect_state(page, "error")
    expect_error(page, "mic_denied")
    expect(page.get_by_test_id("error")).to_contain_text("マイク")
    expect(page.get_by_test_id("start")).to_be_enabled()
    assert session_ids(emulator) == before
    snap(page, "error-mic-denied")


def test_a_server_that_dies_mid_conversation_is_reported_as_a_lost_connection(server_process, open_page, silence,
                                                                             snap):
    """When the server process dies, the page stops, says the connection was lost and what to do."""
    server = server_process()
    page = open_page(server.url, wav=silence)
    start(page)
    expect_state(page, "live")
    server.kill()
    expect_state(page, "error", timeout_ms=3 * UNIT_MS)
    expect_error(page, "connection_lost")
    expect(page.get_by_test_id("error")).to_contain_text("接続が切れました")
    assert stats(page)["inputLevel"] == 0
    snap(page, "error-connection-lost")


@pytest.mark.parametrize(("limit", "code", "words"), [
    ({"max_sessions": 1}, "capacity", "混み合っています"),
    ({"new_sockets_per_ip_per_min": 1}, "rate_limited", "1分ほど待って"),
], ids=["server-full", "rate-limited"])
def test_a_refused_conversation_says_when_to_try_again(make_server, open_page, limit, code, words):
    """When the server is full or this client opened too many conversations, the page says to wait and retry."""
    from tests.wsclient import RelayClient

    server = make_server(**limit)
    with RelayClient(server.ws_url, timeout_s=UNIT_S, mode="text") as occupant:
        occupant.ready()
        page = open_page(server.url)
        start(page, mode="text")
        expect_state(page, "error")
        expect_error(page, code)
        expect(page.get_by_test_id("error")).to_contain_text(words)
        expect(page.get_by_test_id("start")).to_be_enabled()


@pytest.mark.parametrize(("fault", "params", "code"), [
    ("reject", {"status": 503}, "upstream_unavailable"),
    ("close", {"code": 1011, "reason": "Internal error encountered.", "when": "setup"}, "upstream_error"),
], ids=["unreachable", "closed-with-error"])
def test_gemini_trouble_is_explained(live_server, emulator, open_page, fault, params, code):
    """When Gemini cannot be reached or ends the session with an error, the page says so plainly."""
    page = open_page(live_server.url)
    emulator.control.fault_next(fault, **params)
    start(page, mode="text")
    expect_state(page, "error", timeout_ms=3 * UNIT_MS)
    expect_error(page, code)
    expect(page.get_by_test_id("error")).to_contain_text("Gemini")


def test_a_restarting_server_ends_the_conversation_with_advice(live_server, open_page):
    """When the server drains for a restart, the page says so and how to continue."""
    page = open_page(live_server.url)
    start(page, mode="text")
    expect_state(page, "live")
    live_server.services.begin_drain()
    expect_state(page, "error")
    expect_error(page, "shutting_down")
    expect(page.get_by_test_id("error")).to_contain_text("再起動")


def test_the_length_limit_is_announced_then_the_conversation_is_graded(make_server, open_page):
    """Near the maximum length a warning appears; at the limit the conversation ends and goes to grading."""
    server = make_server(session_max_s=2 * UNIT_S / 5, session_warning_s=UNIT_S / 5)
    page = open_page(server.url)
    start(page, mode="text")
    expect_state(page, "live")
    expect_error(page, "session_limit.warning", timeout_ms=UNIT_MS)
    expect_state(page, "done", timeout_ms=3 * UNIT_MS)
    expect_error(page, "session_limit")
    expect(page.get_by_test_id("feedback")).not_to_be_empty()


def test_a_dropped_gemini_connection_is_resumed_and_the_conversation_goes_on(live_server, emulator, open_page):
    """When Gemini's connection drops, the status shows reconnecting, then live, and the conversation continues."""
    page = open_page(live_server.url)
    page.evaluate("""() => {
      window.__states = [];
      const status = document.querySelector('[data-testid="status"]');
      new MutationObserver(() => window.__states.push(status.dataset.state))
        .observe(status, { attributes: true, attributeFilter: ["data-state"] });
    }""")
    start(page, mode="text")
    expect_state(page, "live")
    box = page.get_by_test_id("text-input")
    box.fill("はじめまして")
    box.press("Enter")
    expect(utterances(page, "model", final=True)).to_have_count(1, timeout=4 * UNIT_MS)
    box.fill("!emu drop")  # the emulator's trigger: drop the TCP connection without a close frame
    box.press("Enter")
    page.wait_for_function("() => window.__states.includes('reconnecting')", timeout=2 * UNIT_MS)
    expect_state(page, "live", timeout_ms=2 * UNIT_MS)
    box.fill("続けましょう")
    box.press("Enter")
    expect(utterances(page, "model", final=True).last).to_contain_text("続けましょう", timeout=4 * UNIT_MS)
    expect(page.get_by_test_id("error")).to_be_empty()


def test_demo_mode_is_announced(make_server, open_page):
    """Without a Gemini key the built-in emulator answers, and the page says it is a demo."""
    server = make_server(gemini_api_key=None)
    page = open_page(server.url)
    expect(page.get_by_test_id("emulated-banner")).to_be_visible()
    start(page, mode="text")
    expect_state(page, "live", timeout_ms=4 * UNIT_MS)
    assert stats(page)["emulated"] is True
    page.get_by_test_id("text-input").fill("こんにちは")
    page.get_by_test_id("send").click()
    expect(utterances(page, "model", final=True).last).to_contain_text("エミュレーター", timeout=4 * UNIT_MS)


# --- the client's own state machine, with a scripted socket ------------------------------------------


def ready(session_id: str = "s-1", *, resume: str | None = None, emulated: bool = False) -> dict:
    return {"type": "ready", "session_id": session_id, "input_rate": 16000, "output_rate": 24000,
            "scenario": "sales-ja", "mode": "text", "resume": resume, "emulated": emulated}


def scripted_live(page, *, resume: str | None = None):
    """Start a text conversation on a scripted relay and bring it live; return the relay and its socket."""
    relay = ScriptedRelay(page)
    start(page, mode="text")
    ws = relay.wait_socket(1, page)
    relay.send(ws, **ready(resume=resume))
    expect_state(page, "live")
    return relay, ws


HOSTILE = '<img src=x onerror="window.__pwned=1">'
EVALUATION = {
    "session_id": "s-1",
    "feedback": f"# 講評\n\n**良い点**: 質問が具体的でした。{HOSTILE}\n\n- [link](javascript:window.__pwned=2)\n"
                "- 次回は予算を確認しましょう\n\n| 項目 | 点 |\n|---|---|\n| ヒアリング | 80 |",
    "evaluation": {
        "score": 78,
        "summary": f"全体として良い商談でした。{HOSTILE}",
        "good_points": ["課題を具体的に質問できた", HOSTILE],
        "improvements": ["次回のアポイントを明確に提案する"],
        "criteria": [{"name": "ヒアリング", "score": 80, "comment": "課題を引き出せた"},
                     {"name": f"提案{HOSTILE}", "score": 70, "comment": "もう一歩"}],
    },
    "stored": {"log": "file:///tmp/log.json", "audio": None, "feedback": "file:///tmp/feedback.md"},
}


def test_every_state_of_a_conversation_is_shown_and_the_evaluation_is_rendered_safely(live_server, open_page,
                                                                                        snap):
    """connecting → live → reconnecting (resumed by ticket) → live → ending → grading → done, with a safe report."""
    page = open_page(live_server.url, locale="ja-JP")
    relay = ScriptedRelay(page)
    held: list = []
    page.route("**/feedback", lambda route: held.append(route))

    start(page, mode="text")
    first = relay.wait_socket(1, page)
    assert "scenario=" in first.url and "mode=text" in first.url and "resume=" not in first.url
    expect_state(page, "connecting")
    snap(page, "connecting")
    relay.send(first, **ready(resume="ticket-1", emulated=True))
    expect_state(page, "live")
    expect(page.get_by_test_id("emulated-banner")).to_be_visible()
    relay.send(first, type="transcript", role="model", text="こんにちは", final=False)
    relay.send(first, type="transcript", role="model", text="こんにちは、佐藤です。", final=True)
    expect(utterances(page, "model", final=True)).to_have_text(re.compile("こんにちは、佐藤です。"))
    expect(utterances(page, "model")).to_have_count(1)

    first.close(code=1011, reason="gone")  # the socket drops
    expect_state(page, "reconnecting")
    second = relay.wait_socket(2, page)
    assert "resume=ticket-1" in second.url
    snap(page, "reconnecting")
    relay.send(second, **ready(resume="ticket-2"))
    expect_state(page, "live")

    page.get_by_test_id("end").click()
    relay.wait_message(2, "end", page)
    expect_state(page, "ending")
    snap(page, "ending")
    relay.send(second, type="ended", session_id="s-1", recording=None)
    second.close(code=1000)
    expect_state(page, "grading")
    deadline = time.monotonic() + 2 * UNIT_S
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert held, "the page never asked /feedback"
    assert json.loads(held[0].request.post_data) == {"session_id": "s-1"}
    expect(page.get_by_test_id("feedback")).to_contain_text("採点しています")
    snap(page, "grading")
    held[0].fulfill(status=200, content_type="application/json", body=json.dumps(EVALUATION))

    expect_state(page, "done")
    feedback = page.get_by_test_id("feedback")
    expect(feedback).to_have_attribute("data-score", "78")
    expect(feedback).to_contain_text("全体として良い商談でした。")
    expect(feedback).to_contain_text("次回のアポイントを明確に提案する")
    expect(feedback.locator("table.criteria tbody tr")).to_have_count(2)
    expect(feedback.locator("details.report")).to_contain_text("ヒアリング")
    assert feedback.locator("img, script, [onerror]").count() == 0
    assert feedback.locator('a[href^="javascript"]').count() == 0
    expect(feedback).to_contain_text(HOSTILE)  # shown as text, harmlessly
    page.locator("details.report summary").click()
    snap(page, "done-evaluation")
    assert page.evaluate("window.__pwned") is None


@pytest.mark.parametrize(("code", "close", "words"), [
    ("capacity", 1013, "混み合っています"),
    ("upstream_unavailable", 1011, "Gemini"),
    ("upstream_error", 1011, "Gemini"),
    ("rate_limited", 1008, "1分ほど待って"),
], ids=["capacity", "upstream_unavailable", "upstream_error", "rate_limited"])
def test_fatal_relay_errors_become_plain_advice(live_server, open_page, snap, code, close, words):
    """Each fatal error code the relay can send is shown as a plain sentence with what to do."""
    page = open_page(live_server.url)
    relay = ScriptedRelay(page)
    start(page, mode="text")
    ws = relay.wait_socket(1, page)
    relay.send(ws, type="error", code=code, message="server words, not shown as such", fatal=True)
    ws.close(code=close)
    expect_state(page, "error")
    expect_error(page, code)
    expect(page.get_by_test_id("error")).to_contain_text(words)
    snap(page, f"error-{code}")


def test_a_non_fatal_error_keeps_the_conversation_going(live_server, open_page):
    """A rejected frame (non-fatal error) is explained but the conversation stays live."""
    page = open_page(live_server.url)
    relay, ws = scripted_live(page)
    relay.send(ws, type="error", code="too_large", message="frame too large", fatal=False)
    expect_error(page, "too_large")
    expect_state(page, "live")


def test_grading_that_is_not_available_ends_plainly(live_server, open_page):
    """If the server has no /feedback (404/405), the page says grading is unavailable and ends in done."""
    page = open_page(live_server.url)
    page.route("**/feedback", lambda route: route.fulfill(status=404, content_type="text/html", body="<h1>nope</h1>"))
    relay, ws = scripted_live(page)
    page.get_by_test_id("end").click()
    relay.wait_message(1, "end", page)
    relay.send(ws, type="ended", session_id="s-1", recording=None)
    expect_state(page, "done")
    expect(page.get_by_test_id("feedback")).to_contain_text("採点機能が使えません")
    expect(page.get_by_test_id("feedback")).not_to_have_attribute("data-score", re.compile(".*"))


def test_reconnecting_gives_up_after_a_few_tries(live_server, open_page):
    """A dropped socket is retried with the resume ticket a few times, then reported as lost."""
    page = open_page(live_server.url)
    relay, first = scripted_live(page, resume="ticket-1")
    first.close(code=1011)
    for n in (2, 3, 4):
        retry = relay.wait_socket(n, page)
        assert "resume=ticket-1" in retry.url
        retry.close(code=1011)
    expect_state(page, "error", timeout_ms=2 * UNIT_MS)
    expect_error(page, "connection_lost")
    assert len(relay.sockets) == 4


def test_ending_while_still_connecting_stops_cleanly(live_server, open_page):
    """End before the session is ready closes everything and ends without a grade."""
    page = open_page(live_server.url)
    relay = ScriptedRelay(page)
    start(page, mode="text")
    relay.wait_socket(1, page)
    expect_state(page, "connecting")
    page.get_by_test_id("end").click()
    expect_state(page, "done")
    expect(page.get_by_test_id("feedback")).to_contain_text("採点できる会話がありませんでした")
    expect(page.get_by_test_id("start")).to_be_enabled()


@pytest.mark.parametrize(("action", "final_state"), [("end", "done"), ("leave", "idle")], ids=["end", "leave-page"])
def test_ending_during_the_reconnect_delay_cancels_the_reconnect(live_server, open_page, action, final_state):
    """End, or leaving the page, while a dropped socket waits for its retry stops it: no socket opens later."""
    page = open_page(live_server.url)
    relay, first = scripted_live(page, resume="ticket-1")
    # Act the moment the page shows reconnecting: well inside the first retry delay (300 ms).
    page.evaluate("""(action) => {
      const status = document.querySelector('[data-testid="status"]');
      new MutationObserver((_, observer) => {
        if (status.dataset.state !== "reconnecting") return;
        observer.disconnect();
        if (action === "end") window.liveTalk.end();
        else window.dispatchEvent(new PageTransitionEvent("pagehide", { persisted: true }));
      }).observe(status, { attributes: true, attributeFilter: ["data-state"] });
    }""", action)
    first.close(code=1011)
    expect_state(page, final_state)
    # A page timer set now, longer than the first retry delay, fires after the retry would have.
    page.evaluate("(ms) => new Promise((resolve) => setTimeout(resolve, ms))", 1000)
    assert len(relay.sockets) == 1, "the page reconnected after the conversation ended"


def test_the_transcript_follows_the_relays_events(live_server, open_page):
    """Transcript text replaces the line, final closes it, and a reply cut by a barge-in is marked where it stopped."""
    page = open_page(live_server.url)
    relay, ws = scripted_live(page)
    for event in (
        {"type": "transcript", "role": "model", "text": "本日は", "final": False},
        {"type": "transcript", "role": "model", "text": "本日はお時間を", "final": False},
        {"type": "interrupted"},
        {"type": "transcript", "role": "model", "text": "本日はお時間を", "final": True},
        {"type": "transcript", "role": "user", "text": "すみません", "final": True},
        {"type": "transcript", "role": "model", "text": "どうぞ。", "final": True},
        {"type": "complete", "full_text": "どうぞ。", "turn": 1},
    ):
        relay.send(ws, **event)
    expect(page.locator(TRANSCRIPT)).to_have_count(3)
    expect(page.locator(TRANSCRIPT).locator(".utterance-text")).to_have_text(["本日はお時間を", "すみません", "どうぞ。"])
    expect(page.locator(f"{TRANSCRIPT}[data-final='true']")).to_have_count(3)
    expect(page.locator(f"{TRANSCRIPT}[data-interrupted='true']")).to_have_count(1)
    expect(page.locator(TRANSCRIPT).first).to_have_attribute("data-interrupted", "true")
