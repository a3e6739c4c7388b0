"""The hub's own state beside each finding: a timing difference or a real break?

An invoice missing in the ERP may simply not be delivered yet (``pending``, ``in_flight``), be
waiting on something (``parked``), have failed for good (``dead_letter``), have been rejected
at the door (``quarantined``) or never have reached the hub (``never captured``). The ledger
knows which. One query reads the ledger rows of the findings' subjects (events with their
deliveries, and the open quarantine); DuckDB joins them to the findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
from sqlalchemy import String, literal, null, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.sql import func

from revbridge.recon.match import Finding
from revbridge.store.schema import deliveries, events, quarantine

NEVER_CAPTURED = "never captured"
QUARANTINED = "quarantined"
# Still on its way to the ERP: a variance now is a matter of time, not a break.
IN_TRANSIT = frozenset({"pending", "in_flight", "parked"})
_AR_EVENT_TYPES = ("invoice.posted", "credit_memo.issued")
# Beyond this many refs, reading all AR events costs less than a long IN list (and SQLite
# allows 32766 parameters in all).
_MAX_IN_LIST = 5_000


@dataclass(frozen=True, slots=True, kw_only=True)
class HubState:
    """Where the hub stands with one document.

    ``state`` is the delivery state of the document's latest event (``pending``, ``parked``,
    ``in_flight``, ``delivered``, ``dead_letter``; ``never delivered`` for an event without a
    delivery row), else ``quarantined`` or ``never captured``.
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


def attach_hub_state(
    findings: Sequence[Finding], engine: Engine
) -> tuple[FindingWithHubState, ...]:
    """Each finding with the hub's state of its document, in the order given.

    The latest event of the subject ``invoice:<ref>`` or ``credit_memo:<ref>`` decides (its
    delivery state, attempts and last error); without an event, an open quarantine row of an
    invoice or credit memo with that source id means ``quarantined``, else ``never captured``.
    """
    if not findings:
        return ()
    refs = sorted({f.ref for f in findings})
    rows = _read_ledger(engine, refs)
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE f AS SELECT unnest($pos) AS pos, unnest($ref) AS ref",
            {"pos": list(range(len(findings))), "ref": [f.ref for f in findings]},
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


def _read_ledger(engine: Engine, refs: list[str]) -> list[tuple[Any, ...]]:
    """One query: the AR events with their deliveries, and the open AR quarantine."""
    event_rows = select(
        literal("event", String).label("kind"),
        events.c.id,
        events.c.subject_ref,
        deliveries.c.state,
        deliveries.c.attempts,
        deliveries.c.last_error,
        null().label("raw"),
    ).select_from(events.outerjoin(deliveries, deliveries.c.event_id == events.c.id))
    if len(refs) <= _MAX_IN_LIST:
        subjects = [f"{p}:{r}" for r in refs for p in ("invoice", "credit_memo")]
        event_rows = event_rows.where(events.c.subject_ref.in_(subjects))
    else:
        event_rows = event_rows.where(events.c.type.in_(_AR_EVENT_TYPES))
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
        func.coalesce(quarantine.c.event_type, "invoice.posted").in_(_AR_EVENT_TYPES),
    )
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(union_all(event_rows, quarantined))]


# The latest event of a subject wins; a quarantined line is recognised by its source id (or
# the document id in its data), read from the raw line where it parses as JSON.
_JOIN_SQL = """
WITH le AS (
  SELECT substr(subject, strpos(subject, ':') + 1) AS ref, * FROM l WHERE kind = 'event'
),
ev AS (
  SELECT ref, subject, event_id, state, attempts, last_error FROM le
  QUALIFY row_number() OVER (PARTITION BY ref ORDER BY event_id DESC) = 1
),
q AS (
  SELECT ref, max(last_error) AS last_error FROM (
    SELECT unnest([TRY(json_extract_string(raw, '$.source_id')),
                   TRY(json_extract_string(raw, '$.data.invoice_id')),
                   TRY(json_extract_string(raw, '$.data.credit_memo_id'))]) AS ref, last_error
    FROM l WHERE kind = 'quarantine'
  ) WHERE ref IS NOT NULL GROUP BY ref
)
SELECT f.pos,
  CASE WHEN ev.ref IS NOT NULL THEN coalesce(ev.state, 'never delivered')
       WHEN q.ref IS NOT NULL THEN 'quarantined' ELSE 'never captured' END,
  ev.subject, ev.event_id, ev.attempts, coalesce(ev.last_error, q.last_error)
FROM f LEFT JOIN ev ON ev.ref = f.ref LEFT JOIN q ON q.ref = f.ref
"""
