"""livetalk.ranges: byte ranges of stored objects, on both backends, in bounded memory, with the right status."""
from __future__ import annotations

import os
import tracemalloc

import pytest
from flask import Flask

from livetalk.ranges import StoredBody, Unsatisfiable, range_response, requested_range
from livetalk.storage.joined import Span

TOTAL = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [("bytes=0-9", (0, 10)), ("bytes=10-", (10, TOTAL)), ("bytes=-5", (TOTAL - 5, TOTAL)),
     ("bytes=-5000", (0, TOTAL)), ("bytes=990-2000", (990, TOTAL)), ("bytes=0-0", (0, 1)),
     ("bytes = 3 - 4", (3, 5)), (None, None), ("", None), ("bytes=5-2", None), ("bytes=0-1,5-6", None),
     ("items=0-1", None), ("bytes=abc", None), ("bytes=-", None)],
)
def test_one_range_is_read_and_others_are_ignored(header, expected):
    """One byte range gives its bounds (a long suffix means all); malformed, multiple or foreign ones are ignored."""
    assert requested_range(header, TOTAL) == expected


@pytest.mark.parametrize(("header", "total"), [("bytes=1000-", TOTAL), ("bytes=5000-6000", TOTAL), ("bytes=-0", TOTAL),
                                                ("bytes=0-", 0), ("bytes=-1", 0)])
def test_a_range_with_no_bytes_in_it_is_unsatisfiable(header, total):
    """A range starting at or past the end, or an empty suffix, cannot be served."""
    with pytest.raises(Unsatisfiable):
        requested_range(header, total)


def test_ranges_of_joined_parts_are_exact(store):
    """A body of made-up bytes and spans of two stored objects reads back exactly, whatever the range."""
    first, second = os.urandom(3000), os.urandom(2500)
    store.put("rec/a.bin", first, "application/octet-stream")
    store.put("rec/b.bin", second, "application/octet-stream")
    header = b"HEADER--"
    body = StoredBody(store, [header, Span("rec/a.bin", 100, 2000), Span("rec/b.bin", 0, 2500)], chunk_bytes=700)
    whole = header + first[100:2100] + second
    assert body.length == len(whole)
    for start, stop in [(0, len(whole)), (0, 3), (5, 20), (7, 2500), (2007, 2009), (2008, len(whole)),
                        (len(whole) - 1, len(whole))]:
        chunks = list(body.iter_range(start, stop))
        assert b"".join(chunks) == whole[start:stop], (start, stop)
        assert all(0 < len(chunk) <= 700 for chunk in chunks)


BIG_BYTES = 24 * 1024 * 1024
PEAK_LIMIT_BYTES = 6 * 1024 * 1024  # measured: 0.1 MiB local, 3 MiB through google-cloud-storage's reader


def test_reading_a_large_object_holds_little_memory(store):
    """Streaming 24 MiB of a stored object allocates a small, fixed amount, not the object's size."""
    data = os.urandom(BIG_BYTES)
    store.put("rec/big.bin", data, "application/octet-stream")
    body = StoredBody(store, [Span("rec/big.bin", 0, len(data))])
    del data
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        total = sum(len(chunk) for chunk in body.iter_range(1024, body.length - 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == BIG_BYTES - 2048
    assert peak < PEAK_LIMIT_BYTES, f"peak {peak} bytes"


@pytest.mark.parametrize(
    ("headers", "status", "content_range", "content"),
    [({}, 200, None, slice(0, 50)),
     ({"Range": "bytes=10-19"}, 206, "bytes 10-19/50", slice(10, 20)),
     ({"Range": "bytes=-5"}, 206, "bytes 45-49/50", slice(45, 50)),
     ({"Range": "bytes=0-4,10-14"}, 200, None, slice(0, 50)),
     ({"Range": "bytes=10-19", "If-Range": '"some-etag"'}, 200, None, slice(0, 50)),
     ({"Range": "bytes=50-"}, 416, "bytes */50", None)],
    ids=["whole", "range", "suffix", "multiple-ignored", "if-range-ignored", "unsatisfiable"],
)
def test_responses_carry_the_right_status_and_headers(local_store, headers, status, content_range, content):
    """200 with the whole object, 206 with Content-Range for one range, 416 (JSON) for none; always Accept-Ranges."""
    data = bytes(range(50))
    local_store.put("rec/x.bin", data, "application/octet-stream")
    app = Flask(__name__)
    with app.test_request_context():
        response = range_response(StoredBody(local_store, [Span("rec/x.bin", 0, 50)]),
                                  range_header=headers.get("Range"), if_range=headers.get("If-Range"),
                                  mimetype="audio/wav")
        response.direct_passthrough = False
        assert response.status_code == status
        assert response.headers.get("Content-Range") == content_range
        if content is None:
            assert response.get_json()["error"]["code"] == "range_not_satisfiable"
        else:
            assert response.get_data() == data[content]
            assert response.headers["Accept-Ranges"] == "bytes" and response.mimetype == "audio/wav"
            assert int(response.headers["Content-Length"]) == len(data[content])
