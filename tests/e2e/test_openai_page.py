"""The unchanged page on an OpenAI Realtime scenario: it captures at the 24 kHz `ready` announces."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browserkit import UNIT_MS, expect_state, start, stats, utterances, wait_stats

BYTES_PER_MS_AT_24K = 48  # PCM16 mono at 24 kHz
FAKE_OPENAI_KEY = "FAKE-openai-key-not-real-0123456789"


@pytest.fixture
def openai_server(make_server, emulator, monkeypatch):
    """Both engines configured with fake keys; the openai SDK reaches the emulator through OPENAI_BASE_URL."""
    monkeypatch.setenv("OPENAI_BASE_URL", emulator.openai_base_url)
    return make_server(openai_api_key=FAKE_OPENAI_KEY)


def test_an_openai_scenario_is_held_on_the_same_page(openai_server, emulator, open_page, speech_once, snap):
    """Picking the OpenAI scenario: the microphone streams 24 kHz, speech is answered, both sides are shown."""
    page = open_page(openai_server.url, wav=speech_once)
    page.get_by_test_id("scenario").select_option("sales-ja-openai")
    start(page)
    expect_state(page, "live")
    first = wait_stats(page, "s.sentAudioBytes > 0")
    s = wait_stats(page, f"s.capturedMs > {(speech_once.speech_end_s + 1.0) * 1000}", timeout_ms=4 * UNIT_MS)
    rate = (s["sentAudioBytes"] - first["sentAudioBytes"]) / (s["capturedMs"] - first["capturedMs"])
    assert abs(rate - BYTES_PER_MS_AT_24K) < 2, (rate, s)
    expect(utterances(page, "model").first).to_contain_text("エミュレーター", timeout=4 * UNIT_MS)
    snap(page, "openai-live")
    page.get_by_test_id("end").click()
    expect_state(page, "done", timeout_ms=6 * UNIT_MS)
    openai = [s for s in emulator.control.sessions() if s.get("engine") == "openai"]
    assert openai and openai[-1]["audio_in_ms"] > 1000
    assert stats(page)["queuedMs"] == 0
