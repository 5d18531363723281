"""``GET /metrics``: what is counted, who may see it, and sums that hold across gunicorn's worker processes."""
from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from livetalk.config import ConfigError, Settings
from livetalk.instance import Instance
from livetalk.metrics import Metrics, MetricsError, close_code_label
from livetalk.relay import Stats
from tests.helpers import UNIT_S, wait_until
from tests.wsclient import RelayClient

LABELS_ALLOWED = {"engine", "end_reason", "reason", "code", "le"}  # bounded sets only: never a session
MAX_CONVERSATIONS = 20  # opened until both workers have served one: all on one worker is a 1 in 2**19 chance
SCRAPES = 8  # each on a new connection, so both workers answer some of them
RECONNECTS = {  # reason: what the user types to cause it (the emulator's typed faults)
    "go_away": ["!emu goaway 1"],
    "stall": ["!emu stall", "予算について伺えますか？"],  # the engine stays silent after this turn (1 s limit)
    "upstream_closed": ["!emu drop"],  # TCP dropped under the session: close 1006
}


# --- reading an exposition ---------------------------------------------------------------------


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition: ``(name, labels) -> value``."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return parse(text).get((name, frozenset(labels.items())), 0.0)


def label_names(text: str) -> set[str]:
    return {name for family in text_string_to_metric_families(text) for sample in family.samples
            for name in sample.labels}


def scrape(base_url: str, headers: dict[str, str] | None = None) -> str:
    """``GET /metrics`` on a new connection; its text (fails on anything but 200)."""
    request = urllib.request.Request(base_url + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=UNIT_S) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def status_of(base_url: str, headers: dict[str, str] | None = None, path: str = "/metrics") -> tuple[int, bytes]:
    """The status and body of ``GET path``."""
    request = urllib.request.Request(base_url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=UNIT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- the observer, in one process ------------------------------------------------------------------


def fake_conversation(*, end_reason: str = "end", recording_uri: str | None = "file:///rec",
                      **stats) -> SimpleNamespace:
    """What the observer reads of a :class:`~livetalk.relay.Conversation`: its stats, end reason and recording."""
    reconnects, codes = stats.pop("reconnect_reasons", {}), stats.pop("upstream_codes", {})
    conversation_stats = Stats(**stats)
    conversation_stats.reconnect_reasons.update(reconnects)
    conversation_stats.upstream_codes.update(codes)
    return SimpleNamespace(stats=conversation_stats, end_reason=end_reason, recording_uri=recording_uri)


def test_a_conversation_is_counted_while_open_and_when_it_ends():
    """Started: one active. Ended: none active; its reason, first audio, reconnects, codes, drops, tokens count."""
    metrics = Metrics()
    observer = metrics.observer(engine="gemini")
    conversation = fake_conversation(first_audio_s=0.6, audio_frames_dropped=3, tokens=120,
                                     reconnect_reasons={"go_away": 1, "stall": 2}, upstream_codes={1006: 2})
    observer.conversation_started(conversation)
    assert value(metrics.render()[0].decode(), "livetalk_conversations_active", engine="gemini") == 1
    observer.conversation_ended(conversation)
    text = metrics.render()[0].decode()
    assert value(text, "livetalk_conversations_active", engine="gemini") == 0
    assert value(text, "livetalk_conversations_total", engine="gemini", end_reason="end") == 1
    assert value(text, "livetalk_first_audio_seconds_count", engine="gemini") == 1
    assert value(text, "livetalk_first_audio_seconds_bucket", engine="gemini", le="0.75") == 1
    assert value(text, "livetalk_first_audio_seconds_bucket", engine="gemini", le="0.5") == 0
    assert value(text, "livetalk_reconnects_total", engine="gemini", reason="go_away") == 1
    assert value(text, "livetalk_reconnects_total", engine="gemini", reason="stall") == 2
    assert value(text, "livetalk_upstream_errors_total", engine="gemini", code="1006") == 2
    assert value(text, "livetalk_audio_frames_dropped_total", engine="gemini") == 3
    assert value(text, "livetalk_tokens_total", engine="gemini") == 120
    assert value(text, "livetalk_recordings_stored_total") == 1
    assert value(text, "livetalk_recordings_failed_total") == 0


def test_a_conversation_without_audio_or_recording():
    """No model audio: no time-to-first-audio sample; no recording URI: a failed recording."""
    metrics = Metrics()
    observer = metrics.observer(engine="gemini")
    conversation = fake_conversation(end_reason="upstream_unavailable", recording_uri=None)
    observer.conversation_started(conversation)
    observer.conversation_ended(conversation)
    text = metrics.render()[0].decode()
    assert value(text, "livetalk_conversations_total", engine="gemini", end_reason="upstream_unavailable") == 1
    assert value(text, "livetalk_first_audio_seconds_count", engine="gemini") == 0
    assert value(text, "livetalk_recordings_failed_total") == 1


@pytest.mark.parametrize(("code", "label"),
                         [(1000, "1000"), (1006, "1006"), (1011, "1011"), (4003, "4003"), (429, "429"),
                          (0, "other"), (-1, "other"), (65535, "other")])
def test_close_codes_are_a_bounded_label(code, label):
    """WebSocket close codes and HTTP statuses label as themselves; any other number is `other`."""
    assert close_code_label(code) == label


def test_a_broken_report_never_reaches_the_relay(caplog):
    """The observer is the relay's boundary: a conversation it cannot read is logged, never raised."""
    observer = Metrics().observer(engine="gemini")
    observer.conversation_ended(object())
    assert "metrics could not be recorded" in caplog.text


def test_grading_latency_and_failures():
    """Every grading is timed, failures included; failures are also counted on their own."""
    metrics = Metrics()
    metrics.grading_finished(2.5, failed=False)
    metrics.grading_finished(40.0, failed=True)
    text = metrics.render()[0].decode()
    assert value(text, "livetalk_grading_seconds_count") == 2
    assert value(text, "livetalk_grading_seconds_sum") == 42.5
    assert value(text, "livetalk_grading_failures_total") == 1


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it():
    """The format follows the scraper's Accept header: OpenMetrics when asked, Prometheus text otherwise."""
    metrics = Metrics()
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    assert metrics.render(None)[1].startswith("text/plain; version=0.0.4")


def test_a_multiprocess_directory_the_library_does_not_write_to_is_refused(tmp_path):
    """prometheus_client imported in this process without PROMETHEUS_MULTIPROC_DIR would keep values to itself."""
    with pytest.raises(MetricsError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(multiprocess_dir=tmp_path)


# --- settings and the gunicorn master ------------------------------------------------------------


def test_metrics_are_off_by_default_and_local_only_when_on():
    """Nothing is exposed unless METRICS_ENABLED; when on, only this instance may scrape unless told otherwise."""
    assert not Settings.from_env({}).metrics_enabled
    on = Settings.from_env({"METRICS_ENABLED": "true", "PROMETHEUS_MULTIPROC_DIR": "/tmp/m"})
    assert on.metrics_enabled and on.metrics_local_only and on.metrics_dir == Path("/tmp/m")
    assert not Settings.from_env({"METRICS_LOCAL_ONLY": "false"}).metrics_local_only


@pytest.mark.parametrize("variable", ["METRICS_ENABLED", "METRICS_LOCAL_ONLY"])
def test_bad_metrics_switch_names_its_variable(variable):
    """A switch that is neither true nor false raises ConfigError naming it."""
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: "sometimes"})


def test_the_master_gives_its_workers_an_empty_metrics_directory(tmp_path):
    """Before forking, the master publishes <state dir>/metrics, with a previous run's values removed."""
    stale = tmp_path / "metrics" / "counter_123.db"
    stale.parent.mkdir()
    stale.write_bytes(b"old values")
    settings = Settings(gemini_api_key="k", metrics_enabled=True, instance_dir=tmp_path)
    environ: dict[str, str] = {}
    instance = Instance(settings).start(environ)
    try:
        assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics")
        assert not stale.exists() and (tmp_path / "metrics").is_dir()
    finally:
        instance.stop()


def test_without_metrics_the_master_sets_nothing(tmp_path):
    """With metrics off, no directory and no variable: the workers keep prometheus_client out entirely."""
    environ: dict[str, str] = {}
    instance = Instance(Settings(gemini_api_key="k", instance_dir=tmp_path)).start(environ)
    instance.stop()
    assert "PROMETHEUS_MULTIPROC_DIR" not in environ and not (tmp_path / "metrics").exists()


# --- the route, one process (werkzeug) -----------------------------------------------------------------


def test_metrics_are_404_when_disabled(live_server):
    """Off by default: /metrics answers exactly like a path that does not exist."""
    status, body = status_of(live_server.url)
    _, unknown = status_of(live_server.url, path="/no-such-path")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert json.loads(body)["error"]["code"] == json.loads(unknown)["error"]["code"]


@pytest.mark.parametrize(
    ("local_only", "headers", "status"),
    [(True, {}, 200),
     (True, {"X-Forwarded-For": "203.0.113.7"}, 404),  # relayed by a proxy: from outside the instance
     (True, {"Forwarded": "for=203.0.113.7"}, 404),
     (False, {"X-Forwarded-For": "203.0.113.7"}, 200)],
)
def test_only_this_instance_may_scrape_unless_told_otherwise(make_server, local_only, headers, status):
    """METRICS_LOCAL_ONLY (default): a loopback peer with no proxy header; off: any peer that reaches the port."""
    server = make_server(metrics_enabled=True, metrics_local_only=local_only)
    assert status_of(server.url, headers)[0] == status


def test_a_relayed_conversation_and_a_grading_are_counted_in_one_process(make_server, emu):
    """Without gunicorn the values live in the process: a conversation and two gradings (one failed) show."""
    server = make_server(metrics_enabled=True)
    with RelayClient(server.ws_url, timeout_s=UNIT_S) as client:
        client.ready()
        client.send_json({"type": "text", "text": "こんにちは"})
        client.wait_type("complete")
        client.send_json({"type": "end"})
        client.wait_closed()
    text = wait_until(lambda: (t := scrape(server.url)) and value(
        t, "livetalk_conversations_total", engine="gemini", end_reason="end") == 1 and t)
    assert value(text, "livetalk_conversations_active", engine="gemini") == 0
    assert value(text, "livetalk_first_audio_seconds_count", engine="gemini") == 1
    assert value(text, "livetalk_recordings_stored_total") == 1
    assert post_feedback(server.url) == 200
    emu.control.fault_next_rest(status=400)  # not retried: one failed grading
    assert post_feedback(server.url) == 502
    text = scrape(server.url)
    assert value(text, "livetalk_grading_seconds_count") == 2
    assert value(text, "livetalk_grading_failures_total") == 1


def post_feedback(base_url: str) -> int:
    """``POST /feedback`` with a short text log (multipart, as client apps send it); the status."""
    boundary = "metrics-test-boundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"log\"\r\n\r\n"
            f"User: Hello\nAI: Hi\n\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(base_url + "/feedback", data=form, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=6 * UNIT_S) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# --- the production server: gunicorn, two workers ------------------------------------------------------


@pytest.fixture()
def metrics_server(make_gunicorn, tmp_path):
    """The production command with METRICS_ENABLED, 2 workers, a known state directory and a 1 s stall limit."""
    state_dir = tmp_path / "instance"
    state_dir.mkdir()
    server = make_gunicorn(METRICS_ENABLED="true", WEB_CONCURRENCY="2", INSTANCE_STATE_DIR=str(state_dir),
                           UPSTREAM_STALL_SECONDS="1")
    return SimpleNamespace(url=server.url, ws_url=f"ws://127.0.0.1:{server.port}/ws/realtime",
                           metrics_dir=state_dir / "metrics", process=server.process)


def per_worker(metrics_dir: Path, kind: str, name: str) -> dict[int, float]:
    """One sample summed per worker process, read from that worker's own file (``<kind>_<pid>.db``)."""
    found = {}
    for path in metrics_dir.glob(f"{kind}_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        found[pid] = sum(sample.value for family in MultiProcessCollector.merge([str(path)])
                         for sample in family.samples if sample.name == name)
    return found


def talk(ws_url: str) -> str:
    """One short conversation: a typed turn answered with speech, then `end`; its session id."""
    with RelayClient(ws_url, timeout_s=UNIT_S) as client:
        session_id = client.ready()["session_id"]
        client.send_json({"type": "text", "text": "御社の課題を教えてください。"})
        client.wait_type("complete")
        assert client.audio
        client.send_json({"type": "end"})
        client.wait_closed()
    return session_id


def scraped_when(url: str, predicate) -> str:
    """Scrape until ``predicate(text)`` holds (a conversation is counted once its teardown is over)."""
    return wait_until(lambda: (text := scrape(url)) and predicate(text) and text)


def test_counters_add_up_over_every_worker(metrics_server):
    """N conversations served by both workers: every scrape, whichever worker answers, counts N, none active."""
    sessions: list[str] = []
    while len(sessions) < MAX_CONVERSATIONS:
        sessions.append(talk(metrics_server.ws_url))
        scraped_when(metrics_server.url, lambda text: value(
            text, "livetalk_conversations_total", engine="gemini", end_reason="end") == len(sessions))
        served = per_worker(metrics_server.metrics_dir, "counter", "livetalk_conversations_total")
        if sum(1 for count in served.values() if count) >= 2:
            break
    assert sum(1 for count in served.values() if count) == 2, "every conversation landed on one worker"
    n = len(sessions)
    for _ in range(SCRAPES):
        text = scrape(metrics_server.url)
        assert value(text, "livetalk_conversations_total", engine="gemini", end_reason="end") == n
        assert value(text, "livetalk_conversations_active", engine="gemini") == 0
        assert value(text, "livetalk_first_audio_seconds_count", engine="gemini") == n
        assert value(text, "livetalk_recordings_stored_total") == n
        assert value(text, "livetalk_tokens_total", engine="gemini") > 0
        assert label_names(text) <= LABELS_ALLOWED
        assert not any(session_id in text for session_id in sessions)


def test_reconnects_and_upstream_errors_are_counted_by_reason(metrics_server, emu):
    """GoAway, a stalled engine and a dropped connection each count a reconnect; close codes count apart."""
    url = metrics_server.ws_url
    for reason, typed in RECONNECTS.items():
        with RelayClient(url, timeout_s=UNIT_S) as client:
            client.ready()
            client.send_json({"type": "text", "text": "こんにちは"})
            client.wait_type("resumable")  # a handle to resume by
            for text in typed:
                client.send_json({"type": "text", "text": text})
            assert client.wait_type("reconnecting")["reason"] == reason
            client.wait_type("resumed")
    with RelayClient(url, timeout_s=UNIT_S) as client:
        client.ready()
        client.send_json({"type": "text", "text": "!emu close 1011 boom"})
        assert client.wait_type("error")["code"] == "upstream_error"
        client.wait_closed()
    text = scraped_when(metrics_server.url, lambda t: sum(
        v for (name, _), v in parse(t).items() if name == "livetalk_conversations_total") == 4)
    for reason in RECONNECTS:
        assert value(text, "livetalk_reconnects_total", engine="gemini", reason=reason) == 1
    assert value(text, "livetalk_upstream_errors_total", engine="gemini", code="1006") == 1
    assert value(text, "livetalk_upstream_errors_total", engine="gemini", code="1011") == 1
    assert value(text, "livetalk_conversations_total", engine="gemini", end_reason="client_gone") == 3
    assert value(text, "livetalk_conversations_total", engine="gemini", end_reason="upstream_error") == 1
    assert value(text, "livetalk_conversations_active", engine="gemini") == 0


def test_a_killed_worker_stops_counting_its_open_conversations(metrics_server):
    """SIGKILL a worker mid-conversation: gunicorn's child_exit hook takes its conversation off the active gauge."""
    with RelayClient(metrics_server.ws_url, timeout_s=UNIT_S) as client:
        client.ready()
        scraped_when(metrics_server.url,
                     lambda text: value(text, "livetalk_conversations_active", engine="gemini") == 1)
        open_on = [pid for pid, active in per_worker(metrics_server.metrics_dir, "gauge_livesum",
                                                     "livetalk_conversations_active").items() if active]
        assert len(open_on) == 1
        os.kill(open_on[0], signal.SIGKILL)
        client.wait_closed()
    scraped_when(metrics_server.url,
                 lambda text: value(text, "livetalk_conversations_active", engine="gemini") == 0)
    assert metrics_server.process.poll() is None  # the master lives on and has replaced the worker
