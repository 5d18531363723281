"""A worker killed mid-conversation (SIGKILL, an OOM kill) loses at most the last checkpoint interval."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import wave

import pytest

from livetalk.storage import GcsStorage, LocalStorage
from tests.gunicorn_helpers import ROOT, START_COMMAND, free_port, server_env, wait_healthy, worker_pids
from tests.helpers import FAKE_API_KEY, UNIT_S, frames, tone, wait_until
from tests.wsclient import RelayClient

CHECKPOINT_S = 1.0


@pytest.fixture(params=["local", "gcs"])
def backend(request, tmp_path):
    """(environment for the server, the same store for the test to read) for each storage backend."""
    if request.param == "local":
        return {"DATA_DIR": str(tmp_path / "data")}, LocalStorage(tmp_path / "data")
    gcs = request.getfixturevalue("gcs_env")
    bucket = gcs.new_bucket()
    env = {"GCS_BUCKET_NAME": bucket, "STORAGE_EMULATOR_HOST": gcs.url, "GOOGLE_CLOUD_PROJECT": "test"}
    return env, GcsStorage(bucket, client=gcs.client())


def test_a_killed_worker_leaves_its_recording_readable(backend, emulator, tmp_path):
    """SIGKILL mid-conversation: audio, transcript and meta up to the last checkpoint are stored, marked incomplete."""
    extra_env, store = backend
    port = free_port()
    env = server_env(port, emulator=emulator, data_dir=tmp_path / "data", api_key=FAKE_API_KEY)
    env.update(extra_env, RECORDING_CHECKPOINT_SECONDS=str(CHECKPOINT_S))
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(START_COMMAND, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", server, 6 * UNIT_S)
        with RelayClient(f"ws://127.0.0.1:{port}/ws/realtime", timeout_s=UNIT_S) as client:
            session_id = client.ready()["session_id"]
            client.send_json({"type": "text", "text": "こんにちは"})
            client.wait_type("complete")
            client.stream(frames(tone(3.0)), frame_s=0.02)
            index = f"sessions/{session_id}.json"
            wait_until(lambda: store.exists(index) and _meta(store, index)["audio"]
                       and _meta(store, index)["audio"]["duration_s"] >= 2 * CHECKPOINT_S, timeout_s=2 * UNIT_S)
            for pid in worker_pids(server.pid):
                os.kill(pid, signal.SIGKILL)
            assert client.wait_closed().code == 1006
        meta = _meta(store, index)
        assert meta["complete"] is False and meta["reason"] is None
        with wave.open(io.BytesIO(store.read(meta["audio"]["key"]))) as wav:
            assert wav.getnchannels() == 2 and wav.getframerate() == 24000
            assert wav.getnframes() == round(meta["audio"]["duration_s"] * 24000)
            assert len(wav.readframes(wav.getnframes())) == wav.getnframes() * 4
        lines = [json.loads(line) for line in store.read(meta["transcript"]).splitlines()]
        assert any(line["role"] == "model" and line["text"] for line in lines)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)


def _meta(store, index_key: str) -> dict:
    return json.loads(store.read(json.loads(store.read(index_key))["meta"]))
