"""One rate budget per ERP account, shared by every worker process through PostgreSQL: no
one-second window, across all processes, ever holds more than the rate."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from revbridge.engine.ratelimit import PgTokenBucket
from revbridge.store.db import create_store_engine
from revbridge.testing import most_calls_in_one_second

RATE = 50.0
SECONDS = 3.5
PROCESSES = 3


def _hammer(
    url: str,
    bucket_args: dict[str, Any],
    pauses: bool,
    barrier: Any,
    out: Any,
    rate: float = RATE,
    lanes: int = 1,
) -> None:
    engine = create_store_engine(url)
    bucket = PgTokenBucket(engine, "erp:acct-1", rate, **bucket_args)
    stamps: list[float] = []

    async def lane(start: float, end: float) -> None:
        while time.time() < end:
            await bucket.acquire()
            stamps.append(time.time())
            # Every process pauses at the same time (a round's claim, a slow database) for
            # 0.3 s of each 0.8 s: when they come back, they all catch up at once.
            if pauses and (time.time() - start) % 0.8 > 0.5:
                await asyncio.sleep(0.8 - (time.time() - start) % 0.8)

    async def run() -> None:
        barrier.wait()
        start = time.time()
        # ``lanes`` concurrent callers, as a worker's round calls (its concurrency limit).
        await asyncio.gather(*(lane(start, start + SECONDS) for _ in range(lanes)))

    asyncio.run(run())
    out.put(stamps)
    engine.dispose()


def _run(
    pg_url: str,
    bucket_args: dict[str, Any],
    *,
    pauses: bool = False,
    processes: int = PROCESSES,
    rate: float = RATE,
    lanes: int = 1,
) -> list[float]:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(pg_url, bucket_args, pauses, barrier, out, rate, lanes))
        for _ in range(processes)
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


def test_concurrent_callers_of_busy_processes_reach_a_high_rate_together(pg_url: str) -> None:
    """Two processes of eight concurrent callers at 1,000 calls/s (a drain's rate). Each take
    of the shared row serializes every taker, so callers queueing for the row one by one
    reached less than half the rate; one take per process for all its waiting callers
    reaches it."""
    rate = 1000.0
    stamps = _run(pg_url, {}, processes=2, rate=rate, lanes=8)
    assert most_calls_in_one_second(stamps) <= rate
    span = stamps[-1] - stamps[0]
    assert (len(stamps) - 1) / span >= rate * 0.9


def test_a_failed_take_fails_every_caller_waiting_for_it_and_the_next_take_works(
    pg_url: str,
) -> None:
    engine = create_store_engine(pg_url)
    bucket = PgTokenBucket(engine, "erp:acct-1", 100.0)

    async def five() -> list[object]:
        return await asyncio.gather(*(bucket.acquire() for _ in range(5)), return_exceptions=True)

    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE rate_buckets RENAME TO rate_buckets_away"))
    results = asyncio.run(five())
    assert all(isinstance(r, ProgrammingError) for r in results), results
    assert bucket.calls == 0
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE rate_buckets_away RENAME TO rate_buckets"))
    assert asyncio.run(asyncio.wait_for(five(), timeout=5)) == [None] * 5
    assert bucket.calls == 5
    engine.dispose()


def test_a_caller_cancelled_while_waiting_leaves_the_others_their_slots(pg_url: str) -> None:
    engine = create_store_engine(pg_url)
    bucket = PgTokenBucket(engine, "erp:acct-1", 50.0)

    async def six_one_cancelled() -> list[asyncio.Future[None]]:
        callers = [asyncio.ensure_future(bucket.acquire()) for _ in range(6)]
        await asyncio.sleep(0)  # all six wait for the first take
        callers[2].cancel()
        await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), timeout=5)
        return callers

    callers = asyncio.run(six_one_cancelled())
    assert callers[2].cancelled()
    assert bucket.calls == 5
    engine.dispose()


def test_a_429_halves_the_rate_of_every_process_and_successes_restore_it(pg_url: str) -> None:
    engine = create_store_engine(pg_url)
    told, other = (PgTokenBucket(engine, "erp:acct-1", 100.0) for _ in range(2))

    def shared_rate() -> float:
        with engine.connect() as conn:
            return float(conn.execute(text("SELECT rate FROM rate_buckets")).scalar_one())

    async def six_calls() -> float:
        await other.acquire()
        start = time.monotonic()
        for _ in range(5):
            await other.acquire()
        return time.monotonic() - start

    try:
        told.throttled()  # the ERP said 429 to one process
        assert shared_rate() == 50.0
        # The other process's calls are now 1/50 s apart, not 1/100: five gaps take 100 ms,
        # not 50. (Measured over five gaps, so that the first call's late wake-up on a busy
        # machine, which shortens the first gap as measured, cannot pass for a faster rate.)
        assert asyncio.run(six_calls()) >= 5 / 50 - 0.01
        other.succeeded()  # it saw the lower rate on its takes: it adds back 1 % of 100
        assert shared_rate() == 51.0
    finally:
        engine.dispose()
