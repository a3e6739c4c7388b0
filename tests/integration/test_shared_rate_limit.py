"""One rate budget per ERP account, shared by every worker process through PostgreSQL: no
one-second window, across all processes, ever holds more than the rate."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from datetime import timedelta
from typing import Any

import pytest

from revbridge.engine.ratelimit import PgTokenBucket
from revbridge.store.db import create_store_engine
from revbridge.testing import most_calls_in_one_second

RATE = 50.0
SECONDS = 3.5
PROCESSES = 3


def _hammer(url: str, bucket_args: dict[str, Any], pauses: bool, barrier: Any, out: Any) -> None:
    engine = create_store_engine(url)
    bucket = PgTokenBucket(engine, "erp:acct-1", RATE, **bucket_args)
    stamps: list[float] = []

    async def run() -> None:
        barrier.wait()
        start = time.time()
        end = start + SECONDS
        while time.time() < end:
            await bucket.acquire()
            stamps.append(time.time())
            # Every process pauses at the same time (a round's claim, a slow database) for
            # 0.3 s of each 0.8 s: when they come back, they all catch up at once.
            if pauses and (time.time() - start) % 0.8 > 0.5:
                await asyncio.sleep(0.8 - (time.time() - start) % 0.8)

    asyncio.run(run())
    out.put(stamps)
    engine.dispose()


def _run(pg_url: str, bucket_args: dict[str, Any], *, pauses: bool = False) -> list[float]:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(pg_url, bucket_args, pauses, barrier, out))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    per_process = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert all(per_process), "every process got calls through"
    return sorted(s for stamps in per_process for s in stamps)


@pytest.mark.parametrize(
    "bucket_args",
    [{}, {"burst": 2}],
    ids=["as-targets-builds-it", "burst-2"],
)
def test_processes_share_one_budget_and_no_second_holds_more_than_the_rate(
    pg_url: str, bucket_args: dict[str, Any]
) -> None:
    stamps = _run(pg_url, bucket_args)
    # Never over the limit: no one-second window holds more than RATE calls, all processes
    # together (each stamp taken right after acquire returned).
    assert most_calls_in_one_second(stamps) <= RATE
    # And the budget is used: together they reach close to the rate, not a third of it each.
    span = stamps[-1] - stamps[0]
    assert (len(stamps) - 1) / span >= RATE * 0.9


def test_catching_up_together_after_a_pause_never_breaks_the_limit(pg_url: str) -> None:
    # A long catch-up: after each pause, every process may take a second's missed slots at
    # once; only the window over recent calls keeps the second at the rate.
    stamps = _run(pg_url, {"catch_up": timedelta(seconds=1)}, pauses=True)
    assert most_calls_in_one_second(stamps) <= RATE
    assert len(stamps) >= RATE * SECONDS * 0.5
