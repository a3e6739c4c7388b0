"""Retry semantics as a value: exponential backoff with full jitter, bounded by count and age."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from revbridge.core.durations import human_duration
from revbridge.core.wording import counted


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to try again after a transient failure, and when to give up (dead letter).

    The delay before attempt ``n+1`` is uniform in
    ``[0, min(maximum, initial * multiplier**(n-1))]``
    (full jitter: retries from many workers spread out instead of arriving in waves); a
    ``Retry-After`` from the system is a floor. Attempts count calls actually made, so an ERP
    that is down behind an open circuit does not burn an event's attempts.
    """

    initial: timedelta = timedelta(seconds=1)
    maximum: timedelta = timedelta(minutes=30)
    multiplier: float = 2.0
    max_attempts: int = 12
    max_age: timedelta = timedelta(days=7)

    def delay(
        self, attempt: int, rng: random.Random, retry_after: timedelta | None = None
    ) -> timedelta:
        ceiling = min(
            self.maximum.total_seconds(),
            self.initial.total_seconds() * self.multiplier ** max(attempt - 1, 0),
        )
        jittered = timedelta(seconds=rng.uniform(0, ceiling))
        if retry_after is not None and retry_after > jittered:
            return retry_after
        return jittered

    def exhausted(self, attempts: int, received_at: datetime, now: datetime) -> str | None:
        """Why to stop retrying, or None to keep going."""
        if attempts >= self.max_attempts:
            return f"gave up after {counted(attempts, 'attempt')}"
        if now - received_at >= self.max_age:
            return f"gave up: older than {human_duration(self.max_age)}"
        return None
