"""The event ledger: durable, idempotent appends and the queries the operators read.

Idempotency is enforced by the database (a unique key on ``events.idempotency_key`` and
``INSERT ... ON CONFLICT DO NOTHING``), not by a read-then-write in Python, so it holds when
several processes ingest the same events at once. A key already present with the same
payload hash is a duplicate of the original event; with a different hash, a conflict.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, case, exists, func, literal, not_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from revbridge.errors import StoreError
from revbridge.store.schema import (
    UTCDateTime,
    attempts,
    audit_log,
    deliveries,
    events,
    quarantine,
    timestamp_param,
)

# Delivery states. ``pending`` waits for its due time; ``parked`` waits for another record;
# ``held`` waits for a person's decision (a review item: ``parked_on`` names it);
# ``in_flight`` is leased to a worker; ``delivered`` and ``dead_letter`` are final. A
# superseded delivery is stored as ``delivered`` (``superseded_delivery``).
DELIVERY_STATES = ("pending", "parked", "held", "in_flight", "delivered", "dead_letter")
UNDELIVERED_STATES = ("pending", "parked", "held", "in_flight")
# The states the operators read (`revbridge status`, `dr status`, the console, the metrics):
# the stored ones, with ``scheduled`` apart from ``pending`` and ``superseded`` apart from
# ``delivered`` (``status_state``).
STATUS_STATES = (
    "pending",
    "scheduled",
    "parked",
    "held",
    "in_flight",
    "delivered",
    "superseded",
    "dead_letter",
)
NOTIFY_CHANNEL = "revbridge_events"
_LOOKUP_CHUNK = 500


def scheduled_delivery(now: datetime) -> ColumnElement[bool]:
    """Batch-class deliveries waiting for their class's next run: pending, never tried, due
    later. Scheduled work, not backlog: at month-end the revenue items waiting for the 1st
    would otherwise make the oldest undelivered age weeks old. A batch item retrying after a
    failed run has been tried (``attempts`` > 0): it is backlog, and its age counts."""
    return and_(
        deliveries.c.pattern == "batch",
        deliveries.c.state == "pending",
        deliveries.c.attempts == 0,
        deliveries.c.due_at > now,
    )


def superseded_delivery() -> ColumnElement[bool]:
    """Deliveries that are final without a call: an older version of a latest-wins record
    (a customer upsert, a credit status) that a newer version, already in the target,
    replaced before it was sent (``DeliveryQueue.superseded``). Stored as ``delivered``, the
    final state every "delivered or dead" check reads; told apart by their attempt, whose
    outcome is ``superseded``, with no call delivered after it (a revert sends it again)."""
    later = attempts.alias("later")
    superseded_ids = select(attempts.c.event_id).where(
        attempts.c.outcome == "superseded",
        ~exists().where(
            later.c.event_id == attempts.c.event_id,
            later.c.id > attempts.c.id,
            later.c.outcome == "delivered",
        ),
    )
    return and_(deliveries.c.state == "delivered", deliveries.c.event_id.in_(superseded_ids))


def status_state(now: datetime) -> ColumnElement[str]:
    """A delivery's state as the operators read it: the stored state, but ``scheduled`` for
    a batch delivery waiting for its class's run (``scheduled_delivery``), stored as
    ``pending``, and ``superseded`` for one that was final without a call
    (``superseded_delivery``), stored as ``delivered``. Every status surface counts with
    this, so that they agree: an operator tells "waiting for tonight's file" from "stuck",
    and "sent" from "replaced before it was sent", on each of them."""
    return case(
        (scheduled_delivery(now), literal("scheduled")),
        (superseded_delivery(), literal("superseded")),
        else_=deliveries.c.state,
    )


def _counted_by_status_state(conn: Connection, now: datetime) -> dict[str, dict[str, int]]:
    """Deliveries by pattern and ``status_state``, the states with none left out.

    Counted by stored state, then the scheduled ones moved out of ``pending`` and the
    superseded ones out of ``delivered``, each counted on its own: grouping by
    ``status_state`` itself evaluates its sub-query for every row of the ledger, twice (in
    the select and in the group), which on a 100k-event ledger took longer than the rest of
    ``status`` together."""
    counts: dict[str, Counter[str]] = {}
    for pattern, state, n in conn.execute(
        select(deliveries.c.pattern, deliveries.c.state, func.count()).group_by(
            deliveries.c.pattern, deliveries.c.state
        )
    ):
        counts.setdefault(pattern, Counter())[state] += n
    for told_apart, stored_as in (
        (scheduled_delivery(now), ("scheduled", "pending")),
        (superseded_delivery(), ("superseded", "delivered")),
    ):
        for pattern, n in conn.execute(
            select(deliveries.c.pattern, func.count())
            .where(told_apart)
            .group_by(deliveries.c.pattern)
        ):
            own, stored = stored_as
            counts[pattern][own] += n
            counts[pattern][stored] -= n
    return {p: {s: n for s, n in states.items() if n} for p, states in counts.items()}


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One validated event, ready to append: its ``events`` row and its first delivery row."""

    row: dict[str, Any]
    target: str
    pattern: str
    due_at: datetime
    raw: str
    origin: str | None = None
    line_no: int | None = None
    params: tuple[Any, ...] | None = None  # precomputed driver parameters, see event_params
    params_dialect: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Crossing a process boundary (ingest's validation workers): with the driver parameters
        # precomputed, the row travels inside them instead of beside them. Pickling the row
        # (a dict with timezone-aware datetimes) cost a third of validating the event.
        if self.params is None:
            fields = (self.row, self.target, self.pattern, self.due_at, self.raw)
            return (NewEvent, (*fields, self.origin, self.line_no))
        return (
            _from_params,
            (
                self.params,
                self.params_dialect,
                self.target,
                self.pattern,
                self.due_at,
                self.raw,
                self.origin,
                self.line_no,
            ),
        )


def _from_params(
    params: tuple[Any, ...],
    dialect: str,
    target: str,
    pattern: str,
    due_at: datetime,
    raw: str,
    origin: str | None,
    line_no: int | None,
) -> NewEvent:
    """A ``NewEvent`` rebuilt from its driver parameters after pickling (see ``__reduce__``).

    Its row holds every column but the two timestamps, which exist only in their driver form
    (in ``params``): nothing reads them from the row once the parameters are computed.
    """
    key, type_, source, source_id, version, _, _, customer, subject, digest, payload = params
    row = {
        "idempotency_key": key,
        "type": type_,
        "source": source,
        "source_id": source_id,
        "source_version": version,
        "customer_ref": customer,
        "subject_ref": subject,
        "payload_hash": digest,
        "payload": payload,
    }
    return NewEvent(row, target, pattern, due_at, raw, origin, line_no, params, dialect)


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    reason_code: str
    reason: str
    raw: str
    origin: str | None = None
    line_no: int | None = None
    event_type: str | None = None
    idempotency_key: str | None = None
    original_event_id: int | None = None


@dataclass(slots=True)
class AppendOutcome:
    """What happened to each event of a batch, by its position in the batch."""

    accepted: dict[int, int] = field(default_factory=dict)  # position -> new event id
    duplicates: dict[int, int] = field(default_factory=dict)  # position -> original event id
    conflicts: dict[int, int] = field(default_factory=dict)  # position -> original event id


# The hot path of ingest talks to the driver directly: SQLAlchemy's per-value type processing
# costs more than the insert itself. Columns and formats match the Core tables in schema.py
# (timestamps: UTC; SQLite text in SQLAlchemy's own storage format), and the ledger tests
# read these rows back through the Core tables.
_EVENT_COLUMNS = (
    "idempotency_key",
    "type",
    "source",
    "source_id",
    "source_version",
    "occurred_at",
    "received_at",
    "customer_ref",
    "subject_ref",
    "payload_hash",
    "payload",
)
_EVENT_INSERT = {
    "sqlite": (
        f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)}) "
        "ON CONFLICT (idempotency_key) DO NOTHING"
    ),
    "postgresql": (
        f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
        f"VALUES ({', '.join('%s' for _ in _EVENT_COLUMNS)}) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
    ),
}
_DELIVERY_INSERT = {
    dialect: (
        "INSERT INTO deliveries "
        "(event_id, target, pattern, state, attempts, due_at, updated_at, customer_ref) "
        f"VALUES ({', '.join(mark for _ in range(8))})"
    )
    for dialect, mark in (("sqlite", "?"), ("postgresql", "%s"))
}


def _memo(ts: Callable[[datetime], Any]) -> Callable[[datetime], Any]:
    """Convert each distinct timestamp once: a batch shares its receipt and due times."""
    seen: dict[datetime, Any] = {}

    def convert(value: datetime) -> Any:
        out = seen.get(value)
        if out is None:
            out = seen[value] = ts(value)
        return out

    return convert


def event_params(row: dict[str, Any], dialect: str) -> tuple[Any, ...]:
    """The driver parameters of one ``events`` row (columns in ``_EVENT_COLUMNS`` order).

    Ingest computes these where it validates (in worker processes for big files), so that the
    writing process only writes.
    """
    ts = timestamp_param(dialect)
    return (
        row["idempotency_key"],
        row["type"],
        row["source"],
        row["source_id"],
        row["source_version"],
        ts(row["occurred_at"]),
        ts(row["received_at"]),
        row["customer_ref"],
        row["subject_ref"],
        row["payload_hash"],
        row["payload"],
    )


def _event_params(news: Sequence[NewEvent], dialect: str) -> list[tuple[Any, ...]]:
    return [
        n.params
        if n.params is not None and n.params_dialect == dialect
        else event_params(n.row, dialect)
        for n in news
    ]


def _insert_events_sqlite(conn: Connection, rows: Sequence[NewEvent]) -> dict[str, int]:
    """Insert, skipping existing keys; return the new ids by key.

    The transaction holds SQLite's write lock (BEGIN IMMEDIATE), so every id above the
    maximum seen before the insert is one of ours.
    """
    before = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM events").scalar_one()
    conn.exec_driver_sql(_EVENT_INSERT["sqlite"], _event_params(rows, "sqlite"))
    result = conn.exec_driver_sql("SELECT idempotency_key, id FROM events WHERE id > ?", (before,))
    return dict(result.all())


def _insert_events_postgresql(conn: Connection, rows: Sequence[NewEvent]) -> dict[str, int]:
    """Insert, skipping existing keys; return the new ids by key (pipelined executemany)."""
    params = _event_params(rows, "postgresql")
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    inserted: dict[str, int] = {}
    with dbapi.cursor() as cur:
        cur.executemany(_EVENT_INSERT["postgresql"], params, returning=True)
        i = 0
        while True:
            row = cur.fetchone()
            if row is not None:  # no row: the key existed (ON CONFLICT DO NOTHING)
                inserted[rows[i].row["idempotency_key"]] = row[0]
            i += 1
            if not cur.nextset():
                break
    return inserted


class Ledger:
    """Reads and writes the ledger through one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ writes

    def append(
        self,
        batch: Sequence[NewEvent],
        rejects: Sequence[QuarantineRecord],
        *,
        now: datetime,
    ) -> tuple[AppendOutcome, list[QuarantineRecord]]:
        """Append a batch atomically: new events with their deliveries, and the quarantine.

        ``rejects`` are lines that failed validation (a record each). Conflicting events are
        quarantined in the same transaction, so a batch is either wholly stored or not at all.
        Returns the outcome and the conflict records that were quarantined.
        """
        try:
            with self.engine.begin() as conn:
                outcome = self._append_events(conn, batch)
                conflict_records = [
                    _conflict_record(batch[pos], original)
                    for pos, original in outcome.conflicts.items()
                ]
                records = [*rejects, *conflict_records]
                if records:
                    self._insert_quarantine(conn, records, now)
                if outcome.accepted and conn.dialect.name == "postgresql":
                    # Delivered at commit: workers on any host wake without polling.
                    conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")
                if outcome.accepted:
                    ts = _memo(timestamp_param(conn.dialect.name))
                    conn.exec_driver_sql(
                        _DELIVERY_INSERT[conn.dialect.name],
                        [
                            (
                                event_id,
                                batch[pos].target,
                                batch[pos].pattern,
                                "pending",
                                0,
                                ts(batch[pos].due_at),
                                ts(now),
                                batch[pos].row["customer_ref"],
                            )
                            for pos, event_id in outcome.accepted.items()
                        ],
                    )
                return outcome, conflict_records
        except SQLAlchemyError as exc:
            raise StoreError(f"appending {len(batch)} events to the ledger failed: {exc}") from exc

    def _append_events(self, conn: Connection, batch: Sequence[NewEvent]) -> AppendOutcome:
        outcome = AppendOutcome()
        first_by_key: dict[str, int] = {}
        later: list[int] = []
        for pos, new in enumerate(batch):
            key = new.row["idempotency_key"]
            if key in first_by_key:
                later.append(pos)
            else:
                first_by_key[key] = pos
        # A stable key order keeps concurrent PostgreSQL writers from deadlocking each other.
        firsts = sorted(first_by_key.items())
        inserted: dict[str, int] = {}
        if firsts:
            rows = [batch[pos] for _, pos in firsts]
            if conn.dialect.name == "sqlite":
                inserted = _insert_events_sqlite(conn, rows)
            else:
                inserted = _insert_events_postgresql(conn, rows)
        existing_keys = [key for key, _ in firsts if key not in inserted]
        existing = self._lookup(conn, existing_keys)
        for key, pos in firsts:
            if key in inserted:
                outcome.accepted[pos] = inserted[key]
                continue
            original_id, original_hash = existing[key]
            target = outcome.duplicates
            if original_hash != batch[pos].row["payload_hash"]:
                target = outcome.conflicts
            target[pos] = original_id
        for pos in later:
            key = batch[pos].row["idempotency_key"]
            first = first_by_key[key]
            original_id = inserted.get(key) or existing[key][0]
            same = batch[first].row["payload_hash"] == batch[pos].row["payload_hash"]
            (outcome.duplicates if same else outcome.conflicts)[pos] = original_id
        return outcome

    def _lookup(self, conn: Connection, keys: list[str]) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        for i in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[i : i + _LOOKUP_CHUNK]
            rows = conn.execute(
                select(events.c.idempotency_key, events.c.id, events.c.payload_hash).where(
                    events.c.idempotency_key.in_(chunk)
                )
            )
            found.update({key: (event_id, h) for key, event_id, h in rows})
        missing = set(keys) - set(found)
        if missing:  # ON CONFLICT skipped them, so they must exist: anything else is a bug
            raise StoreError(f"idempotency keys neither inserted nor found: {sorted(missing)[:3]}")
        return found

    def _insert_quarantine(
        self, conn: Connection, records: Iterable[QuarantineRecord], now: datetime
    ) -> None:
        conn.execute(
            quarantine.insert(),
            [
                {
                    "created_at": now,
                    "reason_code": r.reason_code,
                    "reason": r.reason,
                    "origin": r.origin,
                    "line_no": r.line_no,
                    "event_type": r.event_type,
                    "idempotency_key": r.idempotency_key,
                    "original_event_id": r.original_event_id,
                    "raw": r.raw,
                    "status": "open",
                }
                for r in records
            ],
        )

    def audit(
        self,
        *,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str | None,
        now: datetime,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Append one entry to the audit log (in ``conn``'s transaction when given)."""
        row = {
            "at": now,
            "actor": actor,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "from_state": from_state,
            "to_state": to_state,
            "reason": reason,
            "details": json.dumps(details, sort_keys=True, default=str) if details else None,
        }
        if conn is not None:
            conn.execute(audit_log.insert(), row)
            return
        with self.engine.begin() as own:
            own.execute(audit_log.insert(), row)

    # ------------------------------------------------------------------ reads

    def status(self, now: datetime) -> dict[str, Any]:
        """Events by type and delivery state, quarantine size, age of the oldest undelivered
        delivery that is due or overdue. Batch deliveries waiting for their class's run are
        their own state, ``scheduled``, not ``pending`` (``status_state``), as in `dr
        status`; they do not age the backlog. Nor do deliveries ``held`` for a person's
        review: they wait on the review queue, not on a target (`dr status`, the alerts)."""
        with self.engine.connect() as conn:
            by_type: Counter[str] = Counter(
                dict(
                    conn.execute(select(events.c.type, func.count()).group_by(events.c.type)).all()
                )
            )
            by_pattern_state = _counted_by_status_state(conn, now)
            by_state: Counter[str] = Counter()
            for states in by_pattern_state.values():
                by_state.update(states)
            oldest = conn.execute(
                select(func.min(events.c.received_at))
                .select_from(events.join(deliveries, deliveries.c.event_id == events.c.id))
                .where(
                    and_(
                        deliveries.c.state.in_(("pending", "parked", "in_flight")),
                        not_(scheduled_delivery(now)),
                    )
                )
            ).scalar()
            open_quarantine = conn.execute(
                select(func.count()).select_from(quarantine).where(quarantine.c.status == "open")
            ).scalar_one()
        oldest_dt = UTCDateTime().process_result_value(oldest, self.engine.dialect)
        return {
            "events": {
                "total": sum(by_type.values()),
                "by_type": dict(sorted(by_type.items())),
                "by_state": {s: by_state.get(s, 0) for s in STATUS_STATES}
                | {s: n for s, n in by_state.items() if s not in STATUS_STATES},
                "by_pattern": by_pattern_state,
                # The same as ``by_state["scheduled"]`` (kept for the readers of this key).
                "scheduled": by_state.get("scheduled", 0),
            },
            "quarantine": open_quarantine,
            # Of what is due or overdue: scheduled batch deliveries are not late.
            "oldest_pending_age_s": (
                round((now - oldest_dt).total_seconds(), 3) if oldest_dt is not None else None
            ),
        }

    def list_quarantine(
        self, *, limit: int = 100, status: str | None = "open"
    ) -> list[dict[str, Any]]:
        query = select(quarantine).order_by(quarantine.c.id).limit(limit)
        if status is not None:
            query = query.where(quarantine.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def _conflict_record(new: NewEvent, original_id: int) -> QuarantineRecord:
    row = new.row
    return QuarantineRecord(
        reason_code="idempotency_conflict",
        reason=(
            f"idempotency key {row['idempotency_key']!r} was already used by event "
            f"{original_id} with a different payload; the original is kept, this one needs review"
        ),
        raw=new.raw,
        origin=new.origin,
        line_no=new.line_no,
        event_type=row["type"],
        idempotency_key=row["idempotency_key"],
        original_event_id=original_id,
    )
