"""What one limit check costs: µs per operation of each limit store.

Runs each operation of the LimitStore seam many times from one thread against
MemoryStore, SqliteStore (a file in a temp dir), RedisStore (a throw-away
redis-server on a free port, or ``--redis-url``) and FailOpen with its Redis down
(the breaker open: what every check costs during an outage). Then the same
``hit`` from several processes at once on the shared backends, as the gunicorn
workers of one instance would: µs per operation seen by each process.

    python bench/bench_limits.py [--ops 5000] [--processes 2] [--redis-url redis://host:6379/0]
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livetalk.limits import FailOpen, MemoryStore, RedisStore, SqliteStore  # noqa: E402
from tests.redis_helpers import RedisServer, free_port, local_url  # noqa: E402

KEYS = 100  # distinct keys cycled through, as many clients would be


def operations(store) -> dict[str, Callable[[int], object]]:
    """One call of each operation, given a running index."""
    store.acquire("room", "holder", limit=8, lease_s=3600)  # so renew and held find a lease

    def acquire_release(i: int) -> None:
        store.acquire(f"room{i % KEYS}", "holder", limit=8, lease_s=60)
        store.release(f"room{i % KEYS}", "holder")

    return {
        "hit": lambda i: store.hit(f"ip{i % KEYS}", limit=1_000_000, window_s=60),
        "acquire+release": acquire_release,
        "renew": lambda i: store.renew("room", "holder", lease_s=60),
        "held": lambda i: store.held("room"),
        "add": lambda i: store.add(f"learner{i % KEYS}", 1.5, ttl_s=86_400),
        "total": lambda i: store.total(f"learner{i % KEYS}"),
    }


def per_op_us(call: Callable[[int], object], ops: int) -> float:
    """Mean wall time of ``call`` in µs over ``ops`` calls (after a short warm-up)."""
    for i in range(min(100, ops)):
        call(i)
    started = time.perf_counter()
    for i in range(ops):
        call(i)
    return (time.perf_counter() - started) / ops * 1e6


def _hammer(store, ops: int, barrier, results) -> None:
    barrier.wait()
    results.put(per_op_us(lambda i: store.hit(f"ip{i % KEYS}", limit=1_000_000, window_s=60), ops))


def contended_us(store, ops: int, processes: int) -> list[float]:
    """µs per ``hit`` seen by each of ``processes`` forked processes hitting ``store`` at once."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(store, ops, barrier, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    figures = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return figures


@contextlib.contextmanager
def stores(redis_url: str | None) -> Iterator[dict[str, object]]:
    """The stores to measure, each empty; a throw-away redis-server unless ``redis_url`` is given."""
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        server = None if redis_url else RedisServer(Path(tmp) / "redis").start()
        try:
            url = redis_url or server.url
            dead = RedisStore(local_url(free_port()), prefix="bench:")
            built = {
                "memory": MemoryStore(),
                "sqlite": SqliteStore(Path(tmp) / "limits.sqlite3"),
                "redis": RedisStore(url, prefix=f"bench:{time.time_ns()}:"),
                "fail-open, redis down": FailOpen(dead, MemoryStore()),
            }
            yield built
            for store in built.values():
                store.close()
        finally:
            if server is not None:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=5000, help="calls per operation and store")
    parser.add_argument("--processes", type=int, default=2, help="processes for the contended run")
    parser.add_argument("--redis-url", help="measure this Redis instead of a local throw-away one")
    args = parser.parse_args()
    with stores(args.redis_url) as built:
        names = list(operations(MemoryStore()))
        print(f"{'µs per operation':24}" + "".join(f"{n:>17}" for n in names))
        for label, store in built.items():
            row = [per_op_us(call, args.ops) for call in operations(store).values()]
            print(f"{label:24}" + "".join(f"{us:17.1f}" for us in row))
        print(f"\nhit from {args.processes} processes at once (µs per operation in each process)")
        for label in ("sqlite", "redis"):
            figures = contended_us(built[label], args.ops, args.processes)
            print(f"{label:24}" + " ".join(f"{us:.1f}" for us in figures)
                  + f"   (mean {statistics.mean(figures):.1f})")


if __name__ == "__main__":
    main()
