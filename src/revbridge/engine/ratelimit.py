"""Rate budgets per target, with adaptive slow-down on 429s.

A limit error halves the rate (multiplicative decrease); each success afterwards adds back 1 %
of the configured rate (additive increase), so throughput recovers without a storm.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine, text


class TokenBucket:
    """A rate limit in one process, as a virtual schedule (GCRA, the token bucket's twin),
    capped by a sliding one-second window.

    Each call takes the next slot ``1/rate`` after the previous one. A caller that wakes late
    (the event loop's sleep overshoots, or the worker paused between rounds to claim the next
    one) keeps its place in the schedule: it may catch up on slots missed in the last
    ``catch_up`` (100 ms by default, at least ``burst`` slots), so the achieved rate stays at
    the limit instead of losing every pause. Catching up never breaks the limit: no window of
    one second ever holds more than ``rate`` calls (at least one), whatever the pauses were
    (docs/decisions/0015).
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        floor_fraction: float = 0.05,
        catch_up: timedelta = timedelta(milliseconds=100),
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.configured_rate = rate_per_s
        self.rate = rate_per_s
        self.burst = burst
        self.catch_up_s = catch_up.total_seconds()
        self._monotonic = monotonic
        self._tat = monotonic()  # the theoretical arrival time of the next call
        self._floor = rate_per_s * floor_fraction
        self._locks: dict[int, asyncio.Lock] = {}
        self._window: deque[float] = deque()  # the slots taken in the last second
        self.calls = 0

    def _lock(self) -> asyncio.Lock:
        loop = id(asyncio.get_running_loop())
        lock = self._locks.get(loop)
        if lock is None:
            self._locks.clear()
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    def reserve(self, now: float) -> float:
        """Take the next slot for a caller arriving at ``now``: when it may call."""
        lag = max(self.burst / self.rate, self.catch_up_s)
        slot = max(self._tat, now - lag)
        window = self._window
        while window and window[0] <= slot - 1.0:
            window.popleft()
        cap = max(1, int(self.rate))
        if len(window) >= cap:
            # The cap-th latest call must have left the window (1 ms over: it is counted when
            # it was allowed, a hair before it reached the target).
            slot = max(slot, window[len(window) - cap] + 1.001)
            while window and window[0] <= slot - 1.0:
                window.popleft()
        # A caller catching up calls now, not at its (past) slot: the window counts it now.
        window.append(max(slot, now))
        self._tat = slot + 1 / self.rate
        self.calls += 1
        return slot

    async def acquire(self) -> None:
        async with self._lock():
            now = self._monotonic()
            slot = self.reserve(now)
            if slot > now:
                await asyncio.sleep(slot - now)
                # The window counts when calls really went out (a sleep overshoots), so that
                # a late call and an on-time one a second later never share a window over it.
                self._window[-1] = max(slot, self._monotonic())

    def throttled(self) -> None:
        """The system said "too many requests": halve the rate, down to a floor."""
        self.rate = max(self._floor, self.rate / 2)
        self._tat = max(self._tat, self._monotonic()) + 1 / self.rate

    def succeeded(self) -> None:
        if self.rate < self.configured_rate:
            self.rate = min(self.configured_rate, self.rate + self.configured_rate * 0.01)


class RateBudget(Protocol):
    """What the worker needs from a rate limiter, in one process or shared."""

    async def acquire(self) -> None: ...

    def throttled(self) -> None: ...

    def succeeded(self) -> None: ...


_TAKE_SQL = """
UPDATE rate_buckets
SET tokens = LEAST(burst, tokens + EXTRACT(EPOCH FROM (clock_timestamp() - updated_at)) * rate)
             - 1,
    updated_at = clock_timestamp()
WHERE name = :name
  AND LEAST(burst, tokens + EXTRACT(EPOCH FROM (clock_timestamp() - updated_at)) * rate) >= 1
RETURNING tokens
"""
_WAIT_SQL = """
SELECT (1 - LEAST(burst, tokens + EXTRACT(EPOCH FROM (clock_timestamp() - updated_at)) * rate))
       / rate
FROM rate_buckets WHERE name = :name
"""


class PgTokenBucket:
    """One token bucket for every worker process, kept in PostgreSQL.

    Taking a token is one atomic UPDATE (the row lock serializes takers); the refill is computed
    from the database clock, so processes on different hosts agree. Adaptive like
    ``TokenBucket``: a 429 halves the shared rate for everyone, successes restore it.
    """

    def __init__(
        self, engine: Engine, name: str, rate_per_s: float, *, burst: float | None = None
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("PgTokenBucket needs PostgreSQL; use TokenBucket in one process")
        self.engine = engine
        self.name = name
        self.configured_rate = rate_per_s
        self.burst = burst if burst is not None else max(1.0, rate_per_s)
        self.calls = 0
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO rate_buckets "
                    "(name, rate, configured_rate, burst, tokens, updated_at) "
                    "VALUES (:name, :rate, :rate, :burst, :burst, clock_timestamp()) "
                    "ON CONFLICT (name) DO UPDATE SET configured_rate = :rate, burst = :burst, "
                    "rate = LEAST(rate_buckets.rate, :rate)"
                ),
                {"name": name, "rate": rate_per_s, "burst": self.burst},
            )

    def _take(self) -> float:
        """0 when a token was taken, else how long to wait for the next one."""
        with self.engine.begin() as conn:
            if conn.execute(text(_TAKE_SQL), {"name": self.name}).first() is not None:
                return 0.0
            wait = conn.execute(text(_WAIT_SQL), {"name": self.name}).scalar()
            return max(float(wait or 0.0), 0.001)

    async def acquire(self) -> None:
        while True:
            wait = await asyncio.to_thread(self._take)
            if wait == 0.0:
                self.calls += 1
                return
            await asyncio.sleep(wait)

    def _set_rate(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), {"name": self.name})

    def throttled(self) -> None:
        self._set_rate(
            "UPDATE rate_buckets SET rate = GREATEST(configured_rate * 0.05, rate / 2), "
            "tokens = LEAST(tokens, 0) WHERE name = :name"
        )

    def succeeded(self) -> None:
        self._set_rate(
            "UPDATE rate_buckets SET rate = LEAST(configured_rate, rate + configured_rate * 0.01) "
            "WHERE name = :name AND rate < configured_rate"
        )
