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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select, text, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

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
      AND d.due_at <= :now
      AND NOT EXISTS (
          SELECT 1 FROM deliveries p
          WHERE p.target = d.target AND p.pattern = d.pattern
            AND p.customer_ref = d.customer_ref AND p.event_id < d.event_id
            AND p.state IN ('pending', 'in_flight')
      )
    ORDER BY d.event_id
    LIMIT :limit {lock}
)
RETURNING event_id, attempts
"""


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


def _ts(conn: Connection, value: datetime) -> Any:
    """A timestamp parameter for raw SQL, in the same form the Core tables store."""
    return timestamp_param(conn.dialect.name)(value)


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
            lock = "FOR UPDATE SKIP LOCKED" if conn.dialect.name == "postgresql" else ""
            rows = conn.execute(
                text(_CLAIM_SQL.format(lock=lock)),
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
            attempt_of: dict[int, int] = dict(rows)
        return self.claimed_rows(attempt_of, worker_id, now, pattern)

    def claimed_rows(
        self, attempt_of: dict[int, int], worker_id: str, now: datetime, pattern: str = "realtime"
    ) -> list[Claimed]:
        """Load the claimed deliveries' events and open an attempt row for each."""
        with self.engine.begin() as conn:
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
            conn.execute(
                attempts.insert(),
                [
                    {
                        "event_id": r.id,
                        "attempt_no": attempt_of[r.id],
                        "worker_id": worker_id,
                        "started_at": now,
                    }
                    for r in found
                ],
            )
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
            )
            for r in found
        ]

    def _finish_attempt(
        self,
        conn: Connection,
        c: Claimed,
        now: datetime,
        outcome: str,
        error: str | None = None,
        external_ref: str | None = None,
    ) -> None:
        conn.execute(
            update(attempts)
            .where(and_(attempts.c.event_id == c.event_id, attempts.c.attempt_no == c.attempt))
            .values(finished_at=now, outcome=outcome, error=error, external_ref=external_ref)
        )

    def complete(
        self, c: Claimed, *, target: str, external_id: str, now: datetime, worker_id: str
    ) -> int:
        """Mark delivered, remember where the record lives, and wake what waited for it.

        Returns how many parked deliveries were released. Only the lease holder may complete:
        a worker whose lease expired and was taken over loses the race harmlessly.
        """
        with self.engine.begin() as conn:
            done = conn.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.event_id == c.event_id,
                        deliveries.c.state == "in_flight",
                        deliveries.c.worker_id == worker_id,
                    )
                )
                .values(
                    state="delivered",
                    external_ref=external_id,
                    delivered_at=now,
                    updated_at=now,
                    lease_expires_at=None,
                    last_error=None,
                )
            ).rowcount
            self._finish_attempt(conn, c, now, "delivered", external_ref=external_id)
            if not done:
                return 0
            self._remember(conn, target, c.subject_ref, external_id, c.event_id, now)
            released = conn.execute(
                update(deliveries)
                .where(and_(deliveries.c.parked_on == c.subject_ref, deliveries.c.target == target))
                .where(deliveries.c.state == "parked")
                .values(state="pending", parked_on=None, due_at=now, updated_at=now)
            ).rowcount
            return int(released)

    def _remember(
        self,
        conn: Connection,
        target: str,
        subject_ref: str,
        external_id: str,
        event_id: int,
        now: datetime,
    ) -> None:
        existing = conn.execute(
            select(external_refs.c.external_id).where(
                and_(external_refs.c.target == target, external_refs.c.subject_ref == subject_ref)
            )
        ).scalar()
        if existing is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        external_refs.insert().values(
                            target=target,
                            subject_ref=subject_ref,
                            external_id=external_id,
                            event_id=event_id,
                            created_at=now,
                        )
                    )
            except IntegrityError:  # another worker remembered it first: same record
                pass

    def retry_later(self, c: Claimed, *, due_at: datetime, error: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.event_id == c.event_id)
                .values(
                    state="pending",
                    due_at=due_at,
                    last_error=error,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            self._finish_attempt(conn, c, now, "transient_error", error)

    def release_unattempted(self, c: Claimed, *, now: datetime, reason: str) -> None:
        """Give a claim back without having called the target (circuit open, paused)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.event_id == c.event_id)
                .values(
                    state="pending",
                    attempts=deliveries.c.attempts - 1,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            conn.execute(
                attempts.delete().where(
                    and_(attempts.c.event_id == c.event_id, attempts.c.attempt_no == c.attempt)
                )
            )

    def dead_letter(self, c: Claimed, *, error: str, now: datetime, actor: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.event_id == c.event_id)
                .values(
                    state="dead_letter", last_error=error, lease_expires_at=None, updated_at=now
                )
            )
            self._finish_attempt(conn, c, now, "dead_letter", error)
            conn.execute(
                audit_log.insert().values(
                    at=now,
                    actor=actor,
                    action="dead_letter",
                    entity_type="event",
                    entity_id=str(c.event_id),
                    from_state="in_flight",
                    to_state="dead_letter",
                    reason=error,
                )
            )

    def park(self, c: Claimed, *, target: str, waits_for: str, now: datetime) -> None:
        """Wait for another record: a visible state, not a failure and not a retry."""
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.event_id == c.event_id)
                .values(
                    state="parked",
                    parked_on=waits_for,
                    attempts=deliveries.c.attempts - 1,
                    lease_expires_at=None,
                    updated_at=now,
                    last_error=f"waiting for {waits_for}",
                )
            )
            conn.execute(
                attempts.delete().where(
                    and_(attempts.c.event_id == c.event_id, attempts.c.attempt_no == c.attempt)
                )
            )
            # The record may have landed between our look-up and this park: re-check.
            landed = conn.execute(
                select(external_refs.c.id).where(
                    and_(external_refs.c.subject_ref == waits_for, external_refs.c.target == target)
                )
            ).first()
            if landed:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.event_id == c.event_id)
                    .values(state="pending", parked_on=None, due_at=now)
                )

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

    def producer_exists(self, subject_ref: str) -> bool:
        """Is there any event in the ledger that creates ``subject_ref``?"""
        with self.engine.connect() as conn:
            return (
                conn.execute(select(events.c.id).where(events.c.subject_ref == subject_ref)).first()
                is not None
            )

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

    def due_count(self, *, target: str, now: datetime, pattern: str = "realtime") -> int:
        with self.engine.connect() as conn:
            return len(
                conn.execute(
                    select(deliveries.c.event_id)
                    .where(
                        and_(
                            deliveries.c.target == target,
                            deliveries.c.pattern == pattern,
                            deliveries.c.state.in_(("pending", "in_flight")),
                            deliveries.c.due_at <= now,
                        )
                    )
                    .limit(1)
                ).all()
            )
