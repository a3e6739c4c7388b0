"""SQLite persistence for the sandbox org: records, id sequences, change events, outbound messages
and API usage. A file keeps the org between runs; ``None`` keeps it in memory.

Records are stored as JSON documents keyed by their 18-char id; deleted records stay with
``is_deleted = 1`` (the recycle bin) so ``queryAll`` still sees them. Change events and outbound
messages are written in the same transaction as the record change, so a rolled-back
``allOrNone`` request leaves neither behind.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    sobject TEXT NOT NULL,
    data TEXT NOT NULL,
    is_deleted INTEGER NOT NULL DEFAULT 0,
    modstamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_object ON records (sobject, is_deleted, id);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS change_events (
    replay_id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbound_messages (
    notification_id TEXT PRIMARY KEY,
    sobject TEXT NOT NULL,
    record_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbound_due ON outbound_messages (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS api_usage (hour TEXT PRIMARY KEY, requests INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    id: str
    sobject: str
    data: str
    is_deleted: bool


@dataclass(frozen=True, slots=True)
class StoredEvent:
    replay_id: int
    channel: str
    payload: str
    created_at: str


@dataclass(frozen=True, slots=True)
class StoredOutbound:
    notification_id: str
    sobject: str
    record_id: str
    payload: str
    created_at: str
    attempts: int
    state: str
    last_error: str | None


class Store:
    """One SQLite connection guarded by a re-entrant lock.

    The HTTP handlers, the background workers and in-process test code may all touch the store;
    the lock serialises them, and a transaction holds it until it ends.
    """

    def __init__(self, path: Path | None) -> None:
        self._conn = sqlite3.connect(
            ":memory:" if path is None else str(path),
            isolation_level=None,
            check_same_thread=False,
        )
        self._lock = threading.RLock()
        self._depth = 0
        with self._lock:
            self._conn.execute(
                "PRAGMA journal_mode=WAL" if path is not None else "PRAGMA journal_mode=MEMORY"
            )
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A unit of work; nested calls are savepoints, so an inner failure can be undone alone."""
        with self._lock:
            name = f"sp{self._depth}"
            self._conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                raise
            else:
                self._conn.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1

    def reset(self) -> None:
        """Forget everything: records, sequences, events, outbound messages and usage."""
        with self._lock, self.transaction():
            for table in (
                "records",
                "sequences",
                "change_events",
                "outbound_messages",
                "api_usage",
            ):
                self._conn.execute(f"DELETE FROM {table}")
            self._conn.execute("DELETE FROM sqlite_sequence WHERE name = 'change_events'")

    # -- records ---------------------------------------------------------------------------------

    def insert_record(self, record_id: str, sobject: str, data: str, modstamp: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO records (id, sobject, data, is_deleted, modstamp)"
                " VALUES (?, ?, ?, 0, ?)",
                (record_id, sobject, data, modstamp),
            )

    def write_record(self, record_id: str, data: str, is_deleted: bool, modstamp: str) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE records SET data = ?, is_deleted = ?, modstamp = ? WHERE id = ?",
                (data, int(is_deleted), modstamp, record_id),
            )

    def fetch_record(self, record_id: str) -> StoredRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, sobject, data, is_deleted FROM records WHERE id = ?", (record_id,)
            ).fetchone()
        return None if row is None else StoredRecord(row[0], row[1], row[2], bool(row[3]))

    def records_of(self, sobject: str, *, include_deleted: bool) -> list[StoredRecord]:
        sql = "SELECT id, sobject, data, is_deleted FROM records WHERE sobject = ?"
        if not include_deleted:
            sql += " AND is_deleted = 0"
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", (sobject,)).fetchall()
        return [StoredRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def records_where_in(
        self, sobject: str, field: str, values: list[str], *, include_deleted: bool
    ) -> list[StoredRecord]:
        """Records of ``sobject`` whose ``field`` (``Id`` or a reference field) is one of
        ``values``, in id order. ``field`` comes from the object model, never from the request.
        """
        column = "id" if field == "Id" else "CAST(json_extract(data, ?) AS TEXT)"
        prefix = [] if field == "Id" else [f"$.{field}"]
        rows: list[tuple[str, str, str, int]] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            sql = (
                f"SELECT id, sobject, data, is_deleted FROM records WHERE sobject = ?"
                f" AND {column} IN ({', '.join('?' * len(chunk))})"
            )
            if not include_deleted:
                sql += " AND is_deleted = 0"
            with self._lock:
                rows += self._conn.execute(sql, (sobject, *prefix, *chunk)).fetchall()
        rows.sort(key=lambda r: r[0])
        return [StoredRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def ids_where_field_equals(
        self, sobject: str, field: str, value: str, *, case_insensitive: bool
    ) -> list[str]:
        """Live records of ``sobject`` whose ``field`` equals ``value``; ``field`` comes from the
        object model, never from the request, so it is safe to splice into the JSON path."""
        path = f"$.{field}"
        if case_insensitive:
            sql = (
                "SELECT id FROM records WHERE sobject = ? AND is_deleted = 0"
                " AND lower(CAST(json_extract(data, ?) AS TEXT)) = lower(?) ORDER BY id"
            )
        else:
            sql = (
                "SELECT id FROM records WHERE sobject = ? AND is_deleted = 0"
                " AND CAST(json_extract(data, ?) AS TEXT) = ? ORDER BY id"
            )
        with self._lock:
            rows = self._conn.execute(sql, (sobject, path, value)).fetchall()
        return [r[0] for r in rows]

    def modified_between(
        self, sobject: str, start: str, end: str, *, deleted: bool
    ) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, modstamp FROM records WHERE sobject = ? AND is_deleted = ?"
                " AND modstamp >= ? AND modstamp < ? ORDER BY modstamp, id",
                (sobject, int(deleted), start, end),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- sequences -------------------------------------------------------------------------------

    def next_sequence(self, name: str) -> int:
        with self._lock:
            self._conn.execute(
                "INSERT INTO sequences (name, value) VALUES (?, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = value + 1",
                (name,),
            )
            row = self._conn.execute(
                "SELECT value FROM sequences WHERE name = ?", (name,)
            ).fetchone()
        return int(row[0])

    # -- change events ---------------------------------------------------------------------------

    def append_event(self, channel: str, payload: str, created_at: str) -> int:
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO change_events (channel, payload, created_at) VALUES (?, ?, ?)",
                (channel, payload, created_at),
            )
        if cursor.lastrowid is None:
            raise RuntimeError("SQLite gave no replay id")
        return cursor.lastrowid

    def events_after(
        self, replay_id: int, channel: str | None, created_since: str, limit: int
    ) -> list[StoredEvent]:
        sql = (
            "SELECT replay_id, channel, payload, created_at FROM change_events WHERE replay_id > ?"
        )
        params: list[object] = [replay_id]
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel)
        sql += " AND created_at >= ? ORDER BY replay_id LIMIT ?"
        params += [created_since, limit]
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [StoredEvent(r[0], r[1], r[2], r[3]) for r in rows]

    def event_bounds(self, created_since: str) -> tuple[int | None, int]:
        """The oldest replay id inside the retention window, and the newest issued (0 if none)."""
        with self._lock:
            oldest = self._conn.execute(
                "SELECT min(replay_id) FROM change_events WHERE created_at >= ?", (created_since,)
            ).fetchone()[0]
            newest = self._conn.execute("SELECT max(replay_id) FROM change_events").fetchone()[0]
        return (None if oldest is None else int(oldest)), int(newest or 0)

    # -- outbound messages -----------------------------------------------------------------------

    def enqueue_outbound(
        self, notification_id: str, sobject: str, record_id: str, payload: str, now: str
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO outbound_messages"
                " (notification_id, sobject, record_id, payload, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (notification_id, sobject, record_id, payload, now, now),
            )

    def due_outbound(self, now: str, limit: int) -> list[StoredOutbound]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT notification_id, sobject, record_id, payload, created_at, attempts, state,"
                " last_error FROM outbound_messages"
                " WHERE state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY created_at, notification_id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [StoredOutbound(*r) for r in rows]

    def all_outbound(self) -> list[StoredOutbound]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT notification_id, sobject, record_id, payload, created_at, attempts, state,"
                " last_error FROM outbound_messages ORDER BY created_at, notification_id"
            ).fetchall()
        return [StoredOutbound(*r) for r in rows]

    def record_outbound_attempt(
        self, notification_id: str, *, state: str, next_attempt_at: str, error: str | None
    ) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE outbound_messages SET attempts = attempts + 1, state = ?,"
                " next_attempt_at = ?, last_error = ? WHERE notification_id = ?",
                (state, next_attempt_at, error, notification_id),
            )

    # -- API usage -------------------------------------------------------------------------------

    def count_request(self, hour: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_usage (hour, requests) VALUES (?, 1)"
                " ON CONFLICT (hour) DO UPDATE SET requests = requests + 1",
                (hour,),
            )

    def requests_since(self, hour: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT coalesce(sum(requests), 0) FROM api_usage WHERE hour >= ?", (hour,)
            ).fetchone()
        return int(row[0])
