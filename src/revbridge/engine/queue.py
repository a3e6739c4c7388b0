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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select, text, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, CursorResult

from revbridge.core.events import SPECS, Direction, EventType
from revbridge.store.db import one_statement, reading
from revbridge.store.schema import (
    api_calls,
    audit_log,
    deliveries,
    events,
    external_refs,
    timestamp_param,
    utc_result,
)

_CLAIM_SQL = """
UPDATE deliveries
SET state = 'in_flight', lease_expires_at = :lease, worker_id = :worker,
    attempts = attempts + 1, updated_at = :now
WHERE event_id {among} (
    SELECT d.event_id FROM deliveries d
    WHERE d.target = :target AND d.pattern = :pattern AND d.state = 'pending'
      AND {due_at} <= :now
      AND (
          d.customer_ref IS NULL
          OR d.event_id <= (
              SELECT min(p.event_id) FROM deliveries p
              WHERE p.target = :target AND p.pattern = :pattern
                AND p.customer_ref = d.customer_ref
                AND p.state IN ('pending', 'in_flight')
          )
      )
    ORDER BY d.event_id
    LIMIT :limit {lock}
){end}
RETURNING event_id, attempts
"""
# How a claim's ``UPDATE`` takes the ids its sub-query picked (``{among} (…){end}``): on
# PostgreSQL as one array, picked once (``claim_sql``); the batch claim shares it.
PICK_ONCE = {
    "postgresql": {"among": "= ANY(ARRAY", "end": ")"},
    "sqlite": {"among": "IN", "end": ""},
}
_CLAIM_PG_SQL = _CLAIM_SQL.format(
    due_at="d.due_at", lock="FOR UPDATE SKIP LOCKED", **PICK_ONCE["postgresql"]
)
_CLAIM_SQLITE_SQL = _CLAIM_SQL.format(due_at="+d.due_at", lock="", **PICK_ONCE["sqlite"])


def claim_sql(dialect: str) -> str:
    """The claim statement: lease the due head-of-line deliveries of a target and pattern.

    It walks the pending deliveries in event order and stops at its limit, running the
    head-of-line sub-query only for the rows it walks.

    SQLite's planner would rather range-scan ``(state, due_at)``, which reads and sorts the
    whole due backlog each round (quadratic over a drain); ``+due_at`` takes that index out of
    its choice (docs/decisions/0015).

    PostgreSQL plans with autovacuum's statistics, and two forms keep its plan on that walk
    (docs/decisions/0018):

    * ``d.event_id <= (head of its line)``, not ``=``: the same rows (a pending delivery is in
      its own line, so the head is never after it), but the planner's guess for ``=`` against a
      sub-query (0.5 % of rows) made it expect to walk the whole backlog for 200 heads, so it
      scanned and sorted all of it instead: 90 ms a claim at 20,000 pending, from 4 ms;
    * ``= ANY(ARRAY(…))``: the picked ids become one array, picked once, and the update finds
      each row by its key, instead of a hash join over a scan of the whole table. (An ``IN``
      over a ``LIMIT … SKIP LOCKED`` sub-query may also be run again per row of a nested loop,
      each run locking other rows: a claim of more than its limit.)
    """
    return _CLAIM_PG_SQL if dialect == "postgresql" else _CLAIM_SQLITE_SQL


_EVENT_COLUMNS = (
    "e.id, e.type, e.idempotency_key, e.subject_ref, e.customer_ref, e.received_at, e.payload"
)
_CLAIM_SQLITE = text(_CLAIM_SQLITE_SQL)
_CLAIM_WITH_EVENTS_PG = text(
    f"WITH c AS ({_CLAIM_PG_SQL}) SELECT {_EVENT_COLUMNS}, c.attempts "
    "FROM c JOIN events e ON e.id = c.event_id ORDER BY e.id"
)
_EVENTS_BY_ID = {
    "sqlite": text(
        f"SELECT {_EVENT_COLUMNS} FROM events e "
        "WHERE e.id IN (SELECT value FROM json_each(:ids)) ORDER BY e.id"
    ),
    "postgresql": text(
        f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.id = ANY(CAST(:ids AS bigint[])) "
        "ORDER BY e.id"
    ),
}


@dataclass(slots=True)
class Claimed:
    """A leased delivery and its event, as one round holds it (not frozen: a frozen
    dataclass's ``__init__`` costs eight times as much, once per delivery)."""

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
    # Past this, the lease has less than half its length left: the worker renews it before
    # a call, or does not call (``Worker._lease_holds``).
    renew_at: datetime | None = None


def _claimed(
    r: Any, attempt: int, now: datetime, pattern: str, renew_at: datetime | None
) -> Claimed:
    event_id, type_, key, subject_ref, customer_ref, received_at, payload = r[:7]  # _EVENT_COLUMNS
    return Claimed(
        event_id,
        attempt,
        type_,
        key,
        subject_ref,
        customer_ref,
        utc_result(received_at),
        payload,
        attempt > 1,  # outcome unknown: an earlier attempt may have reached the target
        pattern,
        now,
        renew_at,
    )


@dataclass(slots=True)
class Outcomes:
    """What became of a round of claimed deliveries, written together by ``record``."""

    worker_id: str
    delivered: list[tuple[Claimed, str, str]] = field(default_factory=list)  # (c, target, ext id)
    retries: list[tuple[Claimed, datetime, str]] = field(default_factory=list)  # (c, due, error)
    dead: list[tuple[Claimed, str, str]] = field(default_factory=list)  # (c, error, actor)
    parked: list[tuple[Claimed, str, str]] = field(default_factory=list)  # (c, target, waits for)
    held: list[tuple[Claimed, str, str]] = field(default_factory=list)  # (c, waits for, why)
    released: list[Claimed] = field(default_factory=list)  # not attempted: no call was made
    # Called, then put back without counting the attempt (a failed probe of an open circuit):
    # the call may have reached the system, so the next attempt looks the record up first.
    probed: list[Claimed] = field(default_factory=list)
    # An older version of a record a newer one of which is already delivered: done, not
    # sent (``DeliveryQueue.superseded``). (c, target, the newer one's external id, why)
    superseded: list[tuple[Claimed, str, str | None, str]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (
            self.delivered
            or self.retries
            or self.dead
            or self.parked
            or self.held
            or self.released
            or self.probed
            or self.superseded
        )

    def merge(self, other: Outcomes) -> None:
        """Add ``other``'s outcomes to these (written together)."""
        self.delivered += other.delivered
        self.retries += other.retries
        self.dead += other.dead
        self.parked += other.parked
        self.held += other.held
        self.released += other.released
        self.probed += other.probed
        self.superseded += other.superseded


def _attempt(
    c: Claimed, now: Any, outcome: str, error: str | None, external_ref: str | None
) -> tuple[Any, ...]:
    """An ``attempts`` row for ``_ADD_ATTEMPTS``: its start is the claim's time."""
    return (c.event_id, c.attempt, c.claimed_at or now, outcome, error, external_ref)


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


def _json_rows(dialect: str, columns: Sequence[tuple[str, str]]) -> str:
    """A ``SELECT`` of one row per element of the JSON array parameter ``:rows``, with
    ``columns`` (name, PostgreSQL type) picked from each element by position."""
    if dialect == "postgresql":
        picks = ", ".join(
            f"CAST(j.value->>{i} AS {pg_type}) AS {name}"
            for i, (name, pg_type) in enumerate(columns)
        )
        return f"SELECT {picks} FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS j"
    picks = ", ".join(
        f"json_extract(j.value, '$[{i}]') AS {name}" for i, (name, _) in enumerate(columns)
    )
    return f"SELECT {picks} FROM json_each(:rows) AS j"


def _json_default(value: object) -> str:
    """Timestamps in a PostgreSQL row (SQLite's are text already), as ISO 8601 with offset."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no JSON form for a row parameter")


# How the delivered mark finds a round's deliveries: by key, whatever the planner knows of the
# table (docs/decisions/0018). ``state || ''`` takes the state column out of the index choice
# on both databases; else a planner that believes few rows are in flight walks the state index
# and matches each row found against every row of the round (9.7 ms for 200 rows, from 1.4).
# PostgreSQL without statistics would then scan the whole table instead, so it also gets the
# round's ids as one array, which only the primary key can serve.
_BY_KEY_PG = " AND deliveries.event_id = ANY(ARRAY(SELECT r.id FROM r))"


class _PerRow:
    """One SQL statement over all the rows of a round's outcomes, from one parameter, so that
    each write of a round is one statement whatever its size (a statement per row costs a plan
    and an executor start each, and their Python overhead).

    The parameter is one JSON array of rows on both databases (``_json_rows``): each row is
    parsed once, and the text is built in C (array parameters for ``unnest`` cost psycopg
    about 4 µs an element to adapt, in Python). In ``template``, ``{rows}`` is the ``FROM``
    item ``r`` of those rows: a sub-query on SQLite, the materialized ``WITH`` query ``r`` on
    PostgreSQL (which ``{by_key}`` may read again).
    """

    def __init__(self, template: str, columns: Sequence[tuple[str, str]]) -> None:
        self.template = template
        sqlite = template.format(rows=f"({_json_rows('sqlite', columns)}) AS r", by_key="")
        postgresql = f"WITH r AS MATERIALIZED ({_json_rows('postgresql', columns)}) " + self.over(
            "r"
        )
        self._sql = {"sqlite": text(sqlite), "postgresql": text(postgresql)}

    def run(
        self, conn: Connection, rows: Sequence[Sequence[Any]], **common: Any
    ) -> CursorResult[Any]:
        """``rows`` hold the values of ``columns`` in order (timestamps already in their
        stored form, ``timestamp_param``); ``common`` holds the shared parameters."""
        rows_json = json.dumps(rows, default=_json_default)
        return conn.execute(self._sql[conn.dialect.name], {"rows": rows_json} | common)

    def over(self, rows: str) -> str:
        """This write's PostgreSQL text over the ``FROM`` item ``rows``, in a statement whose
        ``WITH`` query ``r`` holds the round's rows."""
        return self.template.format(rows=rows, by_key=_BY_KEY_PG)


# The event types whose delivered record is remembered in ``external_refs``: records in the
# ERP, which later deliveries depend on (an invoice's customer, a payment's invoices) or must
# never create again (a posted document). A write-back to Salesforce is an upsert by external
# id that nothing depends on: its target id stays on its delivery (``external_ref``) and its
# attempt, and remembering it too would only cost each one an insert, an index entry and a
# foreign-key check (about a third of a round's write on PostgreSQL; docs/decisions/0019).
# Upserts of a record's latest state (the customer, its credit position): a version older
# than one already delivered must not overwrite it, whether it arrived late or was replayed.
LATEST_WINS = frozenset(
    {EventType.CUSTOMER_UPSERTED.value, EventType.CUSTOMER_CREDIT_STATUS_CHANGED.value}
)
REMEMBERED_TYPES = frozenset(
    t.value for t, spec in SPECS.items() if spec.direction is Direction.TO_ERP
)

# Only the lease holder completes: a worker whose lease was taken over loses the race
# harmlessly (the record it made is remembered all the same, in ``external_refs``).
_MARK_DELIVERED = _PerRow(
    "UPDATE deliveries SET state = 'delivered', external_ref = r.ext, delivered_at = :now, "
    "updated_at = :now, lease_expires_at = NULL, last_error = NULL FROM {rows} "
    "WHERE deliveries.event_id = r.id{by_key} AND deliveries.state || '' = 'in_flight' "
    "AND deliveries.worker_id = :worker",
    (("id", "bigint"), ("ext", "text")),
)
_REMEMBER_REFS = _PerRow(
    "INSERT INTO external_refs (target, subject_ref, external_id, event_id, created_at) "
    "SELECT r.target, r.subject, r.ext, r.id, :now FROM {rows} "
    "WHERE r.subject IS NOT NULL ON CONFLICT (target, subject_ref) DO NOTHING",
    (("target", "text"), ("subject", "text"), ("ext", "text"), ("id", "bigint")),
)
_ADD_ATTEMPTS = _PerRow(
    "INSERT INTO attempts "
    "(event_id, attempt_no, worker_id, started_at, finished_at, outcome, error, external_ref) "
    "SELECT r.id, r.no, :worker, r.started, :now, r.outcome, r.error, r.ext FROM {rows}",
    (
        ("id", "bigint"),
        ("no", "integer"),
        ("started", "timestamptz"),
        ("outcome", "text"),
        ("error", "text"),
        ("ext", "text"),
    ),
)
# A delivered record lets go of what was parked on it; a parked delivery is let go at once
# when its record landed between the round's look-up and its park.
_RELEASE_PARKED = _PerRow(
    "UPDATE deliveries SET state = 'pending', parked_on = NULL, due_at = :now, updated_at = :now "
    "FROM {rows} WHERE deliveries.state = 'parked' AND deliveries.target = r.target "
    "AND deliveries.parked_on = r.subject",
    (("target", "text"), ("subject", "text")),
)
_RELEASE_LANDED = _PerRow(
    "UPDATE deliveries SET state = 'pending', parked_on = NULL, due_at = :now, updated_at = :now "
    "FROM {rows} WHERE deliveries.state = 'parked' AND deliveries.target = r.target "
    "AND deliveries.parked_on = r.subject AND EXISTS (SELECT 1 FROM external_refs x "
    "WHERE x.target = r.target AND x.subject_ref = r.subject)",
    (("target", "text"), ("subject", "text")),
)


# PostgreSQL: a round whose outcomes are all deliveries (the usual round) is written by one
# statement, in autocommit: one round trip instead of BEGIN, four statements and COMMIT.
# Its parts touch different rows (in-flight deliveries, new references and attempts, and
# deliveries parked before it), so they need not see each other's changes. A row's subject is
# null when its record is not remembered (``REMEMBERED_TYPES``): no reference, nothing to
# let go.
_DELIVERED_ROWS = (
    ("id", "bigint"),
    ("no", "integer"),
    ("started", "timestamptz"),
    ("target", "text"),
    ("subject", "text"),
    ("ext", "text"),
    ("outcome", "text"),
    ("error", "text"),
)
_DELIVERED_PG = text(
    f"WITH r AS MATERIALIZED ({_json_rows('postgresql', _DELIVERED_ROWS)}), "
    f"marked AS ({_MARK_DELIVERED.over('r')} RETURNING 1), "
    f"remembered AS ({_REMEMBER_REFS.over('r')} RETURNING 1), "
    f"tried AS ({_ADD_ATTEMPTS.over('r')} RETURNING 1) "
    + _RELEASE_PARKED.over(
        "(SELECT DISTINCT target, subject FROM r WHERE subject IS NOT NULL) AS r"
    )
)


_OK = ("delivered", None)  # an attempt's outcome and error
# The lease holder's writes only: still in flight, and leased by the worker writing.
_HOLDER = " AND state = 'in_flight' AND worker_id = :worker"


def _subject(c: Claimed) -> str | None:
    """The subject a delivered record is remembered by, if it is remembered."""
    return c.subject_ref if c.type in REMEMBERED_TYPES else None


def _only_delivered(out: Outcomes) -> bool:
    return bool(out.delivered) and not (
        out.retries
        or out.dead
        or out.parked
        or out.held
        or out.released
        or out.probed
        or out.superseded
    )


def _audit(
    conn: Connection,
    now: datetime,
    action: str,
    to_state: str,
    rows: list[tuple[Claimed, str, str]],
) -> None:
    """Audit what became of in-flight deliveries: (delivery, why, who) each."""
    if rows:
        conn.execute(
            audit_log.insert(),
            [
                {
                    "at": now,
                    "actor": actor,
                    "action": action,
                    "entity_type": "event",
                    "entity_id": str(c.event_id),
                    "from_state": "in_flight",
                    "to_state": to_state,
                    "reason": why,
                }
                for c, why, actor in rows
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
        outcomes: Outcomes | None = None,
    ) -> list[Claimed]:
        """Lease the due head-of-line deliveries of ``target`` and ``pattern``, after writing
        ``outcomes`` (the last round's) in the same transaction: one commit per round, and
        what those outcomes let go (a customer's next event, a parked delivery) is claimable
        in this very claim."""
        if self.engine.dialect.name == "postgresql" and (outcomes is None or outcomes.empty()):
            # The claim and its events are one statement, atomic by itself: in autocommit it
            # is one round trip instead of BEGIN, the statement and COMMIT.
            with one_statement(self.engine) as conn:
                return self._claim(conn, target, worker_id, now, now + lease, limit, pattern)
        with self.engine.begin() as conn:
            if outcomes is not None and not outcomes.empty():
                self._record(conn, outcomes, now)
            return self._claim(conn, target, worker_id, now, now + lease, limit, pattern)

    def _claim(
        self,
        conn: Connection,
        target: str,
        worker_id: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        pattern: str,
    ) -> list[Claimed]:
        params = {
            "lease": _ts(conn, lease_until),
            "worker": worker_id,
            "now": _ts(conn, now),
            "target": target,
            "pattern": pattern,
            "limit": limit,
        }
        renew_at = now + (lease_until - now) / 2
        if conn.dialect.name == "postgresql":
            # One statement: the claim, joined to its events.
            rows = conn.execute(_CLAIM_WITH_EVENTS_PG, params).all()
            return [_claimed(r, r.attempts, now, pattern, renew_at) for r in rows]
        attempt_of: dict[int, int] = dict(conn.execute(_CLAIM_SQLITE, params).all())
        if not attempt_of:
            return []
        # Read in the claim's transaction: one connection and one commit per round.
        return self._claimed_rows(conn, attempt_of, now, pattern, renew_at)

    def claimed_rows(
        self,
        attempt_of: dict[int, int],
        worker_id: str,
        now: datetime,
        pattern: str = "realtime",
        *,
        lease_until: datetime | None = None,
    ) -> list[Claimed]:
        """Load the claimed deliveries' events (the attempt row is written with the outcome)."""
        renew_at = None if lease_until is None else now + (lease_until - now) / 2
        with reading(self.engine) as conn:
            return self._claimed_rows(conn, attempt_of, now, pattern, renew_at)

    def _claimed_rows(
        self,
        conn: Connection,
        attempt_of: dict[int, int],
        now: datetime,
        pattern: str,
        renew_at: datetime | None,
    ) -> list[Claimed]:
        dialect, ids = conn.dialect.name, sorted(attempt_of)
        found = conn.execute(
            _EVENTS_BY_ID[dialect], {"ids": json.dumps(ids) if dialect == "sqlite" else ids}
        ).all()
        return [_claimed(r, attempt_of[r.id], now, pattern, renew_at) for r in found]

    def renew_leases(
        self, event_ids: Sequence[int], worker_id: str, *, now: datetime, until: datetime
    ) -> set[int]:
        """Extend this worker's unexpired leases on ``event_ids`` to ``until``; returns the
        ids renewed. A lease that expired is not renewed, whether or not another worker took
        the delivery over meanwhile: its holder must not call for it any more."""
        if not event_ids:
            return set()
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.event_id.in_(list(event_ids)),
                        deliveries.c.state == "in_flight",
                        deliveries.c.worker_id == worker_id,
                        deliveries.c.lease_expires_at > now,
                    )
                )
                .values(lease_expires_at=until, updated_at=now)
                .returning(deliveries.c.event_id)
            ).all()
        return {r.event_id for r in rows}

    # ------------------------------------------------------------------ outcomes

    def record(self, out: Outcomes, *, now: datetime) -> int:
        """Write a round's outcomes atomically; returns parked deliveries released.

        One transaction per claimed batch, not per delivery: on PostgreSQL each commit waits
        for the WAL flush, and that, not the target, would bound throughput. On PostgreSQL a
        round of deliveries only is one statement in autocommit (``_DELIVERED_PG``).
        """
        if out.empty():
            return 0
        if self.engine.dialect.name == "postgresql" and _only_delivered(out):
            rows = [
                (c.event_id, c.attempt, c.claimed_at or now, target, _subject(c), ext, *_OK)
                for c, target, ext in out.delivered
            ]
            params = {"rows": json.dumps(rows, default=_json_default), "now": now}
            with one_statement(self.engine) as conn:
                return conn.execute(_DELIVERED_PG, params | {"worker": out.worker_id}).rowcount
        with self.engine.begin() as conn:
            return self._record(conn, out, now)

    def _record(self, conn: Connection, out: Outcomes, now: datetime) -> int:
        ts = _memo_ts(conn)
        released = 0
        attempt_rows: list[tuple[Any, ...]] = []
        # Every write below is the lease holder's only (``_HOLDER``): a worker whose lease
        # expired and was taken over must not overwrite what the new holder did.
        worker = out.worker_id
        if out.released or out.probed:
            # Not attempted: the attempt is not counted. Probed: counted down as well, but
            # never below 1, so that the next claim is attempt 2 or later and looks the
            # record up before it creates anything.
            conn.execute(
                text(
                    "UPDATE deliveries SET state = 'pending', attempts = CASE "
                    "WHEN :probed = 1 AND attempts <= 1 THEN 1 ELSE attempts - 1 END, "
                    "lease_expires_at = NULL, updated_at = :now WHERE event_id = :id" + _HOLDER
                ),
                [
                    {"now": ts(now), "id": c.event_id, "probed": probed, "worker": worker}
                    for cs, probed in ((out.released, 0), (out.probed, 1))
                    for c in cs
                ],
            )
        if out.parked or out.held:
            # Waiting for another record (parked) or for a person (held: a review item, which
            # puts it back in line when decided, ``services.mdm``): not a retry, the attempt
            # is not counted.
            park = text(
                "UPDATE deliveries SET state = :state, parked_on = :on, "
                "attempts = attempts - 1, lease_expires_at = NULL, updated_at = :now, "
                "last_error = :why WHERE event_id = :id" + _HOLDER
            )
            if out.parked:
                conn.execute(
                    park,
                    [
                        {
                            "state": "parked",
                            "on": on,
                            "now": ts(now),
                            "why": f"waiting for {on}",
                            "id": c.event_id,
                            "worker": worker,
                        }
                        for c, _, on in out.parked
                    ],
                )
            # Held is audited: only what this worker still held (a row each; held is rare).
            held = [
                (c, why)
                for c, on, why in out.held
                if conn.execute(
                    park,
                    {
                        "state": "held",
                        "on": on,
                        "now": ts(now),
                        "why": why,
                        "id": c.event_id,
                        "worker": worker,
                    },
                ).rowcount
            ]
            _audit(conn, now, "held", "held", [(c, why, worker) for c, why in held])
        if out.retries:
            conn.execute(
                text(
                    "UPDATE deliveries SET state = 'pending', due_at = :due, last_error = :err, "
                    "lease_expires_at = NULL, updated_at = :now WHERE event_id = :id" + _HOLDER
                ),
                [
                    {"due": ts(due), "err": err, "now": ts(now), "id": c.event_id, "worker": worker}
                    for c, due, err in out.retries
                ],
            )
            attempt_rows += [
                _attempt(c, now, "transient_error", err, None) for c, _, err in out.retries
            ]
        if out.dead:
            bury = text(
                "UPDATE deliveries SET state = 'dead_letter', last_error = :err, "
                "lease_expires_at = NULL, updated_at = :now WHERE event_id = :id" + _HOLDER
            )
            attempt_rows += [_attempt(c, now, "dead_letter", err, None) for c, err, _ in out.dead]
            # Audited: only what this worker still held (a row each; dead letters are rare).
            dead = [
                (c, err, actor)
                for c, err, actor in out.dead
                if conn.execute(
                    bury, {"err": err, "now": ts(now), "id": c.event_id, "worker": worker}
                ).rowcount
            ]
            _audit(conn, now, "dead_letter", "dead_letter", dead)
        if out.superseded:
            done = text(
                "UPDATE deliveries SET state = 'delivered', external_ref = :ext, "
                "delivered_at = :now, updated_at = :now, lease_expires_at = NULL, "
                "last_error = NULL WHERE event_id = :id" + _HOLDER
            )
            attempt_rows += [
                _attempt(c, now, "superseded", why, ext) for c, _, ext, why in out.superseded
            ]
            applied = [
                (c, why)
                for c, _, ext, why in out.superseded
                if conn.execute(
                    done, {"ext": ext, "now": ts(now), "id": c.event_id, "worker": worker}
                ).rowcount
            ]
            _audit(conn, now, "superseded", "delivered", [(c, why, worker) for c, why in applied])
        remembered = [
            (target, subject, ext, c.event_id)
            for c, target, ext in out.delivered
            if (subject := _subject(c)) is not None
        ]
        if out.delivered:
            _MARK_DELIVERED.run(
                conn,
                [(c.event_id, ext) for c, _, ext in out.delivered],
                now=ts(now),
                worker=out.worker_id,
            )
            if remembered:
                _REMEMBER_REFS.run(conn, remembered, now=ts(now))
            attempt_rows += [
                _attempt(c, now, "delivered", None, ext) for c, _, ext in out.delivered
            ]
        if attempt_rows:
            _ADD_ATTEMPTS.run(
                conn,
                [(i, no, ts(started), *rest) for i, no, started, *rest in attempt_rows],
                now=ts(now),
                worker=out.worker_id,
            )
        # Release what waited for records that are now in the target: delivered in this round
        # (the record is there, whoever remembered it first), or by another worker between
        # this round's look-up and its park.
        landed = {(target, subject) for target, subject, _, _ in remembered}
        if landed:
            released += _RELEASE_PARKED.run(conn, sorted(landed), now=ts(now)).rowcount
        if out.parked:
            waits = {(target, on) for _, target, on in out.parked}
            released += _RELEASE_LANDED.run(conn, sorted(waits), now=ts(now)).rowcount
        return released

    def hurry_retries(self, *, target: str, now: datetime) -> int:
        """Make ``target``'s pending real-time deliveries that wait out a retry backoff due
        now (an operator's ``dr drain``); attempts unchanged. Batch-class deliveries keep
        their schedule: their due time is their window, not a backoff."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    update(deliveries)
                    .where(
                        and_(
                            deliveries.c.target == target,
                            deliveries.c.pattern == "realtime",
                            deliveries.c.state == "pending",
                            deliveries.c.due_at > now,
                        )
                    )
                    .values(due_at=now, updated_at=now)
                ).rowcount
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

    def superseded(
        self, claimed: Sequence[Claimed], target: str
    ) -> dict[int, tuple[int, str | None]]:
        """The claimed deliveries of a record's latest state (``LATEST_WINS``) that a newer
        version of the same record, already delivered to ``target``, supersedes: by event
        id, (the newer event's id, its external id). Newer is by when the change happened in
        its source (``occurred_at``), whatever order the events arrived or were replayed in."""
        ids = [c.event_id for c in claimed if c.type in LATEST_WINS]
        if not ids:
            return {}
        mine, newer = events.alias("mine"), events.alias("newer")
        query = (
            select(mine.c.id, newer.c.id.label("newer_id"), deliveries.c.external_ref)
            .select_from(mine)
            .join(
                newer,
                and_(
                    newer.c.subject_ref == mine.c.subject_ref,
                    newer.c.type == mine.c.type,
                    newer.c.occurred_at > mine.c.occurred_at,
                ),
            )
            .join(
                deliveries,
                and_(
                    deliveries.c.event_id == newer.c.id,
                    deliveries.c.target == target,
                    deliveries.c.state == "delivered",
                ),
            )
            .where(mine.c.id.in_(ids))
            .order_by(mine.c.id, newer.c.occurred_at)
        )
        with reading(self.engine) as conn:
            return {r.id: (r.newer_id, r.external_ref) for r in conn.execute(query)}

    def resolve(self, target: str, subject_refs: Sequence[str]) -> dict[str, str]:
        """The external ids of records already in ``target``, by subject ref."""
        if not subject_refs:
            return {}
        with reading(self.engine) as conn:
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
