"""The engine's reconciliation schedule: the nightly and month-end runs fire once per
schedule, and an ERP outage is reconciled once the circuit closes again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from revbridge.config import parse_config
from revbridge.engine.targets_state import record_circuit
from revbridge.recon.period import PeriodRecon, reconcile_period
from revbridge.services.operations import set_paused
from revbridge.services.recon import (
    due_scheduled_runs,
    move_outage_mark,
    outage_windows,
    recon_schedule_loop,
    run_due,
)
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries, events
from revbridge.store.tables_recon import recon_runs
from tests.unit.recon.sides import store_of

NIGHTLY, MONTHLY = "0 2 * * *", "0 3 1 * *"


def _reconciler(ledger: Ledger, tmp: Path):
    settings = parse_config({}, None, tmp)

    def reconcile(scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        store = store_of([], [])
        try:
            return reconcile_period(
                settings, ledger.engine, scope=scope, start=start, end=end, refresh=False,
                store=store,
            )  # fmt: skip
        finally:
            store.close()

    return reconcile


def _runs(ledger: Ledger) -> list[tuple[str, date, date, str]]:
    with ledger.engine.connect() as conn:
        return [
            (r.scope, r.period_start, r.period_end, r.actor)
            for r in conn.execute(select(recon_runs).order_by(recon_runs.c.id))
        ]


def test_the_nightly_and_month_end_runs_fire_once_per_schedule(
    ledger: Ledger, tmp_path: Path
) -> None:
    """On the 1st after 03:00 both runs are due (yesterday, last month); once run, neither is
    due again until the next fire time, when only the nightly one is."""
    settings = parse_config({"store": {"url": "sqlite://"}}, None, tmp_path)
    first = datetime(2026, 11, 1, 3, 30, tzinfo=UTC)
    due = due_scheduled_runs(ledger.engine, nightly=NIGHTLY, monthly=MONTHLY, now=first)
    assert [(d.scope, d.start, d.end) for d in due] == [
        ("nightly", date(2026, 10, 31), date(2026, 11, 1)),
        ("monthly", date(2026, 10, 1), date(2026, 11, 1)),
    ]
    run_due(settings, ledger.engine, now=first, reconciler=_reconciler(ledger, tmp_path))
    assert (
        due_scheduled_runs(
            ledger.engine, nightly=NIGHTLY, monthly=MONTHLY, now=first + timedelta(hours=5)
        )
        == []
    )
    next_night = datetime(2026, 11, 2, 2, 1, tzinfo=UTC)
    due = due_scheduled_runs(ledger.engine, nightly=NIGHTLY, monthly=MONTHLY, now=next_night)
    assert [(d.scope, d.start) for d in due] == [("nightly", date(2026, 11, 1))]
    assert {r[3] for r in _runs(ledger)} == {"recon-scheduler"}


def test_an_erp_outage_is_reconciled_once_its_circuit_closes(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The ERP's circuit open from the 3rd to the 5th: after it closes, one run covers the 3rd
    to the 5th; the next look finds nothing new."""
    opened = datetime(2026, 11, 3, 22, tzinfo=UTC)
    closed = datetime(2026, 11, 5, 8, tzinfo=UTC)
    record_circuit(ledger.engine, "erp", state="open", failures=5, now=opened)
    assert outage_windows(ledger.engine, now=opened + timedelta(hours=1)) == []
    record_circuit(
        ledger.engine, "erp", state="half_open", failures=5, now=closed - timedelta(minutes=1)
    )
    record_circuit(ledger.engine, "erp", state="closed", failures=0, now=closed)
    (due,) = outage_windows(ledger.engine, now=closed + timedelta(minutes=1))
    assert (due.scope, due.start, due.end) == ("nightly", date(2026, 11, 3), date(2026, 11, 6))
    assert "outage of erp" in due.reason
    move_outage_mark(ledger.engine, to=closed + timedelta(minutes=1), now=closed)  # its run made
    assert outage_windows(ledger.engine, now=closed + timedelta(minutes=2)) == []


def test_a_planned_downtime_is_reconciled_once_the_target_resumes(
    ledger: Ledger, tmp_path: Path
) -> None:
    """`dr pause erp` on the 3rd, `dr resume erp` on the 4th: one run covers the 3rd and the
    4th, like a circuit outage; while the ERP stays paused nothing is due."""
    paused = datetime(2026, 11, 3, 20, tzinfo=UTC)
    resumed = datetime(2026, 11, 4, 6, tzinfo=UTC)
    set_paused(ledger.engine, "erp", paused=True, now=paused, actor="kim", reason="upgrade")
    assert outage_windows(ledger.engine, now=paused + timedelta(hours=1)) == []
    set_paused(ledger.engine, "erp", paused=False, now=resumed, actor="kim", reason="done")
    (due,) = outage_windows(ledger.engine, now=resumed + timedelta(minutes=1))
    assert (due.scope, due.start, due.end) == ("nightly", date(2026, 11, 3), date(2026, 11, 5))
    assert "outage of erp" in due.reason
    assert "paused by an operator" in due.reason
    move_outage_mark(ledger.engine, to=resumed + timedelta(minutes=1), now=resumed)
    assert outage_windows(ledger.engine, now=resumed + timedelta(minutes=2)) == []


def test_an_outage_run_that_failed_is_due_again_and_made_once_it_works(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The outage's run fails (the ERP answers, then drops the read): it is due again at the
    next look, not lost with the mark; once made, it is not due again."""
    settings = parse_config({"store": {"url": str(ledger.engine.url)}}, None, tmp_path)
    opened = datetime(2026, 11, 3, 22, tzinfo=UTC)
    closed = datetime(2026, 11, 4, 8, tzinfo=UTC)
    record_circuit(ledger.engine, "erp", state="open", failures=5, now=opened)
    record_circuit(ledger.engine, "erp", state="closed", failures=0, now=closed)
    works = _reconciler(ledger, tmp_path)
    down = [True]

    def reconciler(scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        if down[0] and (start, end) == (date(2026, 11, 3), date(2026, 11, 5)):  # the outage's
            raise RuntimeError("502 Bad Gateway")
        return works(scope, start, end, refresh)

    failed: list[str] = []
    at = closed + timedelta(minutes=1)
    run_due(
        settings, ledger.engine, now=at, reconciler=reconciler,
        on_error=lambda d, exc: failed.append(d.reason),
    )  # fmt: skip
    (reason,) = failed
    assert "outage of erp" in reason
    (due,) = outage_windows(ledger.engine, now=at + timedelta(minutes=1))
    assert due.reason == reason
    down[0] = False
    run_due(settings, ledger.engine, now=at + timedelta(minutes=1), reconciler=reconciler)
    assert [r for r in _runs(ledger) if r[2] == date(2026, 11, 5)] == [
        ("nightly", date(2026, 11, 3), date(2026, 11, 5), "recon-scheduler")
    ]
    assert outage_windows(ledger.engine, now=at + timedelta(minutes=2)) == []


def test_a_pause_overlapping_a_circuit_outage_is_one_window_until_both_end(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The circuit opens on the 3rd, the operator pauses on the 4th and resumes on the 5th,
    the circuit closes on the 6th: one run, the 3rd to the 6th, due only after the close."""
    t0 = datetime(2026, 11, 3, 22, tzinfo=UTC)
    record_circuit(ledger.engine, "erp", state="open", failures=5, now=t0)
    set_paused(ledger.engine, "erp", paused=True, now=t0 + timedelta(days=1), actor="k", reason="")
    set_paused(ledger.engine, "erp", paused=False, now=t0 + timedelta(days=2), actor="k", reason="")
    assert outage_windows(ledger.engine, now=t0 + timedelta(days=2, hours=1)) == []
    record_circuit(ledger.engine, "erp", state="closed", failures=0, now=t0 + timedelta(days=3))
    (due,) = outage_windows(ledger.engine, now=t0 + timedelta(days=3, hours=1))
    assert (due.start, due.end) == (date(2026, 11, 3), date(2026, 11, 7))


async def _loop_until(
    settings: Any, ledger: Ledger, at: datetime, done: Callable[[], bool]
) -> None:
    """The schedule loop beside a worker, its clock stopped at ``at``, until ``done``."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        recon_schedule_loop(settings, ledger.engine, stop, interval=timedelta(seconds=30),
                            clock=lambda: at)
    )  # fmt: skip
    for _ in range(600):
        await asyncio.sleep(0.05)
        if done():
            break
    stop.set()
    await asyncio.wait_for(task, timeout=10)


def test_the_worker_loop_runs_what_is_due_and_stops(ledger: Ledger, tmp_path: Path) -> None:
    """The loop beside the worker runs the due reconciliations through the configured
    read-back (the fakes here) and ends when the worker stops."""
    settings = parse_config({"store": {"url": str(ledger.engine.url)}}, None, tmp_path)
    at = datetime(2026, 11, 1, 4, tzinfo=UTC)

    asyncio.run(_loop_until(settings, ledger, at, lambda: len(_runs(ledger)) == 2))
    assert [(r[0], r[1]) for r in _runs(ledger)] == [
        ("nightly", date(2026, 10, 31)),
        ("monthly", date(2026, 10, 1)),
    ]


@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
def test_only_one_process_runs_the_schedule(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """While another process holds the schedule, this one runs nothing; then it runs. On
    SQLite the lock is a file beside the database (several `revbridge worker` processes, or
    `serve` and a worker, share one file); before, every process ran every due run."""
    from revbridge.services import open_ledger
    from revbridge.services.recon import scheduler_lock

    sqlite = f"sqlite:///{tmp_path / 'hub.db'}"
    url = request.getfixturevalue("pg_url") if store == "postgresql" else sqlite
    settings = parse_config({"store": {"url": url}}, None, tmp_path)
    ledger = open_ledger(settings)
    try:
        at = datetime(2026, 11, 1, 4, tzinfo=UTC)
        reconciler = _reconciler(ledger, tmp_path)
        with scheduler_lock(ledger.engine) as held:
            assert held
            assert run_due(settings, ledger.engine, now=at, reconciler=reconciler) == []
        assert len(run_due(settings, ledger.engine, now=at, reconciler=reconciler)) == 2
    finally:
        ledger.engine.dispose()


def test_a_failed_scheduled_run_is_logged_with_its_scope_and_period(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails (the ERP said 429) is logged naming the run: scope and period; the
    other due run still runs, and the failed one is due again at the next tick."""
    import structlog

    import revbridge.services.recon as recon_services

    settings = parse_config({"store": {"url": str(ledger.engine.url)}}, None, tmp_path)
    at = datetime(2026, 11, 1, 4, tzinfo=UTC)
    works = _reconciler(ledger, tmp_path)

    def reconciler(scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        if scope == "monthly":
            raise RuntimeError("429 Too Many Requests\nRetry-After: 60")
        return works(scope, start, end, refresh)

    monkeypatch.setattr(recon_services, "default_reconciler", lambda s, e: reconciler)

    with structlog.testing.capture_logs() as logs:
        asyncio.run(_loop_until(settings, ledger, at, lambda: bool(_runs(ledger))))
    failed = [e for e in logs if e["event"] == "recon_run_failed"]
    assert failed == [
        {
            "event": "recon_run_failed",
            "log_level": "warning",
            "scope": "monthly",
            "period": "2026-10-01..2026-11-01",
            "reason": f"schedule {MONTHLY}",
            "error": "429 Too Many Requests",
        }
    ]
    assert [(r[0], r[1]) for r in _runs(ledger)] == [("nightly", date(2026, 10, 31))]
    due = due_scheduled_runs(ledger.engine, nightly=NIGHTLY, monthly=MONTHLY, now=at)
    assert [d.scope for d in due] == ["monthly"]


def _revenue_scheduled_for_the_1st(ledger: Ledger) -> None:
    """Revenue captured on October 31st: batch deliveries due on November 1st, 03:00."""
    import json

    from revbridge.clock import ManualClock
    from revbridge.core.policy import build_policy
    from revbridge.generate import generate_events
    from revbridge.services.ingest import ingest_lines

    revenue = [e for e in generate_events(200, seed=2) if e["type"] == "revenue.recognized"]
    assert revenue
    ingest_lines(
        ledger,
        [json.dumps(e).encode() for e in revenue],
        policy=build_policy(),
        origin="t",
        clock=ManualClock(datetime(2026, 10, 31, 18, tzinfo=UTC)),
    )


def test_the_month_end_run_waits_for_the_revenue_batch_of_its_fire_time(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The month-end revenue batch and the month-end run both fire on the 1st at 03:00:
    while the batch's items are due and not yet taken, the scheduled runs wait (and stay
    due); once the batch has delivered them, they run."""
    settings = parse_config({"store": {"url": "sqlite://"}}, None, tmp_path)
    _revenue_scheduled_for_the_1st(ledger)
    reconciler = _reconciler(ledger, tmp_path)
    fired = datetime(2026, 11, 1, 3, tzinfo=UTC)
    assert run_due(settings, ledger.engine, now=fired + timedelta(seconds=30),
                   reconciler=reconciler) == []  # fmt: skip
    assert _runs(ledger) == []
    with ledger.engine.begin() as conn:  # the batch ran
        conn.execute(update(deliveries).values(state="delivered", attempts=1))
    at = fired + timedelta(minutes=10)
    assert len(run_due(settings, ledger.engine, now=at, reconciler=reconciler)) == 2
    assert [r[0] for r in _runs(ledger)] == ["nightly", "monthly"]


def test_the_scheduled_runs_wait_for_a_batch_two_hours_at_most(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A batch that has not run two hours after its window (no worker, the ERP paused)
    holds the runs no longer: its items are backlog by then, and the runs say so."""
    from revbridge.services.recon import BATCH_WAIT

    settings = parse_config({"store": {"url": "sqlite://"}}, None, tmp_path)
    _revenue_scheduled_for_the_1st(ledger)
    late = datetime(2026, 11, 1, 3, tzinfo=UTC) + BATCH_WAIT + timedelta(minutes=1)
    reconciler = _reconciler(ledger, tmp_path)
    assert len(run_due(settings, ledger.engine, now=late, reconciler=reconciler)) == 2


def test_an_outage_run_covers_the_documents_it_held_up_and_says_what_it_was(
    ledger: Ledger, tmp_path: Path
) -> None:
    """An invoice of 31 October whose delivery failed when the ERP's circuit opened on
    1 November, delivered after it closed on the 2nd: the outage's run starts on the 31st, not
    on the 1st, and its reason says the circuit opened (no operator paused anything)."""
    import json

    from revbridge.core.policy import build_policy
    from revbridge.generate import generate_events
    from revbridge.services.ingest import ingest_lines
    from revbridge.store.schema import attempts

    invoice = next(e for e in generate_events(20, seed=7) if e["type"] == "invoice.posted")
    invoice["data"] = dict(invoice["data"], invoice_date="2026-10-31", due_date="2026-11-30")
    received = datetime(2026, 10, 31, 23, 50, tzinfo=UTC)
    result = ingest_lines(ledger, [json.dumps(invoice).encode()], policy=build_policy(), origin="t")
    assert result.rejected == 0
    opened = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
    closed = datetime(2026, 11, 2, 9, tzinfo=UTC)
    with ledger.engine.begin() as conn:
        event_id, target = conn.execute(select(deliveries.c.event_id, deliveries.c.target)).one()
        conn.execute(
            attempts.insert().values(event_id=event_id, attempt_no=1, worker_id="w",
                                     started_at=opened, finished_at=opened, outcome="error",
                                     error="503")
        )  # fmt: skip
        conn.execute(
            update(deliveries).values(state="delivered", delivered_at=closed + timedelta(minutes=5))
        )
        conn.execute(update(events).values(received_at=received))
    record_circuit(ledger.engine, target, state="open", failures=5, now=opened)
    record_circuit(ledger.engine, target, state="closed", failures=0, now=closed)
    (due,) = outage_windows(ledger.engine, now=closed + timedelta(minutes=10))
    assert (due.start, due.end) == (date(2026, 10, 31), date(2026, 11, 3))
    assert "(circuit opened)" in due.reason
    assert "paused by an operator" not in due.reason
    assert "1 document held up, dated 2026-10-31..2026-10-31" in due.reason


def test_a_run_failing_every_tick_is_logged_once_per_error_and_its_recovery_once(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During an ERP outage both due runs (nightly and month-end) failed at every tick, each
    logged: two warnings a minute. Each run's failure is logged once, again when its error
    changes, and its recovery once; it is still tried at every tick."""
    import structlog

    import revbridge.services.recon as recon_services

    settings = parse_config({"store": {"url": str(ledger.engine.url)}}, None, tmp_path)
    at = datetime(2026, 11, 1, 4, tzinfo=UTC)
    works = _reconciler(ledger, tmp_path)
    tried: dict[str, int] = {}

    def reconciler(scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        tried[scope] = tried.get(scope, 0) + 1
        if tried[scope] <= 3:
            raise RuntimeError("connection refused: the system is down")
        if tried[scope] == 4:
            raise RuntimeError("503 Service Unavailable")
        return works(scope, start, end, refresh)

    monkeypatch.setattr(recon_services, "default_reconciler", lambda s, e: reconciler)

    async def ticking() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            recon_schedule_loop(settings, ledger.engine, stop, interval=timedelta(0),
                                clock=lambda: at)
        )  # fmt: skip
        for _ in range(600):
            await asyncio.sleep(0.05)
            if len(_runs(ledger)) == 2:
                break
        stop.set()
        await asyncio.wait_for(task, timeout=10)

    with structlog.testing.capture_logs() as logs:
        asyncio.run(ticking())
    assert tried == {"nightly": 5, "monthly": 5}  # tried at every tick
    said = [
        (e["event"], e["scope"], e.get("error", e.get("failures")))
        for e in logs
        if e["event"] in ("recon_run_failed", "recon_run_recovered")
    ]
    refused = "connection refused: the system is down"
    assert said == [
        ("recon_run_failed", "nightly", refused),
        ("recon_run_failed", "monthly", refused),
        ("recon_run_failed", "nightly", "503 Service Unavailable"),
        ("recon_run_failed", "monthly", "503 Service Unavailable"),
        ("recon_run_recovered", "nightly", 4),
        ("recon_run_recovered", "monthly", 4),
    ]
    recovered = next(e for e in logs if e["event"] == "recon_run_recovered")
    assert recovered["period"] == "2026-10-31..2026-11-01"
    assert recovered["reason"] == f"schedule {NIGHTLY}"
