"""Operator actions: dead letters, replay, pause and resume, batch runs, traces. Every action is
audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, case, func, not_, select, update

from revbridge.config import Settings
from revbridge.core.events import SPECS, EventType
from revbridge.core.timestamps import human_timestamp
from revbridge.engine.batch import BATCH_COUNTS, BatchReport
from revbridge.engine.queue import LATEST_WINS
from revbridge.engine.targets_state import TargetState, target_states, upsert_target
from revbridge.engine.worker import TARGET_OF
from revbridge.errors import RevbridgeError
from revbridge.store.ledger import scheduled_delivery
from revbridge.store.schema import (
    UTCDateTime,
    attempts,
    audit_log,
    deliveries,
    events,
    external_refs,
    targets,
)

TARGET_NAMES = ("erp", "salesforce")


class NotFound(RevbridgeError):
    """The event, delivery or target asked for does not exist."""


def _audit(conn: Any, **row: Any) -> None:
    conn.execute(audit_log.insert().values(**row))


def _dead_letter(event_type: str | None) -> ColumnElement[bool]:
    cond = deliveries.c.state == "dead_letter"
    return and_(cond, events.c.type == event_type) if event_type else cond


_waiting = deliveries.alias("waiting")
# How many deliveries are parked behind a dead letter: replaying it releases them.
_PARKED_BEHIND = (
    select(func.count())
    .where(
        and_(
            _waiting.c.state == "parked",
            _waiting.c.target == deliveries.c.target,
            _waiting.c.parked_on == events.c.subject_ref,
        )
    )
    .scalar_subquery()
    .label("parked_behind")
)


_newer = events.alias("newer")
_newer_delivery = deliveries.alias("newer_delivery")
# A dead letter of a record's latest state (a customer, its credit position) that a newer
# version, delivered since to the same target, supersedes: the record's state in the target is
# already newer, so there is nothing left to deliver; a replay closes it as superseded.
_SUPERSEDED_BY = (
    select(func.min(_newer.c.id))
    .select_from(
        _newer.join(
            _newer_delivery,
            and_(
                _newer_delivery.c.event_id == _newer.c.id,
                _newer_delivery.c.target == deliveries.c.target,
                _newer_delivery.c.state == "delivered",
            ),
        )
    )
    .where(
        and_(
            events.c.type.in_(sorted(LATEST_WINS)),
            _newer.c.subject_ref == events.c.subject_ref,
            _newer.c.type == events.c.type,
            _newer.c.occurred_at > events.c.occurred_at,
        )
    )
    .scalar_subquery()
    .label("superseded_by")
)


def list_dead_letters(
    engine: Engine, *, event_type: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The first ``limit`` dead letters, oldest event first (``count_dead_letters`` says how
    many there are in all). ``superseded_by``: the newer version of the same record delivered
    since to the same target, if any (a replay then closes the dead letter as superseded)."""
    query = (
        select(
            events.c.id,
            events.c.type,
            events.c.source_id,
            events.c.subject_ref,
            events.c.received_at,
            deliveries.c.target,
            deliveries.c.attempts,
            deliveries.c.last_error,
            deliveries.c.updated_at,
            _PARKED_BEHIND,
            _SUPERSEDED_BY,
        )
        .join(deliveries, deliveries.c.event_id == events.c.id)
        .where(_dead_letter(event_type))
        .order_by(events.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def count_dead_letters(engine: Engine, *, event_type: str | None = None) -> int:
    """How many dead letters there are (of ``event_type``): what `dlq replay --all` replays."""
    with engine.connect() as conn:
        n: int = conn.execute(
            select(func.count())
            .select_from(deliveries.join(events, events.c.id == deliveries.c.event_id))
            .where(_dead_letter(event_type))
        ).scalar_one()
    return n


def trace(engine: Engine, event_id: int) -> dict[str, Any]:
    """Everything about one event: the source record, the delivery, each attempt, audit."""
    with engine.connect() as conn:
        ev = conn.execute(select(events).where(events.c.id == event_id)).mappings().first()
        if ev is None:
            raise NotFound(f"no event {event_id}")
        dl = (
            conn.execute(select(deliveries).where(deliveries.c.event_id == event_id))
            .mappings()
            .first()
        )
        tries = (
            conn.execute(
                select(attempts)
                .where(attempts.c.event_id == event_id)
                .order_by(attempts.c.attempt_no)
            )
            .mappings()
            .all()
        )
        ref = None
        if dl is not None:
            # The record's id in the target: as remembered (whichever event created it), else
            # as this delivery left it (a write-back to Salesforce is not remembered).
            ref = (
                conn.execute(
                    select(external_refs.c.external_id).where(
                        and_(
                            external_refs.c.subject_ref == ev["subject_ref"],
                            external_refs.c.target == dl["target"],
                        )
                    )
                ).scalar()
                or dl["external_ref"]
            )
        audit = (
            conn.execute(
                select(audit_log)
                .where(
                    and_(audit_log.c.entity_type == "event", audit_log.c.entity_id == str(event_id))
                )
                .order_by(audit_log.c.id)
            )
            .mappings()
            .all()
        )
        behind = _parked_behind(conn, ev["subject_ref"], dl["target"]) if dl else 0
    made = dl["attempts"] if dl else 0
    return {
        "event": dict(ev),
        "delivery": dict(dl) if dl else None,
        "attempts": _every_attempt(event_id, [dict(a) for a in tries], made, audit),
        "target_record": ref,
        "parked_behind": behind,
        "audit": [dict(a) for a in audit],
    }


def _parked_behind(conn: Any, subject_ref: str | None, target: str) -> int:
    """How many deliveries to ``target`` are parked waiting for ``subject_ref``: delivering
    it (a replay of its dead letter) releases them."""
    if subject_ref is None:
        return 0
    n: int = conn.execute(
        select(func.count())
        .select_from(deliveries)
        .where(
            and_(
                deliveries.c.state == "parked",
                deliveries.c.target == target,
                deliveries.c.parked_on == subject_ref,
            )
        )
    ).scalar_one()
    return n


def _every_attempt(
    event_id: int, recorded: list[dict[str, Any]], made: int, audit: Sequence[Any]
) -> list[dict[str, Any]]:
    """Every attempt of an event, numbered: the recorded ones, and one entry for each attempt
    counted (``made``) whose outcome was never written (its worker's lease expired, or a
    circuit probe was let go unsent), with the lease expiry's time and reason when the audit
    log has it."""
    seen = {a["attempt_no"] for a in recorded}
    expiries = [a for a in audit if a["action"] == "lease_expired"]
    missing = [n for n in range(1, made + 1) if n not in seen]
    for n, expiry in zip(missing, expiries + [None] * len(missing), strict=False):
        recorded.append(
            {
                "id": None,
                "event_id": event_id,
                "attempt_no": n,
                "worker_id": None,
                "started_at": None,
                "finished_at": expiry["at"] if expiry else None,
                "outcome": "lease_expired" if expiry else "unrecorded",
                "error": expiry["reason"]
                if expiry
                else "no outcome written (a circuit probe let go unsent, or a lost lease)",
                "external_ref": None,
            }
        )
    return sorted(recorded, key=lambda a: (a["attempt_no"], a.get("id") or 0))


def replay(
    engine: Engine,
    *,
    now: datetime,
    actor: str,
    reason: str,
    event_id: int | None = None,
    event_type: str | None = None,
) -> int:
    """Put dead letters back in line, as new: attempts reset, due now (an attempt that was
    made may have landed: the next one looks the record up first). Returns how many."""
    if not reason.strip():
        raise RevbridgeError("a replay needs a reason for the audit log")
    with engine.begin() as conn:
        query = (
            select(deliveries.c.event_id)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.state == "dead_letter")
        )
        if event_id is not None:
            query = query.where(deliveries.c.event_id == event_id)
        if event_type is not None:
            query = query.where(events.c.type == event_type)
        ids = [r.event_id for r in conn.execute(query)]
        if event_id is not None and not ids:
            other = conn.execute(
                select(events.c.type)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(and_(events.c.id == event_id, _dead_letter(None)))
            ).scalar()
            if other is not None:  # a dead letter, of another type than asked
                raise NotFound(
                    f"event {event_id} is a dead letter of type {other}, not {event_type}"
                )
            raise NotFound(f"event {event_id} is not in the dead-letter queue")
        if not ids:
            return 0
        conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id.in_(ids))
            .values(
                state="pending",
                # A fresh count of attempts, but one that was made may have reached the system
                # (its answer lost, then the look-up failed too): from 1, the next attempt is
                # the second, and looks the record up before it creates anything.
                attempts=case((deliveries.c.attempts > 0, 1), else_=0),
                due_at=now,
                updated_at=now,
                lease_expires_at=None,
            )
        )
        conn.execute(
            audit_log.insert(),
            [
                {
                    "at": now,
                    "actor": actor,
                    "action": "replay",
                    "entity_type": "event",
                    "entity_id": str(i),
                    "from_state": "dead_letter",
                    "to_state": "pending",
                    "reason": reason,
                }
                for i in ids
            ],
        )
    return len(ids)


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseChange:
    """What `dr pause` or `dr resume` did to a target: ``running`` or ``paused``, before and
    after (the same when it already was), and the reason of the pause that stands."""

    target: str
    from_state: str
    to_state: str
    paused_reason: str | None

    @property
    def changed(self) -> bool:
        return self.from_state != self.to_state


def set_paused(
    engine: Engine, name: str, *, paused: bool, now: datetime, actor: str, reason: str
) -> PauseChange:
    """Pause or resume ``name``, audited with the state it really was in. Pausing a paused
    target (or resuming a running one) is a no-op: the first pause's reason stands and
    nothing is audited, since nothing changed; the result says so."""
    if name not in TARGET_NAMES:
        raise NotFound(f"unknown target {name!r}; known: {', '.join(TARGET_NAMES)}")
    with engine.begin() as conn:
        # Locked on PostgreSQL: two operators pausing at once audit one transition, not two.
        row = conn.execute(
            select(targets.c.paused, targets.c.paused_reason)
            .where(targets.c.name == name)
            .with_for_update()
        ).first()
        was_paused = bool(row.paused) if row is not None else False
        before = "paused" if was_paused else "running"
        after = "paused" if paused else "running"
        if was_paused == paused:
            return PauseChange(
                target=name,
                from_state=before,
                to_state=after,
                paused_reason=row.paused_reason if row is not None and was_paused else None,
            )
        upsert_target(conn, name, now, paused=paused, paused_reason=reason if paused else None)
        _audit(
            conn,
            at=now,
            actor=actor,
            action="pause" if paused else "resume",
            entity_type="target",
            entity_id=name,
            from_state=before,
            to_state=after,
            reason=reason,
        )
    return PauseChange(
        target=name, from_state=before, to_state=after, paused_reason=reason if paused else None
    )


def dr_status(engine: Engine, now: datetime) -> dict[str, Any]:
    """Per target: paused, circuit, the system's own pause (a 429's Retry-After, while it
    lasts), the backlog by state, what is scheduled, and the oldest undelivered age.

    The backlog is what is due or overdue: ``pending`` (due now, or retrying after a failure),
    ``parked`` and ``in_flight``. Batch-class deliveries waiting for their class's run
    (``scheduled``) are counted apart and do not age the backlog: at month-end the revenue
    items waiting for the 1st are on time, not weeks late. So are deliveries ``held`` for a
    person's decision (a likely duplicate customer): they wait on the review queue, not on
    the ERP.
    """
    out: dict[str, Any] = {}
    open_states = ("pending", "parked", "in_flight")
    with engine.connect() as conn:
        state_rows = {r.name: r for r in conn.execute(select(targets))}
        for name in TARGET_NAMES:
            due = and_(
                deliveries.c.target == name,
                deliveries.c.state.in_(open_states),
                not_(scheduled_delivery(now)),
            )
            backlog: dict[str, int] = dict(
                conn.execute(
                    select(deliveries.c.state, func.count()).where(due).group_by(deliveries.c.state)
                ).all()
            )
            scheduled = conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(and_(deliveries.c.target == name, scheduled_delivery(now)))
            ).scalar_one()
            held = conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(and_(deliveries.c.target == name, deliveries.c.state == "held"))
            ).scalar_one()
            oldest = conn.execute(
                select(func.min(events.c.received_at))
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(due)
            ).scalar()
            oldest_dt = UTCDateTime().process_result_value(oldest, conn.dialect)
            t = state_rows.get(name)
            out[name] = {
                "paused": bool(t.paused) if t else False,
                "paused_reason": t.paused_reason if t else None,
                "circuit": t.circuit if t else "closed",
                "circuit_reason": t.circuit_reason if t and t.circuit != "closed" else None,
                "retry_after_until": _while_ahead(t.hold_until if t else None, now),
                "backlog": {s: backlog.get(s, 0) for s in open_states},
                "scheduled": scheduled,
                "held": held,
                "oldest_undelivered_age_s": round((now - oldest_dt).total_seconds(), 1)
                if oldest_dt
                else None,
            }
    return out


def _while_ahead(at: datetime | None, now: datetime) -> datetime | None:
    """``at`` while it is still to come, else None."""
    return at if at is not None and at > now else None


def _why_not_now(state: TargetState | None, target: str, now: datetime) -> str | None:
    """Why a batch for ``target`` must not call it now (paused, down, throttled), or None."""
    if state is None:
        return None
    if state.paused:
        return f"{target} is paused: resume it first (`revbridge dr resume {target}`)"
    if state.circuit != "closed":
        return (
            f"{target}'s circuit is {state.circuit} (it is down): the batch waits for it; "
            f"`revbridge dr drain {target}` probes it now"
        )
    if state.hold_until is not None and state.hold_until > now:
        return f"{target} asked for a pause until {human_timestamp(state.hold_until)} (429)"
    return None


async def run_batches_now(
    settings: Settings,
    engine: Engine,
    classes: list[str],
    *,
    now: datetime,
    actor: str,
    reason: str,
) -> list[BatchReport]:
    """`revbridge batch run`: each batch class now, ahead of its schedule.

    A class whose target is paused, down (circuit not closed) or throttled is not run, and its
    report says why: the operator's pause and the breaker bind this command as they bind the
    workers. What became of each item is written and the calls counted before it returns,
    alerts are checked (a failed batch alerts), and each class's run is in the audit log.
    """
    from revbridge.services.targets import build_worker

    worker = build_worker(settings, engine)
    runner = worker.batch
    assert runner is not None
    shared = target_states(engine)
    reports: list[BatchReport] = []
    try:
        for event_type in classes:
            target = TARGET_OF[SPECS[EventType(event_type)].direction]
            why = _why_not_now(shared.get(target), target, now)
            if why is not None:
                reports.append(BatchReport(event_type=event_type, target=target, skipped=why))
                continue
            reports.append(await runner.run(event_type, now=now, force=True))
        worker.write_outcomes()
        worker.flush_api_calls(now)
    finally:
        for t in worker.targets.values():
            await t.port.close()
    with engine.begin() as conn:
        for r in reports:
            done = ", ".join(f"{k} {getattr(r, k)}" for k in BATCH_COUNTS)
            _audit(
                conn,
                at=now,
                actor=actor,
                action="batch_run",
                entity_type="batch_class",
                entity_id=r.event_type,
                to_state="skipped" if r.skipped else "ran",
                reason=f"{reason} ({r.skipped or done})",
            )
    worker.check_alerts(force=True)
    return reports
