"""One rate budget per ERP account, shared by every worker process through PostgreSQL."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time

from revbridge.engine.ratelimit import PgTokenBucket
from revbridge.store.db import create_store_engine

RATE = 20.0
SECONDS = 3.0


def _hammer(url: str, barrier, out) -> None:  # type: ignore[no-untyped-def]
    engine = create_store_engine(url)
    bucket = PgTokenBucket(engine, "erp:acct-1", RATE, burst=2)
    stamps: list[float] = []

    async def run() -> None:
        barrier.wait()
        end = time.time() + SECONDS
        while time.time() < end:
            await bucket.acquire()
            stamps.append(time.time())

    asyncio.run(run())
    out.put(stamps)
    engine.dispose()


def test_three_processes_share_one_budget_and_never_exceed_it(pg_url: str) -> None:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(pg_url, barrier, out)) for _ in range(3)]
    for p in procs:
        p.start()
    stamps = sorted(s for _ in procs for s in out.get(timeout=60))
    for p in procs:
        p.join(timeout=30)
    # Never over the limit: in any one-second window at most RATE calls plus the burst.
    for i, t in enumerate(stamps):
        in_window = sum(1 for u in stamps[i:] if u - t < 1.0)
        assert in_window <= RATE + 2 + 1, in_window
    # And the budget is used: together they reach close to the rate, not a third of it each.
    span = stamps[-1] - stamps[0]
    assert len(stamps) / span >= RATE * 0.8
