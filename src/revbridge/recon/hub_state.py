"""The hub's own state beside each finding: a timing difference or a real break?

An invoice (a payment, a revenue entry) missing in the ERP may simply not be delivered yet
(``pending``, ``in_flight``, ``held`` by its target's retry-after), be waiting for its batch
class's window (``scheduled``: a month-end revenue entry before the 1st), be waiting on
something (``parked``), have failed for good (``dead_letter``), have been rejected at the
door (``quarantined``) or never have reached the hub (``never captured``). The ledger knows
which. One query reads the ledger rows of the
findings' subjects (events with their deliveries, and the open quarantine); DuckDB joins them
to the findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
from sqlalchemy import String, case, literal, null, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.sql import func

from revbridge.recon.match import Finding, FindingKind
from revbridge.store.ledger import scheduled_delivery
from revbridge.store.schema import deliveries, events, quarantine

NEVER_CAPTURED = "never captured"
QUARANTINED = "quarantined"
# A finding on no single record (a control total per period and account).
NOT_A_RECORD = "not a record"
# A batch-class delivery waiting for its class's next window (pending, never tried, due
# later), as `dr status` counts it: on time by policy, not late.
SCHEDULED = "scheduled"
# A control total that the entries still on their way to the ERP (not all of them waiting
# for a batch window) explain to the cent.
ON_ITS_WAY = "in transit"
# Still on its way to the ERP: a variance now is a matter of time, not a break. Not
# ``dead_letter`` (the hub gave up: a real break), nor ``delivered``.
IN_TRANSIT = frozenset({"pending", "in_flight", "parked", "held", SCHEDULED, ON_ITS_WAY})
# The findings an undelivered document explains: its absence, or an older version's values.
# A duplicate, or a document missing in Salesforce, is never explained by the hub's queue.
_EXPLAINED_BY_DELIVERY = frozenset(FindingKind) - {
    FindingKind.DUPLICATE_IN_ERP,
    FindingKind.DUPLICATE_IN_SOURCE,
    FindingKind.MISSING_IN_SOURCE,
}
# The event type of each subject prefix; quarantined lines are recognised by these data ids.
SUBJECT_EVENT_TYPES = {
    "invoice": "invoice.posted",
    "credit_memo": "credit_memo.issued",
    "payment": "payment.received",
    "erp_payment": "erp.payment.received",
    "revenue": "revenue.recognized",
}
# Beyond this many refs, reading all AR events costs less than a long IN list (and SQLite
# allows 32766 parameters in all).
_MAX_IN_LIST = 5_000


@dataclass(frozen=True, slots=True, kw_only=True)
class HubState:
    """Where the hub stands with one document.

    ``state`` is the delivery state of the document's latest event (``pending``, ``parked``,
    ``in_flight``, ``delivered``, ``dead_letter``; ``scheduled`` for a batch-class delivery
    waiting for its class's window; ``never delivered`` for an event without a delivery row),
    else ``quarantined`` or ``never captured``; ``scheduled`` for a control total that the
    scheduled entries of its account explain to the cent.
    """

    state: str
    subject_ref: str | None = None
    event_id: int | None = None
    attempts: int = 0
    last_error: str | None = None

    @property
    def in_transit(self) -> bool:
        return self.state in IN_TRANSIT


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingWithHubState:
    finding: Finding
    hub: HubState

    @property
    def timing_difference(self) -> bool:
        """The ERP has not had the document yet: the hub is still delivering it."""
        return self.hub.in_transit

    @property
    def on_its_way(self) -> bool:
        """The hub is still delivering the document (any in-transit state, ``scheduled``
        included) and its delivery explains the finding: in transit, not a case, unless a
        later run still finds it so (``cases.plan_cases``)."""
        return self.hub.in_transit and (self.finding.kind in _EXPLAINED_BY_DELIVERY)

    @property
    def awaits_batch(self) -> bool:
        """In transit by policy: the document's delivery waits for its batch class's window,
        which has not come (a revenue entry before the month-end batch). Not a variance, so
        not a case: reported as in transit, gone once the batch posts it."""
        return self.hub.state == SCHEDULED and (self.finding.kind in _EXPLAINED_BY_DELIVERY)


def attach_hub_state(
    findings: Sequence[Finding], engine: Engine, *, now: datetime | None = None
) -> tuple[FindingWithHubState, ...]:
    """Each finding with the hub's state of its document, in the order given.

    The latest event among the finding's subjects (``invoice:<ref>`` or
    ``credit_memo:<ref>`` for AR; ``payment:`` / ``erp_payment:`` for payments; ``revenue:``
    for revenue entries) decides: its delivery state, attempts and last error. Without an
    event, an open quarantine row of those event types with that source id means
    ``quarantined``, else ``never captured``; a finding on no record (a control total) is
    ``not a record``. A batch-class delivery not tried yet and due after ``now`` (default:
    the current time) is ``scheduled``.
    """
    if not findings:
        return ()
    subjects = sorted({s for f in findings for s in f.subject_refs})
    types = sorted(
        {SUBJECT_EVENT_TYPES[p] for f in findings for p in f.subject_prefixes}
        & set(SUBJECT_EVENT_TYPES.values())
    )
    at = now or datetime.now(UTC)
    rows = _read_ledger(engine, subjects, types, at) if subjects else []
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE f AS SELECT unnest($pos) AS pos, unnest($ref) AS ref, "
            "unnest($subjects::VARCHAR[][]) AS subjects",
            {
                "pos": list(range(len(findings))),
                "ref": [f.ref for f in findings],
                "subjects": [list(f.subject_refs) for f in findings],
            },
        )
        columns: list[list[Any]] = (
            [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(7)]
        )
        con.execute(
            "CREATE TABLE l AS SELECT unnest($kind::VARCHAR[]) AS kind, "
            "unnest($id::BIGINT[]) AS event_id, unnest($subject::VARCHAR[]) AS subject, "
            "unnest($state::VARCHAR[]) AS state, unnest($attempts::INTEGER[]) AS attempts, "
            "unnest($error::VARCHAR[]) AS last_error, unnest($raw::VARCHAR[]) AS raw",
            dict(
                zip(
                    ("kind", "id", "subject", "state", "attempts", "error", "raw"),
                    columns,
                    strict=True,
                )
            ),
        )
        joined = con.execute(_JOIN_SQL).fetchall()
    finally:
        con.close()
    by_pos: dict[int, HubState] = {
        pos: HubState(
            state=state,
            subject_ref=subject,
            event_id=event_id,
            attempts=attempts or 0,
            last_error=last_error,
        )
        for pos, state, subject, event_id, attempts, last_error in joined
    }
    return tuple(FindingWithHubState(finding=f, hub=by_pos[i]) for i, f in enumerate(findings))


def _read_ledger(
    engine: Engine, subjects: list[str], types: list[str], now: datetime
) -> list[tuple[Any, ...]]:
    """One query: the subjects' events with their deliveries, and the open quarantine."""
    event_rows = select(
        literal("event", String).label("kind"),
        events.c.id,
        events.c.subject_ref,
        case((scheduled_delivery(now), literal(SCHEDULED)), else_=deliveries.c.state),
        deliveries.c.attempts,
        deliveries.c.last_error,
        null().label("raw"),
    ).select_from(events.outerjoin(deliveries, deliveries.c.event_id == events.c.id))
    if len(subjects) <= _MAX_IN_LIST:
        event_rows = event_rows.where(events.c.subject_ref.in_(subjects))
    else:
        event_rows = event_rows.where(events.c.type.in_(types))
    quarantined = select(
        literal("quarantine", String),
        quarantine.c.id,
        null(),
        null(),
        literal(0),
        quarantine.c.reason,
        quarantine.c.raw,
    ).where(
        quarantine.c.status == "open",
        func.coalesce(quarantine.c.event_type, types[0]).in_(types),
    )
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(union_all(event_rows, quarantined))]


# The latest event of a subject wins; a quarantined line is recognised by its source id (or
# the document id in its data), read from the raw line where it parses as JSON.
_JOIN_SQL = """
WITH fs AS (SELECT pos, unnest(subjects) AS subject FROM f),
ev AS (
  SELECT fs.pos, l.subject, l.event_id, l.state, l.attempts, l.last_error
  FROM fs JOIN l ON l.kind = 'event' AND l.subject = fs.subject
  QUALIFY row_number() OVER (PARTITION BY fs.pos ORDER BY l.event_id DESC) = 1
),
q AS (
  SELECT ref, max(last_error) AS last_error FROM (
    SELECT unnest([TRY(json_extract_string(raw, '$.source_id')),
                   TRY(json_extract_string(raw, '$.data.invoice_id')),
                   TRY(json_extract_string(raw, '$.data.credit_memo_id')),
                   TRY(json_extract_string(raw, '$.data.payment_id')),
                   TRY(json_extract_string(raw, '$.data.erp_payment_id')),
                   TRY(json_extract_string(raw, '$.data.schedule_entry_id'))]) AS ref,
           last_error
    FROM l WHERE kind = 'quarantine'
  ) WHERE ref IS NOT NULL GROUP BY ref
)
SELECT f.pos,
  CASE WHEN len(f.subjects) = 0 THEN 'not a record'
       WHEN ev.pos IS NOT NULL THEN coalesce(ev.state, 'never delivered')
       WHEN q.ref IS NOT NULL THEN 'quarantined' ELSE 'never captured' END,
  ev.subject, ev.event_id, ev.attempts, coalesce(ev.last_error, q.last_error)
FROM f LEFT JOIN ev ON ev.pos = f.pos
LEFT JOIN q ON q.ref = f.ref AND len(f.subjects) > 0
"""
