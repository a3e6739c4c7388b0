"""`revbridge dr drain` on the real ledger (SQLite and PostgreSQL) against the fake ERP: an
operator's drain delivers what the worker alone would still wait for, and says what it did."""

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.retry import RetryPolicy
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.generate import generate_events
from revbridge.services.drain import drain
from revbridge.services.ingest import ingest_lines
from revbridge.services.operations import set_paused
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries
from revbridge.testing import FakeErp, FakeSalesforce, Faults

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REAL_TIME_TO_ERP = {"invoice.posted": "invoice", "payment.received": "payment"}


def _setup(
    ledger: Ledger, erp: FakeErp, clock: ManualClock, **settings: object
) -> tuple[Worker, list[dict]]:
    envs = list(generate_events(200, seed=2))
    lines = [json.dumps(e).encode() for e in envs]
    assert ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock).rejected == 0
    targets = {"erp": Target("erp", erp), "salesforce": Target("salesforce", FakeSalesforce())}
    w = Worker(ledger.engine, targets, clock=clock, seed=1, settings=WorkerSettings(**settings))  # type: ignore[arg-type]
    return w, envs


def _each_real_time_event_once(erp: FakeErp, envs: list[dict]) -> None:
    for e in envs:
        if e["type"] in REAL_TIME_TO_ERP:
            assert erp.count(REAL_TIME_TO_ERP[e["type"]], e["source_id"]) == 1, e["source_id"]


def _drains(ledger: Ledger) -> list[tuple[str, str, str]]:
    with ledger.engine.connect() as conn:
        return [
            (r.actor, r.entity_id, r.reason)
            for r in conn.execute(
                select(audit_log).where(audit_log.c.action == "drain").order_by(audit_log.c.id)
            )
        ]


def test_a_drain_right_after_an_outage_probes_at_once_and_delivers_the_backlog(
    ledger: Ledger,
) -> None:
    """The ERP is back but the circuit's cooldown still runs: the worker waits, a drain probes
    now, closes the circuit and delivers everything real-time, and the audit log says so."""
    clock = ManualClock(START)
    erp = FakeErp(faults=Faults(down=True))
    w, envs = _setup(ledger, erp, clock)
    asyncio.run(w.run_until_idle())
    assert w.targets["erp"].breaker.state == "open"
    erp.faults.down = False
    clock.advance(timedelta(seconds=5))  # well inside the 30 s cooldown
    assert asyncio.run(w.run_until_idle()).calls == w.stats.calls  # the worker alone waits
    calls = w.stats.calls

    (done,) = asyncio.run(drain(w, ["erp"], rate=None, actor="kim", reason="upgrade finished"))

    assert done.probed
    assert done.circuit == "closed"
    assert done.waiting is None
    assert w.stats.calls > calls
    assert done.stats["delivered"] > 0
    _each_real_time_event_once(erp, envs)
    assert erp.duplicates() == {}
    ((actor, target, reason),) = _drains(ledger)
    assert (actor, target) == ("kim", "erp")
    assert "upgrade finished" in reason
    assert "probed at once" in reason
    assert f"delivered {done.stats['delivered']}" in reason


def test_a_drain_while_the_erp_is_still_down_says_when_the_next_probe_is(ledger: Ledger) -> None:
    """One probe, it fails: the circuit opens for a full cooldown and the drain says so."""
    clock = ManualClock(START)
    erp = FakeErp(faults=Faults(down=True))
    w, _ = _setup(ledger, erp, clock)
    asyncio.run(w.run_until_idle())
    clock.advance(timedelta(seconds=5))
    calls = sum(erp.calls.values())

    done, _ = asyncio.run(drain(w, None, rate=None, actor="kim", reason="try"))

    assert sum(erp.calls.values()) == calls + 1  # one probe, not a storm
    assert done.probed
    assert done.circuit == "open"
    assert done.waiting == (
        "erp: circuit open, next probe in 30 s "
        "(TransientError: connection refused: the system is down)"
    )
    assert [t for _, t, _ in _drains(ledger)] == ["erp", "salesforce"]  # one row per target


def test_a_drain_delivers_what_waits_out_a_retry_backoff_but_not_batch_classes(
    ledger: Ledger,
) -> None:
    """After a flaky spell, a few deliveries wait an hour's backoff and hold back their
    customers' later events; a drain makes them due now. Batch classes keep their window."""
    clock = ManualClock(START)
    erp = FakeErp(faults=Faults(fail_next=3))
    w, envs = _setup(ledger, erp, clock, retry=RetryPolicy(initial=timedelta(hours=1)))
    asyncio.run(w.run_until_idle())
    with ledger.engine.connect() as conn:
        waiting = conn.execute(
            select(deliveries.c.event_id).where(
                deliveries.c.target == "erp",
                deliveries.c.pattern == "realtime",
                deliveries.c.state == "pending",
            )
        ).all()
        batch_due = dict(
            conn.execute(
                select(deliveries.c.event_id, deliveries.c.due_at).where(
                    deliveries.c.pattern == "batch", deliveries.c.state == "pending"
                )
            ).all()
        )
    assert len(waiting) >= 3  # the three retried, and later events of their customers
    assert batch_due
    calls = w.stats.calls
    asyncio.run(w.run_until_idle())
    assert w.stats.calls == calls  # the worker alone waits out the backoff

    (done,) = asyncio.run(drain(w, ["erp"], rate=None, actor="kim", reason="flaky spell over"))

    assert done.made_due == 3
    assert not done.probed
    assert done.waiting is None
    _each_real_time_event_once(erp, envs)
    with ledger.engine.connect() as conn:
        still = dict(
            conn.execute(
                select(deliveries.c.event_id, deliveries.c.due_at).where(
                    deliveries.c.pattern == "batch", deliveries.c.state == "pending"
                )
            ).all()
        )
    assert still == batch_due  # no batch-class delivery was hurried
    assert "made due now: 3 waiting out a backoff" in _drains(ledger)[0][2]


def test_a_drain_leaves_a_paused_target_alone_and_says_so(ledger: Ledger) -> None:
    clock = ManualClock(START)
    erp = FakeErp()
    w, _ = _setup(ledger, erp, clock)
    set_paused(ledger.engine, "erp", paused=True, now=START, actor="kim", reason="upgrade")

    (done,) = asyncio.run(drain(w, ["erp"], rate=None, actor="kim", reason="drain"))

    assert sum(erp.calls.values()) == 0
    assert done.waiting == "erp is paused: resume it first (`revbridge dr resume erp`)"
    assert "still waiting: erp is paused" in _drains(ledger)[0][2]


def test_a_drain_cut_off_half_way_is_in_the_audit_log(ledger: Ledger) -> None:
    """The drain's own start is audited before it changes anything, so a drain that dies
    while delivering still names who asked, why and at what rate."""
    clock = ManualClock(START)
    w, _ = _setup(ledger, FakeErp(), clock)

    async def killed() -> None:
        raise RuntimeError("the drain's process was killed")

    w.run_until_idle = killed  # type: ignore[assignment,method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        asyncio.run(drain(w, ["erp"], rate=5, actor="kim", reason="after the upgrade"))
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.actor, audit_log.c.reason).where(
                audit_log.c.entity_type == "target"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("drain_started", "kim", "after the upgrade (at most 5 calls/s)")
    ]


def test_a_drain_probes_with_a_batch_item_when_only_batch_items_wait(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The ERP went down at the nightly run, with every real-time event already delivered:
    only batch items wait. Right after the ERP is back, a drain probes at once with one of
    them, closes the circuit and runs the batch."""
    clock = ManualClock(START)
    erp = FakeErp()
    envs = list(generate_events(200, seed=9))
    lines = [json.dumps(e).encode() for e in envs]
    ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock)
    targets = {"erp": Target("erp", erp), "salesforce": Target("salesforce", FakeSalesforce())}
    w = Worker(ledger.engine, targets, clock=clock, seed=1, batch_dir=tmp_path / "batches")
    asyncio.run(w.run_until_idle())
    erp.faults.down = True
    clock.advance(timedelta(days=30))  # the nightly and month-end classes are due
    asyncio.run(w.run_until_idle())
    for _ in range(20):  # their files fail, and fail again after their backoff
        if w.targets["erp"].breaker.state == "open":
            break
        clock.advance(timedelta(minutes=30))
        asyncio.run(w.run_until_idle())
    assert w.targets["erp"].breaker.state == "open"
    erp.faults.down = False
    clock.advance(timedelta(seconds=5))  # inside the cooldown: the worker alone waits

    (done,) = asyncio.run(drain(w, ["erp"], rate=None, actor="kim", reason="back"))

    assert done.probed
    assert (done.circuit, done.waiting) == ("closed", None)
    with ledger.engine.connect() as conn:
        left = conn.execute(
            select(deliveries.c.state).where(deliveries.c.state != "delivered")
        ).all()
    assert left == []
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue)
    assert erp.duplicates() == {}


def test_a_run_until_idle_says_why_due_deliveries_wait_behind_a_retry(ledger: Ledger) -> None:
    """Lost answers: the events that got them retry after a backoff, and each one holds back
    the later events of its customer (their order is kept). With the circuit closed and no
    pause, the run ends with them due: `worker --until-idle` says they wait behind retries,
    when the first one is due, and what an operator can do, not just "see dr status"."""
    from revbridge.services.drain import left_waiting

    clock = ManualClock(START)
    erp = FakeErp(faults=Faults(lost_response_rate=0.3, seed=4))
    w, _ = _setup(ledger, erp, clock)
    asyncio.run(w.run_until_idle())
    left = {name: (due, why) for name, due, why, _ in left_waiting(w)}
    due, why = left["erp"]
    assert due > 0
    assert why is not None
    assert re.match(r"they wait behind \d+ earlier deliver(y|ies) of the same customers", why)
    assert "the first retries in" in why
    assert "revbridge dr drain erp" in why


def test_a_drain_at_a_capped_rate_says_how_far_it_is_while_it_runs(ledger: Ledger) -> None:
    """A drain at 5 calls/s can run for half an hour: the drain tells its caller how far it
    is when it starts, while it runs and when it ends (delivered, left, rate, time left)."""
    from revbridge.services.drain import DrainProgress

    clock = ManualClock(START)
    erp = FakeErp()
    w, _ = _setup(ledger, erp, clock)
    heard: list[DrainProgress] = []

    (done,) = asyncio.run(
        drain(
            w,
            ["erp"],
            rate=400,
            actor="kim",
            reason="after the upgrade",
            on_progress=heard.append,
            progress_every=0.02,
        )
    )

    first, *during, last = heard
    assert (first.delivered, first.handled, first.done) == (0, 0, False)
    assert first.left > 0
    assert first.eta_s is None
    assert during, "nothing said while it ran"
    assert any(0 < p.delivered < done.stats["delivered"] for p in during)  # part-way
    assert [p.delivered for p in heard] == sorted(p.delivered for p in heard)
    assert any(p.rate > 0 and p.eta_s and p.left for p in during)
    assert last.done
    assert last.left == 0
    assert last.eta_s == 0
    assert last.delivered == done.stats["delivered"] > 0
