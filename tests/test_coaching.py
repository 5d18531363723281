"""Measured coaching facts end to end: a conversation through the relay and the emulator, graded by /feedback."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from livetalk.evidence import normalize
from livetalk.grading import FACTS_HEADER
from tests.helpers import UNIT_S, frames, silence, tone
from tests.wsclient import RelayClient

pytestmark = pytest.mark.timeout(int(20 * UNIT_S))

METRIC_FIELDS = {"duration_s", "talk_s", "talk_share_user", "longest_monologue_s", "turns", "questions_user",
                 "fillers_user", "interruptions", "response_latency_s", "speech_rate_user", "speech_rate_unit"}
MODEL_BYTES_PER_S = 48000  # 24 kHz PCM16
FRAME_S = 0.02  # the browser's microphone frames, sent in real time


def post_feedback(learner, session_id: str) -> tuple[int, dict]:
    """Ask for the grade of the learner's own conversation."""
    response = learner.post_json("/feedback", {"session_id": session_id})
    return response.status_code, response.json()


def speak_and_listen(client: RelayClient, seconds: float) -> None:
    """Say ``seconds`` of tone, then keep the microphone open (silence) while the whole reply plays."""
    replies = len(client.of_type("complete"))
    heard = len(client.audio)
    client.stream(frames(tone(seconds) + silence(1.2)), frame_s=FRAME_S)
    client.wait_for(lambda e: e.get("type") == "complete" and len(client.of_type("complete")) > replies)
    reply_s = (len(client.audio) - heard) / MODEL_BYTES_PER_S
    client.stream(frames(silence(reply_s + 0.6)), frame_s=FRAME_S)


def type_and_listen(client: RelayClient, text: str) -> None:
    replies, heard = len(client.of_type("complete")), len(client.audio)
    client.send_json({"type": "text", "text": text})
    client.wait_for(lambda e: e.get("type") == "complete" and len(client.of_type("complete")) > replies)
    client.stream(frames(silence((len(client.audio) - heard) / MODEL_BYTES_PER_S + 0.6)), frame_s=FRAME_S)


def end(client: RelayClient) -> str:
    client.send_json({"type": "end"})
    return client.wait_type("ended")["session_id"]


def graded_request(emu) -> dict:
    return [r for r in emu.control.requests() if "generateContent" in r["path"]][-1]


def transcript_lines(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "transcript.jsonl").read_text().splitlines()]


def conversation_folder(settings, session_id: str):
    return next(settings.data_dir.glob(f"conversations/*/*/*/{session_id}"))


def test_a_recorded_conversation_is_graded_with_every_measured_fact(live_server, emu, settings, new_browser):
    """Voice turns, a typed question, End: /feedback returns every metric, tells the grader, stores it all."""
    learner = new_browser(live_server.url)
    learner.visit()
    with learner.socket() as client:
        client.ready()
        speak_and_listen(client, 1.5)
        type_and_listen(client, "えーと、御社でいちばんお困りのことは何でしょうか？")
        speak_and_listen(client, 1.0)
        session_id = end(client)
    status, body = post_feedback(learner, session_id)
    assert status == 200, body
    evaluation = body["evaluation"]
    metrics = evaluation["metrics"]
    assert METRIC_FIELDS <= set(metrics)
    assert all(metrics[name] is not None for name in METRIC_FIELDS), metrics
    assert metrics["talk_s"]["user"] == pytest.approx(2.5, abs=0.3) and metrics["talk_s"]["model"] > 1.0
    assert 0 < metrics["talk_share_user"] < 1
    assert metrics["turns"] == {"user": 2, "model": 2}  # the typed turn has no audio: two replies in a row
    assert (metrics["questions_user"], metrics["fillers_user"]) == (1, 1)
    assert None not in metrics["response_latency_s"].values()
    assert metrics["speech_rate_unit"] == "chars_per_min"
    assert evaluation["outcome"] is None

    request = graded_request(emu)
    lines = request["text"].splitlines()
    facts = json.loads(lines[lines.index(FACTS_HEADER) + 1])
    assert facts == {**{k: v for k, v in metrics.items() if k != "timeline"}, "outcome": None}
    assert "計測値" in body["feedback"]
    folder = conversation_folder(settings, session_id)
    stored = json.loads(next(folder.glob("feedback-*/evaluation.json")).read_text())
    assert stored["evaluation"] == evaluation

    # Every evidence quote points at the line it was taken from, with that line's times.
    said = transcript_lines(folder)
    refs = [ref for ref in evaluation["evidence_refs"] if ref["role"]]
    assert refs and len(evaluation["evidence_refs"]) == sum(len(c["evidence"]) for c in evaluation["criteria"])
    for ref in refs:
        line = next(line for line in said if line["role"] == ref["role"]
                    and normalize(ref["quote"]) in normalize(line["text"]))
        assert (ref["start_s"], ref["end_s"]) == pytest.approx((line["start_ms"] / 1000, line["end_ms"] / 1000),
                                                               abs=0.005)


def test_an_agreed_meeting_is_the_outcome_of_the_grade(live_server, emu, new_browser):
    """The customer's schedule_meeting call becomes evaluation.outcome and a fact the grader is told."""
    learner = new_browser(live_server.url)
    learner.visit()
    with learner.socket() as client:
        client.ready()
        client.send_json({"type": "text", "text": "12月3日の14時にデモはいかがでしょうか"})
        agreed = client.wait_type("outcome")
        client.wait_type("complete")
        session_id = end(client)
    status, body = post_feedback(learner, session_id)
    assert status == 200, body
    assert body["evaluation"]["outcome"] == {"appointment": True, "details": agreed["details"]}
    lines = graded_request(emu)["text"].splitlines()
    facts = json.loads(lines[lines.index(FACTS_HEADER) + 1])
    assert facts["outcome"] == {"name": "appointment", "details": agreed["details"]}
    assert "appointment" in body["evaluation"]["summary"]  # the emulator's grader says the outcome was reached
    assert "アポイント獲得" in body["feedback"]


def test_a_resumed_conversation_is_graded_as_one(live_server, emu, settings, new_browser):
    """Two sockets (a resume ticket, two segments): both segments' words reach the grader, one timeline."""
    learner = new_browser(live_server.url)
    learner.visit()
    with learner.socket() as client:
        session_id = client.ready()["session_id"]
        type_and_listen(client, "最初に、現在の問い合わせ件数を教えていただけますか？")
        ticket = client.wait_type("resumable")["resume"]
    emu.control.wait_for(lambda: not emu.control.sessions()[-1]["open"], timeout=UNIT_S)
    with learner.socket(resume=ticket) as again:
        assert again.ready()["session_id"] == session_id
        type_and_listen(again, "では、来週の火曜日十四時にデモはいかがですか？")
        end(again)
    status, body = post_feedback(learner, session_id)
    assert status == 200, body
    request_text = graded_request(emu)["text"]
    assert "現在の問い合わせ件数" in request_text and "来週の火曜日十四時" in request_text

    folder = conversation_folder(settings, session_id)
    metas = [json.loads((folder / name / "meta.json").read_text()) for name in (".", "segment-1")]
    resumed_at = (dt.datetime.fromisoformat(metas[1]["started_at"])
                  - dt.datetime.fromisoformat(metas[0]["started_at"])).total_seconds()
    assert resumed_at >= metas[0]["duration_s"]
    metrics = body["evaluation"]["metrics"]
    length = max(metas[1]["duration_s"], metas[1]["audio"]["duration_s"])
    assert metrics["duration_s"] == pytest.approx(resumed_at + length, abs=0.05)
    assert metrics["questions_user"] == 2
    replies = [e["start_s"] for e in metrics["timeline"] if e["role"] == "model"]
    assert min(replies) < metas[0]["duration_s"] and max(replies) > resumed_at  # both replies, on one timeline
    second_line = next(line for line in transcript_lines(folder / "segment-1") if line["role"] == "user")
    refs = [ref for ref in body["evaluation"]["evidence_refs"] if ref["quote"] and "デモ" in ref["quote"]]
    assert refs and all(ref["start_s"] == pytest.approx(resumed_at + second_line["start_ms"] / 1000, abs=0.01)
                        for ref in refs)
