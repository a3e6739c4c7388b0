"""Opening the ledger database: SQLite (WAL, the embedded default) or PostgreSQL.

On SQLite every transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue
on the database lock instead of failing on a lock upgrade, and ``busy_timeout`` lets them wait.
"""

from __future__ import annotations

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
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return engine.connect().execution_options(**{_READ_ONLY: True})


def one_statement(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection for a single statement, which is atomic by itself: in autocommit on
    PostgreSQL (one round trip, where a transaction costs three: BEGIN, the statement,
    COMMIT); a transaction on SQLite (whose BEGIN and COMMIT are not round trips)."""
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return engine.begin()


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from pysqlite; we emit BEGIN IMMEDIATE ourselves.
            dbapi_conn.isolation_level = None
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
                conn.exec_driver_sql("BEGIN IMMEDIATE")

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
