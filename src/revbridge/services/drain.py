"""``revbridge dr drain``: an operator delivers a target's backlog now, audited.

A drain is an explicit operator command, so it does what the worker alone would wait for:

* the target's pending real-time deliveries that wait out a retry backoff are made due now
  (each one also held back every later event of its customer); batch-class deliveries keep
  their window;
* an open circuit is probed at once (asking to drain is a reason to probe now): one delivery
  goes out as the half-open probe; if it passes the circuit closes and the backlog follows,
  if it fails the circuit opens again for a full cooldown and the drain says when the next
  probe is;
* a paused target is left alone (the pause is an operator's decision too; resume it first).

Each target drained is two ``audit_log`` rows: ``drain_started`` before anything changes
(who, when, why, the rate), so a drain cut off half-way is on record, and ``drain`` after:
what was made due, probed and delivered, and what is still waiting.

A drain at a capped rate can run for a long time (10,000 at 5 calls/s is half an hour):
``on_progress`` is told how far it is (``DrainProgress``) when a target starts, every
``progress_every`` seconds while it runs, and when it ends; the command renders it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select

from revbridge.core.durations import human_duration
from revbridge.core.timestamps import human_timestamp
from revbridge.core.wording import counted
from revbridge.engine.circuit import CircuitState
from revbridge.engine.targets_state import TargetState, claim_probe, target_states
from revbridge.engine.worker import Target, Worker
from revbridge.services.operations import TARGET_NAMES, NotFound
from revbridge.services.targets import cap_rate
from revbridge.store.schema import audit_log, deliveries


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetDrain:
    """What a drain did for one target, and what is still waiting (``waiting``: None when
    nothing stops the backlog now)."""

    target: str
    made_due: int = 0  # real-time deliveries taken out of their retry backoff
    probed: bool = False  # the circuit was open: probed at once
    circuit: str = CircuitState.CLOSED.value  # after the drain
    stats: dict[str, int] = field(default_factory=dict)
    waiting: str | None = None

    def summary(self, *, waiting: bool = True) -> str:
        """What it did, and (``waiting``) what still waits: the audit log's whole story; the
        command says what still waits once, on stderr."""
        done = ", ".join(f"{k} {v}" for k, v in self.stats.items() if v)
        parts = [
            f"made due now: {self.made_due} waiting out a backoff",
            "circuit was open: probed at once" if self.probed else "",
            done or "nothing delivered",
            f"still waiting: {self.waiting}" if self.waiting and waiting else "",
        ]
        return "; ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainProgress:
    """How far a target's drain is: ``handled`` deliveries left the line since it started
    (delivered, superseded, dead-lettered, parked, held, or back to a backoff), ``left``
    still wait in it (due now, being called, or parked behind another: each released one is
    delivered too); ``elapsed_s``: wall-clock seconds since it started."""

    target: str
    delivered: int
    handled: int
    left: int
    elapsed_s: float
    done: bool = False

    @property
    def total(self) -> int:
        return self.handled + self.left

    @property
    def rate(self) -> float:
        """Deliveries delivered a second so far (0 before the first)."""
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far; None before the pace is known."""
        if not self.left:
            return 0.0
        pace = self.handled / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return self.left / pace if pace > 0 else None


OnProgress = Callable[[DrainProgress], None]
# What leaves the line of due deliveries: each is one delivery handled.
_HANDLED = ("delivered", "superseded", "dead_lettered", "parked", "held", "retried")


async def drain(
    worker: Worker,
    names: Sequence[str] | None,
    *,
    rate: float | None,
    actor: str,
    reason: str,
    on_progress: OnProgress | None = None,
    progress_every: float = 1.0,
) -> list[TargetDrain]:
    """Drain ``names`` (every target of ``worker`` when None), one after the other, at most
    ``rate`` calls a second each (within their own budgets); one audit row per target.
    ``on_progress`` (optional) hears how far each target is, every ``progress_every``
    seconds."""
    chosen = list(names or worker.targets)
    for name in chosen:
        if name not in worker.targets:
            raise NotFound(f"unknown target {name!r}; known: {', '.join(TARGET_NAMES)}")
    if rate is not None:
        cap_rate(worker, rate)
    every = worker.targets
    cap = "no cap" if rate is None else f"at most {rate:g} calls/s"
    done: list[TargetDrain] = []
    try:
        for name in chosen:
            worker.targets = {name: every[name]}  # its counts are its own
            # Before anything changes (backoffs cut short, a probe): a drain cut off half-way
            # is still in the audit log, with who asked and why.
            _audit(worker, name, "drain_started", actor=actor, reason=f"{reason} ({cap})")
            result = await _drain_one(
                worker, every[name], actor=actor, on_progress=on_progress, every=progress_every
            )
            _audit_drain(
                worker, result, actor=actor, reason=f"{reason} ({cap}; {result.summary()})"
            )
            done.append(result)
    finally:
        worker.targets = every
    return done


async def _drain_one(
    worker: Worker,
    target: Target,
    *,
    actor: str,
    on_progress: OnProgress | None = None,
    every: float = 1.0,
) -> TargetDrain:
    engine, name, now = worker.queue.engine, target.name, worker.clock.now()
    before = target_states(engine).get(name)
    if before is not None and before.paused:
        return TargetDrain(
            target=name, circuit=before.circuit, waiting=_waiting(before, target, now)
        )
    made_due = worker.queue.hurry_retries(target=name, now=now)
    probed = (
        before is not None
        and before.circuit == CircuitState.OPEN.value
        and _has_due(worker, name, now)
        and _probe_now(worker, target, before, now, actor)
    )
    counted = worker.stats.as_dict()
    if on_progress is None:
        await worker.run_until_idle()
    else:
        await _reporting(worker, name, counted, on_progress, every)
    stats = {k: v - counted[k] for k, v in worker.stats.as_dict().items()}
    after = target_states(engine).get(name)
    return TargetDrain(
        target=name,
        made_due=made_due,
        probed=probed,
        circuit=after.circuit if after is not None else CircuitState.CLOSED.value,
        stats=stats,
        waiting=_waiting(after, target, worker.clock.now()),
    )


async def _reporting(
    worker: Worker,
    name: str,
    counted: dict[str, int],
    on_progress: OnProgress,
    every: float,
) -> None:
    """Run ``worker`` until idle, telling ``on_progress`` how far it is at the start, every
    ``every`` seconds, and at the end."""
    started = time.monotonic()

    def report(*, done: bool = False) -> None:
        now = worker.stats.as_dict()
        moved = {k: now[k] - counted[k] for k in _HANDLED}
        on_progress(
            DrainProgress(
                target=name,
                left=_left(worker, name, worker.clock.now()),
                delivered=moved["delivered"],
                handled=sum(moved.values()),
                elapsed_s=time.monotonic() - started,
                done=done,
            )
        )

    async def tick() -> None:
        while True:
            await asyncio.sleep(every)
            report()

    report()
    ticker = asyncio.create_task(tick())
    try:
        await worker.run_until_idle()
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    report(done=True)


def _has_due(worker: Worker, name: str, now: datetime) -> bool:
    """Is there a delivery due to probe with: a real-time one, or a batch item whose class
    is due (a probe claimed with nothing to send would keep the circuit half-open until its
    lease ends)?"""
    return _due(worker, name, now) > 0


def left_waiting(worker: Worker) -> list[tuple[str, int, str | None, timedelta | None]]:
    """After a run until idle: each target that still has deliveries due, how many, why
    they wait (paused, circuit open, a 429's pause; None: no reason known), and, for a
    429's pause, how long it has left."""
    now = worker.clock.now()
    shared = target_states(worker.queue.engine)
    left = []
    for name, target in worker.targets.items():
        due = _due(worker, name, now)
        if not due:
            continue
        state = shared.get(name)
        hold = max(
            (h for h in (target.hold_until, state.hold_until if state else None) if h), default=None
        )
        why = _waiting(state, target, now)
        if why is None and hold is not None and hold > now:
            why = f"{name} asked for a pause until {human_timestamp(hold)} (429)"
        if why is None:
            why = _behind(worker, name, now, due)
        left.append((name, due, why, hold - now if hold is not None and hold > now else None))
    return left


def _left(worker: Worker, name: str, now: datetime) -> int:
    """What a drain of ``name`` still has to do: due now, being called, or parked."""
    due = and_(deliveries.c.state == "pending", deliveries.c.due_at <= now)
    return _count(worker, name, or_(due, deliveries.c.state.in_(("in_flight", "parked"))))


def _due(worker: Worker, name: str, now: datetime) -> int:
    return _count(worker, name, and_(deliveries.c.state == "pending", deliveries.c.due_at <= now))


def _count(worker: Worker, name: str, where: ColumnElement[bool]) -> int:
    with worker.queue.engine.connect() as conn:
        found = conn.execute(
            select(func.count())
            .select_from(deliveries)
            .where(and_(deliveries.c.target == name, where))
        ).scalar_one()
    return int(found)


def _behind(worker: Worker, name: str, now: datetime, due: int) -> str | None:
    """Why due deliveries wait with nothing wrong with the target: each customer's events
    keep their order, so an event waits behind an earlier one of its customer that retries
    later (a backoff) or is in flight (a worker's lease)."""
    later, earlier = deliveries.alias("later"), deliveries.alias("earlier")
    blocker = and_(
        earlier.c.target == later.c.target,
        earlier.c.pattern == later.c.pattern,
        earlier.c.customer_ref == later.c.customer_ref,
        earlier.c.event_id < later.c.event_id,
        or_(
            and_(earlier.c.state == "pending", earlier.c.due_at > now),
            earlier.c.state == "in_flight",
        ),
    )
    with worker.queue.engine.connect() as conn:
        waiting, lines, next_due, leased = conn.execute(
            select(
                func.count(func.distinct(later.c.event_id)),
                func.count(func.distinct(earlier.c.event_id)),
                func.min(earlier.c.due_at).filter(earlier.c.state == "pending"),
                func.max(earlier.c.lease_expires_at).filter(earlier.c.state == "in_flight"),
            )
            .select_from(later.join(earlier, blocker))
            .where(later.c.target == name, later.c.state == "pending", later.c.due_at <= now)
        ).one()
    if not waiting:
        return None

    def within(delta: timedelta) -> str:
        return "under 1 s" if delta < timedelta(seconds=1) else human_duration(delta)

    when = []
    if next_due is not None:
        when.append(f"the first retries in {within(next_due - now)}")
    if leased is not None:
        when.append(f"a worker's lease ends in {within(max(leased - now, timedelta()))}")
    who = "they wait" if waiting >= due else f"{waiting} of them wait"
    return (
        f"{who} behind {counted(lines, 'earlier delivery', 'earlier deliveries')} of the same "
        f"customers, retrying or in flight (each customer's order is kept): "
        f"{', '.join(when)}; run again then, or `revbridge dr drain {name}` now"
    )


def _probe_now(
    worker: Worker, target: Target, state: TargetState, now: datetime, actor: str
) -> bool:
    """Take the shared half-open probe now, cooldown or not (another process may hold it:
    then it probes, and this drain follows its verdict)."""
    if not claim_probe(
        worker.queue.engine,
        target.name,
        now=now,
        cooldown=timedelta(0),
        probe_timeout=worker.settings.lease,
        actor=actor,
        reason="operator drain: probe now, before the cooldown ends",
    ):
        return False
    b = target.breaker
    b.state, b.opened_at, b.probing = CircuitState.HALF_OPEN, state.opened_at or now, False
    target.probe_until = now + worker.settings.lease
    return True


def _waiting(state: TargetState | None, target: Target, now: datetime) -> str | None:
    """Why ``target``'s backlog still waits after the drain, or None."""
    if state is None:
        return None
    if state.paused:
        return f"{target.name} is paused: resume it first (`revbridge dr resume {target.name}`)"
    if state.circuit == CircuitState.OPEN.value:
        opened = state.opened_at or now
        left = max((opened + target.breaker.cooldown - now).total_seconds(), 0.0)
        why = f" ({target.last_error})" if target.last_error else ""
        return f"{target.name}: circuit open, next probe in {left:.0f} s{why}"
    if state.circuit == CircuitState.HALF_OPEN.value:
        return f"{target.name}: circuit half-open, another process is probing it"
    if state.hold_until is not None and state.hold_until > now:
        return f"{target.name} asked for a pause until {human_timestamp(state.hold_until)} (429)"
    return None


def _audit_drain(worker: Worker, result: TargetDrain, *, actor: str, reason: str) -> None:
    _audit(
        worker,
        result.target,
        "drain",
        actor=actor,
        reason=reason,
        to_state=result.circuit,
        details=json.dumps(asdict(result)),
    )


def _audit(
    worker: Worker,
    target: str,
    action: str,
    *,
    actor: str,
    reason: str,
    to_state: str | None = None,
    details: str | None = None,
) -> None:
    with worker.queue.engine.begin() as conn:
        conn.execute(
            audit_log.insert().values(
                at=worker.clock.now(),
                actor=actor,
                action=action,
                entity_type="target",
                entity_id=target,
                to_state=to_state,
                reason=reason,
                details=details,
            )
        )
