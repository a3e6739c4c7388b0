"""Rate budgets per target, with adaptive slow-down on 429s.

A limit error halves the rate (multiplicative decrease); each success afterwards adds back 1 %
of the configured rate (additive increase), so throughput recovers without a storm.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine, text

from revbridge.store.db import one_statement

# A call is counted in the window when it was allowed, a hair before it reaches the target.
_HAIR = timedelta(milliseconds=1)
# How late a call shared through PostgreSQL may go out after its slot (the commit, the thread
# hand-off back to the event loop, the sleep's overshoot) and still never share a one-second
# window with the call ``rate`` slots after it (docs/decisions/0015).
LATE_MARGIN = timedelta(milliseconds=20)


@dataclass
class Schedule:
    """The slot arithmetic of a rate limit, with no clock and no I/O: a virtual schedule
    (GCRA, the token bucket's twin) capped by a sliding window over recent calls.

    Each call takes the next slot ``1/rate`` after the previous one, or ``now - lag`` when the
    caller comes back late (it catches up on slots it missed in the last ``lag`` seconds).
    Whatever the catch-up, a slot is never less than ``1 + margin`` seconds after the call
    ``cap = max(1, int(rate))`` places before it, so as long as every call goes out between its
    recorded time and ``margin`` later, no one-second window holds more than ``cap`` calls.
    ``TokenBucket`` (one process) and ``PgTokenBucket`` (a row in PostgreSQL) both use it.
    """

    tat: float  # the theoretical arrival time of the next call
    recent: deque[float] = field(default_factory=deque)  # when the last calls went out, in order

    def reserve(self, now: float, *, rate: float, lag: float, margin: float) -> float:
        """Take the next slot for a caller arriving at ``now``: when it may call."""
        horizon = 1.0 + margin
        cap = max(1, int(rate))
        recent = self.recent
        slot = max(self.tat, now - lag)
        while recent and recent[0] <= slot - horizon:
            recent.popleft()
        if len(recent) >= cap:
            # The cap-th latest call must have left the window, margin included.
            slot = max(slot, recent[len(recent) - cap] + horizon)
            while recent and recent[0] <= slot - horizon:
                recent.popleft()
        # A caller catching up calls now, not at its (past) slot: the window counts it now.
        recent.append(max(slot, now))
        while len(recent) > cap:  # only the last cap calls can hold a slot back
            recent.popleft()
        self.tat = slot + 1 / rate
        return slot

    def went_out(self, at: float) -> None:
        """The latest call really went out at ``at`` (a sleep overshoots): count it then."""
        self.recent[-1] = max(self.recent[-1], at)

    def slow_down(self, now: float, rate: float) -> None:
        """After a limit error: the next slot is one (new, slower) interval from now."""
        self.tat = max(self.tat, now) + 1 / rate


class TokenBucket:
    """A rate limit in one process, as a ``Schedule``.

    A caller that wakes late (the event loop's sleep overshoots, or the worker paused between
    rounds to claim the next one) keeps its place in the schedule: it may catch up on slots
    missed in the last ``catch_up`` (100 ms by default, at least ``burst`` slots), so the
    achieved rate stays at the limit instead of losing every pause. Catching up never breaks
    the limit: no window of one second ever holds more than ``rate`` calls (at least one),
    whatever the pauses were, because the window counts when calls really went out
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
        self._schedule = Schedule(tat=monotonic())
        self._floor = rate_per_s * floor_fraction
        self._locks: dict[int, asyncio.Lock] = {}
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
        self.calls += 1
        return self._schedule.reserve(
            now,
            rate=self.rate,
            lag=max(self.burst / self.rate, self.catch_up_s),
            margin=_HAIR.total_seconds(),
        )

    async def acquire(self) -> None:
        async with self._lock():
            now = self._monotonic()
            slot = self.reserve(now)
            if slot > now:
                await asyncio.sleep(slot - now)
                # The window counts when calls really went out (a sleep overshoots), so that
                # a late call and an on-time one a second later never share a window over it.
                self._schedule.went_out(self._monotonic())

    def throttled(self) -> None:
        """The system said "too many requests": halve the rate, down to a floor."""
        self.rate = max(self._floor, self.rate / 2)
        self._schedule.slow_down(self._monotonic(), self.rate)

    def succeeded(self) -> None:
        if self.rate < self.configured_rate:
            self.rate = min(self.configured_rate, self.rate + self.configured_rate * 0.01)


class RateBudget(Protocol):
    """What the worker needs from a rate limiter, in one process or shared."""

    async def acquire(self) -> None: ...

    def throttled(self) -> None: ...

    def succeeded(self) -> None: ...


class CappedBudget:
    """A target's budget under a cap of this process's own (``revbridge dr drain --rate``).

    The budget is the target's rate limit: the ERP account's, shared by every worker process
    on PostgreSQL. A drain capped at ``R`` stays within it (a cap above it changes nothing),
    instead of calling at ``R`` beside the workers. A call waits for the cap, then for the
    budget, so the budget, which guards the system's own limit, is taken right before the call.
    """

    def __init__(self, cap: RateBudget, budget: RateBudget) -> None:
        self.cap = cap
        self.budget = budget

    async def acquire(self) -> None:
        await self.cap.acquire()
        await self.budget.acquire()

    def throttled(self) -> None:
        self.cap.throttled()
        self.budget.throttled()

    def succeeded(self) -> None:
        self.cap.succeeded()
        self.budget.succeeded()


_MAX_LEAD_S = 0.5
_TAKE_SQL = text(
    "SELECT clock, counted, current_rate "
    "FROM rate_bucket_take(:name, :n, :lead, :catch_up, :margin)"
)
_GROUP_SPAN_S = 0.02
# After a 429: the shared rate halves (down to 5 % of the configured rate) and the next slot
# is one new interval from now, ``Schedule.slow_down``; in one statement, like a take.
_HALVE_SQL = text(
    "UPDATE rate_buckets SET rate = greatest(configured_rate * 0.05, rate / 2), "
    "tat = greatest(tat, extract(epoch FROM clock_timestamp())) "
    "+ 1 / greatest(configured_rate * 0.05, rate / 2), updated_at = clock_timestamp() "
    "WHERE name = :name RETURNING rate"
)


class PgTokenBucket:
    """One rate schedule for every worker process, kept in PostgreSQL: the same ``Schedule``
    as ``TokenBucket``, in one ``rate_buckets`` row, on the database clock.

    A take is one statement in autocommit, run by the database (``rate_bucket_take``, migration
    0016): it locks the row (which serializes every taker on every host), reads
    ``clock_timestamp()``, computes the slots with ``Schedule.reserve``'s arithmetic
    (``tests/integration/test_rate_bucket_take.py`` holds the two to the same results) and
    writes the schedule back. The row is locked for microseconds, and the window's call times
    never leave the database. A process runs one take at a time, for every caller of its own
    waiting when the take begins (a round's concurrent calls), plus the callers expected while
    the next take would be on its way: a slot each, as if each had taken its own, one round trip
    for them all. A slot taken ahead and not used in time is counted all the same, which only
    holds later calls back. (A take of five round trips per caller, each caller queueing for the
    row, held a drain at 1,000/s to about 440 calls/s, whatever the number of processes:
    docs/decisions/0019.) Each caller then sleeps until its slot. So no one-second window across
    all processes ever holds more than ``rate`` calls (at least one). A process cannot report
    when its call really went out without another round trip, so the window counts each call at
    its slot and keeps ``margin`` (20 ms by default, ``LATE_MARGIN``) between a call and the one
    ``rate`` slots later: a call that goes out up to ``margin`` late (the round trip, thread
    hand-off, the sleep's overshoot) still never shares a second with it; a take asks for a slot
    no earlier than its last round trip from now, so the sleep absorbs the round trip, and a
    process that wakes later than the margin gives its slot up and takes another (``late``
    counts them). That costs ``margin`` per second of calls (about 2 % of a steady drain).
    ``burst`` is the catch-up allowance in slots (a caller that comes back late may take slots
    missed in the last ``max(burst / rate, catch_up)`` seconds), no longer calls on top of the
    rate. Adaptive like ``TokenBucket``: a 429 halves the shared rate for everyone (down to 5 %
    of the configured rate), successes restore it.
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        rate_per_s: float,
        *,
        burst: float | None = None,
        catch_up: timedelta = timedelta(milliseconds=100),
        margin: timedelta = LATE_MARGIN,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("PgTokenBucket needs PostgreSQL; use TokenBucket in one process")
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.engine = engine
        self.name = name
        self.configured_rate = rate_per_s
        self.burst = burst if burst is not None else 1.0
        self.catch_up_s = catch_up.total_seconds()
        self.margin_s = margin.total_seconds()
        self.calls = 0
        self.late = 0  # slots given up because this process woke too late to use them
        self._rate_seen = rate_per_s  # the shared rate at this process's last take
        self._lead = 0.0  # how long this process's last take took to come back
        # Callers waiting for the next take, and the task taking for them, in one event loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[asyncio.Future[tuple[float, float]]] = []
        self._taker: asyncio.Task[None] | None = None
        self._ahead: deque[tuple[float, float]] = deque()  # slots taken for callers to come
        # At most 20 ms of calls a take: the first calls of a round go out after a short take,
        # not after one that reserves the slots of the whole round (a drain's round is 500).
        self._group_max = max(1, math.ceil(rate_per_s * _GROUP_SPAN_S))
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO rate_buckets "
                    "(name, rate, configured_rate, burst, tat, recent, updated_at) "
                    "VALUES (:name, :rate, :rate, :burst, 0, '{}', clock_timestamp()) "
                    "ON CONFLICT (name) DO UPDATE SET configured_rate = :rate, burst = :burst, "
                    "rate = LEAST(rate_buckets.rate, :rate)"
                ),
                {"name": name, "rate": rate_per_s, "burst": self.burst},
            )

    def _take(self, lead: float, n: int) -> list[tuple[float, float]]:
        """Take the next ``n`` shared slots, for calls ``lead`` seconds from now at the
        earliest (the time a take takes to come back, so the sleep absorbs it): one statement
        in autocommit, the database's ``rate_bucket_take`` (migration 0016), which locks the
        row, reads the clock and computes the slots as ``Schedule.reserve`` does. Returns, for
        each, on this process's monotonic clock: when its call may go out at the earliest
        (never before the time the window counted it) and at the latest (that time plus the
        margin)."""
        params = {
            "name": self.name,
            "n": n,
            "lead": lead,
            "catch_up": self.catch_up_s,
            "margin": self.margin_s,
        }
        with one_statement(self.engine) as conn:
            before = time.monotonic()
            row = conn.execute(_TAKE_SQL, params).one()
            after = time.monotonic()
        self._rate_seen = float(row.current_rate)
        self._lead = min(_MAX_LEAD_S, after - before)
        # The database read its clock between ``before`` and ``after``.
        now = float(row.clock)
        return [(after + (c - now), before + (c - now) + self.margin_s) for c in row.counted]

    async def acquire(self) -> None:
        while True:
            earliest, latest = await self._next_slot()
            wait = earliest - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            # A call later than the margin (this process was descheduled, the commit was slow)
            # could share a second with the call ``rate`` slots after it: it takes another slot
            # instead. The missed one stays counted, which only holds later calls back.
            if time.monotonic() <= latest:
                break
            self.late += 1
        self.calls += 1

    def _next_slot(self) -> asyncio.Future[tuple[float, float]]:
        """This caller's slot: one taken ahead for it if one is still usable, else one from
        the next take. A process runs one take at a time, for every caller waiting when it
        begins (the concurrent calls of a round), so that callers of one process never queue
        for the row's lock against each other."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (asyncio.run again): start afresh
            self._loop, self._waiting, self._taker = loop, [], None
            self._ahead.clear()
        slot: asyncio.Future[tuple[float, float]] = loop.create_future()
        now = time.monotonic()
        while self._ahead:
            earliest, latest = self._ahead.popleft()
            if now < latest:
                slot.set_result((earliest, latest))
                return slot
            # Passed unused (the round ended, the process paused): counted all the same,
            # which only holds later calls back.
        self._waiting.append(slot)
        if self._taker is None or self._taker.done():
            self._taker = loop.create_task(self._take_for_waiting())
        return slot

    async def _take_for_waiting(self) -> None:
        group: list[asyncio.Future[tuple[float, float]]] = []
        try:
            while self._waiting:
                group = [f for f in self._waiting[: self._group_max] if not f.cancelled()]
                self._waiting = self._waiting[self._group_max :]
                if group:
                    await self._take_for(group)
        except BaseException as exc:  # the loop is ending, or a bug: no caller waits forever
            for f in group + self._waiting:
                if f.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    f.cancel()
                else:
                    f.set_exception(exc)
            raise

    async def _take_for(self, group: list[asyncio.Future[tuple[float, float]]]) -> None:
        """One take for ``group``'s callers, and the slots of the callers expected while the
        next take would be on its way (a take is a round trip; at 1,000/s a caller comes every
        millisecond), so that a take's latency is not a pause in the calls."""
        ahead = min(self._group_max, math.ceil(self._rate_seen * self._lead))
        try:
            slots = await asyncio.to_thread(self._take, self._lead, len(group) + ahead)
        except Exception as exc:  # the database's error is each caller's
            for f in group:
                if not f.done():
                    f.set_exception(exc)
            return
        # A caller cancelled meanwhile leaves its slot unused: counted all the same.
        for f, one in zip(group, slots, strict=False):
            if not f.done():
                f.set_result(one)
        self._ahead.extend(slots[len(group) :])

    def throttled(self) -> None:
        """The system said "too many requests": halve the shared rate, down to 5 %."""
        self._ahead.clear()  # taken at the old rate: counted, never used
        with one_statement(self.engine) as conn:
            self._rate_seen = float(conn.execute(_HALVE_SQL, {"name": self.name}).scalar_one())

    def succeeded(self) -> None:
        if self._rate_seen >= self.configured_rate:
            return  # nothing to restore (as of this process's last take): no round trip
        with one_statement(self.engine) as conn:
            conn.execute(
                text(
                    "UPDATE rate_buckets "
                    "SET rate = LEAST(configured_rate, rate + configured_rate * 0.01) "
                    "WHERE name = :name AND rate < configured_rate"
                ),
                {"name": self.name},
            )
