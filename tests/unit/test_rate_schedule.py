"""The in-process rate limit: paced on a schedule, catching up on short pauses, and never
more than the limit in any one-second window."""

from __future__ import annotations

from datetime import timedelta

import pytest

from revbridge.engine.ratelimit import TokenBucket
from revbridge.testing import most_calls_in_one_second


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
