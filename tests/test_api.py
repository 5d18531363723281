"""Learners through a real server: who owns what, /api, the recording's Range answers, per-learner limits.

Two learners are two cookie jars (tests/learner_helpers.py); their conversations go through the relay to
the Gemini emulator and are stored in a local folder or in fake-gcs-server, as configured.
"""
from __future__ import annotations

import io
import re
import wave

import pytest

from livetalk.learners import entry_key
from livetalk.recording import index_key
from livetalk.storage import GcsStorage, LocalStorage
from tests.helpers import UNIT_S, wait_until
from tests.wsclient import RelayClient


@pytest.fixture(params=["local", "gcs"])
def stored_server(request, make_server, settings):
    """A server storing in a local folder, then one storing in a fake-gcs-server bucket; with a view of that store."""
    if request.param == "local":
        return make_server(), LocalStorage(settings.data_dir)
    gcs = request.getfixturevalue("gcs_env")
    bucket = gcs.new_bucket()
    return make_server(gcs_bucket_name=bucket), GcsStorage(bucket, client=gcs.client())


def two_learners(new_browser, server):
    alice, bob = new_browser(server.url), new_browser(server.url)
    assert alice.visit().status_code == 200 and bob.visit().status_code == 200
    assert alice.cookie and bob.cookie and alice.cookie != bob.cookie
    return alice, bob


def assert_not_found(response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["Content-Type"].startswith("application/json") and response.json()["error"]["code"]


# --- ownership --------------------------------------------------------------------------------


def test_each_learner_sees_and_deletes_only_their_own(stored_server, new_browser, emu):
    """Two learners' conversations: each lists and opens only their own; the other's id is 404 on every route;
    deleting removes every object from storage and leaves 404 behind."""
    server, store = stored_server
    alice, bob = two_learners(new_browser, server)
    mine, theirs = alice.converse(), bob.converse()

    listed = alice.get("/api/conversations").json()
    assert [c["session_id"] for c in listed["conversations"]] == [mine] and listed["next"] is None
    assert [c["session_id"] for c in bob.get("/api/conversations").json()["conversations"]] == [theirs]
    entry = listed["conversations"][0]
    assert entry["scenario"] == "sales-ja" and entry["duration_s"] > 0 and entry["score"] is None

    for path in (f"/api/conversations/{theirs}", f"/api/conversations/{theirs}/audio"):
        assert_not_found(alice.get(path))
    assert_not_found(alice.delete(f"/api/conversations/{theirs}"))
    refused = alice.post_json("/feedback", {"session_id": theirs})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_session"
    assert bob.get(f"/api/conversations/{theirs}").status_code == 200  # still there for its owner

    detail = alice.get(f"/api/conversations/{mine}").json()
    assert detail["session_id"] == mine and detail["evaluation"] is None and detail["mine"] is True
    assert [line["role"] for line in detail["transcript"]][:1] == ["user"]
    assert detail["transcript"][0]["text"] == "御社の課題を教えてください。"
    assert detail["audio_url"] == f"/api/conversations/{mine}/audio"

    prefix = f"{detail['started_at'][:10].replace('-', '/')}/{mine}"
    objects = store.list(f"conversations/{prefix}")
    assert any(key.endswith("/audio.wav") for key in objects) and store.exists(index_key(mine))
    assert alice.delete(f"/api/conversations/{mine}").status_code == 204
    assert store.list(f"conversations/{prefix}") == []
    assert not store.exists(index_key(mine)) and not store.exists(entry_key(detail_learner(alice), mine))
    for path in (f"/api/conversations/{mine}", f"/api/conversations/{mine}/audio"):
        assert_not_found(alice.get(path))
    assert_not_found(alice.delete(f"/api/conversations/{mine}"))
    assert alice.post_json("/feedback", {"session_id": mine}).status_code == 404
    assert alice.get("/api/conversations").json()["conversations"] == []


def detail_learner(browser) -> str:
    return browser.get("/api/me").json()["learner"]["id"]


def test_grading_is_for_the_owner_and_goes_into_their_history(live_server, new_browser, emu):
    """The owner's /feedback grades the conversation; the list then shows the score, the detail the evaluation."""
    alice, _ = two_learners(new_browser, live_server)
    session_id = alice.converse()
    graded = alice.post_json("/feedback", {"session_id": session_id})
    assert graded.status_code == 200, graded.text
    score = graded.json()["evaluation"]["score"]
    (entry,) = alice.get("/api/conversations").json()["conversations"]
    assert entry["score"] == score and entry["graded_at"]
    detail = alice.get(f"/api/conversations/{session_id}").json()
    assert detail["evaluation"]["score"] == score and detail["feedback"] == graded.json()["feedback"]


def test_a_client_without_the_cookie_is_a_new_learner_each_time(live_server, new_browser, emu):
    """A socket without the learner cookie still works; its conversation belongs to nobody who can ask again."""
    with RelayClient(live_server.ws_url, timeout_s=UNIT_S, mode="text") as client:
        session_id = client.ready()["session_id"]
        client.send_json({"type": "text", "text": "こんにちは"})
        client.wait_type("complete")
        client.send_json({"type": "end"})
        client.wait_type("ended")
    first, second = new_browser(live_server.url), new_browser(live_server.url)
    ids = {first.get("/api/me").json()["learner"]["id"], second.get("/api/me").json()["learner"]["id"]}
    assert len(ids) == 2
    assert_not_found(first.get(f"/api/conversations/{session_id}"))


# --- the recording ------------------------------------------------------------------------------


RANGE_CASES = [(None, 200), ("bytes=0-43", 206), ("bytes=100-1099", 206), ("bytes=-500", 206), ("bytes=1000-", 206),
               ("bytes=999999999-", 416), ("bytes=0-1,5-6", 200)]  # (Range header, status): one recording for all


def test_the_recording_is_served_with_ranges(stored_server, new_browser, emu):
    """`audio` serves the stored WAV: the whole file, exactly the bytes a range asks for (206), or 416."""
    server, store = stored_server
    alice = new_browser(server.url)
    alice.visit()
    session_id = alice.converse()
    (key,) = [k for k in store.list("conversations") if session_id in k and k.endswith("/audio.wav")]
    stored = store.read(key)
    for range_header, status in RANGE_CASES:
        headers = {"Range": range_header} if range_header else {}
        response = alice.get(f"/api/conversations/{session_id}/audio", headers=headers)
        assert response.status_code == status, range_header
        check_audio_answer(response, stored)


def check_audio_answer(response, stored: bytes) -> None:
    if response.status_code == 416:
        assert response.headers["Content-Range"] == f"bytes */{len(stored)}"
        assert response.json()["error"]["code"] == "range_not_satisfiable"
        return
    assert response.headers["Content-Type"] == "audio/wav" and response.headers["Accept-Ranges"] == "bytes"
    if response.status_code == 200:
        assert response.content == stored
        with wave.open(io.BytesIO(response.content)) as wav:
            assert (wav.getnchannels(), wav.getframerate()) == (2, 24000)
        return
    first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response.headers["Content-Range"]).groups())
    assert total == len(stored) and response.content == stored[first:last + 1]
    assert int(response.headers["Content-Length"]) == last + 1 - first


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/conversations?limit=0", 400), ("/api/conversations?limit=abc", 400), ("/api/conversations?limit=101", 400),
     ("/api/conversations?cursor=../../etc", 400), ("/api/conversations/..%2F..%2Fetc", 404),
     ("/api/conversations/" + "x" * 200, 404), ("/api/conversations/20990101T000000Z-0000000000000000", 404),
     ("/api/conversations/20990101T000000Z-0000000000000000/audio", 404), ("/api/admin/conversations", 404),
     ("/api/nothing", 404)],
)
def test_bad_requests_are_json_4xx(live_server, new_browser, path, status):
    """Malformed parameters and unknown ids are JSON errors, never a 500 or a page."""
    response = new_browser(live_server.url).get(path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"]


def test_me_names_the_learner_their_limits_and_todays_use(make_server, new_browser, emu):
    """`/api/me`: the learner, the configured limits, and today's conversations and seconds after one ended."""
    server = make_server(learner_max_concurrent=3, learner_daily_s=1800)
    alice = new_browser(server.url)
    before = alice.get("/api/me").json()
    assert before["learner"]["kind"] == "anonymous" and before["learner"]["email"] is None
    assert before["limits"] == {"concurrent": 3, "daily_seconds": 1800}
    assert before["usage_today"] == {"conversations": 0, "seconds": 0, "concurrent": 0}
    assert 0 < before["resets_in_s"] <= 86400 and before["admin"] is False
    alice.converse()
    after = wait_until(lambda: (me := alice.get("/api/me").json())["usage_today"]["seconds"] > 0 and me)
    assert after["usage_today"]["conversations"] == 1 and after["learner"]["id"] == before["learner"]["id"]


# --- per-learner limits ---------------------------------------------------------------------------


def test_a_learner_holds_only_so_many_conversations_at_once(make_server, new_browser, emu):
    """Past LEARNER_MAX_CONCURRENT the socket is refused with quota_exceeded (1008); others are not affected."""
    server = make_server(learner_max_concurrent=1)
    alice, bob = two_learners(new_browser, server)
    with alice.socket(mode="text") as first:
        first.ready()
        with alice.socket(mode="text") as second:
            error = second.wait_type("error")
            assert error["code"] == "quota_exceeded" and error["fatal"] and "end one" in error["message"]
            assert second.wait_closed().code == 1008
        with bob.socket(mode="text") as other:
            other.ready()
    wait_until(lambda: alice.get("/api/me").json()["usage_today"]["concurrent"] == 0)
    with alice.socket(mode="text") as again:
        again.ready()


def test_the_daily_allowance_ends_a_conversation_then_refuses_with_the_reset_time(make_server, new_browser, emu):
    """A conversation stops when the day's seconds run out; the next socket is quota_exceeded, saying when it resets."""
    server = make_server(learner_daily_s=1.5, session_warning_s=0.5)
    alice = new_browser(server.url)
    alice.visit()
    with alice.socket(mode="text") as client:
        client.ready()
        ended = client.wait_for(lambda e: e.get("type") == "error" and e.get("fatal"), timeout_s=4 * UNIT_S)
        assert ended["code"] == "session_limit"
        assert client.wait_closed(timeout_s=4 * UNIT_S).code == 1000
    used = wait_until(lambda: alice.get("/api/me").json()["usage_today"]["seconds"] >= 1.5)
    assert used
    with alice.socket(mode="text") as refused:
        error = refused.wait_type("error")
        assert error["code"] == "quota_exceeded" and re.search(r"resets in \d+ (h|min|s)", error["message"])
        assert refused.wait_closed().code == 1008
