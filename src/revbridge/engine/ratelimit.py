"""Rate and concurrency budgets per target, with adaptive slow-down on 429s.

The token bucket refills at ``rate`` per second up to ``burst``. A limit error halves the
rate (multiplicative decrease); each success window afterwards adds back 10 % of the
configured rate (additive increase), so throughput recovers without a storm.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        floor_fraction: float = 0.05,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.configured_rate = rate_per_s
        self.rate = rate_per_s
        self.burst = burst if burst is not None else max(1.0, rate_per_s)
        self._tokens = self.burst
        self._monotonic = monotonic
        self._last = monotonic()
        self._floor = rate_per_s * floor_fraction
        self._locks: dict[int, asyncio.Lock] = {}
        self.calls = 0

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def _lock(self) -> asyncio.Lock:
        loop = id(asyncio.get_running_loop())
        lock = self._locks.get(loop)
        if lock is None:
            self._locks.clear()
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def acquire(self) -> None:
        async with self._lock():
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    self.calls += 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)

    def throttled(self) -> None:
        """The system said "too many requests": halve the rate, down to a floor."""
        self.rate = max(self._floor, self.rate / 2)
        self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        if self.rate < self.configured_rate:
            self.rate = min(self.configured_rate, self.rate + self.configured_rate * 0.01)
