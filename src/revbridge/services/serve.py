"""What ``revbridge serve`` runs beside the HTTP edge, and the read models its pages show.

* ``InProcessRunner``: on the embedded default (one host, SQLite) the delivery worker (which
  also runs the batch scheduler) and the ERP capture loop run as asyncio tasks in the server's
  event loop, started and stopped with the app's lifespan. With PostgreSQL, ``--api-only``
  leaves delivery to separate ``revbridge worker`` processes.
* read models (``overview``, ``throughput``, ``parked``, ``search_events``): plain queries
  over the ledger, shared by the console, the JSON API and the metrics collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select

from revbridge.clock import SystemClock
from revbridge.config import Settings
from revbridge.services.cost import cost_for
from revbridge.services.operations import dr_status
from revbridge.store.ledger import Ledger, status_state
from revbridge.store.schema import UTCDateTime, deliveries, events

log = logging.getLogger(__name__)


def _hour(engine: Engine, column: Any) -> Any:
    if engine.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:00", column)
    return func.to_char(func.date_trunc("hour", column), "YYYY-MM-DD HH24:00")


def throughput(engine: Engine, now: datetime, *, hours: int = 24) -> list[tuple[str, int]]:
    """Deliveries completed per hour over the last ``hours`` (oldest first, gaps as zero)."""
    start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    bucket = _hour(engine, deliveries.c.delivered_at)
    with engine.connect() as conn:
        counts: dict[str, int] = dict(
            conn.execute(
                select(bucket, func.count())
                .where(deliveries.c.delivered_at >= start)
                .group_by(bucket)
            ).all()
        )
    out = []
    for i in range(hours):
        label = (start + timedelta(hours=i)).strftime("%Y-%m-%d %H:00")
        out.append((label, int(counts.get(label, 0))))
    return out


def overview(settings: Settings, ledger: Ledger, now: datetime) -> dict[str, Any]:
    """The console's first page: flows, backlog per target, circuits, calls against budget,
    the capture streams' health."""
    from revbridge.services.capture import capture_health

    circuits = dr_status(ledger.engine, now)
    paused = {name for name, t in circuits.items() if t["paused"]}
    stale_s = settings.raw.alerts.capture_stale_s
    return {
        "status": ledger.status(now),
        "targets": circuits,
        "cost": cost_for(ledger.engine, settings, now),
        "throughput": throughput(ledger.engine, now),
        "capture": capture_panel(capture_health(ledger.engine), now, paused, stale_s),
    }


def capture_states(settings: Settings, engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """``capture_panel`` of every stream, reading which sides are paused: what `revbridge
    status` prints, as the console and the alerts see it (a paused side is not failing)."""
    from revbridge.engine.targets_state import target_states
    from revbridge.services.capture import capture_health

    paused = {name for name, t in target_states(engine).items() if t.paused}
    stale_s = settings.raw.alerts.capture_stale_s
    return capture_panel(capture_health(engine), now, paused, stale_s)


def capture_panel(
    streams: list[dict[str, Any]], now: datetime, paused: set[str], stale_s: float | None
) -> list[dict[str, Any]]:
    """``capture_health`` as the console shows it: each stream with the age of its last
    success, how long it has been failing, and a state. ``failing`` from the first failed
    round (the alert waits ``capture_failing_s``; a person looking wants to know now);
    ``stale`` when ``[alerts] capture_stale_s`` is set and the last success is older;
    ``paused`` when an operator paused its side (its capture is skipped on purpose)."""
    out = []
    for c in streams:
        ok, since = c["last_ok_at"], c["failing_since"]
        age_s = (now - ok).total_seconds() if ok else None
        if c["stream"].split(":", 1)[0] in paused:
            state = "paused"
        elif since is not None:
            state = "failing"
        elif stale_s is not None and age_s is not None and age_s >= stale_s:
            state = "stale"
        else:
            state = "ok"
        failing_for_s = (now - since).total_seconds() if since else None
        out.append(c | {"age_s": age_s, "failing_for_s": failing_for_s, "state": state})
    return out


def parked(engine: Engine, *, limit: int = 200) -> list[dict[str, Any]]:
    """Parked and held deliveries with what each waits for: a record that must reach the
    target first, or a review item a person must decide (``review:N``, state ``held``)."""
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    events.c.id,
                    events.c.type,
                    events.c.subject_ref,
                    deliveries.c.target,
                    deliveries.c.state,
                    deliveries.c.parked_on,
                    deliveries.c.updated_at,
                )
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(deliveries.c.state.in_(("parked", "held")))
                .order_by(events.c.id)
                .limit(limit)
            )
        ]


def search_events(engine: Engine, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Events whose id, source record id, subject, customer or key matches ``query``."""
    q = query.strip()
    if not q:
        return []
    like = f"%{q}%"
    cond = or_(
        events.c.source_id == q,
        events.c.subject_ref.like(like),
        events.c.customer_ref == q,
        events.c.idempotency_key == q,
    )
    if q.isdigit():
        cond = or_(cond, events.c.id == int(q))
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    events.c.id,
                    events.c.type,
                    events.c.source,
                    events.c.source_id,
                    events.c.subject_ref,
                    events.c.received_at,
                    deliveries.c.target,
                    deliveries.c.state,
                )
                .join(deliveries, deliveries.c.event_id == events.c.id, isouter=True)
                .where(cond)
                .order_by(events.c.id.desc())
                .limit(limit)
            )
        ]


def backlog(engine: Engine, now: datetime) -> list[tuple[str, str, int, float]]:
    """(target, state, count, oldest age in seconds) for undelivered deliveries. Batch items
    waiting for their class's run are their own state, ``scheduled``, as in `dr status`: not
    pending (the pending age alerts on what is late, and they are not)."""
    state = status_state(now)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                deliveries.c.target,
                state,
                func.count(),
                func.min(events.c.received_at),
            )
            .join(events, events.c.id == deliveries.c.event_id)
            .where(
                deliveries.c.state.in_(("pending", "parked", "held", "in_flight", "dead_letter"))
            )
            .group_by(deliveries.c.target, state)
        ).all()
        out = []
        for target, state, n, oldest in rows:
            dt = UTCDateTime().process_result_value(oldest, conn.dialect)
            out.append((target, state, int(n), (now - dt).total_seconds() if dt else 0.0))
    return out


# --------------------------------------------------------------------------- in-process


@dataclass
class InProcessRunner:
    """The worker (deliveries and batch schedule), ERP capture and the reconciliation schedule
    as tasks in this loop."""

    settings: Settings
    ledger: Ledger
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    worker: Any = None

    async def start(self) -> None:
        from revbridge.services.targets import build_worker

        self.worker = build_worker(self.settings, self.ledger.engine)
        self.tasks.append(asyncio.create_task(self.worker.run_forever(self.stop), name="worker"))
        self.tasks.append(asyncio.create_task(self._capture_loop(), name="capture"))
        from revbridge.services.recon import recon_schedule_loop

        # The nightly and month-end reconciliations, and one over each ERP outage that ended
        # (``[recon] run_in_worker``), as `revbridge worker` runs them.
        self.tasks.append(
            asyncio.create_task(
                recon_schedule_loop(self.settings, self.ledger.engine, self.stop),
                name="recon-schedule",
            )
        )
        log.info("in-process worker %s started", self.worker.worker_id)

    def wake(self) -> None:
        """New events were stored: let the worker look now instead of at its next poll."""
        if self.worker is not None:
            self.worker.wakeup.set()

    async def _capture_loop(self) -> None:
        from revbridge.services.capture import capture_failure, capture_once, source_for
        from revbridge.services.mdm_sync import ownership_from

        source = source_for(self.worker.targets["erp"].port)
        if source is None:
            return
        while not self.stop.is_set():
            try:
                result = await capture_once(
                    source,
                    self.ledger,
                    self.settings.policy,
                    ownership=ownership_from(self.settings),
                )
                if result.ingest.accepted:
                    self.wake()
            except Exception as exc:  # the ERP is down or slow; the breaker handles delivery
                log.warning("%s", capture_failure(source, exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.stop.wait(), timeout=self.settings.raw.erp.capture_interval_s
                )

    async def close(self, timeout_s: float = 30) -> None:
        """Graceful: stop claiming, let the round in flight finish, close the connectors."""
        self.stop.set()
        if self.worker is not None:
            self.worker.wakeup.set()
        if self.tasks:
            _done, pending = await asyncio.wait(self.tasks, timeout=timeout_s)
            for t in pending:
                t.cancel()
        if self.worker is not None:
            for t in self.worker.targets.values():
                with contextlib.suppress(Exception):
                    await t.port.close()


def now() -> datetime:
    return SystemClock().now()
