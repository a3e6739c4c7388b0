"""New events wake idle workers at once (PostgreSQL NOTIFY), not at the next poll."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from revbridge.clock import SystemClock
from revbridge.core.policy import build_policy
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeErp, FakeSalesforce


def test_an_idle_worker_on_postgresql_is_woken_by_an_ingest_commit(pg_url: str) -> None:
    engine = create_store_engine(pg_url)
    ledger = Ledger(engine)
    erp = FakeErp()
    worker = Worker(
        engine,
        {"erp": Target("erp", erp), "salesforce": Target("salesforce", FakeSalesforce())},
        clock=SystemClock(),
        settings=WorkerSettings(idle_poll=timedelta(seconds=60)),  # polling alone would take 60 s
    )
    env = next(e for e in generate_events(30, seed=4) if e["type"] == "erp.payment.received")

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_forever(stop))
        await asyncio.sleep(1.0)  # the worker is idle and listening
        start = time.monotonic()
        await asyncio.to_thread(
            ingest_lines, ledger, [json.dumps(env).encode()], policy=build_policy(), origin="t"
        )
        while worker.stats.delivered == 0 and time.monotonic() - start < 20:
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - start
        stop.set()
        await task
        return elapsed

    elapsed = asyncio.run(scenario())
    engine.dispose()
    assert worker.stats.delivered == 1
    assert elapsed < 5
