"""Reconciliation workflow services: run, persist cases, sign off, report, schedule.

What the CLI (``revbridge recon ...``) and the ops console call; plain typed functions over a
SQLAlchemy engine. The rules live in ``revbridge.recon`` (``cases``, ``signoff``); this module
applies them to the ledger's ``recon_runs``, ``recon_cases`` and ``recon_signoffs`` and
writes every transition to ``audit_log`` in the same transaction.

A run: ``reconcile_period`` (both sides read, three reconciliations, the hub's state) ->
``plan_cases`` -> one transaction (the run row, cases opened / refreshed / reopened /
auto-resolved, sign-offs voided, their audit entries) -> the ``ReconReport``.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import fcntl
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from revbridge.config import Settings
from revbridge.core.money import format_money
from revbridge.core.policy import check_cron
from revbridge.core.timestamps import human_timestamp
from revbridge.core.wording import agreeing, counted
from revbridge.errors import DomainError
from revbridge.recon.cases import (
    ACTIVE,
    AUTO_RESOLVED,
    DEAD_LETTER,
    STUCK_AFTER,
    CasePlan,
    CaseSnapshot,
    CaseState,
    Seen,
    Sighting,
    amount_text,
    check_resolution_code,
    check_transition,
    days_open,
    fingerprint,
    plan_cases,
    stuck_in_transit,
)
from revbridge.recon.period import SCOPES, PeriodRecon
from revbridge.recon.report.model import (
    CaseRef,
    ReconReport,
    TrendPoint,
    build_report,
    category_amounts,
    erp_currency_of,
)
from revbridge.recon.signoff import (
    KIND_NAMES,
    ROLES,
    InTransit,
    SignoffState,
    changed_reconciliations,
    check_in_transit,
    check_prepare,
    check_review,
)
from revbridge.recon.thresholds import RECONCILIATIONS
from revbridge.store.ledger import UNDELIVERED_STATES
from revbridge.store.schema import attempts, audit_log, deliveries, events, watermarks
from revbridge.store.tables_recon import (
    recon_cases,
    recon_in_transit,
    recon_runs,
    recon_signoffs,
)

Reconciler = Callable[[str, date, date, bool], PeriodRecon]
"""``(scope, start, end, refresh) -> PeriodRecon``: by default ``recon.period.reconcile_period``."""

_T = TypeVar("_T")
CASE_ENTITY = "recon_case"
RUN_ENTITY = "recon_run"
SIGNOFF_ENTITY = "recon_signoff"
SCHEDULER_ACTOR = "recon-scheduler"
OUTAGE_MARK = "recon.outage_windows_after"
# A fixed advisory lock class for the recon schedule (any stable 64-bit number of our own).
_SCHEDULER_LOCK = int.from_bytes(
    hashlib.sha256(b"revbridge:recon:schedule").digest()[:8], "big", signed=True
)
# The lock a run's write step takes (transaction-scoped: released at its commit). A case's
# key (reconciliation, ref, kind) is the same whatever the period, so one lock serves every
# scope and period: two runs at once (two controllers pressing "run", the schedule and a
# controller) each read their sides in parallel, then write one after the other, the second
# refreshing the cases the first opened (decision 0036).
_RUN_WRITE_LOCK = text(
    "SELECT pg_advisory_xact_lock("
    + str(int.from_bytes(hashlib.sha256(b"revbridge:recon:run").digest()[:8], "big", signed=True))
    + ")"
)
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")
_CHUNK = 500


# ---------------------------------------------------------------------- periods


def period_bounds(scope: str, period: str | None, *, today: date) -> tuple[date, date]:
    """``[start, end)`` of a run: a day (``YYYY-MM-DD``, default yesterday) for ``nightly``,
    a month (``YYYY-MM``, default last month) for ``monthly``."""
    if scope not in SCOPES:
        raise DomainError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
    if scope == "nightly":
        try:
            day = date.fromisoformat(period) if period else today - timedelta(days=1)
        except ValueError as exc:
            raise DomainError(f"a nightly period is a date (YYYY-MM-DD), not {period!r}") from exc
        return day, day + timedelta(days=1)
    if period:
        try:
            year, month = (int(p) for p in period.split("-"))
            start = date(year, month, 1)
        except ValueError as exc:
            raise DomainError(f"a monthly period is YYYY-MM, not {period!r}") from exc
    else:
        start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


def month_of(start: date) -> tuple[date, date]:
    return period_bounds("monthly", f"{start.year}-{start.month:02d}", today=start)


def default_reconciler(settings: Settings, engine: Engine) -> Reconciler:
    """The configured read-back and the three reconciliations (``reconcile_period``)."""
    from revbridge.recon.period import reconcile_period

    def reconcile(scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        return reconcile_period(
            settings, engine, scope=scope, start=start, end=end, refresh=refresh
        )

    return reconcile


# ---------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseView:
    """A case as the CLI and the console show it.

    ``number`` is the document number people know the document by (``INV-00042``,
    ``CM-00007``), from the event the hub received for it; ``None`` for a case on no
    invoice or credit memo the hub received (a payment, a revenue entry, a control total, a
    document never captured).
    """

    id: int
    reconciliation: str
    ref: str
    number: str | None = None
    kind: str
    state: str
    period_start: date
    period_end: date
    doc_type: str | None
    currency: str | None
    source_amount: str | None
    erp_amount: str | None
    difference: str | None
    source_value: str | None
    erp_value: str | None
    hub_state: str | None
    event_id: int | None
    attempts: int
    last_error: str | None
    opened_at: datetime
    updated_at: datetime
    last_seen_at: datetime
    closed_at: datetime | None
    assignee: str | None
    resolution_code: str | None
    note: str | None
    days_open: int

    @property
    def erp_currency(self) -> str | None:
        """The currency of ``erp_amount`` (the ERP's own in a currency case)."""
        return erp_currency_of(self.kind, self.currency, self.erp_value)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    details: dict[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseDetail:
    case: CaseView
    history: tuple[AuditEntry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignoffView:
    id: int
    period_start: date
    period_end: date
    state: str
    run_id: int
    preparer: str
    prepared_at: datetime
    reviewer: str | None
    reviewed_at: datetime | None
    voided_at: datetime | None
    void_reason: str | None

    def describe(self) -> str:
        if self.state == SignoffState.SIGNED:
            return f"signed by {self.preparer} (preparer) and {self.reviewer} (reviewer)"
        if self.state == SignoffState.PREPARED:
            return f"prepared by {self.preparer}, awaiting review"
        return f"voided: {self.void_reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """What one run did, and its report."""

    run_id: int
    opened: int
    refreshed: int
    reopened: int
    auto_resolved: int
    open_cases: int
    voided_signoffs: tuple[int, ...]
    report: ReconReport


# ---------------------------------------------------------------------- audit


def _audit(
    conn: Connection,
    rows: Iterable[dict[str, Any]],
    *,
    actor: str,
    now: datetime,
) -> None:
    entries = [
        {
            "at": now,
            "actor": actor,
            "action": r["action"],
            "entity_type": r["entity_type"],
            "entity_id": str(r["entity_id"]),
            "from_state": r.get("from_state"),
            "to_state": r.get("to_state"),
            "reason": r.get("reason"),
            "details": json.dumps(r["details"], sort_keys=True, default=str)
            if r.get("details")
            else None,
        }
        for r in rows
    ]
    if entries:
        conn.execute(audit_log.insert(), entries)


# ---------------------------------------------------------------------- run


def _from_row(cls: type[_T], row: Any, **extra: Any) -> _T:
    """A dataclass from a result row's columns of the same names (plus ``extra``)."""
    mapping = row._mapping
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return cls(**{n: mapping[n] for n in names if n in mapping and n not in extra}, **extra)


def _snapshot(row: Any) -> CaseSnapshot:
    return _from_row(CaseSnapshot, row)


def _chunks(items: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _existing_cases(conn: Connection, seen: Sequence[Seen]) -> dict[int, Any]:
    """The active cases, and every case (any state) of the keys this run found, by id."""
    rows = {r.id: r for r in conn.execute(select(recon_cases).where(_active()))}
    keys = sorted({s.key for s in seen})
    for chunk in _chunks(keys):
        cond = tuple_(recon_cases.c.reconciliation, recon_cases.c.ref, recon_cases.c.kind).in_(
            list(chunk)
        )
        for r in conn.execute(select(recon_cases).where(cond)):
            rows[r.id] = r
    return rows


def _sightings(conn: Connection, seen: Sequence[Seen], start: date, end: date) -> list[Any]:
    """The in-transit sightings of the keys this run found, and those its period covers."""
    rows = {
        r.id: r
        for r in conn.execute(
            select(recon_in_transit).where(
                recon_in_transit.c.period_start >= start, recon_in_transit.c.period_end <= end
            )
        )
    }
    keys = sorted({s.key for s in seen})
    for chunk in _chunks(keys):
        cond = tuple_(
            recon_in_transit.c.reconciliation, recon_in_transit.c.ref, recon_in_transit.c.kind
        ).in_(list(chunk))
        for r in conn.execute(select(recon_in_transit).where(cond)):
            rows[r.id] = r
    return list(rows.values())


def _record_in_transit(
    conn: Connection,
    stored: Sequence[Any],
    in_transit: Sequence[Seen],
    forget: Sequence[Sighting],
    *,
    run_id: int,
    start: date,
    end: date,
    now: datetime,
) -> None:
    """Forget the sightings the plan says; remember this run's findings in transit (a new
    event starts a new sighting; the same one keeps its first run and time)."""
    by_key = {(r.reconciliation, r.ref, r.kind): r for r in stored}
    same = [
        s for s in in_transit if s.key in by_key and by_key[s.key].event_id == s.item.hub.event_id
    ]
    kept = {s.key for s in same}
    fresh = [s for s in in_transit if s.key not in kept]
    gone = sorted({x.key for x in forget} | {s.key for s in fresh if s.key in by_key})
    key = tuple_(recon_in_transit.c.reconciliation, recon_in_transit.c.ref, recon_in_transit.c.kind)
    for chunk in _chunks(gone):
        conn.execute(recon_in_transit.delete().where(key.in_(list(chunk))))
    if fresh:
        conn.execute(
            recon_in_transit.insert(),
            [
                {
                    "reconciliation": s.reconciliation,
                    "ref": s.item.finding.ref,
                    "kind": s.item.finding.kind.value,
                    "event_id": s.item.hub.event_id,
                    "hub_state": s.item.hub.state,
                    "period_start": start,
                    "period_end": end,
                    "first_run_id": run_id,
                    "first_seen_at": now,
                    "last_seen_at": now,
                }
                for s in fresh
            ],
        )
    for s in same:
        row = by_key[s.key]
        narrower = (end - start) < (row.period_end - row.period_start)
        conn.execute(
            update(recon_in_transit)
            .where(recon_in_transit.c.id == row.id)
            .values(
                hub_state=s.item.hub.state,
                last_seen_at=now,
                **({"period_start": start, "period_end": end} if narrower else {}),
            )
        )


def _active() -> ColumnElement[bool]:
    return recon_cases.c.state.in_([s.value for s in ACTIVE])


def _seen_values(s: Seen, *, run_id: int, now: datetime) -> dict[str, Any]:
    f, hub = s.item.finding, s.item.hub
    return {
        "doc_type": f.doc_type,
        "currency": f.currency,
        "source_amount": amount_text(f.source_amount),
        "erp_amount": amount_text(f.erp_amount),
        "difference": amount_text(f.difference),
        "source_value": f.source_value,
        "erp_value": f.erp_value,
        "hub_state": hub.state,
        "event_id": hub.event_id,
        "attempts": hub.attempts,
        "last_error": hub.last_error,
        "updated_at": now,
        "last_seen_at": now,
        "last_run_id": run_id,
    }


def _narrower(case: CaseSnapshot, start: date, end: date) -> dict[str, date]:
    """A case keeps the narrowest period it was found over (so a nightly run can clear it)."""
    if (end - start) < (case.period_end - case.period_start):
        return {"period_start": start, "period_end": end}
    return {}


_SEEN_MARKS = frozenset({"updated_at", "last_seen_at", "last_run_id"})


def _update_cases(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """One UPDATE per group of rows setting the same columns (``_id`` names the case)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    stmt = update(recon_cases).where(recon_cases.c.id == bindparam("_id"))
    for group in groups.values():
        conn.execute(stmt, group)


def _case_audit(action: str, case: CaseSnapshot, to: CaseState, reason: str) -> dict[str, Any]:
    return {
        "action": f"recon.case.{action}",
        "entity_type": CASE_ENTITY,
        "entity_id": case.id,
        "from_state": case.state,
        "to_state": to.value,
        "reason": reason,
    }


def _seen(recon: PeriodRecon) -> list[Seen]:
    return [
        Seen(reconciliation=r.name, item=item)
        for r in recon.reconciliations
        for item in r.findings
        if not item.finding.within_tolerance
    ]


def _within_tolerance(recon: PeriodRecon) -> dict[tuple[str, str, str], str]:
    """Each finding of ``recon`` within its tolerance, by case key: what it differs by (a
    case closed for it was not cleared; its difference is still there)."""
    tolerated: dict[tuple[str, str, str], str] = {}
    for r in recon.reconciliations:
        for item in r.findings:
            f = item.finding
            if f.within_tolerance:
                by = ""
                if f.difference is not None:
                    by = f" by {format_money(f.difference, f.currency)}"
                tolerated[(r.name, f.ref, f.kind.value)] = (
                    f"still differs{by}, now within the tolerance of [recon.thresholds.{r.name}]"
                )
    return tolerated


def _overlapping_signoffs(conn: Connection, start: date, end: date) -> list[Any]:
    return list(
        conn.execute(
            select(recon_signoffs).where(
                recon_signoffs.c.state.in_([SignoffState.PREPARED, SignoffState.SIGNED]),
                recon_signoffs.c.period_start < end,
                recon_signoffs.c.period_end > start,
            )
        )
    )


def _apply_plan(
    conn: Connection,
    plan: CasePlan,
    stored: dict[int, Any],
    *,
    run_id: int,
    scope: str,
    start: date,
    end: date,
    now: datetime,
    why: dict[tuple[str, str, str], str] | None = None,
    tolerated: dict[tuple[str, str, str], str] | None = None,
) -> list[dict[str, Any]]:
    """Open, refresh, reopen and auto-resolve the plan's cases over ``[start, end)``; their
    audit entries (``why``: the reason a case of that key was opened or reopened, when not
    that this run found it; ``tolerated``: what a finding this run judged within tolerance
    still differs by, for the note of its case resolved)."""
    by = f"by run {run_id} ({scope} {start}..{end})"
    found, why = f"found {by}", why or {}
    audits: list[dict[str, Any]] = []

    if plan.to_open:
        conn.execute(
            recon_cases.insert(),
            [
                {
                    "reconciliation": s.reconciliation,
                    "ref": s.item.finding.ref,
                    "kind": s.item.finding.kind.value,
                    "state": CaseState.OPEN.value,
                    "period_start": start,
                    "period_end": end,
                    "opened_at": now,
                    "first_run_id": run_id,
                    **_seen_values(s, run_id=run_id, now=now),
                }
                for s in plan.to_open
            ],
        )
        opened = {s.key for s in plan.to_open}
        new_ids = [
            r
            for r in conn.execute(
                select(
                    recon_cases.c.id,
                    recon_cases.c.reconciliation,
                    recon_cases.c.ref,
                    recon_cases.c.kind,
                ).where(recon_cases.c.first_run_id == run_id)
            )
            if (r.reconciliation, r.ref, r.kind) in opened
        ]
        audits += [
            {
                "action": "recon.case.opened",
                "entity_type": CASE_ENTITY,
                "entity_id": r.id,
                "to_state": CaseState.OPEN.value,
                "reason": why.get((r.reconciliation, r.ref, r.kind), found),
                "details": {"reconciliation": r.reconciliation, "ref": r.ref, "kind": r.kind},
            }
            for r in new_ids
        ]
    # Seen again as it was: only the "last seen" columns move, in a few set-based UPDATEs;
    # a case whose values (hub state, amounts, ...) changed is rewritten.
    rewrite: list[dict[str, Any]] = []
    same: list[dict[str, Any]] = []
    for case, s in plan.to_refresh:
        values = {**_seen_values(s, run_id=run_id, now=now), **_narrower(case, start, end)}
        row = stored[case.id]._mapping
        moved = any(row[k] != v for k, v in values.items() if k not in _SEEN_MARKS)
        (rewrite if moved else same).append({"_id": case.id, **values})
    _update_cases(conn, rewrite)
    for chunk in _chunks([r["_id"] for r in same]):
        conn.execute(
            update(recon_cases)
            .where(recon_cases.c.id.in_(chunk))
            .values(updated_at=now, last_seen_at=now, last_run_id=run_id)
        )
    _update_cases(
        conn,
        [
            {"_id": case.id, **_seen_values(s, run_id=run_id, now=now),
             **_narrower(case, start, end), "state": CaseState.OPEN.value,
             "closed_at": None, "resolution_code": None, "opened_at": now}
            for case, s in plan.to_reopen
        ],
    )  # fmt: skip
    audits += [
        _case_audit(
            "reopened",
            case,
            CaseState.OPEN,
            why.get(case.key, f"found again {by}"),
        )
        for case, _ in plan.to_reopen
    ]
    # A case of a finding now within its tolerance (its threshold raised) was not cleared:
    # its note says what it still differs by, not that the variance is gone.
    cleared = f"not found by run {run_id} over {start}..{end}: the variance cleared"
    tolerated = tolerated or {}
    notes: dict[str, list[int]] = {}
    for c in plan.to_auto_resolve:
        note = cleared
        if c.key in tolerated:
            note = f"within tolerance at run {run_id} over {start}..{end}: {tolerated[c.key]}"
        notes.setdefault(note, []).append(c.id)
        audits.append(_case_audit(AUTO_RESOLVED, c, CaseState.RESOLVED, note))
    for note, ids in notes.items():
        for chunk in _chunks(ids):
            conn.execute(
                update(recon_cases)
                .where(recon_cases.c.id.in_(chunk))
                .values(state=CaseState.RESOLVED.value, resolution_code=AUTO_RESOLVED,
                        note=note, closed_at=now, updated_at=now, last_run_id=run_id)
            )  # fmt: skip
    return audits


def _stuck_sightings(
    engine: Engine,
    reconciler: Reconciler,
    seen: Sequence[Seen],
    *,
    start: date,
    end: date,
    now: datetime,
) -> list[tuple[tuple[date, date], tuple[tuple[Sighting, Seen], ...]]]:
    """The earlier runs' in-transit sightings this run does not look at (not found by it,
    not of a period it covers) that are a case now (``cases.stuck_in_transit``), per period.

    Their deliveries are read first; only a period with a dead letter, or a delivery still on
    its way first seen ``STUCK_AFTER`` ago, is reconciled again, from the read-back store (no
    new read): the case gets the finding as it stands.
    """
    found = {s.key for s in seen}
    with engine.connect() as conn:
        others = [
            x
            for x in (
                _from_row(Sighting, r)
                for r in conn.execute(
                    select(recon_in_transit).where(recon_in_transit.c.event_id.is_not(None))
                )
            )
            if x.key not in found and not (start <= x.period_start and x.period_end <= end)
        ]
        states: dict[int, set[str]] = {}
        for chunk in _chunks(sorted({x.event_id for x in others if x.event_id is not None})):
            for event_id, state in conn.execute(
                select(deliveries.c.event_id, deliveries.c.state).where(
                    deliveries.c.event_id.in_(chunk)
                )
            ):
                states.setdefault(event_id, set()).add(state)
    waited = now - STUCK_AFTER
    periods: dict[tuple[date, date], list[Sighting]] = {}
    for x in others:
        now_in = states.get(x.event_id or 0, set())
        if DEAD_LETTER in now_in or (
            now_in & set(UNDELIVERED_STATES) and x.first_seen_at <= waited
        ):
            periods.setdefault((x.period_start, x.period_end), []).append(x)
    stuck = []
    for (p_start, p_end), sightings in sorted(periods.items()):
        recon = reconciler(_scope_of(p_start, p_end), p_start, p_end, False)
        group = stuck_in_transit(sightings, _seen(recon), now=now)
        if group:
            stuck.append(((p_start, p_end), group))
    return stuck


def _scope_of(start: date, end: date) -> str:
    return "monthly" if (start, end) == month_of(start) else "nightly"


def _stuck_reason(sighting: Sighting, seen: Seen, *, run_id: int) -> str:
    first = f"{human_timestamp(sighting.first_seen_at)}, first found by run {sighting.first_run_id}"
    state = seen.item.hub.state
    if state == DEAD_LETTER:
        return f"dead-lettered; in transit since {first}; opened by run {run_id}"
    return f"still in transit ({state}) since {first}; opened by run {run_id}"


def _open_stuck(
    conn: Connection,
    stuck: Sequence[tuple[tuple[date, date], tuple[tuple[Sighting, Seen], ...]]],
    *,
    run_id: int,
    now: datetime,
) -> list[tuple[CasePlan, list[dict[str, Any]]]]:
    """Open (or reopen) the case of each stuck sighting over its own period, and forget it."""
    done: list[tuple[CasePlan, list[dict[str, Any]]]] = []
    for (p_start, p_end), group in stuck:
        found = [s for _, s in group]
        keys = {s.key for s in found}
        stored = _existing_cases(conn, found)
        existing = [_snapshot(r) for r in stored.values()]
        plan = plan_cases(
            [c for c in existing if c.key in keys], found,
            start=p_start, end=p_end, now=now, sightings=[x for x, _ in group],
        )  # fmt: skip
        why = {x.key: _stuck_reason(x, s, run_id=run_id) for x, s in group}
        _record_in_transit(
            conn, [], (), plan.to_forget, run_id=run_id, start=p_start, end=p_end, now=now
        )
        audits = _apply_plan(
            conn, plan, stored, run_id=run_id, scope=_scope_of(p_start, p_end),
            start=p_start, end=p_end, now=now, why=why,
        )  # fmt: skip
        done.append((plan, audits))
    return done


def run_recon(
    engine: Engine,
    reconciler: Reconciler,
    *,
    scope: str,
    start: date,
    end: date,
    actor: str,
    now: datetime,
    refresh: bool = True,
    trend_runs: int = 30,
    reason: str | None = None,
) -> RunOutcome:
    """Reconcile ``[start, end)``, record the run, open / update / resolve its cases.

    A sign-off of a period this run overlaps is voided when that period's balances changed:
    compared directly for the month-end run of the period, else by reconciling the signed
    month again from the read-back store (no new read).
    """
    recon = reconciler(scope, start, end, refresh)
    prints = {r.name: fingerprint(r.result) for r in recon.reconciliations}
    with engine.connect() as conn:
        signoffs = _overlapping_signoffs(conn, start, end)
    current_prints: dict[int, dict[str, str]] = {}
    for s in signoffs:
        if scope == "monthly" and (s.period_start, s.period_end) == (start, end):
            current_prints[s.id] = prints
        else:
            month = reconciler("monthly", s.period_start, s.period_end, False)
            current_prints[s.id] = {r.name: fingerprint(r.result) for r in month.reconciliations}

    seen = _seen(recon)
    stuck = _stuck_sightings(engine, reconciler, seen, start=start, end=end, now=now)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One run writes at a time (SQLite's write transaction already is one at a time):
            # the cases are read after the lock, so a run started at the same moment as
            # another refreshes the cases that one opened instead of inserting them again.
            conn.execute(_RUN_WRITE_LOCK)
        run_id = conn.execute(
            recon_runs.insert()
            .values(
                scope=scope,
                period_start=start,
                period_end=end,
                started_at=now,
                read_at=recon.read_at,
                actor=actor,
                matched_count=sum(r.result.matched_count for r in recon.reconciliations),
                variance_count=sum(len(r.findings) for r in recon.reconciliations),
                within_tolerance_count=sum(
                    1
                    for r in recon.reconciliations
                    for i in r.findings
                    if i.finding.within_tolerance
                ),
                opened_count=0,
                resolved_count=0,
                open_cases=0,
                amounts=json.dumps(_run_amounts(recon)),
                fingerprints=json.dumps(prints, sort_keys=True),
            )
            .returning(recon_runs.c.id)
        ).scalar_one()
        stored = _existing_cases(conn, seen)
        sighted = _sightings(conn, seen, start, end)
        plan = plan_cases(
            [_snapshot(r) for r in stored.values()],
            seen,
            start=start,
            end=end,
            now=now,
            sightings=[_from_row(Sighting, r) for r in sighted],
            refreshed=refresh,
        )
        _record_in_transit(
            conn,
            sighted,
            plan.in_transit,
            plan.to_forget,
            run_id=run_id,
            start=start,
            end=end,
            now=now,
        )
        audits = _apply_plan(
            conn, plan, stored, run_id=run_id, scope=scope, start=start, end=end, now=now,
            tolerated=_within_tolerance(recon),
        )  # fmt: skip
        stuck_plans = _open_stuck(conn, stuck, run_id=run_id, now=now)
        audits += [a for _, audits_of in stuck_plans for a in audits_of]
        opened = len(plan.to_open) + sum(len(p.to_open) for p, _ in stuck_plans)
        reopened = len(plan.to_reopen) + sum(len(p.to_reopen) for p, _ in stuck_plans)

        voided: list[int] = []
        for s in signoffs:
            changed = changed_reconciliations(json.loads(s.fingerprints), current_prints[s.id])
            if not changed:
                continue
            why = f"balances changed in {', '.join(changed)} (run {run_id})"
            conn.execute(
                update(recon_signoffs)
                .where(recon_signoffs.c.id == s.id)
                .values(state=SignoffState.VOIDED.value, voided_at=now, void_reason=why)
            )
            voided.append(s.id)
            audits.append(
                {
                    "action": "recon.signoff.voided",
                    "entity_type": SIGNOFF_ENTITY,
                    "entity_id": s.id,
                    "from_state": s.state,
                    "to_state": SignoffState.VOIDED.value,
                    "reason": why,
                    "details": {"period": f"{s.period_start}..{s.period_end}"},
                }
            )

        open_cases = conn.execute(select(func.count()).where(_active())).scalar_one()
        conn.execute(
            update(recon_runs)
            .where(recon_runs.c.id == run_id)
            .values(
                opened_count=opened + reopened,
                resolved_count=len(plan.to_auto_resolve),
                open_cases=open_cases,
            )
        )
        audits.append(
            {
                "action": "recon.run",
                "entity_type": RUN_ENTITY,
                "entity_id": run_id,
                "reason": reason,
                "details": {
                    "scope": scope,
                    "period": f"{start}..{end}",
                    "opened": opened,
                    "reopened": reopened,
                    "auto_resolved": len(plan.to_auto_resolve),
                    "open_cases": open_cases,
                },
            }
        )
        _audit(conn, audits, actor=actor, now=now)

    report = report_for(engine, recon, run_id=run_id, now=now, trend_runs=trend_runs)
    return RunOutcome(
        run_id=run_id,
        opened=opened,
        refreshed=len(plan.to_refresh),
        reopened=reopened,
        auto_resolved=len(plan.to_auto_resolve),
        open_cases=open_cases,
        voided_signoffs=tuple(voided),
        report=report,
    )


def _run_amounts(recon: PeriodRecon) -> dict[str, dict[str, str]]:
    """What matched, and the variance, per currency, as the run stores them.

    The variance counts a gap once. A document's amount gap counts once however many ways
    it differs: each of its findings (amount, date, customer, status) carries the same
    difference. A reconciliation with control totals (revenue) sees the same gap twice, in
    its documents (an entry missing in the ERP) and in the GL (the control totals the entry
    leaves unposted, one leg: ``category_amounts``), so its variance per currency is the
    larger of the two views.
    """
    matched: dict[str, Decimal] = {}
    variance: dict[str, Decimal] = {}
    for r in recon.reconciliations:
        for m in r.result.matched:
            matched[m.currency] = matched.get(m.currency, Decimal(0)) + m.source_amount
        gaps: dict[str, tuple[str, Decimal]] = {}  # a document's gap, by its ref
        control: list[tuple[str, Decimal]] = []
        for i in r.findings:
            f = i.finding
            if f.difference is None or not f.currency:
                continue
            if f.kind.value == "control_total":
                control.append((f.currency, f.difference))
            else:
                gaps.setdefault(f.ref, (f.currency, abs(f.difference)))
        documents: dict[str, Decimal] = {}
        for currency, amount in gaps.values():
            documents[currency] = documents.get(currency, Decimal(0)) + amount
        totals = dict(category_amounts("control_total", control)[0])
        for currency in documents.keys() | totals.keys():
            gap = max(documents.get(currency, Decimal(0)), totals.get(currency, Decimal(0)))
            variance[currency] = variance.get(currency, Decimal(0)) + gap
    return {
        "matched": {c: format(a, "f") for c, a in sorted(matched.items())},
        "variance": {c: format(a, "f") for c, a in sorted(variance.items())},
    }


def _new_reading() -> ColumnElement[bool]:
    """A run no later run repeats: one point per reading of both sides in the trend.

    A run with ``--no-refresh`` read nothing: it reconciles what the run before it read
    (the same ``read_at``), so it is the same observation, not a new one. The latest run of
    each reading (scope, period and ``read_at``) stands for it, with its open cases.
    """
    later = recon_runs.alias("later")
    return ~(
        select(later.c.id)
        .where(
            later.c.id > recon_runs.c.id,
            later.c.scope == recon_runs.c.scope,
            later.c.period_start == recon_runs.c.period_start,
            later.c.period_end == recon_runs.c.period_end,
            later.c.read_at == recon_runs.c.read_at,
        )
        .exists()
    )


def report_for(
    engine: Engine,
    recon: PeriodRecon,
    *,
    run_id: int | None,
    now: datetime,
    trend_runs: int = 30,
) -> ReconReport:
    """The report of ``recon`` with the ledger's cases, aging, trend and sign-off."""
    keys = sorted(
        {(r.name, i.finding.ref, i.finding.kind.value) for r in recon.reconciliations
         for i in r.findings}
    )  # fmt: skip
    cases: dict[tuple[str, str, str], CaseRef] = {}
    with engine.connect() as conn:
        for chunk in _chunks(keys):
            cond = tuple_(recon_cases.c.reconciliation, recon_cases.c.ref, recon_cases.c.kind).in_(
                list(chunk)
            )
            for r in conn.execute(
                select(recon_cases.c.id, recon_cases.c.reconciliation, recon_cases.c.ref,
                       recon_cases.c.kind, recon_cases.c.state, recon_cases.c.opened_at)
                .where(cond)
            ):  # fmt: skip
                cases[(r.reconciliation, r.ref, r.kind)] = CaseRef(
                    id=r.id, state=r.state, days_open=days_open(r.opened_at, now)
                )
        ages = [
            days_open(opened, now)
            for opened in conn.execute(select(recon_cases.c.opened_at).where(_active())).scalars()
        ]
        trend = [
            TrendPoint(
                run_id=r.id,
                scope=r.scope,
                period_start=r.period_start,
                started_at=r.started_at,
                variance_count=r.variance_count,
                within_tolerance_count=r.within_tolerance_count,
                open_cases=r.open_cases,
            )
            for r in conn.execute(
                select(recon_runs)
                .where(_new_reading())
                .order_by(recon_runs.c.id.desc())
                .limit(trend_runs)
            )
        ][::-1]
        signoff = _latest_signoff(conn, *month_of(recon.start))
        numbers = _document_numbers(
            conn, (i.hub.event_id for r in recon.reconciliations for i in r.findings)
        )
    return build_report(
        recon,
        cases=cases,
        open_case_ages=ages,
        trend=trend,
        generated_at=now,
        run_id=run_id,
        signoff=signoff.describe() if signoff else None,
        numbers=numbers,
    )


# ---------------------------------------------------------------------- cases


def _case_view(row: Any, now: datetime, number: str | None = None) -> CaseView:
    return _from_row(
        CaseView, row, days_open=days_open(row.opened_at, row.closed_at or now), number=number
    )


# The field of an event's payload that holds its document's number.
_NUMBER_FIELDS = {"invoice.posted": "invoice_number", "credit_memo.issued": "credit_memo_number"}


def _document_numbers(conn: Connection, event_ids: Iterable[int | None]) -> dict[int, str]:
    """The document number of each event that is an invoice or a credit memo."""
    numbers: dict[int, str] = {}
    wanted = sorted({i for i in event_ids if i is not None})
    for chunk in _chunks(wanted):
        for event_id, event_type, payload in conn.execute(
            select(events.c.id, events.c.type, events.c.payload).where(
                events.c.id.in_(chunk), events.c.type.in_(list(_NUMBER_FIELDS))
            )
        ):
            number = json.loads(payload).get(_NUMBER_FIELDS[event_type])
            if number:
                numbers[event_id] = str(number)
    return numbers


def _case_views(conn: Connection, rows: Sequence[Any], now: datetime) -> list[CaseView]:
    numbers = _document_numbers(conn, (r.event_id for r in rows))
    return [_case_view(r, now, numbers.get(r.event_id)) for r in rows]


def list_cases(
    engine: Engine,
    *,
    now: datetime,
    states: Sequence[str] | None = None,
    reconciliation: str | None = None,
    limit: int = 1000,
) -> list[CaseView]:
    """Cases, oldest first; by default the active ones (open, investigating)."""
    wanted = list(states) if states else [s.value for s in ACTIVE]
    unknown = set(wanted) - {s.value for s in CaseState}
    if unknown:
        raise DomainError(
            f"unknown case {agreeing(len(unknown), 'state')} {', '.join(sorted(unknown))}; "
            f"known: {', '.join(s.value for s in CaseState)}"
        )
    if reconciliation and reconciliation not in RECONCILIATIONS:
        # A typo ("payment") would list nothing, read as "no case": refused instead.
        raise DomainError(
            f"unknown reconciliation {reconciliation!r}; known: {', '.join(RECONCILIATIONS)}"
        )
    stmt = select(recon_cases).where(recon_cases.c.state.in_(wanted))
    if reconciliation:
        stmt = stmt.where(recon_cases.c.reconciliation == reconciliation)
    stmt = stmt.order_by(recon_cases.c.opened_at, recon_cases.c.id).limit(limit)
    with engine.connect() as conn:
        return _case_views(conn, conn.execute(stmt).all(), now)


def show_case(engine: Engine, case_id: int, *, now: datetime) -> CaseDetail:
    """One case with its history from the audit log."""
    with engine.connect() as conn:
        row = conn.execute(select(recon_cases).where(recon_cases.c.id == case_id)).first()
        if row is None:
            raise DomainError(f"no case {case_id}")
        history = conn.execute(
            select(audit_log)
            .where(audit_log.c.entity_type == CASE_ENTITY, audit_log.c.entity_id == str(case_id))
            .order_by(audit_log.c.id)
        ).all()
        [case] = _case_views(conn, [row], now)
    return CaseDetail(
        case=case,
        history=tuple(
            AuditEntry(
                at=h.at,
                actor=h.actor,
                action=h.action,
                from_state=h.from_state,
                to_state=h.to_state,
                reason=h.reason,
                details=json.loads(h.details) if h.details else None,
            )
            for h in history
        ),
    )


def _transition(
    engine: Engine,
    case_id: int,
    target: CaseState,
    *,
    actor: str,
    now: datetime,
    note: str | None,
    values: dict[str, Any],
) -> CaseView:
    with engine.begin() as conn:
        row = conn.execute(select(recon_cases).where(recon_cases.c.id == case_id)).first()
        if row is None:
            raise DomainError(f"no case {case_id}")
        check_transition(row.state, target)
        done = conn.execute(
            update(recon_cases)
            .where(recon_cases.c.id == case_id, recon_cases.c.state == row.state)
            .values(state=target.value, updated_at=now, **values)
        ).rowcount
        if done != 1:
            raise DomainError(f"case {case_id} changed meanwhile; look again")
        _audit(
            conn,
            [
                {
                    "action": f"recon.case.{target.value}",
                    "entity_type": CASE_ENTITY,
                    "entity_id": case_id,
                    "from_state": row.state,
                    "to_state": target.value,
                    "reason": note,
                    "details": {k: v for k, v in values.items() if k in ("resolution_code",)},
                }
            ],
            actor=actor,
            now=now,
        )
        fresh = conn.execute(select(recon_cases).where(recon_cases.c.id == case_id)).one()
        [case] = _case_views(conn, [fresh], now)
    return case


def investigate_case(
    engine: Engine, case_id: int, *, actor: str, now: datetime, note: str | None = None
) -> CaseView:
    """Someone takes the case: it is theirs (``assignee``) and under investigation."""
    values: dict[str, Any] = {"assignee": actor}
    if note:
        values["note"] = note
    return _transition(
        engine, case_id, CaseState.INVESTIGATING, actor=actor, now=now, note=note, values=values
    )


def resolve_case(
    engine: Engine, case_id: int, *, actor: str, code: str, note: str, now: datetime
) -> CaseView:
    """Close the case as fixed, with a resolution code and a note saying what was done."""
    check_resolution_code(code)
    if not note.strip():
        raise DomainError("a resolution needs a note saying what was done")
    return _transition(
        engine,
        case_id,
        CaseState.RESOLVED,
        actor=actor,
        now=now,
        note=note,
        values={"resolution_code": code, "note": note, "closed_at": now},
    )


def accept_case(engine: Engine, case_id: int, *, actor: str, note: str, now: datetime) -> CaseView:
    """Close the case as a known, explained difference that stays (a note is required)."""
    if not note.strip():
        raise DomainError("accepting a difference needs a note explaining it")
    return _transition(
        engine,
        case_id,
        CaseState.ACCEPTED,
        actor=actor,
        now=now,
        note=note,
        values={"note": note, "closed_at": now},
    )


# ---------------------------------------------------------------------- sign-off


def _signoff_view(row: Any) -> SignoffView:
    return _from_row(SignoffView, row)


def _latest_signoff(conn: Connection, start: date, end: date) -> SignoffView | None:
    row = conn.execute(
        select(recon_signoffs)
        .where(recon_signoffs.c.period_start == start, recon_signoffs.c.period_end == end)
        .order_by(recon_signoffs.c.id.desc())
        .limit(1)
    ).first()
    return _signoff_view(row) if row is not None else None


def documents_in_transit(conn: Connection, start: date, end: date) -> InTransit:
    """The documents to the ERP dated in ``[start, end)`` whose latest version is not
    delivered yet (pending, scheduled for its batch window, parked, held or in flight):
    invoices, credit memos, payments and revenue entries. Reconciliation reports each as
    in transit, not a break (decision 0030), so a sign-off must see them here."""
    from revbridge.codec import decode_payload
    from revbridge.core.events import (
        CreditMemoIssued,
        EventType,
        InvoicePosted,
        PaymentReceived,
        RevenueRecognized,
    )

    newer = events.alias("newer")
    rows = conn.execute(
        select(events.c.type, events.c.payload, deliveries.c.due_at)
        .join(deliveries, deliveries.c.event_id == events.c.id)
        .where(
            events.c.type.in_(sorted(KIND_NAMES)),
            deliveries.c.target == "erp",
            deliveries.c.state.in_(UNDELIVERED_STATES),
            ~select(newer.c.id)
            .where(newer.c.subject_ref == events.c.subject_ref, newer.c.id > events.c.id)
            .exists(),
        )
    ).all()
    counts: dict[str, int] = {}
    totals: dict[str, dict[str, Decimal]] = {}
    due: list[datetime] = []
    for kind, payload, due_at in rows:
        doc = decode_payload(EventType(kind), payload)
        amounts: list[tuple[str, Decimal]]
        if isinstance(doc, InvoicePosted):
            dated, amounts = doc.invoice_date, [(doc.currency, doc.total)]
        elif isinstance(doc, CreditMemoIssued):
            dated, amounts = doc.issued_on, [(doc.currency, doc.total)]
        elif isinstance(doc, PaymentReceived):
            dated, amounts = doc.received_on, [(doc.currency, doc.amount)]
        elif isinstance(doc, RevenueRecognized):
            dated, amounts = doc.entry_date, [(ln.currency, ln.debit) for ln in doc.lines]
        else:
            continue
        if not start <= dated < end:
            continue
        counts[kind] = counts.get(kind, 0) + 1
        per = totals.setdefault(kind, {})
        for currency, amount in amounts:
            per[currency] = per.get(currency, Decimal(0)) + amount
        due.append(due_at)
    return InTransit(
        counts=counts,
        control_totals=totals,
        due_from=min(due, default=None),
        due_until=max(due, default=None),
    )


def sign_off(
    engine: Engine,
    *,
    period: str,
    role: str,
    actor: str,
    now: datetime,
    override_in_transit: str | None = None,
) -> SignoffView:
    """Sign a month (``YYYY-MM``) off as its ``preparer`` or, after, its ``reviewer``.

    The preparer signs the balances of the period's latest month-end run (their fingerprints
    are kept); no case of the period may still be open. The reviewer is someone else.
    Neither signs while documents of the month (invoices, credit memos, payments, revenue
    entries) are in transit to the ERP, unless ``override_in_transit`` says why (the reason
    and what was in transit are audited).
    """
    if role not in ROLES:
        raise DomainError(f"role {role!r}: one of {', '.join(ROLES)}")
    start, end = period_bounds("monthly", period, today=now.date())
    with engine.begin() as conn:
        in_transit = documents_in_transit(conn, start, end)
        override = check_in_transit(in_transit, override_reason=override_in_transit)
        latest = _latest_signoff(conn, start, end)
        live = latest if latest and latest.state != SignoffState.VOIDED else None
        if role == "preparer":
            run = conn.execute(
                select(recon_runs)
                .where(
                    recon_runs.c.scope == "monthly",
                    recon_runs.c.period_start == start,
                    recon_runs.c.period_end == end,
                )
                .order_by(recon_runs.c.id.desc())
                .limit(1)
            ).first()
            if run is None:
                raise DomainError(
                    f"no month-end run for {period}: run `revbridge recon run --scope monthly "
                    f"--period {period}` first"
                )
            active = conn.execute(
                select(func.count()).where(
                    _active(),
                    recon_cases.c.period_start >= start,
                    recon_cases.c.period_end <= end,
                )
            ).scalar_one()
            check_prepare(current=live.state if live else None, active_cases=active)
            signoff_id = conn.execute(
                recon_signoffs.insert()
                .values(
                    period_start=start,
                    period_end=end,
                    state=SignoffState.PREPARED.value,
                    run_id=run.id,
                    fingerprints=run.fingerprints,
                    preparer=actor,
                    prepared_at=now,
                )
                .returning(recon_signoffs.c.id)
            ).scalar_one()
            audit = {
                "action": "recon.signoff.prepared",
                "entity_id": signoff_id,
                "to_state": SignoffState.PREPARED.value,
                "details": {"period": period, "run_id": run.id},
            }
        else:
            check_review(
                current=live.state if live else None,
                preparer=live.preparer if live else None,
                reviewer=actor,
            )
            assert live is not None
            signoff_id = live.id
            done = conn.execute(
                update(recon_signoffs)
                .where(
                    recon_signoffs.c.id == live.id,
                    recon_signoffs.c.state == SignoffState.PREPARED.value,
                )
                .values(state=SignoffState.SIGNED.value, reviewer=actor, reviewed_at=now)
            ).rowcount
            if done != 1:
                raise DomainError(f"the sign-off of {period} changed meanwhile; look again")
            audit = {
                "action": "recon.signoff.signed",
                "entity_id": signoff_id,
                "from_state": SignoffState.PREPARED.value,
                "to_state": SignoffState.SIGNED.value,
                "details": {"period": period},
            }
        if override is not None:
            audit["reason"] = override
            audit["details"] = {**audit["details"], "in_transit": in_transit.as_json()}
        _audit(conn, [{**audit, "entity_type": SIGNOFF_ENTITY}], actor=actor, now=now)
        row = conn.execute(select(recon_signoffs).where(recon_signoffs.c.id == signoff_id)).one()
    return _signoff_view(row)


# ---------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconStatus:
    cases_by_state: dict[str, int]
    open_by_reconciliation: dict[str, int]
    aging: dict[str, int]
    recent_runs: tuple[dict[str, Any], ...]
    signoffs: tuple[SignoffView, ...]


def recon_status(engine: Engine, *, now: datetime, runs: int = 5) -> ReconStatus:
    """Cases by state, open ones by reconciliation and age, the last runs and sign-offs."""
    from revbridge.recon.cases import aging

    with engine.connect() as conn:
        by_state: dict[str, int] = dict(
            conn.execute(
                select(recon_cases.c.state, func.count()).group_by(recon_cases.c.state)
            ).all()
        )
        by_recon: dict[str, int] = dict(
            conn.execute(
                select(recon_cases.c.reconciliation, func.count())
                .where(_active())
                .group_by(recon_cases.c.reconciliation)
            ).all()
        )
        ages = [
            days_open(t, now)
            for t in conn.execute(select(recon_cases.c.opened_at).where(_active())).scalars()
        ]
        rows = conn.execute(
            select(recon_runs, _new_reading().label("new_reading"))
            .order_by(recon_runs.c.id.desc())
            .limit(runs)
        ).all()
        reasons: dict[str, str | None] = dict(
            conn.execute(
                select(audit_log.c.entity_id, audit_log.c.reason).where(
                    audit_log.c.action == "recon.run",
                    audit_log.c.entity_type == RUN_ENTITY,
                    audit_log.c.entity_id.in_([str(r.id) for r in rows]),
                )
            ).all()
        )
        recent = tuple(
            {
                "id": r.id,
                "scope": r.scope,
                "period": f"{r.period_start}..{r.period_end}",
                "started_at": r.started_at,
                "matched": r.matched_count,
                "variances": r.variance_count,
                "within_tolerance": r.within_tolerance_count,
                "opened": r.opened_count,
                "auto_resolved": r.resolved_count,
                "open_cases": r.open_cases,
                # Why it ran: a schedule, an outage, ...; none for a run by hand.
                "reason": reasons.get(str(r.id)),
                # False when a later run repeats its reading (a --no-refresh run after it):
                # one point per reading in a trend chart (decision 0041).
                "new_reading": bool(r.new_reading),
            }
            for r in rows
        )
        signoffs = tuple(
            _signoff_view(r)
            for r in conn.execute(
                select(recon_signoffs).order_by(recon_signoffs.c.id.desc()).limit(12)
            )
        )
    return ReconStatus(
        cases_by_state={s.value: int(by_state.get(s.value, 0)) for s in CaseState},
        open_by_reconciliation={k: int(v) for k, v in sorted(by_recon.items())},
        aging=aging(ages),
        recent_runs=recent,
        signoffs=signoffs,
    )


# ---------------------------------------------------------------------- scheduling


@dataclass(frozen=True, slots=True, kw_only=True)
class DueRun:
    scope: str
    start: date
    end: date
    reason: str
    fired: datetime | None = None  # the schedule's fire time; None for an outage's run
    outage_end: datetime | None = None  # an outage's run: when the outage ended


BATCH_WAIT = timedelta(hours=2)
"""How long after its fire time a scheduled run waits for a batch class's run that is due or
under way (the month-end revenue batch and the month-end run both fire at 03:00 on the 1st)."""


def batch_run_due_or_under_way(engine: Engine, *, now: datetime) -> bool:
    """Whether a batch class's window has come and its run has not taken its items yet
    (pending, never tried, due), or is delivering them (in flight)."""
    batch = deliveries.c.pattern == "batch"
    waiting = and_(
        deliveries.c.state == "pending", deliveries.c.attempts == 0, deliveries.c.due_at <= now
    )
    with engine.connect() as conn:
        return (
            conn.execute(
                select(deliveries.c.event_id)
                .where(batch, or_(waiting, deliveries.c.state == "in_flight"))
                .limit(1)
            ).first()
            is not None
        )


def _last_fire(expression: str, now: datetime) -> datetime:
    from cronsim import CronSim

    check_cron(expression)
    fired: datetime = next(CronSim(expression, now + timedelta(seconds=1), reverse=True))
    return fired


def due_scheduled_runs(
    engine: Engine, *, nightly: str, monthly: str, now: datetime
) -> list[DueRun]:
    """The scheduled runs whose latest fire time has no run of the scheduler since.

    The nightly run reconciles the day before its fire time, the month-end run the month
    before; a run missed while nothing was running is made up once (the latest fire only).
    """
    due: list[DueRun] = []
    for scope, expression in (("nightly", nightly), ("monthly", monthly)):
        fired = _last_fire(expression, now)
        start, end = period_bounds(scope, None, today=fired.date())
        with engine.connect() as conn:
            done = conn.execute(
                select(func.count()).where(
                    recon_runs.c.scope == scope,
                    recon_runs.c.period_start == start,
                    recon_runs.c.period_end == end,
                    recon_runs.c.started_at >= fired,
                )
            ).scalar_one()
        if not done:
            due.append(
                DueRun(
                    scope=scope,
                    start=start,
                    end=end,
                    reason=f"schedule {expression}",
                    fired=fired,
                )
            )
    return due


def outage_windows(engine: Engine, *, now: datetime) -> list[DueRun]:
    """Runs over each outage that ended since the mark (``move_outage_mark``: moved by
    ``run_due`` once their runs are made, so that a run that failed is due again).

    An outage is a target that could not be called: its circuit opened then closed again
    (``audit_log``, action ``circuit``), or an operator paused then resumed it (a planned
    downtime, actions ``pause`` and ``resume``). Overlapping ones are one outage, from the
    first to stop the calls to the last to let them through again. Its run is nightly-scoped
    over every day from the start to the end, and back to the date of the earliest document
    the outage held up (``held_up_dates``); its reason says what the outage was.
    """
    with engine.connect() as conn:
        mark_text = conn.execute(
            select(watermarks.c.value).where(watermarks.c.name == OUTAGE_MARK)
        ).scalar()
        # On the first look, only an outage that ended within the last day: older ones were
        # before reconciliation was scheduled here.
        mark = datetime.fromisoformat(mark_text) if mark_text else now - timedelta(days=1)
        stmt = (
            select(audit_log.c.at, audit_log.c.entity_id, audit_log.c.action, audit_log.c.to_state)
            .where(
                audit_log.c.action.in_(("circuit", "pause", "resume")),
                audit_log.c.entity_type == "target",
            )
            .order_by(audit_log.c.id)
        )
        began: dict[str, datetime] = {}
        why: dict[str, set[str]] = {}  # what stops the calls now: "circuit", "pause"
        causes: dict[str, set[str]] = {}  # what stopped them at any time during the outage
        due: list[DueRun] = []
        for at, target, action, state in conn.execute(stmt):
            stops = why.setdefault(target, set())
            cause = "circuit" if action == "circuit" else "pause"
            if action == "pause" or state == "open":
                began.setdefault(target, at)
                stops.add(cause)
                causes.setdefault(target, set()).add(cause)
            elif action == "resume" or state == "closed":
                stops.discard(cause)
                if stops or target not in began:
                    continue
                start = began.pop(target)
                what = outage_cause(causes.pop(target, set()))
                if at > mark:
                    dates = held_up_dates(conn, target, start, at)
                    first = min([start.date(), *dates])
                    held = (
                        f"; {counted(len(dates), 'document')} held up, "
                        f"dated {min(dates)}..{max(dates)}"
                        if dates
                        else ""
                    )
                    due.append(
                        DueRun(
                            scope="nightly",
                            start=first,
                            end=at.date() + timedelta(days=1),
                            reason=f"outage of {target} {human_timestamp(start)}.."
                            f"{human_timestamp(at)}"
                            f" ({what}){held}",
                            outage_end=at,
                        )
                    )
    return due


def move_outage_mark(engine: Engine, *, to: datetime, now: datetime) -> None:
    """Outages that ended at or before ``to`` are reconciled: ``outage_windows`` looks after."""
    with engine.begin() as conn:
        moved = conn.execute(
            update(watermarks)
            .where(watermarks.c.name == OUTAGE_MARK)
            .values(value=to.isoformat(), updated_at=now)
        ).rowcount
        if not moved:
            conn.execute(
                watermarks.insert().values(name=OUTAGE_MARK, value=to.isoformat(), updated_at=now)
            )


def outage_cause(causes: set[str]) -> str:
    """What an outage was: its circuit opening, an operator's pause, or both."""
    said = {"circuit": "circuit opened", "pause": "paused by an operator"}
    return ", ".join(said[c] for c in sorted(causes)) or "circuit opened"


# The document date of each event type that has one (else the event's own time counts).
_DOCUMENT_DATES = ("invoice_date", "issued_on", "received_on", "entry_date", "posting_date")


def held_up_dates(conn: Connection, target: str, start: datetime, end: datetime) -> list[date]:
    """The document dates of the events an outage of ``target`` from ``start`` to ``end``
    held up: a delivery attempt failed during it, or the event was received before it ended
    and delivered after it began (late). An outage on the 1st delays a document of the 31st:
    the outage's run covers that date too."""
    from revbridge.codec import decode_payload
    from revbridge.core.events import EventType

    failed = (
        select(attempts.c.id)
        .where(
            attempts.c.event_id == events.c.id,
            attempts.c.started_at >= start,
            attempts.c.started_at <= end,
            func.coalesce(attempts.c.outcome, "") != "delivered",
        )
        .exists()
    )
    late = and_(deliveries.c.delivered_at >= start, events.c.received_at <= end)
    rows = conn.execute(
        select(events.c.type, events.c.payload, events.c.occurred_at)
        .join(deliveries, deliveries.c.event_id == events.c.id)
        .where(deliveries.c.target == target, or_(failed, late))
    ).all()
    dates: set[date] = set()
    for kind, payload, occurred_at in rows:
        day: date = occurred_at.date()
        try:
            data = decode_payload(EventType(kind), payload)
        except ValueError:
            data = None
        for name in _DOCUMENT_DATES:
            value = getattr(data, name, None)
            if isinstance(value, date):
                day = value
                break
        dates.add(day)
    return sorted(dates)


def run_due(
    settings: Settings,
    engine: Engine,
    *,
    now: datetime,
    reconciler: Reconciler | None = None,
    on_error: Callable[[DueRun, Exception], None] | None = None,
    on_done: Callable[[DueRun], None] | None = None,
) -> list[RunOutcome]:
    """Run every scheduled recon run that is due, and one over each outage that just ended.

    A scheduled run waits (is not run, so stays due) while a batch class's run is due or
    under way, for at most ``BATCH_WAIT`` after its fire time: the month-end run reconciles
    the revenue the month-end batch posts, not the entries the batch is about to post.

    Without ``on_error`` a failed run raises; with it, a failed run is handed to it (with the
    run that failed: scope, period, why it was due) and the next due run is tried.
    ``on_done`` is told of each run that was made.
    """
    cfg = settings.raw.recon
    reconciler = reconciler or default_reconciler(settings, engine)
    with scheduler_lock(engine) as mine:
        if not mine:
            return []  # another process is running the schedule right now
        due = due_scheduled_runs(
            engine, nightly=cfg.nightly_schedule, monthly=cfg.monthly_schedule, now=now
        ) + outage_windows(engine, now=now)
        waiting = [d for d in due if d.fired is not None and now < d.fired + BATCH_WAIT]
        if waiting and batch_run_due_or_under_way(engine, now=now):
            due = [d for d in due if d not in waiting]
        outcomes: list[RunOutcome] = []
        failed: list[DueRun] = []
        for d in due:
            try:
                outcomes.append(
                    run_recon(
                        engine,
                        reconciler,
                        scope=d.scope,
                        start=d.start,
                        end=d.end,
                        actor=SCHEDULER_ACTOR,
                        now=now,
                        trend_runs=cfg.trend_runs,
                        reason=d.reason,
                    )
                )
            except Exception as exc:
                if on_error is None:
                    raise  # the mark stays: every outage's run is due again
                failed.append(d)
                on_error(d, exc)
            else:
                if on_done is not None:
                    on_done(d)
        # Past the outages whose runs were made, not past the first whose run failed: that
        # one is due again at the next look (with those that ended after it, made twice
        # rather than one lost).
        ends = [d.outage_end for d in failed if d.outage_end is not None]
        mark = min(ends) - timedelta(microseconds=1) if ends else now
        move_outage_mark(engine, to=mark, now=now)
        return outcomes


@contextlib.contextmanager
def scheduler_lock(engine: Engine) -> Iterator[bool]:
    """Whether this process may run the schedule now: one process at a time. On PostgreSQL
    a session advisory lock, on a SQLite file an exclusive lock on a file beside it
    (``<database>.recon-schedule.lock``); both go with a crashed process. An in-memory
    SQLite database has one process: always."""
    if engine.dialect.name != "postgresql":
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield True
            return
        with _file_lock(Path(f"{database}.recon-schedule.lock")) as got:
            yield got
        return
    with engine.connect() as conn:
        got = bool(conn.execute(_TRY_LOCK, {"key": _SCHEDULER_LOCK}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(_UNLOCK, {"key": _SCHEDULER_LOCK})
                conn.commit()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` if no other process (or open) holds it."""
    with path.open("a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


RunKey = tuple[str, str, str]
"""A due run as the schedule's log names it: scope, period (``start..end``), reason."""


def run_key(run: DueRun) -> RunKey:
    return (run.scope, f"{run.start}..{run.end}", run.reason)


@dataclass(slots=True)
class FailingRuns:
    """The due runs that failed and are tried again at every tick, with the error last
    logged for each: during an ERP outage a run fails every minute until the ERP is back,
    and a warning every minute per run (the nightly and the month-end run: two a minute)
    buries the one line that says what is wrong. A run's failure is logged once, again only
    when its error changes, and its recovery once."""

    _logged: dict[RunKey, str] = field(default_factory=dict)
    _failures: dict[RunKey, int] = field(default_factory=dict)

    def failed(self, key: RunKey, error: str) -> bool:
        """Count a failure of ``key``; whether to log it: its first, or a new error."""
        self._failures[key] = self._failures.get(key, 0) + 1
        if self._logged.get(key) == error:
            return False
        self._logged[key] = error
        return True

    def succeeded(self, key: RunKey) -> int:
        """Forget ``key``: it ran. How many times it had failed before (0: nothing to say)."""
        self._logged.pop(key, None)
        return self._failures.pop(key, 0)


async def recon_schedule_loop(
    settings: Settings,
    engine: Engine,
    stop: asyncio.Event,
    *,
    interval: timedelta = timedelta(minutes=1),
    clock: Callable[[], datetime] | None = None,
) -> None:
    """Beside the worker: every ``interval``, run what ``run_due`` finds due (in a thread,
    as a run reads both sides with its own event loop)."""
    import structlog

    if not settings.raw.recon.run_in_worker:
        return
    log = structlog.get_logger("revbridge.recon")
    now = clock or (lambda: datetime.now(UTC))

    failing = FailingRuns()

    def failed(run: DueRun, exc: Exception) -> None:
        # Logged with the run it was, once per run and error; tried again at the next tick
        # (not yet recorded).
        error = _first_line(exc)
        if failing.failed(run_key(run), error):
            scope, period, reason = run_key(run)
            log.warning("recon_run_failed", scope=scope, period=period, reason=reason, error=error)

    def done(run: DueRun) -> None:
        if failures := failing.succeeded(run_key(run)):
            scope, period, reason = run_key(run)
            # At the failure's level: whoever saw it (the default level is WARNING) sees it end.
            log.warning(
                "recon_run_recovered", scope=scope, period=period, reason=reason, failures=failures
            )

    while not stop.is_set():
        try:
            outcomes = await asyncio.to_thread(
                run_due, settings, engine, now=now(), on_error=failed, on_done=done
            )
            for o in outcomes:
                log.info(
                    "recon_run",
                    run_id=o.run_id,
                    scope=o.report.scope,
                    period=f"{o.report.start}..{o.report.end}",
                    opened=o.opened,
                    auto_resolved=o.auto_resolved,
                    open_cases=o.open_cases,
                )
        except Exception as exc:  # finding what is due failed: logged, tried at the next tick
            log.warning("recon_schedule_failed", error=_first_line(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval.total_seconds())


def _first_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else repr(exc)


__all__ = [
    "BATCH_WAIT",
    "CaseDetail",
    "CaseView",
    "DueRun",
    "FailingRuns",
    "ReconStatus",
    "Reconciler",
    "RunOutcome",
    "SignoffView",
    "accept_case",
    "batch_run_due_or_under_way",
    "default_reconciler",
    "due_scheduled_runs",
    "investigate_case",
    "list_cases",
    "move_outage_mark",
    "outage_windows",
    "period_bounds",
    "recon_schedule_loop",
    "recon_status",
    "report_for",
    "resolve_case",
    "run_due",
    "run_recon",
    "scheduler_lock",
    "show_case",
    "sign_off",
]
