"""Chaos in one process, on a manual clock: each fault the engine must ride out, from a seed.

Each scenario ingests generated events, every seventh of them twice and all of them shuffled in
windows (duplicate and out-of-order source events), then injects its fault into the fake ERP
while a worker delivers on a clock that only moves when told (a day of outage takes seconds).
Then the faults heal, the backlog drains, the batch classes run in their window, and
``_assert_invariants`` holds: every accepted event is delivered exactly once, with the source's
amounts, or dead-lettered with a reason and absent from the ERP; the counts balance (nothing
pending, parked or in flight); each customer's invoices reached the ERP in their order.

The same scenarios run on SQLite and PostgreSQL (the ``ledger`` fixture), from
``REVBRIDGE_CHAOS_SEED``. Worker processes killed with SIGKILL, dropped connections and a
database restart are in ``test_worker_chaos.py``; here a worker "killed" is one abandoned in
the states a kill leaves: deliveries leased and never called, or called with the outcome never
written.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.retry import RetryPolicy
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.errors import RateLimited
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries, events
from revbridge.testing import FakeErp, FakeSalesforce, Faults

SEED = int(os.environ.get("REVBRIDGE_CHAOS_SEED", "20261127"))
EVENTS = 160
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KINDS = {
    "invoice.posted": "invoice",
    "payment.received": "payment",
    "credit_memo.issued": "credit_memo",
}
STEP = timedelta(minutes=31)  # longer than the longest backoff: every retry is due again
RETRY_AFTER = timedelta(seconds=90)

pytestmark = pytest.mark.slow


class _LoggedErp(FakeErp):
    """The fake ERP, with every call's time (on the manual clock) and failure."""

    def __init__(self, clock: ManualClock, **kw: Any) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.log: list[tuple[datetime, str, Exception | None]] = []

    async def _call(self, name: str) -> None:
        at = self.clock.now()
        try:
            await super()._call(name)
        except Exception as exc:
            self.log.append((at, name, exc))
            raise
        self.log.append((at, name, None))


@dataclass
class _Run:
    ledger: Ledger
    clock: ManualClock
    erp: _LoggedErp
    sf: FakeSalesforce
    batch_dir: Path
    rng: random.Random
    envs: list[dict[str, Any]] = field(default_factory=list)  # accepted, one each

    def worker(self, worker_id: str = "chaos") -> Worker:
        targets = {"erp": Target("erp", self.erp), "salesforce": Target("salesforce", self.sf)}
        return Worker(
            self.ledger.engine,
            targets,
            clock=self.clock,
            seed=self.rng.randrange(1 << 30),
            worker_id=worker_id,
            batch_dir=self.batch_dir,
            settings=WorkerSettings(claim_batch=25, retry=RetryPolicy(max_attempts=80)),
        )

    def ingest(self, envs: list[dict[str, Any]]) -> None:
        """Each event once, every seventh again, shuffled in windows of 20: the Salesforce
        side's retries and its out-of-order delivery. The hub takes them whatever the ERP is
        doing."""
        lines = envs + envs[::7]
        for i in range(0, len(lines), 20):
            window = lines[i : i + 20]
            self.rng.shuffle(window)
            lines[i : i + 20] = window
        result = ingest_lines(
            self.ledger,
            [json.dumps(e).encode() for e in lines],
            policy=build_policy(),
            origin="chaos",
            clock=self.clock,
        )
        assert (result.accepted, result.duplicates) == (len(envs), len(envs[::7]))
        assert (result.rejected, result.conflicts) == (0, 0)
        self.envs += envs

    def step(self, w: Worker, after: timedelta = STEP) -> None:
        asyncio.run(w.run_until_idle())
        self.clock.advance(after)


def _states(ledger: Ledger) -> Counter[str]:
    with ledger.engine.connect() as conn:
        return Counter(s for (s,) in conn.execute(select(deliveries.c.state)))


def _drain(run: _Run, w: Worker) -> None:
    """Deliver until nothing is left, the batch classes included (their window comes)."""
    run.clock.advance(timedelta(days=35))  # past the month-end window of every batch class
    for _ in range(300):
        run.step(w)
        if set(_states(run.ledger)) <= {"delivered", "dead_letter"}:
            return
    raise AssertionError(f"the backlog did not drain: {_states(run.ledger)}")


def _assert_invariants(run: _Run) -> None:
    with run.ledger.engine.connect() as conn:
        rows = conn.execute(
            select(
                events.c.id,
                events.c.type,
                events.c.source_id,
                events.c.customer_ref,
                deliveries.c.target,
                deliveries.c.state,
                deliveries.c.last_error,
                deliveries.c.external_ref,
            ).join(deliveries, deliveries.c.event_id == events.c.id)
        ).all()
        audited = {
            int(i)
            for (i,) in conn.execute(
                select(audit_log.c.entity_id).where(audit_log.c.action == "dead_letter")
            )
        }
        stored = conn.execute(select(events.c.id)).all()
    # Counts balance: each accepted event stored once, with one delivery, delivered or dead.
    assert len(stored) == len(rows) == len(run.envs)
    assert {r.state for r in rows} <= {"delivered", "dead_letter"}, _states(run.ledger)
    for r in rows:
        if r.state == "dead_letter":
            assert r.last_error, r  # with a reason
            assert r.id in audited  # and in the audit log
    # Exactly once in the ERP with the source's amounts; a dead letter left nothing there.
    assert run.erp.duplicates() == {}
    docs: defaultdict[tuple[str, str], list[Any]] = defaultdict(list)
    for d in run.erp.docs:
        docs[(d.kind, d.external_ref)].append(d)
    source = {e["source_id"]: e for e in run.envs}
    for r in rows:
        if r.type in KINDS:
            found = docs.get((KINDS[r.type], r.source_id), [])
            if r.state == "dead_letter":
                assert found == [], r
                continue
            assert len(found) == 1, r
            data = source[r.source_id]["data"]
            assert found[0].erp_id == r.external_ref
            assert found[0].total == Decimal(data.get("total") or data["amount"]), r
        elif r.target == "salesforce" and r.state == "delivered":
            assert r.external_ref in run.sf.writes, r  # written back, under its id
    # Per-customer order: each customer's invoices were created in the ERP in event order.
    per_customer: defaultdict[str, list[int]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r.id):
        if r.type == "invoice.posted" and r.state == "delivered":
            per_customer[r.customer_ref].append(int(r.external_ref))
    for customer, erp_ids in per_customer.items():
        assert erp_ids == sorted(erp_ids), customer


def _down_for_a_day(run: _Run) -> Worker:
    """The ERP is down for 24 simulated hours while Salesforce keeps sending."""
    everything = source_envs(run)
    half = len(everything) // 2
    later = everything[half:]
    run.ingest(everything[:half])
    run.erp.faults.down = True
    w = run.worker()
    for hour in range(24):
        for _ in range(4):
            run.step(w, timedelta(minutes=15))
        chunk = later[hour * len(later) // 24 : (hour + 1) * len(later) // 24]
        if chunk:
            run.ingest(chunk)  # accepted and stored: the ERP being down blocks nobody
    assert w.targets["erp"].breaker.state != "closed"
    assert _states(run.ledger)["dead_letter"] == 0  # a day of outage burns no attempts
    # Once open, the circuit lets one probe through per cooldown at most: no call storm.
    calls_down = [at for at, _, _ in run.erp.log]
    assert len(calls_down) <= w.targets["erp"].breaker.failure_threshold + 24 * 4 + 1
    run.erp.faults.down = False
    return w


def _throttle_storms(run: _Run) -> Worker:
    """429 storms with a Retry-After: after each 429 no call before the time it gave."""
    run.erp.faults.retry_after = RETRY_AFTER
    w = run.worker()
    for n, chunk in enumerate(_chunks(source_envs(run), 60)):
        if n % 20 == 0:
            run.erp.faults.throttle_next = run.rng.randint(10, 40)
        if chunk:
            run.ingest(chunk)
        run.step(w, timedelta(seconds=run.rng.choice((5, 20, 45, 70))))
    log = run.erp.log
    throttled = [i for i, (_, _, exc) in enumerate(log) if isinstance(exc, RateLimited)]
    assert len(throttled) >= 3
    early = [
        (log[i][0], log[j][0])
        for i in throttled
        for j in range(i + 1, len(log))
        if log[j][0] < log[i][0] + RETRY_AFTER
    ]
    assert early == [], f"called before the Retry-After was over: {early[:3]}"
    return w


def _error_bursts(run: _Run) -> Worker:
    """Bursts of 503s, with 500s sprinkled between them, while events keep coming."""
    run.erp.faults.error_rate = 0.05
    w = run.worker()
    for chunk in _chunks(source_envs(run), 40):
        if run.rng.random() < 0.4:
            run.erp.faults.fail_next = run.rng.randint(3, 25)
        if chunk:
            run.ingest(chunk)
        run.step(w, timedelta(minutes=run.rng.choice((1, 5, 31))))
    assert sum(1 for _, _, exc in run.erp.log if exc is not None) > 10
    run.erp.faults.error_rate = 0.0
    return w


def _lost_responses(run: _Run) -> Worker:
    """The ERP commits and the answer never comes back (timeouts, resets after sending)."""
    run.erp.faults.lost_response_rate = 0.25
    w = run.worker()
    for chunk in _chunks(source_envs(run), 20):
        run.ingest(chunk)
        run.step(w)
    assert w.stats.found_existing > 0  # retries looked the record up instead of creating it
    run.erp.faults.lost_response_rate = 0.0
    return w


def _workers_killed(run: _Run) -> Worker:
    """Workers abandoned between claim and call, and between call and acknowledgement."""
    for n, chunk in enumerate(_chunks(source_envs(run), 12)):
        run.ingest(chunk)
        w = run.worker(f"doomed-{n}")
        if n % 2 == 0:
            # Killed between claim and call: a round leased, never called.
            w.queue.claim(
                target="erp",
                worker_id=w.worker_id,
                now=run.clock.now(),
                lease=w.settings.lease,
                limit=5,
            )
        else:
            # Killed between call and acknowledgement: the ERP has the records, the ledger
            # does not know (the round's outcomes are never written).
            asyncio.run(w.step())
        run.clock.advance(w.settings.lease + timedelta(seconds=1))  # the leases expire
        run.step(run.worker(f"survivor-{n}"), timedelta(seconds=5))
    assert run.erp.calls["find"] > 0  # what a dead worker called is looked up, not created
    return run.worker()


def _everything(run: _Run) -> Worker:
    """All of it at once, from the seed."""
    run.erp.faults = Faults(
        error_rate=0.05,
        lost_response_rate=0.1,
        retry_after=RETRY_AFTER,
        seed=run.rng.randrange(1 << 30),
    )
    w = run.worker()
    for chunk in _chunks(source_envs(run), 60):
        if chunk:
            run.ingest(chunk)
        roll = run.rng.random()
        if roll < 0.1:
            run.erp.faults.down = not run.erp.faults.down
        elif roll < 0.2:
            run.erp.faults.throttle_next = run.rng.randint(1, 10)
        elif roll < 0.3:
            run.erp.faults.fail_next = run.rng.randint(1, 10)
        elif roll < 0.35:
            asyncio.run(run.worker("doomed").step())  # abandoned after its calls
        run.step(w, timedelta(minutes=run.rng.choice((1, 15, 31, 120))))
    run.erp.faults = Faults()
    return w


def _chunks(envs: list[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
    """``envs`` in ``n`` consecutive chunks (some empty when there are fewer events)."""
    return [envs[i * len(envs) // n : (i + 1) * len(envs) // n] for i in range(n)]


def source_envs(run: _Run) -> list[dict[str, Any]]:
    """The scenario's source events (generated once per run from its seed)."""
    return run.__dict__.setdefault(
        "_source", list(generate_events(EVENTS, seed=run.rng.randrange(1000)))
    )


SCENARIOS: dict[str, Callable[[_Run], Worker]] = {
    "erp_down_24h": _down_for_a_day,
    "throttle_storms_with_retry_after": _throttle_storms,
    "5xx_bursts": _error_bursts,
    "lost_responses": _lost_responses,
    "workers_killed_between_claim_call_and_ack": _workers_killed,
    "everything_at_once": _everything,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_after_the_fault_heals_every_event_is_delivered_once_or_dead_lettered(
    name: str, ledger: Ledger, tmp_path: Path
) -> None:
    clock = ManualClock(START)
    rng = random.Random(f"{SEED}:{name}")
    run = _Run(
        ledger=ledger,
        clock=clock,
        erp=_LoggedErp(clock, faults=Faults(seed=rng.randrange(1 << 30))),
        sf=FakeSalesforce(),
        batch_dir=tmp_path / "batches",
        rng=rng,
    )
    w = SCENARIOS[name](run)
    _drain(run, w)
    _assert_invariants(run)
