"""The delivery queue: SQL over ``deliveries``, kept as SQL.

Claims take a lease (``in_flight`` until ``lease_expires_at``); a worker that dies leaves a
lease that expires, and ``recover_expired_leases`` puts its deliveries back, marked so that
the next attempt first looks the record up in the target (its outcome is unknown).
On PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so that many workers on many hosts
share the work; on SQLite the write lock (``BEGIN IMMEDIATE``) serializes claims.

Per-customer order: a delivery is claimable only when no earlier delivery of the same
customer, target and pattern is still pending or in flight. A parked delivery steps out of
the line while it waits for its dependency (otherwise the customer record it waits for,
queued behind it, could never pass), and rejoins it by event id when released.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select, text, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from revbridge.store.schema import (
    api_calls,
    attempts,
    audit_log,
    deliveries,
    events,
    external_refs,
    timestamp_param,
)

_CLAIM_SQL = """
UPDATE deliveries
SET state = 'in_flight', lease_expires_at = :lease, worker_id = :worker,
    attempts = attempts + 1, updated_at = :now
WHERE event_id IN (
    SELECT d.event_id FROM deliveries d
    WHERE d.target = :target AND d.pattern = :pattern AND d.state = 'pending'
      AND {due_at} <= :now
      AND (
          d.customer_ref IS NULL
          OR d.event_id = (
              SELECT min(p.event_id) FROM deliveries p
              WHERE p.target = :target AND p.pattern = :pattern
                AND p.customer_ref = d.customer_ref
                AND p.state IN ('pending', 'in_flight')
          )
      )
    ORDER BY d.event_id
    LIMIT :limit {lock}
)
RETURNING event_id, attempts
"""
_CLAIM_PG_SQL = _CLAIM_SQL.format(due_at="d.due_at", lock="FOR UPDATE SKIP LOCKED")
_CLAIM_SQLITE_SQL = _CLAIM_SQL.format(due_at="+d.due_at", lock="")


def claim_sql(dialect: str) -> str:
    """The claim statement: lease the due head-of-line deliveries of a target and pattern.

    It walks ``ix_deliveries_pending_line`` in event order and stops at its limit.

    SQLite's planner would rather range-scan ``(state, due_at)``, which reads and sorts the
    whole due backlog each round (quadratic over a drain); ``+due_at`` takes that index out of
    its choice. PostgreSQL picks the pending-line index on its own (docs/decisions/0015).
    """
    return _CLAIM_PG_SQL if dialect == "postgresql" else _CLAIM_SQLITE_SQL


@dataclass(frozen=True, slots=True)
class Claimed:
    event_id: int
    attempt: int
    type: str
    idempotency_key: str
    subject_ref: str
    customer_ref: str | None
    received_at: datetime
    payload: str
    outcome_unknown: bool
    pattern: str = "realtime"
    claimed_at: datetime | None = None


@dataclass(slots=True)
class Outcomes:
    """What became of a round of claimed deliveries, written together by ``record``."""

    worker_id: str
    delivered: list[tuple[Claimed, str, str]] = field(default_factory=list)  # (c, target, ext id)
    retries: list[tuple[Claimed, datetime, str]] = field(default_factory=list)  # (c, due, error)
    dead: list[tuple[Claimed, str, str]] = field(default_factory=list)  # (c, error, actor)
    parked: list[tuple[Claimed, str, str]] = field(default_factory=list)  # (c, target, waits for)
    held: list[tuple[Claimed, str, str]] = field(default_factory=list)  # (c, waits for, why)
    released: list[Claimed] = field(default_factory=list)

    def empty(self) -> bool:
        return not (
            self.delivered or self.retries or self.dead or self.parked or self.held or self.released
        )


def _attempt(
    c: Claimed, now: datetime, outcome: str, error: str | None, external_ref: str | None
) -> dict[str, Any]:
    return {
        "event_id": c.event_id,
        "attempt_no": c.attempt,
        "started_at": c.claimed_at or now,
        "finished_at": now,
        "outcome": outcome,
        "error": error,
        "external_ref": external_ref,
    }


def _memo_ts(conn: Connection) -> Any:
    convert = timestamp_param(conn.dialect.name)
    seen: dict[datetime, Any] = {}

    def ts(value: datetime) -> Any:
        if value not in seen:
            seen[value] = convert(value)
        return seen[value]

    return ts


def _ts(conn: Connection, value: datetime) -> Any:
    """A timestamp parameter for raw SQL, in the same form the Core tables store."""
    return timestamp_param(conn.dialect.name)(value)


_DELIVERED = """
UPDATE deliveries SET state = 'delivered', external_ref = {ext}, delivered_at = :now,
    updated_at = :now, lease_expires_at = NULL, last_error = NULL{source}
WHERE event_id = {id} AND state = 'in_flight' AND worker_id = :worker
"""
_DELIVERED_SQL = _DELIVERED.format(ext=":ext", source="", id=":id")
_DELIVERED_PG_SQL = _DELIVERED.format(
    ext="v.ext",
    source="\nFROM unnest(CAST(:ids AS bigint[]), CAST(:exts AS text[])) AS v(id, ext)",
    id="v.id",
)


def _mark_delivered(conn: Connection, out: Outcomes, now: Any) -> None:
    """Mark a round's delivered rows, as the lease holder.

    On PostgreSQL one statement over arrays: a statement per row costs the server a plan and
    an executor start each, a round trip's worth apiece in a pipeline.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(_DELIVERED_PG_SQL),
            {
                "ids": [c.event_id for c, _, _ in out.delivered],
                "exts": [ext for _, _, ext in out.delivered],
                "now": now,
                "worker": out.worker_id,
            },
        )
        return
    conn.execute(
        text(_DELIVERED_SQL),
        [
            {"ext": ext, "now": now, "id": c.event_id, "worker": out.worker_id}
            for c, _, ext in out.delivered
        ],
    )


class DeliveryQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(
        self,
        *,
        target: str,
        worker_id: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        pattern: str = "realtime",
    ) -> list[Claimed]:
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(claim_sql(conn.dialect.name)),
                {
                    "lease": _ts(conn, now + lease),
                    "worker": worker_id,
                    "now": _ts(conn, now),
                    "target": target,
                    "pattern": pattern,
                    "limit": limit,
                },
            ).all()
            if not rows:
                return []
            # Read in the claim's transaction: one connection and one commit per round.
            return self._claimed_rows(conn, dict(rows), now, pattern)

    def claimed_rows(
        self, attempt_of: dict[int, int], worker_id: str, now: datetime, pattern: str = "realtime"
    ) -> list[Claimed]:
        """Load the claimed deliveries' events (the attempt row is written with the outcome)."""
        with self.engine.connect() as conn:
            return self._claimed_rows(conn, attempt_of, now, pattern)

    def _claimed_rows(
        self, conn: Connection, attempt_of: dict[int, int], now: datetime, pattern: str
    ) -> list[Claimed]:
        found = conn.execute(
            select(
                events.c.id,
                events.c.type,
                events.c.idempotency_key,
                events.c.subject_ref,
                events.c.customer_ref,
                events.c.received_at,
                events.c.payload,
            )
            .where(events.c.id.in_(list(attempt_of)))
            .order_by(events.c.id)
        ).all()
        return [
            Claimed(
                event_id=r.id,
                attempt=attempt_of[r.id],
                type=r.type,
                idempotency_key=r.idempotency_key,
                subject_ref=r.subject_ref,
                customer_ref=r.customer_ref,
                received_at=r.received_at,
                payload=r.payload,
                # Any earlier attempt may have reached the target before failing or dying.
                outcome_unknown=attempt_of[r.id] > 1,
                pattern=pattern,
                claimed_at=now,
            )
            for r in found
        ]

    # ------------------------------------------------------------------ outcomes

    def record(self, out: Outcomes, *, now: datetime) -> int:
        """Write a round's outcomes in one transaction; returns parked deliveries released.

        One transaction per claimed batch, not per delivery: on PostgreSQL each commit waits
        for the WAL flush, and that, not the target, would bound throughput.
        """
        if out.empty():
            return 0
        with self.engine.begin() as conn:
            return self._record(conn, out, now)

    def _record(self, conn: Connection, out: Outcomes, now: datetime) -> int:
        ts = _memo_ts(conn)
        released = 0
        attempt_rows: list[dict[str, Any]] = []
        if out.released:
            conn.execute(
                text(
                    "UPDATE deliveries SET state = 'pending', attempts = attempts - 1, "
                    "lease_expires_at = NULL, updated_at = :now WHERE event_id = :id"
                ),
                [{"now": ts(now), "id": c.event_id} for c in out.released],
            )
        if out.parked or out.held:
            # Waiting for another record (parked) or for a person (held: a review item, which
            # puts it back in line when decided, ``services.mdm``): not a retry, the attempt
            # is not counted.
            conn.execute(
                text(
                    "UPDATE deliveries SET state = :state, parked_on = :on, "
                    "attempts = attempts - 1, lease_expires_at = NULL, updated_at = :now, "
                    "last_error = :why WHERE event_id = :id"
                ),
                [
                    {
                        "state": "parked",
                        "on": on,
                        "now": ts(now),
                        "why": f"waiting for {on}",
                        "id": c.event_id,
                    }
                    for c, _, on in out.parked
                ]
                + [
                    {"state": "held", "on": on, "now": ts(now), "why": why, "id": c.event_id}
                    for c, on, why in out.held
                ],
            )
        if out.held:
            conn.execute(
                audit_log.insert(),
                [
                    {
                        "at": now,
                        "actor": out.worker_id,
                        "action": "held",
                        "entity_type": "event",
                        "entity_id": str(c.event_id),
                        "from_state": "in_flight",
                        "to_state": "held",
                        "reason": why,
                    }
                    for c, _, why in out.held
                ],
            )
        if out.retries:
            conn.execute(
                text(
                    "UPDATE deliveries SET state = 'pending', due_at = :due, last_error = :err, "
                    "lease_expires_at = NULL, updated_at = :now WHERE event_id = :id"
                ),
                [
                    {"due": ts(due), "err": err, "now": ts(now), "id": c.event_id}
                    for c, due, err in out.retries
                ],
            )
            attempt_rows += [
                _attempt(c, now, "transient_error", err, None) for c, _, err in out.retries
            ]
        if out.dead:
            conn.execute(
                text(
                    "UPDATE deliveries SET state = 'dead_letter', last_error = :err, "
                    "lease_expires_at = NULL, updated_at = :now WHERE event_id = :id"
                ),
                [{"err": err, "now": ts(now), "id": c.event_id} for c, err, _ in out.dead],
            )
            attempt_rows += [_attempt(c, now, "dead_letter", err, None) for c, err, _ in out.dead]
            conn.execute(
                audit_log.insert(),
                [
                    {
                        "at": now,
                        "actor": actor,
                        "action": "dead_letter",
                        "entity_type": "event",
                        "entity_id": str(c.event_id),
                        "from_state": "in_flight",
                        "to_state": "dead_letter",
                        "reason": err,
                    }
                    for c, err, actor in out.dead
                ],
            )
        if out.delivered:
            # Only the lease holder completes: a worker whose lease was taken over loses the
            # race harmlessly (the record it made is remembered all the same).
            _mark_delivered(conn, out, ts(now))
            attempt_rows += [
                _attempt(c, now, "delivered", None, ext) for c, _, ext in out.delivered
            ]
            dialect = sqlite_dialect if conn.dialect.name == "sqlite" else pg_dialect
            conn.execute(
                dialect.insert(external_refs).on_conflict_do_nothing(
                    index_elements=["target", "subject_ref"]
                ),
                [
                    {
                        "target": target,
                        "subject_ref": c.subject_ref,
                        "external_id": ext,
                        "event_id": c.event_id,
                        "created_at": now,
                    }
                    for c, target, ext in out.delivered
                ],
            )
        if attempt_rows:
            conn.execute(
                attempts.insert(), [r | {"worker_id": out.worker_id} for r in attempt_rows]
            )
        # Release what waited for records that are now in the target: delivered in this round,
        # or by another worker between our look-up and our park.
        by_target: dict[str, set[str]] = {}
        for c, target, _ in out.delivered:
            by_target.setdefault(target, set()).add(c.subject_ref)
        for _, target, on in out.parked:
            by_target.setdefault(target, set()).add(on)
        for target, subjects in by_target.items():
            ordered = sorted(subjects)
            for i in range(0, len(ordered), 500):
                chunk = ordered[i : i + 500]
                landed = select(external_refs.c.subject_ref).where(
                    and_(external_refs.c.target == target, external_refs.c.subject_ref.in_(chunk))
                )
                released += conn.execute(
                    update(deliveries)
                    .where(
                        and_(
                            deliveries.c.state == "parked",
                            deliveries.c.target == target,
                            deliveries.c.parked_on.in_(landed),
                        )
                    )
                    .values(state="pending", parked_on=None, due_at=now, updated_at=now)
                ).rowcount
        return released

    def expedite(self, *, target: str, subject_ref: str, now: datetime, reason: str) -> int:
        """Deliver a batch-class dependency just in time, ahead of its batch."""
        with self.engine.begin() as conn:
            ids = [
                r.event_id
                for r in conn.execute(
                    select(deliveries.c.event_id)
                    .join(events, events.c.id == deliveries.c.event_id)
                    .where(
                        and_(
                            deliveries.c.target == target,
                            deliveries.c.pattern == "batch",
                            deliveries.c.state == "pending",
                            events.c.subject_ref == subject_ref,
                        )
                    )
                )
            ]
            if not ids:
                return 0
            conn.execute(
                update(deliveries)
                .where(deliveries.c.event_id.in_(ids))
                .values(pattern="realtime", due_at=now, updated_at=now)
            )
            conn.execute(
                audit_log.insert(),
                [
                    {
                        "at": now,
                        "actor": "engine",
                        "action": "expedite",
                        "entity_type": "event",
                        "entity_id": str(i),
                        "from_state": "batch",
                        "to_state": "realtime",
                        "reason": reason,
                    }
                    for i in ids
                ],
            )
            return len(ids)

    def resolve(self, target: str, subject_refs: Sequence[str]) -> dict[str, str]:
        """The external ids of records already in ``target``, by subject ref."""
        if not subject_refs:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(external_refs.c.subject_ref, external_refs.c.external_id).where(
                    and_(
                        external_refs.c.target == target,
                        external_refs.c.subject_ref.in_(list(subject_refs)),
                    )
                )
            ).all()
        return dict(rows)

    def recover_expired_leases(self, *, now: datetime) -> int:
        """Put back deliveries whose worker died: their next attempt looks up first."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(deliveries)
                .where(and_(deliveries.c.state == "in_flight", deliveries.c.lease_expires_at < now))
                .values(
                    state="pending",
                    due_at=now,
                    lease_expires_at=None,
                    updated_at=now,
                    last_error="lease expired: worker stopped mid-delivery; outcome unknown",
                )
                .returning(deliveries.c.event_id)
            ).all()
            if rows:
                conn.execute(
                    audit_log.insert(),
                    [
                        {
                            "at": now,
                            "actor": "engine",
                            "action": "lease_expired",
                            "entity_type": "event",
                            "entity_id": str(r.event_id),
                            "from_state": "in_flight",
                            "to_state": "pending",
                            "reason": "lease expired; next attempt looks the record up first",
                        }
                        for r in rows
                    ],
                )
            return len(rows)

    def add_api_calls(self, now: datetime, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Add external calls to today's counters (one row per target, type and pattern)."""
        day = now.date().isoformat()
        with self.engine.begin() as conn:
            dialect = sqlite_dialect if conn.dialect.name == "sqlite" else pg_dialect
            for (target, event_type, pattern), n in counts.items():
                stmt = dialect.insert(api_calls).values(
                    day=day, target=target, event_type=event_type, pattern=pattern, calls=n
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["day", "target", "event_type", "pattern"],
                        set_={"calls": api_calls.c.calls + n},
                    )
                )
