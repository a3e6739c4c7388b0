"""Opening the ledger database: SQLite (WAL, the embedded default) or PostgreSQL.

On SQLite every transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue
on the database lock instead of failing on a lock upgrade, and ``busy_timeout`` lets them wait.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from revbridge.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 60_000


class _ProcessWriter:
    """This process's turn to write one SQLite database.

    SQLite lets one writer in at a time; a writer that finds the lock taken sleeps and
    retries (1, 2, 5, 10 ... 100 ms), so two threads of one process (the worker, an ingest,
    the API) that collide wait tens of milliseconds for a lock freed in one. Writers of one
    process queue here instead and are woken at once; other processes still meet SQLite's
    own lock. A transaction nested in a thread that already writes goes straight to SQLite,
    as it did before (it cannot wait for itself).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    def acquire(self) -> bool:
        """Wait for this process's turn (True), or give up and let SQLite decide (False)."""
        if self._owner == threading.get_ident():
            return False
        if not self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            return False
        self._owner = threading.get_ident()
        return True

    def release(self) -> None:
        self._owner = None
        self._lock.release()


_WRITERS: dict[str, _ProcessWriter] = {}
_WRITERS_GUARD = threading.Lock()


def _process_writer(path: str) -> _ProcessWriter:
    key = os.path.realpath(path)
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(key, _ProcessWriter())


class _SqliteConnection(sqlite3.Connection):
    """A pysqlite connection whose write transactions take this process's turn first
    (``_ProcessWriter``) and give it back when they end, whichever way."""

    writer: _ProcessWriter | None = None
    _turn = False

    def begin_immediate(self) -> None:
        if self.writer is not None:
            self._turn = self.writer.acquire()
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._end_turn()
            raise

    def _end_turn(self) -> None:
        if self._turn and self.writer is not None:
            self._turn = False
            self.writer.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._end_turn()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


_READ_ONLY = "revbridge_read_only"


def reading(engine: Engine) -> Connection:
    """A connection for reads only, which never waits for a writer.

    On SQLite its transaction begins deferred: it reads a snapshot beside a writer instead of
    queueing for the write lock (every other transaction begins ``IMMEDIATE``). On PostgreSQL
    it runs in autocommit: each statement is one round trip, without BEGIN and COMMIT, and
    sees its own snapshot. Never write through it: a deferred transaction that writes can
    fail with SQLITE_BUSY instead of waiting, and autocommit statements commit one by one.
    """
    if engine.dialect.name == "postgresql":
        return _autocommit(engine)
    return engine.connect().execution_options(**{_READ_ONLY: True})


def one_statement(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection for a single statement, which is atomic by itself: in autocommit on
    PostgreSQL (one round trip, where a transaction costs three: BEGIN, the statement,
    COMMIT); a transaction on SQLite (whose BEGIN and COMMIT are not round trips)."""
    if engine.dialect.name == "postgresql":
        return _autocommit(engine)
    return engine.begin()


def _autocommit(engine: Engine) -> Connection:
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "factory": _SqliteConnection,
            },
            **kwargs,
        )
        writer = _process_writer(path) if path and path != ":memory:" else None

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from pysqlite; we emit BEGIN IMMEDIATE ourselves.
            dbapi_conn.isolation_level = None
            dbapi_conn.writer = writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # A reader (``reading``) begins deferred: in WAL mode it reads a snapshot and
            # never waits for the writer. Everything else takes the write lock up front.
            if conn.get_execution_options().get(_READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.connection.dbapi_connection.begin_immediate()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config_for_scripts())
    return script.get_current_head()


def alembic_config_for_scripts() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the ledger schema to ``revision`` (Alembic)."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"migrating the ledger failed: {exc}") from exc


def ensure_schema(engine: Engine, *, auto_migrate: bool) -> None:
    """Upgrade when behind (if allowed); otherwise fail with what to run."""
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the ledger at {engine.url!r}: {exc}") from exc
    if current == head_revision():
        return
    if not auto_migrate:
        raise StoreError(
            f"the ledger schema is at {current or 'nothing'}, not {head_revision()}: "
            "run `revbridge db upgrade`"
        )
    upgrade(engine)
