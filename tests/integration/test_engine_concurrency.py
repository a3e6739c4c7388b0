"""A concurrency limit an adapter declares for its account holds across worker processes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from datetime import UTC, datetime

import pytest

from revbridge.clock import ManualClock
from revbridge.core.events import EventType
from revbridge.core.policy import EventPolicy, Pattern, RoutingPolicy, build_policy
from revbridge.engine.concurrency import LocalSlots, slots_for
from revbridge.engine.ports import Capabilities
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.store.slots import PgAdvisorySlots
from revbridge.testing import FakeErp, FakeSalesforce, Faults

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LIMIT = 2


class _TimedErp(FakeErp):
    """The fake ERP, noting when each call starts and ends (wall clock, across processes)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.spans: list[tuple[float, float]] = []

    async def _call(self, name: str) -> None:
        start = time.time()
        await super()._call(name)
        self.spans.append((start, time.time()))


def _worker_process(url: str, scope: str | None, barrier, out) -> None:  # type: ignore[no-untyped-def]
    engine = create_store_engine(url)
    caps = Capabilities(name="acct", concurrency_limit=LIMIT, concurrency_scope=scope)
    erp = _TimedErp(faults=Faults(latency_s=0.03), capabilities=caps)
    slots = slots_for(engine, limit=LIMIT, scope=scope)
    worker = Worker(
        engine,
        {
            "erp": Target("erp", erp, slots=slots),
            "salesforce": Target("salesforce", FakeSalesforce()),
        },
        clock=ManualClock(START),
        settings=WorkerSettings(claim_batch=4),  # small rounds: both processes take a share
    )
    barrier.wait()
    asyncio.run(worker.run_until_idle())
    out.put((type(slots).__name__, erp.spans))
    engine.dispose()


def _customers_in_real_time() -> RoutingPolicy:
    return build_policy(
        {
            EventType.CUSTOMER_UPSERTED: EventPolicy(
                type=EventType.CUSTOMER_UPSERTED,
                pattern=Pattern.REALTIME,
                schedule=None,
                rationale="test: real time",
            )
        }
    )


def _peak(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def _run_two_workers(pg_url: str, scope: str | None) -> tuple[set[str], list[tuple[float, float]]]:
    customers = [e for e in generate_events(400, seed=4) if e["type"] == "customer.upserted"]
    policy = _customers_in_real_time()
    engine = create_store_engine(pg_url)
    ingest_lines(
        Ledger(engine),
        [json.dumps(e).encode() for e in customers],
        policy=policy,
        origin="t",
        clock=ManualClock(START),
    )
    engine.dispose()
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_worker_process, args=(pg_url, scope, barrier, out)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert len(customers) >= 20
    assert all(ss for _, ss in results)  # both processes delivered
    spans = [s for _, ss in results for s in ss]
    assert len(spans) == len(customers)  # every customer delivered once, by one process
    return {kind for kind, _ in results}, spans


@pytest.mark.pg
def test_two_worker_processes_never_exceed_the_accounts_declared_limit(pg_url: str) -> None:
    """With a declared scope, two workers on PostgreSQL together keep the account's limit."""
    kinds, spans = _run_two_workers(pg_url, "fake:acct-1")
    assert kinds == {PgAdvisorySlots.__name__}
    assert _peak(spans) <= LIMIT


@pytest.mark.pg
def test_without_a_scope_the_limit_is_per_process_and_two_exceed_it(pg_url: str) -> None:
    """The control: a per-process limit lets two processes together go over it."""
    kinds, spans = _run_two_workers(pg_url, None)
    assert kinds == {LocalSlots.__name__}
    assert _peak(spans) > LIMIT


def test_a_request_inside_a_delivery_does_not_take_a_second_slot() -> None:
    """The adapter's own hold inside the worker's is free: no deadlock at the limit."""
    slots = slots_for(None, limit=1, scope="fake:reentrant")
    assert slots is slots_for(None, limit=1, scope="fake:reentrant")  # one per scope
    assert slots_for(None, limit=3, scope="fake:reentrant").limit == 3  # and per limit

    async def nested() -> int:
        async with slots.hold(), slots.hold():
            return 1

    async def run() -> list[int]:
        return list(await asyncio.wait_for(asyncio.gather(nested(), nested(), nested()), 5))

    assert asyncio.run(run()) == [1, 1, 1]
    assert isinstance(slots, LocalSlots)
    assert slots.peak == 1


@pytest.mark.pg
def test_when_other_processes_hold_every_slot_nothing_is_called_or_counted(
    pg_url: str,
) -> None:
    """A worker that finds no free slot in time leaves its deliveries pending, their attempts
    untouched, and calls nobody; they go out once a slot frees up."""
    from datetime import timedelta

    from sqlalchemy import select

    from revbridge.store.schema import deliveries

    customers = [e for e in generate_events(60, seed=4) if e["type"] == "customer.upserted"][:3]
    policy = _customers_in_real_time()
    other, mine = create_store_engine(pg_url), create_store_engine(pg_url)
    try:
        ingest_lines(
            Ledger(mine),
            [json.dumps(e).encode() for e in customers],
            policy=policy,
            origin="t",
            clock=ManualClock(START),
        )
        caps = Capabilities(name="acct", concurrency_limit=1, concurrency_scope="fake:acct-2")
        erp = FakeErp(capabilities=caps)
        slots = PgAdvisorySlots(
            mine, scope="fake:acct-2", limit=1, wait=timedelta(milliseconds=200)
        )
        worker = Worker(
            mine,
            {
                "erp": Target("erp", erp, slots=slots),
                "salesforce": Target("salesforce", FakeSalesforce()),
            },
            clock=ManualClock(START),
        )
        holder = PgAdvisorySlots(other, scope="fake:acct-2", limit=1)  # another process

        async def go() -> None:
            got, done = asyncio.Event(), asyncio.Event()

            async def hold() -> None:
                async with holder.hold():
                    got.set()
                    await done.wait()

            task = asyncio.create_task(hold())
            await got.wait()
            await worker.step()
            worker.write_outcomes()
            assert sum(erp.calls.values()) == 0
            with mine.connect() as conn:
                rows = conn.execute(select(deliveries.c.state, deliveries.c.attempts)).all()
            assert {tuple(r) for r in rows} == {("pending", 0)}
            done.set()
            await task
            await worker.run_until_idle()

        asyncio.run(go())
        assert len(erp.records("customer")) == len(customers)
    finally:
        other.dispose()
        mine.dispose()
