"""The storage seam: LocalStorage and GcsStorage (against a real GCS emulator) behave the same."""
from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from livetalk.config import Settings
from livetalk.storage import (
    GcsStorage,
    InvalidKey,
    LocalStorage,
    ObjectExists,
    ObjectNotFound,
    StorageUnavailable,
    check_key,
    create_storage,
)
from tests.gcs_helpers import FakeGcsServer


def test_put_then_read_round_trips(store):
    """An object written with put reads back byte for byte, and exists."""
    uri = store.put("conversations/2025/01/02/s1/log.json", b'[{"role":"user"}]', "application/json")
    assert store.exists("conversations/2025/01/02/s1/log.json")
    assert store.read("conversations/2025/01/02/s1/log.json") == b'[{"role":"user"}]'
    assert uri == store.uri("conversations/2025/01/02/s1/log.json")
    assert uri.startswith({"local": "file:///", "gcs": "gs://"}[store.kind])


def test_put_accepts_a_binary_file(store):
    """put streams a binary file object to its end."""
    data = os.urandom(700 * 1024)
    store.put("a/blob.bin", io.BytesIO(data), "application/octet-stream")
    assert store.read("a/blob.bin") == data
    assert store.size("a/blob.bin") == len(data)


def test_put_never_overwrites(store):
    """A second write to the same key fails with ObjectExists and the first content stays."""
    store.put("a/once.txt", b"first", "text/plain")
    with pytest.raises(ObjectExists):
        store.put("a/once.txt", b"second", "text/plain")
    assert store.read("a/once.txt") == b"first"


def test_missing_object(store):
    """A key that was never written does not exist and cannot be read."""
    assert not store.exists("a/missing.txt")
    with pytest.raises(ObjectNotFound):
        store.read("a/missing.txt")
    with pytest.raises(ObjectNotFound):
        store.open_read("a/missing.txt")


def test_streamed_writer_is_invisible_until_closed(store):
    """An appended object appears only on close, with all its pieces in order."""
    writer = store.open_append("rec/transcript.jsonl", "application/jsonl")
    pieces = [f"line {i}\n".encode() * 5000 for i in range(20)]  # > several GCS chunks
    for piece in pieces:
        writer.write(piece)
    assert not store.exists("rec/transcript.jsonl")
    writer.close()
    assert store.read("rec/transcript.jsonl") == b"".join(pieces)


def test_streamed_writer_fixes_its_header_at_close(store):
    """The header_size bytes reserved at open are replaced by the header given to close."""
    writer = store.open_append("rec/audio.wav", "audio/wav", header_size=4)
    body = os.urandom(600 * 1024)
    writer.write(body)
    writer.close(header=b"HEAD")
    assert store.read("rec/audio.wav") == b"HEAD" + body
    with store.open_read("rec/audio.wav") as reader:
        reader.seek(4)
        assert reader.read(10) == body[:10]


def test_header_must_have_the_reserved_length(store):
    """close refuses a header of the wrong size."""
    writer = store.open_append("rec/x.wav", "audio/wav", header_size=4)
    writer.write(b"data")
    with pytest.raises(ValueError):
        writer.close(header=b"toolong")


def test_aborted_writer_publishes_nothing(store):
    """abort discards a streamed object."""
    writer = store.open_append("rec/aborted.bin", "application/octet-stream")
    writer.write(b"x" * 300_000)
    writer.abort()
    assert not store.exists("rec/aborted.bin")


def test_concurrent_writers_to_one_key_never_mix(store):
    """Of many concurrent writers to one key, exactly one wins and its content is whole."""

    def write(i: int) -> bytes | None:
        data = bytes([i]) * 50_000
        try:
            store.put("race/same.bin", data, "application/octet-stream")
            return data
        except ObjectExists:
            return None

    with ThreadPoolExecutor(8) as pool:
        winners = [d for d in pool.map(write, range(8)) if d is not None]
    assert len(winners) == 1
    assert store.read("race/same.bin") == winners[0]


def test_checkpoints_publish_what_was_written_so_far(store):
    """Each checkpoint makes the data so far readable under the key with its header; close publishes it all."""
    writer = store.open_append("r/audio.wav", "audio/wav", header_size=4)
    writer.write(b"aaaa")
    writer.checkpoint(header=b"H004")
    assert store.read("r/audio.wav")[:8] == b"H004aaaa"
    writer.write(b"bbbb")
    writer.checkpoint(header=b"H008")
    assert store.read("r/audio.wav")[:12] == b"H008aaaabbbb"
    writer.write(b"cc")
    writer.close(header=b"H010")
    assert store.read("r/audio.wav") == b"H010aaaabbbbcc"
    assert store.list("r") == ["r/audio.wav"]  # no part, body or header left behind


def test_a_checkpoint_never_takes_over_an_existing_object(store):
    """The first checkpoint of a key that is already taken fails like any write, and changes nothing."""
    store.put("r/audio.wav", b"first", "audio/wav")
    writer = store.open_append("r/audio.wav", "audio/wav", header_size=2)
    writer.write(b"second")
    with pytest.raises(ObjectExists):
        writer.checkpoint(header=b"HH")
    writer.abort()
    assert store.read("r/audio.wav") == b"first"


def test_replace_overwrites_in_one_step(store):
    """replace writes a fresh object or swaps an existing one whole; a reader sees one version or the other."""
    store.replace("c/checkpoint.json", b'{"v": 1}', "application/json")
    assert store.read("c/checkpoint.json") == b'{"v": 1}'
    store.replace("c/checkpoint.json", b'{"v": 2, "more": true}', "application/json")
    assert store.read("c/checkpoint.json") == b'{"v": 2, "more": true}'


def test_list_gives_every_key_under_a_folder_sorted(store):
    """A folder's objects are listed recursively and sorted; neighbours with the same prefix are not."""
    for key in ("learners/a/x/2.json", "learners/a/x/1.json", "learners/a/y.json", "learners/ab/z.json"):
        store.put(key, b"{}", "application/json")
    assert store.list("learners/a") == ["learners/a/x/1.json", "learners/a/x/2.json", "learners/a/y.json"]
    assert store.list("learners/none") == []


def test_list_shows_no_unfinished_writes(store):
    """An object still being streamed is not listed until it is published."""
    writer = store.open_append("f/audio.wav", "audio/wav")
    writer.write(b"data")
    assert store.list("f") == []
    writer.close()
    assert store.list("f") == ["f/audio.wav"]


def test_delete_removes_and_forgets(store):
    """A deleted object is gone (reads, exists, listings); deleting it again is harmless."""
    store.put("d/one.txt", b"1", "text/plain")
    store.put("d/two.txt", b"2", "text/plain")
    store.delete("d/one.txt")
    store.delete("d/one.txt")
    assert not store.exists("d/one.txt") and store.list("d") == ["d/two.txt"]
    with pytest.raises(ObjectNotFound):
        store.read("d/one.txt")
    store.delete("d/two.txt")
    assert store.list("d") == []


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "/abs/path", "a/../b", "a//b", "", "a/./b", "a\\b", "a/.hidden", "a/b c", "a/\x00"],
)
def test_unsafe_keys_are_rejected(store, key):
    """Keys with traversal, absolute or empty parts, or odd characters raise InvalidKey."""
    with pytest.raises(InvalidKey):
        store.put(key, b"x", "text/plain")


def test_check_key_accepts_the_layout():
    """The conversation layout's keys are valid."""
    assert check_key("conversations/2025/01/31/ab-12_cd/audio.wav")


def test_local_writes_leave_no_temporaries(tmp_path):
    """After successful and failed writes the local directory holds only published objects."""
    store = LocalStorage(tmp_path)
    store.put("a/b.txt", b"1", "text/plain")
    with pytest.raises(ObjectExists):
        store.put("a/b.txt", b"2", "text/plain")
    writer = store.open_append("a/c.bin", "application/octet-stream")
    writer.write(b"x")
    writer.abort()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.txt"]


def test_local_unwritable_directory_is_unavailable(tmp_path):
    """A data directory that cannot be created surfaces as StorageUnavailable."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageUnavailable):
        LocalStorage(blocker).put("a/b.txt", b"x", "text/plain")


def test_gcs_stopped_server_is_unavailable(tmp_path, monkeypatch):
    """When the GCS endpoint is down, writes and reads raise StorageUnavailable within the retry deadline."""
    server = FakeGcsServer(tmp_path).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    store = GcsStorage(server.new_bucket(), client=server.client(), retry_deadline_s=1.0, timeout_s=(1.0, 2.0))
    store.put("a/b.txt", b"x", "text/plain")
    server.stop()
    with pytest.raises(StorageUnavailable) as info:
        store.put("a/c.txt", b"y", "text/plain")
    assert "127.0.0.1" not in str(info.value)
    with pytest.raises(StorageUnavailable):
        store.exists("a/b.txt")


def test_gcs_missing_bucket_is_unavailable(gcs_env):
    """Writing to a bucket that does not exist is StorageUnavailable, not a crash."""
    store = GcsStorage("no-such-bucket-here", client=gcs_env.client(), retry_deadline_s=1.0)
    with pytest.raises(StorageUnavailable):
        store.put("a/b.txt", b"x", "text/plain")


def test_gcs_client_is_created_lazily(monkeypatch):
    """Constructing GcsStorage makes no client and no request."""
    import google.cloud.storage as gcs

    monkeypatch.setattr(gcs, "Client", lambda *a, **k: pytest.fail("client built eagerly"))
    GcsStorage("bucket")


@pytest.mark.parametrize(
    ("settings", "kind"),
    [(Settings(gcs_bucket_name="b"), "gcs"), (Settings(), "local")],
)
def test_create_storage_follows_settings(settings, kind):
    """create_storage picks GCS when a bucket is configured, else the data directory."""
    assert create_storage(settings).kind == kind
