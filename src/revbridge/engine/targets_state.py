"""Shared state per target system (operator pause, circuit breaker, the system's own "retry
after" pause), in the ledger so that every worker process and the status commands see the same
thing.

The circuit is a shared *decision*: the process that opens a target's circuit publishes it,
and every other process adopts it at its next round and stops calling too. Once the
cooldown has passed, one process at a time wins the half-open probe (``claim_probe``, an
atomic conditional UPDATE; a probe whose process died is taken over after ``probe_timeout``)
and publishes the probe's verdict: closed (everyone resumes) or open again (a new cooldown).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from revbridge.store.db import reading
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


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetState:
    """One target's row as every process sees it."""

    name: str
    paused: bool
    circuit: str  # closed | open | half_open
    opened_at: datetime | None
    updated_at: datetime
    hold_until: datetime | None = None  # the system's Retry-After, for every process
    # Transient failures in a row while closed, counted across processes (``share_failures``)
    failures: int = 0


def target_states(engine: Engine) -> dict[str, TargetState]:
    """Every target's shared state, in one query (read at the start of each worker round)."""
    with reading(engine) as conn:
        rows = conn.execute(
            select(
                targets.c.name,
                targets.c.paused,
                targets.c.circuit,
                targets.c.circuit_opened_at,
                targets.c.updated_at,
                targets.c.hold_until,
                targets.c.consecutive_failures,
            )
        ).all()
    return {
        r.name: TargetState(
            name=r.name,
            paused=bool(r.paused),
            circuit=r.circuit,
            opened_at=r.circuit_opened_at,
            updated_at=r.updated_at,
            hold_until=r.hold_until,
            failures=r.consecutive_failures or 0,
        )
        for r in rows
    }


def claim_probe(
    engine: Engine,
    name: str,
    *,
    now: datetime,
    cooldown: timedelta,
    probe_timeout: timedelta,
    actor: str,
    reason: str = "cooldown over: this process probes",
) -> bool:
    """Become the one process that probes ``name``: True when this caller won.

    Wins when the circuit is open and its cooldown has passed, or when another process's
    probe has been half-open for longer than ``probe_timeout`` (that process died). An
    operator's drain passes a zero ``cooldown``: asking to drain is a reason to probe now.
    """
    with engine.begin() as conn:
        won = conn.execute(
            update(targets)
            .where(
                and_(
                    targets.c.name == name,
                    or_(
                        and_(
                            targets.c.circuit == "open",
                            targets.c.circuit_opened_at <= now - cooldown,
                        ),
                        and_(
                            targets.c.circuit == "half_open",
                            targets.c.updated_at <= now - probe_timeout,
                        ),
                    ),
                )
            )
            .values(circuit="half_open", updated_at=now)
        ).rowcount
        if won:
            conn.execute(
                audit_log.insert().values(
                    at=now,
                    actor=actor,
                    action="circuit",
                    entity_type="target",
                    entity_id=name,
                    from_state="open",
                    to_state="half_open",
                    reason=reason,
                )
            )
    return bool(won)


def record_hold(engine: Engine, name: str, *, until: datetime, now: datetime) -> None:
    """Publish a system's pause (a 429's Retry-After) to every process; the later one wins."""
    with engine.begin() as conn:
        extended = conn.execute(
            update(targets)
            .where(
                and_(
                    targets.c.name == name,
                    or_(targets.c.hold_until.is_(None), targets.c.hold_until < until),
                )
            )
            .values(hold_until=until, updated_at=now)
        ).rowcount
        if (
            not extended
            and conn.execute(select(targets.c.name).where(targets.c.name == name)).first() is None
        ):
            upsert_target(conn, name, now, hold_until=until)


def paused_targets(engine: Engine) -> set[str]:
    with reading(engine) as conn:
        return {
            r.name for r in conn.execute(select(targets.c.name).where(targets.c.paused.is_(True)))
        }


def share_failures(engine: Engine, name: str, *, failures: int, now: datetime) -> None:
    """Publish a closed circuit's count of transient failures in a row, so that the next
    process (a `worker --until-idle` run from cron, each with too few calls to reach the
    threshold alone) counts on from it. A circuit another process opened is left alone."""
    with engine.begin() as conn:
        changed = conn.execute(
            update(targets)
            .where(targets.c.name == name, targets.c.circuit == "closed")
            .values(consecutive_failures=failures)
        ).rowcount
        if (
            not changed
            and conn.execute(select(targets.c.name).where(targets.c.name == name)).first() is None
        ):
            upsert_target(conn, name, now, consecutive_failures=failures)


def record_circuit(
    engine: Engine,
    name: str,
    *,
    state: str,
    failures: int,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Publish a breaker transition so that status and alerts see it from any process;
    ``reason`` is why the calls failed (kept while the circuit is not closed)."""
    with engine.begin() as conn:
        upsert_target(
            conn,
            name,
            now,
            circuit=state,
            consecutive_failures=failures,
            circuit_opened_at=now if state == "open" else None,
            circuit_reason=None if state == "closed" else reason,
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
