"""The learner's history in a real Chromium: the list, the progress chart, a past conversation played, deleted.

Conversations are held on the conversation page itself, or (to save time) through the relay with the
browser's own learner cookie, exactly as the page would hold them.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.learner_helpers import COOKIE, Browser

from .browserkit import UNIT_MS, UNIT_S, expect_error, expect_state, start, utterances

pytestmark = pytest.mark.timeout(int(40 * UNIT_S))


def same_learner(page, url: str) -> Browser:
    """A cookie jar holding the page's own learner cookie: conversations held through it are the page's."""
    (cookie,) = [c for c in page.context.cookies() if c["name"] == COOKIE]
    browser = Browser(url)
    browser.session.cookies.set(COOKIE, cookie["value"])
    return browser


def open_history(page, url: str, fragment: str = "") -> None:
    page.goto(f"{url}/history{fragment}")
    page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=2 * UNIT_MS)


def grade_on_the_page(page) -> None:
    start(page, mode="text")
    expect_state(page, "live")
    page.get_by_test_id("text-input").fill("御社の課題を教えていただけますか")
    page.get_by_test_id("send").click()
    expect(utterances(page, "model", final=True).last).to_contain_text("エミュレーター", timeout=4 * UNIT_MS)
    page.get_by_test_id("end").click()
    expect_state(page, "done", timeout_ms=12 * UNIT_MS)


def test_history_lists_charts_plays_and_deletes(live_server, open_page, snap, emu):
    """Graded conversations are listed with scores and charted one point each; one opens, plays, and is deleted."""
    page = open_page(live_server.url)
    grade_on_the_page(page)
    first_score = page.get_by_test_id("feedback").get_attribute("data-score")
    jar = same_learner(page, live_server.url)
    try:
        second = jar.converse("来週デモはいかがでしょうか？")
        second_score = jar.post_json("/feedback", {"session_id": second}).json()["evaluation"]["score"]
        ungraded = jar.converse("ご予算はいかがでしょうか？")
    finally:
        jar.close()

    # "See your progress" after grading opens the history on the conversation just graded.
    page.get_by_test_id("see-progress").click()
    page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=2 * UNIT_MS)
    detail = page.get_by_test_id("detail")
    expect(detail).to_be_visible()
    first = detail.get_attribute("data-session-id")
    expect(detail.get_by_test_id("feedback")).to_have_attribute("data-score", first_score)

    items = page.get_by_test_id("history").locator("li")
    expect(items).to_have_count(3)
    assert [items.nth(i).get_attribute("data-session-id") for i in range(3)] == [ungraded, second, first]
    assert items.nth(0).get_attribute("data-score") is None
    assert items.nth(1).get_attribute("data-score") == str(round(second_score))
    expect(items.nth(1)).to_contain_text(str(round(second_score)))
    points = page.get_by_test_id("progress-chart").locator("[data-session-id]")
    expect(points).to_have_count(2)
    assert {points.nth(i).get_attribute("data-session-id") for i in range(2)} == {first, second}
    snap(page, "history")

    # Open the second one from the list: its transcript, and its recording plays.
    items.nth(1).locator("a").click()
    expect(detail).to_have_attribute("data-session-id", second)
    expect(detail.locator(".detail-transcript li").first).to_contain_text("来週デモはいかがでしょうか？")
    audio = page.get_by_test_id("recording")
    expect(audio).to_have_attribute("src", f"/api/conversations/{second}/audio")
    page.evaluate("() => document.querySelector('[data-testid=recording]').play()")
    page.wait_for_function("() => document.querySelector('[data-testid=recording]').currentTime > 0.2",
                           timeout=2 * UNIT_MS)
    assert page.evaluate("() => document.querySelector('[data-testid=recording]').duration") > 0.5
    snap(page, "history-detail")

    # Delete it: asked first; cancelling keeps it, confirming removes it everywhere.
    page.get_by_test_id("delete").click()
    page.get_by_test_id("delete-cancel").click()
    expect(items).to_have_count(3)
    page.get_by_test_id("delete").click()
    expect(page.get_by_test_id("delete-confirm")).to_be_visible()
    snap(page, "history-delete-confirm")
    page.get_by_test_id("delete-confirm").click()
    expect(items).to_have_count(2)
    expect(detail).to_be_hidden()
    expect(points).to_have_count(1)
    status = page.evaluate(f"async () => (await fetch('/api/conversations/{second}')).status")
    assert status == 404


def test_a_deleted_or_foreign_conversation_is_not_found(live_server, open_page, new_browser, emu):
    """Opening another learner's conversation by its address shows "not found", never its content."""
    other = new_browser(live_server.url)
    other.visit()
    theirs = other.converse()
    page = open_page(None)
    open_history(page, live_server.url, f"#{theirs}")
    expect(page.get_by_test_id("error")).to_have_attribute("data-code", "detail.not_found")
    expect(page.get_by_test_id("detail")).to_be_hidden()
    expect(page.get_by_test_id("history").locator("li")).to_have_count(0)
    expect(page.get_by_test_id("learner-note")).to_contain_text("Cookie を削除すると")


def test_history_speaks_english_to_an_english_browser(live_server, open_page):
    """The history page follows the browser's language and switches with the language button."""
    page = open_page(None, locale="en-US")
    open_history(page, live_server.url)
    expect(page.locator("#list-title")).to_have_text("Your conversations")
    expect(page.get_by_test_id("usage")).to_contain_text("Today you practised 0 time(s)")
    page.get_by_role("button", name="日本語に切り替える").click()
    expect(page.locator("#list-title")).to_have_text("これまでの会話")


def test_switching_the_page_language_offers_that_languages_scenario(live_server, open_page):
    """Switching to English selects the English scenario, and back to Japanese the Japanese one."""
    page = open_page(live_server.url, locale="ja-JP")
    scenario = page.get_by_test_id("scenario")
    expect(scenario).to_have_value("sales-ja")
    page.get_by_role("button", name="Switch to English").click()
    expect(scenario).to_have_value("sales-en")
    page.get_by_role("button", name="日本語に切り替える").click()
    expect(scenario).to_have_value("sales-ja")


def test_a_learner_over_their_limit_is_told_plainly(make_server, open_page):
    """With the learner's one conversation held elsewhere, Start says the practice limit is reached."""
    server = make_server(learner_max_concurrent=1)
    page = open_page(server.url)
    jar = same_learner(page, server.url)
    try:
        with jar.socket(mode="text") as elsewhere:
            elsewhere.ready()
            start(page, mode="text")
            expect_state(page, "error")
            expect_error(page, "quota_exceeded")
            expect(page.get_by_test_id("error")).to_contain_text(re.compile("練習の上限"))
    finally:
        jar.close()


def test_an_administrator_searches_every_learners_conversations(make_server, open_page, new_browser, key_server,
                                                                 iap_key, emu):
    """Behind IAP an administrator filters everyone's conversations by learner and opens one in the same detail."""
    import time

    from livetalk.identity import IAP_HEADER
    from tests.iap_helpers import AUDIENCE, iap_claims

    def token(sub: str, email: str) -> str:
        return iap_key.assertion(iap_claims(time.time(), sub=sub, email=email))

    server = make_server(auth_mode="iap", iap_audience=AUDIENCE, iap_keys_url=key_server.url,
                         admin_emails=("boss@example.com",))
    alice = new_browser(server.url, headers={IAP_HEADER: token("accounts.google.com:1", "alice@example.com")})
    bob = new_browser(server.url, headers={IAP_HEADER: token("accounts.google.com:2", "bob@example.com")})
    alice.converse("アリスです。")
    bobs = bob.converse("ボブです。")
    page = open_page(None)
    page.set_extra_http_headers({IAP_HEADER: token("accounts.google.com:3", "boss@example.com")})
    open_history(page, server.url)
    expect(page.get_by_test_id("learner-note")).to_have_count(0)  # not an anonymous learner
    filters = page.get_by_test_id("admin-filters")
    expect(filters).to_be_visible()
    filters.locator('input[name="learner"]').fill("BOB@example.com")
    filters.locator('button[type="submit"]').click()
    items = page.get_by_test_id("history").locator("li")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-session-id", bobs)
    expect(items.first).to_contain_text("bob@example.com")
    items.first.locator("a").click()
    expect(page.get_by_test_id("detail").locator(".detail-transcript li").first).to_contain_text("ボブです。")
    page.locator("#admin-mine").click()
    expect(items).to_have_count(0)
