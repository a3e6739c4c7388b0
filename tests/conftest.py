"""Shared fixtures: real SQLite files and a real PostgreSQL server.

PostgreSQL tests create their own databases from a migrated template (fast: a file copy on the
server). The server URL comes from ``REVBRIDGE_TEST_PG_URL`` (default: the machine's local
server). With ``CI=true`` an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from revbridge.store.db import create_store_engine, upgrade
from revbridge.store.ledger import Ledger

PG_URL = os.environ.get(
    "REVBRIDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _admin_conninfo() -> str:
    url = make_url(PG_URL)
    return (
        f"host={url.host or '127.0.0.1'} port={url.port or 5432} "
        f"user={url.username or 'postgres'} dbname={url.database or 'postgres'}"
        + (f" password={url.password}" if url.password else "")
    )


def _db_url(name: str) -> str:
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database on the real server; its name."""
    try:
        admin = psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL unreachable at {PG_URL} under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {exc}")
    name = f"rb_tpl_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = create_store_engine(_db_url(name))
    upgrade(engine)
    engine.dispose()
    yield name
    # A fresh connection: the chaos suite restarts the server during the session.
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"rb_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _db_url(name)
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = create_store_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    engine = create_store_engine(store_url)
    yield Ledger(engine)
    engine.dispose()


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    from revbridge.logs import configure

    configure("WARNING")
