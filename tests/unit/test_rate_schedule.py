"""The in-process rate limit: paced on a schedule, catching up on short pauses, and never
more than the limit in any one-second window."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from revbridge.clock import ManualClock
from revbridge.engine.ratelimit import CappedBudget, RateBudget, Schedule, TokenBucket
from revbridge.engine.worker import Target, Worker
from revbridge.services.targets import cap_rate
from revbridge.store.db import create_store_engine
from revbridge.testing import FakeErp, FakeSalesforce, most_calls_in_one_second


def test_calls_are_paced_one_interval_apart() -> None:
    bucket = TokenBucket(100, monotonic=lambda: 0.0)
    slots = [bucket.reserve(0.0) for _ in range(5)]
    assert slots == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])


def test_a_short_pause_is_made_up_so_the_rate_is_kept() -> None:
    # The worker paused 50 ms between rounds (claiming the next one): the calls it missed go
    # out at once when it comes back, instead of being lost.
    bucket = TokenBucket(1000, monotonic=lambda: 0.0)
    for i in range(100):
        bucket.reserve(i / 1000)
    after_pause = [bucket.reserve(0.150) for _ in range(50)]
    assert after_pause[:50] == pytest.approx([0.100 + i / 1000 for i in range(50)])


def test_a_long_pause_is_made_up_for_catch_up_only() -> None:
    bucket = TokenBucket(1000, monotonic=lambda: 0.0, catch_up=timedelta(milliseconds=100))
    bucket.reserve(0.0)
    first = bucket.reserve(10.0)
    assert first == pytest.approx(9.9)


def test_no_second_ever_holds_more_calls_than_the_limit() -> None:
    # Callers arrive in bursts with pauses between them; catching up never breaks the limit.
    bucket = TokenBucket(200, monotonic=lambda: 0.0, catch_up=timedelta(seconds=5))
    slots: list[float] = []
    now = 0.0
    for burst in range(20):
        slots += [bucket.reserve(now) for _ in range(150)]
        now = slots[-1] + (0.9 if burst % 3 == 0 else 0.05)
    assert most_calls_in_one_second(slots) == 200
    assert slots == sorted(slots)


def test_a_slow_limit_still_allows_one_call() -> None:
    bucket = TokenBucket(0.5, monotonic=lambda: 0.0)
    assert [bucket.reserve(0.0), bucket.reserve(0.0)] == pytest.approx([0.0, 2.0])


def test_throttling_halves_the_pace() -> None:
    bucket = TokenBucket(100, monotonic=lambda: 0.0)
    bucket.reserve(0.0)
    bucket.throttled()
    assert bucket.rate == 50


def test_acquire_sleeps_until_the_slot_and_counts_when_the_call_really_went_out() -> None:
    # The clock is injected; the sleeps are real (tens of milliseconds).
    readings = iter([0.0, 0.0, 0.45, 0.58, 1.0, 1.001, 1.55, 1.581, 5.0])
    bucket = TokenBucket(2, monotonic=lambda: next(readings))  # cap: 2 calls in any second

    def timed_acquire() -> float:
        start = time.perf_counter()
        asyncio.run(bucket.acquire())
        return time.perf_counter() - start

    assert timed_acquire() < 0.02  # on time: calls at once
    # Early: its slot is 0.5, it arrives at 0.45 and sleeps 50 ms; the sleep overshoots and
    # the call goes out at 0.58.
    assert timed_acquire() >= 0.045
    timed_acquire()  # 1.0: its slot is 1.001, a second after the first call
    # At 1.55 its schedule slot (1.501) has passed, but the call at 0.58 is still in the
    # window: it sleeps until 1.581, one second after that call really went out.
    assert 0.028 <= timed_acquire() < 0.5
    # Late: its slot is long past, it calls at once.
    assert timed_acquire() < 0.02
    assert bucket.calls == 5
    assert next(readings, None) is None  # every reading was taken, none more


def test_schedule_paces_one_interval_apart_and_keeps_the_margin_on_the_window() -> None:
    schedule = Schedule(tat=0.0)
    slots = [schedule.reserve(0.0, rate=10, lag=5.0, margin=0.02) for _ in range(11)]
    assert slots[:10] == pytest.approx([i / 10 for i in range(10)])
    # The 11th waits until the first call is 1 s + the margin behind it, not only 1 s.
    assert slots[10] == pytest.approx(1.02)


def test_schedule_catches_up_on_missed_slots_but_not_over_the_window() -> None:
    schedule = Schedule(tat=0.0)
    schedule.reserve(0.0, rate=10, lag=0.5, margin=0.02)
    # Back after a pause, at 10.0: the slots of the last 0.5 s are taken at once (their time
    # has passed, so the calls go out now and the window counts them now)...
    slots = [schedule.reserve(10.0, rate=10, lag=0.5, margin=0.02) for _ in range(6)]
    assert slots == pytest.approx([9.5, 9.6, 9.7, 9.8, 9.9, 10.0])
    assert list(schedule.recent)[-6:] == pytest.approx([10.0] * 6)
    # ...then pacing resumes.
    assert schedule.reserve(10.0, rate=10, lag=0.5, margin=0.02) == pytest.approx(10.1)

    # A long catch-up is bounded by the window: 10 calls now, the 11th 1 s + margin later.
    schedule = Schedule(tat=0.0)
    slots = []
    for _ in range(11):
        slots.append(schedule.reserve(10.0, rate=10, lag=5.0, margin=0.02))
        assert len(schedule.recent) <= 10  # only the last `cap` calls are kept (the shared row)
    assert max(slots[:10]) < 10.0
    assert slots[10] == pytest.approx(11.02)


def _late_calls(margin: float, lateness: float) -> list[float]:
    """Callers in bursts and pauses; each call goes out up to ``lateness`` after the time
    the window counted it (a process that sleeps until its slot wakes late)."""
    rng = random.Random(15)
    schedule = Schedule(tat=0.0)
    went_out: list[float] = []
    now = 0.0
    for _ in range(3000):
        now += rng.choice([0.0, 0.0, 0.0, 0.002, 0.01, 0.3, 1.2])
        slot = schedule.reserve(now, rate=20, lag=2.0, margin=margin)
        went_out.append(max(slot, now) + rng.uniform(0, lateness))
    return sorted(went_out)


def test_calls_up_to_the_margin_late_never_put_more_than_the_rate_into_a_second() -> None:
    assert most_calls_in_one_second(_late_calls(margin=0.02, lateness=0.02)) <= 20
    # The margin is what holds the bound: without it, late calls break it.
    assert most_calls_in_one_second(_late_calls(margin=0.0, lateness=0.02)) > 20


def _pace(budget: RateBudget, calls: int) -> float:
    """How long ``calls`` calls through ``budget`` take, from the first to the last."""

    async def run() -> float:
        await budget.acquire()
        start = time.perf_counter()
        for _ in range(calls - 1):
            await budget.acquire()
        return time.perf_counter() - start

    return asyncio.run(run())


def test_a_capped_budget_calls_at_the_slower_of_its_cap_and_its_budget() -> None:
    # A drain capped above the account's rate keeps to the account's rate (100/s)...
    assert _pace(CappedBudget(TokenBucket(1000), TokenBucket(100)), 11) >= 0.1 - 0.005
    # ...and one capped below it keeps to its cap.
    assert _pace(CappedBudget(TokenBucket(100), TokenBucket(1000)), 11) >= 0.1 - 0.005


def test_a_capped_budget_passes_429s_and_successes_to_both() -> None:
    cap, budget = TokenBucket(100), TokenBucket(40)
    capped = CappedBudget(cap, budget)
    capped.throttled()
    assert (cap.rate, budget.rate) == (50, 20)
    capped.succeeded()
    assert (cap.rate, budget.rate) == (51, 20.4)


def test_a_drain_cap_keeps_each_target_within_its_own_budget() -> None:
    account = TokenBucket(20)
    worker = Worker(
        create_store_engine("sqlite://"),
        {
            "erp": Target("erp", FakeErp(), bucket=account),
            "salesforce": Target("salesforce", FakeSalesforce()),
        },
        clock=ManualClock(datetime(2026, 11, 27, tzinfo=UTC)),
    )
    cap_rate(worker, 300)
    erp, sf = worker.targets["erp"].bucket, worker.targets["salesforce"].bucket
    assert isinstance(erp, CappedBudget)
    assert erp.budget is account
    assert isinstance(erp.cap, TokenBucket)
    assert erp.cap.rate == 300
    assert isinstance(sf, TokenBucket)  # no budget of its own: the cap alone
    assert sf.rate == 300
    assert worker.settings.claim_batch == 150  # half a second of calls a round
