"""Limit counters in one SQLite file: exact across every process of one machine.

The gunicorn workers of one instance open the same file (in a per-instance temp
directory) and so count together. Each operation is one ``BEGIN IMMEDIATE``
transaction: SQLite's write lock serialises them across processes, and WAL mode
keeps that lock short. A connection belongs to the process that opened it: after
a fork the child opens its own and never touches (nor closes) the inherited one,
as SQLite requires. Within a process one connection is shared under a lock.

Time is the wall clock (``time.time``): unlike a monotonic clock it means the
same in every process and survives a reboot of a machine whose file persisted.
Rows carry their expiry and are swept every ``sweep_interval_s``.

An ``sqlite3`` failure (the write lock not obtained within ``busy_timeout_s``,
a full or unwritable disk) is raised as
:class:`~livetalk.limits.store.LimitStoreUnavailable`.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from . import store as s
from .store import LimitStoreUnavailable, RateDecision

Clock = Callable[[], float]

BUSY_TIMEOUT_S: Final = 2.0  # how long an operation waits for another process's transaction
SWEEP_INTERVAL_S: Final = 10.0  # how often one process deletes every expired row

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS hits_by_key ON hits (key, at);
CREATE INDEX IF NOT EXISTS hits_by_expiry ON hits (expires);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT NOT NULL, holder TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (key, holder)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires);
CREATE TABLE IF NOT EXISTS sums (key TEXT PRIMARY KEY, total REAL NOT NULL, expires REAL NOT NULL) WITHOUT ROWID;
"""


class SqliteStore:
    """A :class:`~livetalk.limits.store.LimitStore` shared by the processes that open ``path``.

    Args:
        path: the database file (created with its directory on first use).
        clock: seconds since the epoch, the same in every process (default ``time.time``).
        busy_timeout_s: how long to wait for another process's transaction before
            raising :class:`LimitStoreUnavailable`.
        sweep_interval_s: seconds between deletions of every expired row.
    """

    kind = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock = time.time,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        s.check_positive(busy_timeout_s=busy_timeout_s, sweep_interval_s=sweep_interval_s)
        self.path = Path(path)
        self.target = str(self.path)
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._sweep_interval_s = sweep_interval_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0  # the process that opened _conn
        self._inherited: list[sqlite3.Connection] = []  # a parent's connections, kept so they are never closed here
        self._next_sweep = 0.0

    # --- the operations --------------------------------------------------------------

    def hit(self, key: str, *, limit: int, window_s: float) -> RateDecision:
        s.check_hit(key, limit, window_s)
        with self._transaction() as (db, now):
            db.execute("DELETE FROM hits WHERE key = ? AND at <= ?", (key, now - window_s))
            count, oldest = db.execute("SELECT count(*), min(at) FROM hits WHERE key = ?", (key,)).fetchone()
            if count >= limit:
                return RateDecision(False, max(0.0, oldest + window_s - now))
            db.execute("INSERT INTO hits (key, at, expires) VALUES (?, ?, ?)", (key, now, now + window_s))
            return RateDecision(True)

    def acquire(self, key: str, holder: str, *, limit: int, lease_s: float) -> bool:
        s.check_acquire(key, holder, limit, lease_s)
        with self._transaction() as (db, now):
            db.execute("DELETE FROM leases WHERE key = ? AND expires <= ?", (key, now))
            mine = db.execute("SELECT 1 FROM leases WHERE key = ? AND holder = ?", (key, holder)).fetchone()
            (count,) = db.execute("SELECT count(*) FROM leases WHERE key = ?", (key,)).fetchone()
            if mine is None and count >= limit:
                return False
            db.execute("INSERT OR REPLACE INTO leases (key, holder, expires) VALUES (?, ?, ?)",
                       (key, holder, now + lease_s))
            return True

    def renew(self, key: str, holder: str, *, lease_s: float) -> bool:
        s.check_lease(key, holder, lease_s)
        with self._transaction() as (db, now):
            cursor = db.execute("UPDATE leases SET expires = ? WHERE key = ? AND holder = ? AND expires > ?",
                                (now + lease_s, key, holder, now))
            return cursor.rowcount == 1

    def release(self, key: str, holder: str) -> None:
        with self._transaction() as (db, _):
            db.execute("DELETE FROM leases WHERE key = ? AND holder = ?", (key, holder))

    def held(self, key: str) -> int:
        with self._transaction() as (db, now):
            return db.execute("SELECT count(*) FROM leases WHERE key = ? AND expires > ?", (key, now)).fetchone()[0]

    def add(self, key: str, amount: float, *, ttl_s: float) -> float:
        s.check_add(key, amount, ttl_s)
        with self._transaction() as (db, now):
            db.execute("DELETE FROM sums WHERE key = ? AND expires <= ?", (key, now))
            return db.execute(
                "INSERT INTO sums (key, total, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET total = total + excluded.total RETURNING total",
                (key, float(amount), now + ttl_s),
            ).fetchone()[0]

    def total(self, key: str) -> float:
        with self._transaction() as (db, now):
            row = db.execute("SELECT total FROM sums WHERE key = ? AND expires > ?", (key, now)).fetchone()
            return row[0] if row else 0.0

    def close(self) -> None:
        """Close this process's connection (an inherited one stays open, untouched)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    # --- connections and transactions ------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Connection, float]]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error) under this process's lock."""
        with self._lock, _sqlite_errors():
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._clock()  # read after the write lock is ours, so time never runs backwards in the file
                self._sweep(db, now)
                yield db, now
            except BaseException:
                db.rollback()
                raise
            db.commit()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid != os.getpid():
            self._inherited.append(self._conn)
            self._conn = None
        if self._conn is None:
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # counters need not survive a power cut
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _sweep(self, db: sqlite3.Connection, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval_s
        for table in ("hits", "leases", "sums"):
            db.execute(f"DELETE FROM {table} WHERE expires <= ?", (now,))  # noqa: S608 (fixed names)


@contextlib.contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise LimitStoreUnavailable(f"the instance limit store failed ({type(exc).__name__})") from exc
