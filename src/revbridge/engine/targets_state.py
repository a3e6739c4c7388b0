"""Shared state per target system (operator pause, circuit breaker), in the ledger so that
every worker process and the status commands see the same thing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from revbridge.store.schema import audit_log, targets


def upsert_target(conn: Any, name: str, now: datetime, **values: Any) -> None:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    row = {
        "name": name,
        "paused": False,
        "circuit": "closed",
        "consecutive_failures": 0,
        "updated_at": now,
    }
    row.update(values)
    stmt = dialect.insert(targets).values(**row)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={**values, "updated_at": now})
    )


def paused_targets(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {
            r.name for r in conn.execute(select(targets.c.name).where(targets.c.paused.is_(True)))
        }


def record_circuit(engine: Engine, name: str, *, state: str, failures: int, now: datetime) -> None:
    """Publish a breaker transition so that status and alerts see it from any process."""
    with engine.begin() as conn:
        upsert_target(
            conn,
            name,
            now,
            circuit=state,
            consecutive_failures=failures,
            circuit_opened_at=now if state == "open" else None,
        )
        conn.execute(
            audit_log.insert().values(
                at=now,
                actor="engine",
                action="circuit",
                entity_type="target",
                entity_id=name,
                to_state=state,
            )
        )
