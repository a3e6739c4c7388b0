"""A circuit breaker per target system: stop calling a system that keeps failing.

closed --(N consecutive transient failures, or access refused)--> open --(cooldown)--> half_open
half_open --(probe succeeds)--> closed;  half_open --(probe fails)--> open
While open, events are still accepted and stored; workers just do not call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    failure_threshold: int = 5
    cooldown: timedelta = timedelta(seconds=30)
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    probing: bool = False

    def allow(self, now: datetime) -> bool:
        """May a call go out now? In half-open, exactly one probe at a time."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            assert self.opened_at is not None
            if now - self.opened_at < self.cooldown:
                return False
            self.state = CircuitState.HALF_OPEN
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def record_success(self) -> CircuitState:
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self.opened_at = None
        self.probing = False
        return self.state

    def trip(self, now: datetime) -> CircuitState:
        """Open at once: the system refused the integration's access (``AccessRefused``),
        and every further call would fail alike."""
        self.consecutive_failures = max(self.consecutive_failures + 1, self.failure_threshold)
        self.probing = False
        self.state = CircuitState.OPEN
        self.opened_at = now
        return self.state

    def record_failure(self, now: datetime) -> CircuitState:
        self.consecutive_failures += 1
        self.probing = False
        if self.state is CircuitState.HALF_OPEN or (
            self.consecutive_failures >= self.failure_threshold
        ):
            self.state = CircuitState.OPEN
            self.opened_at = now
        return self.state
