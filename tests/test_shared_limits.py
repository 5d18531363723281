"""Limits that hold across processes: two app instances on one real redis-server, and gunicorn with two workers."""
from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter

import pytest
import requests

from tests.gunicorn_helpers import ROOT, START_COMMAND, free_port, server_env, wait_healthy
from tests.helpers import FAKE_API_KEY, UNIT_S, wait_until

SHARED_DB = 7  # a Redis database of these tests' own, emptied before each one
SECRET = "FAKE-ticket-secret-shared-by-both-instances"


@pytest.fixture
def two_instances(make_server, redis_server):
    """Factory: two app instances (each its own process state) counting in one redis-server, one signing key."""
    import redis

    url = f"redis://127.0.0.1:{redis_server.port}/{SHARED_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()

    def start(**overrides):
        settings = {"redis_url": url, "ticket_secret": SECRET, **overrides}
        return make_server(**settings), make_server(**settings)

    return start


def refusal(client) -> tuple[str, int]:
    error = client.wait_type("error")
    return error["code"], client.wait_closed().code


def test_two_instances_share_the_per_ip_socket_limit_exactly(two_instances, new_browser, emu):
    """MAX_SOCKETS_PER_IP=2 is two sockets in all, whichever instance each lands on; closing one frees its slot."""
    a, b = two_instances(max_sockets_per_ip=2)
    on_a = new_browser(a.url).socket(mode="text")
    on_b = new_browser(b.url).socket(mode="text")
    on_a.ready()
    on_b.ready()
    for instance in (a, b):
        with new_browser(instance.url).socket(mode="text") as third:
            assert refusal(third) == ("rate_limited", 1008)
    on_b.close()
    wait_until(lambda: b.services.admission.sessions_on_instance() == 0)
    with new_browser(a.url).socket(mode="text") as again:
        again.ready()
    on_a.close()


def test_two_instances_share_a_learners_limits(two_instances, new_browser, emu):
    """One learner's concurrent conversations and seconds today are counted once across both instances."""
    a, b = two_instances(learner_max_concurrent=1)
    alice_on_a = new_browser(a.url)
    alice_on_a.visit()
    alice_on_b = new_browser(b.url)
    alice_on_b.session.cookies.set("livetalk_learner", alice_on_a.cookie)  # the same browser, another instance
    with alice_on_a.socket(mode="text") as first:
        first.ready()
        with alice_on_b.socket(mode="text") as second:
            assert refusal(second) == ("quota_exceeded", 1008)
        first.send_json({"type": "text", "text": "こんにちは"})
        first.wait_type("complete")
    assert wait_until(lambda: alice_on_b.get("/api/me").json()["usage_today"]["seconds"] > 0)
    assert alice_on_b.get("/api/me").json()["usage_today"]["conversations"] == 1


@pytest.fixture
def two_workers(tmp_path, emulator):
    """Factory: the production command with WEB_CONCURRENCY=2 and the given environment; stopped afterwards."""
    started: list[subprocess.Popen] = []

    def start(**variables: str) -> str:
        port = free_port()
        env = server_env(port, emulator=emulator, data_dir=tmp_path / "data", api_key=FAKE_API_KEY)
        env.update(WEB_CONCURRENCY="2", GUNICORN_THREADS="20", **variables)
        with (tmp_path / "server.log").open("w") as log:
            process = subprocess.Popen(START_COMMAND, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url + "/healthz", process, 6 * UNIT_S)
        return url

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)


def test_two_workers_admit_exactly_the_feedback_limit_per_minute(two_workers):
    """With two gunicorn workers, FEEDBACK_PER_IP_PER_MINUTE=5 admits exactly 5 of 16 requests from one address."""
    url = two_workers(FEEDBACK_PER_IP_PER_MINUTE="5")
    statuses = Counter()
    for _ in range(16):  # a new connection each time, so the kernel spreads them over both workers
        response = requests.post(url + "/feedback", json={}, headers={"Connection": "close"}, timeout=UNIT_S)
        statuses[response.status_code] += 1
    assert statuses == {400: 5, 429: 11}
