"""The real-time worker: claim due deliveries, call the target, record the outcome.

For each claimed delivery:

1. resolve its dependencies (the customer's ERP record, the invoices a payment applies to)
   from the hub's own memory; a missing one parks the delivery on it, and a batch-class
   dependency is expedited just in time;
2. when an earlier attempt's outcome is unknown, look the record up by its external
   reference first and only create it if it is not there;
3. call the target through its circuit breaker and rate budget;
4. record delivered / retry later (backoff with full jitter, ``Retry-After`` honoured) /
   held for a person's decision (``Held``: a review item) / dead letter (terminal error, or
   retries exhausted).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from revbridge.clock import Clock
from revbridge.codec import decode_payload
from revbridge.core.events import SPECS, Direction, EventType
from revbridge.engine.alerts import Alerter
from revbridge.engine.circuit import CircuitBreaker, CircuitState
from revbridge.engine.concurrency import LocalSlots, Slots
from revbridge.engine.dispatch import Plan, call_erp, call_salesforce, plan_for
from revbridge.engine.ports import ErpPort, RecordKind, SalesforcePort
from revbridge.engine.queue import LATEST_WINS, Claimed, DeliveryQueue, Outcomes
from revbridge.engine.ratelimit import RateBudget, TokenBucket
from revbridge.engine.retry import RetryPolicy
from revbridge.engine.targets_state import (
    TargetState,
    claim_probe,
    record_circuit,
    record_hold,
    share_failures,
    target_states,
)
from revbridge.errors import (
    AccessRefused,
    DomainError,
    Held,
    RateLimited,
    TerminalError,
    TransientError,
)

if TYPE_CHECKING:
    from revbridge.engine.batch import BatchRunner

log = structlog.get_logger("revbridge.worker")


@dataclass(slots=True)
class Target:
    """One system the worker delivers to, with its breaker and budgets."""

    name: str
    port: ErpPort | SalesforcePort
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    bucket: RateBudget | None = None
    slots: Slots | None = None
    # Until when this process holds the shared half-open probe (``claim_probe``).
    probe_until: datetime | None = None
    # The system answered "too many requests" with a Retry-After: no call to it before then
    # (``_throttled``). ``hold_shared`` is the latest such time every process knows of (the
    # ``targets`` row): a later one of this process's own is published by ``Worker.step``.
    hold_until: datetime | None = None
    hold_shared: datetime | None = None
    # A batch run of one item carries the half-open probe (no real-time delivery was due
    # to): its failure says the system is still down, nothing about the item.
    batch_probe: bool = False
    # Why the circuit last failed, published with it (``record_circuit``): the alert and
    # ``dr status`` say it.
    last_error: str | None = None
    # The shared count of failures in a row this process last saw or published
    # (``share_failures``): a cron run of `worker --until-idle` counts on from the last.
    shared_failures: int = 0

    def adopt_hold(self, shared: datetime | None) -> None:
        """Take another process's pause when it ends later than this process's own."""
        if shared is None:
            return
        if self.hold_shared is None or shared > self.hold_shared:
            self.hold_shared = shared
        if self.hold_until is None or shared > self.hold_until:
            self.hold_until = shared

    def unpublished_hold(self) -> datetime | None:
        """This process's pause, when the other processes do not know it yet."""
        if self.hold_until is not None and (
            self.hold_shared is None or self.hold_until > self.hold_shared
        ):
            return self.hold_until
        return None

    def held(self, now: datetime) -> bool:
        """Has the system asked for a pause (a 429's Retry-After) that is not over?"""
        if self.hold_until is None:
            return False
        if now < self.hold_until:
            return True
        self.hold_until = None
        return False

    def __post_init__(self) -> None:
        caps = self.port.capabilities
        if self.bucket is None and caps.rate_limit_per_s:
            self.bucket = TokenBucket(caps.rate_limit_per_s)
        if self.slots is None:
            # In this process only; ``services.targets`` passes the ledger so that a declared
            # ``concurrency_scope`` is shared by every process on PostgreSQL.
            self.slots = LocalSlots(caps.concurrency_limit, scope=caps.concurrency_scope)


def _throttled(target: Target, exc: Exception, now: datetime) -> None:
    """The system said "too many requests": lower the rate, and when it said until when
    (Retry-After), make no call to it from this process before then, whichever event would
    make it: the pause is the system's, not one event's. ``Worker.step`` then publishes it to
    the other processes (docs/decisions/0020)."""
    if not isinstance(exc, RateLimited):
        return
    if target.bucket is not None:
        target.bucket.throttled()
    if exc.retry_after is not None:
        until = now + exc.retry_after
        if target.hold_until is None or until > target.hold_until:
            target.hold_until = until


def failure_reason(target: str, exc: Exception) -> str:
    """Why calls to ``target`` failed, as the circuit's alert and ``dr status`` say it."""
    if isinstance(exc, AccessRefused):
        return (
            f"{target} refused the integration's access: {exc}. No event is dead-lettered "
            "for it; fix the credentials (or the user, the token, the database named), and "
            "the circuit's next probe resumes delivery"
        )
    return f"{type(exc).__name__}: {exc}"


class OutcomeSink(Protocol):
    """Where a delivery route (the real-time round, the batch runner) reports what became of
    each delivery it claimed.

    Reports are collected in memory and written by ``flush_outcomes`` in one ledger
    transaction (docs/decisions/0006): nothing a route reports is visible before that, and a
    worker killed before it leaves leased deliveries that are resumed, looked up first.
    """

    def record_delivered(self, target: Target, c: Claimed, external_id: str) -> None:
        """``c`` is in ``target`` as ``external_id``."""
        ...

    def record_dead(self, c: Claimed, reason: str) -> None:
        """``c`` can never be delivered as it is: to the dead-letter queue with ``reason``."""
        ...

    def record_transient(
        self, target: Target, c: Claimed, exc: Exception, *, call_failed: bool = True
    ) -> None:
        """``c`` failed in a way that may pass: retry after a backoff (``Retry-After``
        honoured), or dead-letter it when its attempts or age are used up.
        ``call_failed``: count a failed call against the circuit (False for the other items
        of one failed import file, and for an item the system answered "retry" for). A 429
        (``RateLimited``) never counts: the system answered."""
        ...

    def record_parked(self, target: Target, c: Claimed, waits_for: str) -> None:
        """``c`` waits for ``waits_for`` to be in ``target`` (expedited if batch-class)."""
        ...

    def record_released(self, c: Claimed) -> None:
        """``c`` was not attempted (circuit open): back to pending, attempts unchanged."""
        ...

    def record_held(self, c: Claimed, waits_for: str, reason: str) -> None:
        """``c`` waits for a person's decision (``waits_for``, e.g. a review item): held,
        neither retried nor dead-lettered, until the decision releases it."""
        ...

    def count_call(self, target: Target, event_type: str, pattern: str) -> None:
        """One external call, for the API cost counters."""
        ...

    def flush_outcomes(self) -> None:
        """Write every outcome reported since the last flush, in one transaction."""
        ...


@dataclass(slots=True)
class WorkerStats:
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    parked: int = 0
    held: int = 0
    expedited: int = 0
    found_existing: int = 0
    calls: int = 0
    superseded: int = 0  # older versions of a record a newer one of which was delivered

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    lease: timedelta = timedelta(seconds=60)
    claim_batch: int = 50
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    idle_poll: timedelta = timedelta(seconds=1)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


TARGET_OF = {Direction.TO_ERP: "erp", Direction.TO_SALESFORCE: "salesforce"}


def _log(c: Claimed, target: Target) -> Any:
    """The delivery's logger, bound only when something is logged: binding one for every
    delivery cost as much as a zero-latency call."""
    return log.bind(event_id=c.event_id, type=c.type, attempt=c.attempt, target=target.name)


# How often a busy worker looks for expired leases and writes its API call counters.
_HOUSEKEEPING = timedelta(seconds=1)


class Worker:
    def __init__(
        self,
        engine: Engine,
        targets: dict[str, Target],
        *,
        clock: Clock,
        settings: WorkerSettings | None = None,
        worker_id: str | None = None,
        seed: int | None = None,
        batch_dir: Path | None = None,
        alerter: Alerter | None = None,
    ) -> None:
        self.queue = DeliveryQueue(engine)
        self.targets = targets
        self.clock = clock
        self.settings = settings or WorkerSettings()
        self.worker_id = worker_id or default_worker_id()
        self.rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self.stats = WorkerStats()
        self.wakeup = asyncio.Event()
        self.batch: BatchRunner | None = None
        if batch_dir is not None:
            from revbridge.engine.batch import BatchRunner

            self.batch = BatchRunner(self, batch_dir)
        self.batch_reports: list[dict[str, Any]] = []
        self.alerter: Alerter | None = alerter
        self.alert_interval = timedelta(seconds=60)
        self._next_alert_check: datetime | None = None
        self.api_calls: Counter[tuple[str, str, str]] = Counter()
        self._out = Outcomes(self.worker_id)
        # Each target's last round's outcomes, written with that target's next claim (which
        # may then claim what they let go: a customer's next event, a parked delivery).
        self._unwritten: dict[str, Outcomes] = {}
        # On PostgreSQL, each target's next round, claimed while this one calls, and the
        # outcomes being written meanwhile: futures of the worker's own threads, not of an
        # event loop (``step`` may run under a new loop each time, and a claim or a write
        # must never be lost with the loop that started it).
        self._ahead: dict[str, Future[list[Claimed]]] = {}
        self._claimer: ThreadPoolExecutor | None = None
        self._writing: Future[None] | None = None  # outcomes being written in a thread
        # Where the database works beside Python: PostgreSQL is another process, while SQLite
        # runs in this one, under its lock and the GIL (docs/decisions/0016); on SQLite, for
        # rate-limited targets only (``_round``).
        self._overlap = engine.dialect.name == "postgresql"
        self._calling: list[Claimed] = []  # the deliveries of the round being called
        # When to look for expired leases and write the API call counters: the first round does.
        self._next_lease_check = self._next_api_flush = self.clock.now()

    # ------------------------------------------------------------------ loops

    async def run_until_idle(self) -> WorkerStats:
        """Deliver everything that is due now, then return."""
        while await self.step():
            pass
        await self.release_ahead()  # idle: nothing was claimed ahead; the thread ends
        self.check_alerts(force=True)
        return self.stats

    def check_alerts(self, *, force: bool = False) -> None:
        if self.alerter is None:
            return
        now = self.clock.now()
        if force or self._next_alert_check is None or now >= self._next_alert_check:
            self.alerter.check(now)
            self._next_alert_check = now + self.alert_interval

    async def run_forever(self, stop: asyncio.Event) -> WorkerStats:
        """Deliver until ``stop`` is set; new events wake the loop through ``wakeup``.

        On PostgreSQL a LISTEN connection turns every ingest commit (NOTIFY) into a wake-up, on
        any host; in one process, ingest sets ``wakeup`` directly; ``idle_poll`` is the floor.
        """
        listener = None
        if self.queue.engine.dialect.name == "postgresql":
            listener = asyncio.create_task(self._listen(stop))
        try:
            return await self._loop(stop)
        finally:
            if listener is not None:
                listener.cancel()

    async def _listen(self, stop: asyncio.Event) -> None:
        import psycopg

        from revbridge.store.ledger import NOTIFY_CHANNEL

        url = self.queue.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    async for _ in conn.notifies():
                        self.wakeup.set()
            except psycopg.Error as exc:
                log.warning("listen_failed", error=str(exc).splitlines()[0])
                await asyncio.sleep(1)

    async def _loop(self, stop: asyncio.Event) -> WorkerStats:
        backoff = 0.5
        while not stop.is_set():
            try:
                self.check_alerts()
                progressed = await self.step()
            except DBAPIError as exc:
                # The ledger is unreachable (restart, dropped connection): nothing was lost,
                # leases protect what was claimed. Wait and try again.
                log.warning(
                    "ledger_unavailable", error=str(exc).splitlines()[0], retry_in_s=backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            if not progressed:
                self.wakeup.clear()
                waiter = asyncio.ensure_future(self.wakeup.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {waiter, stopper},
                    timeout=self.settings.idle_poll.total_seconds(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
                stopper.cancel()
        try:
            await self.release_ahead()
            self.flush_api_calls(self.clock.now())
        except DBAPIError as exc:  # leases protect them: resumed and looked up first
            log.warning("outcomes_unwritten", error=str(exc).splitlines()[0])
        return self.stats

    async def step(self) -> bool:
        """One round over all targets; True when some delivery made progress."""
        now = self.clock.now()
        if now >= self._next_lease_check:
            # Leases last a minute; looking for expired ones every round cost a write
            # transaction per round for nothing (docs/decisions/0015).
            self.queue.recover_expired_leases(now=now)
            self._next_lease_check = now + min(self.settings.lease / 10, _HOUSEKEEPING)
        shared = target_states(self.queue.engine)
        paused = {name for name, st in shared.items() if st.paused}
        progressed = False
        for target in self.targets.values():
            if target.name in paused:
                # An operator paused it (`revbridge dr pause`); events keep buffering.
                await self._set_aside(target.name)
                continue
            state = shared.get(target.name)
            target.adopt_hold(state.hold_until if state is not None else None)
            until = target.unpublished_hold()
            if until is not None:
                # This process heard the 429: tell the others, so they do not each call to
                # hear it too.
                record_hold(self.queue.engine, target.name, until=until, now=now)
                target.hold_shared = until
            if target.held(now):
                # It said "too many requests, retry after ...": buffer until then.
                await self._set_aside(target.name)
                continue
            limit = self._circuit_gate(target, shared.get(target.name), now)
            if limit is None:
                # Events stay buffered in the ledger; nobody calls the system.
                await self._set_aside(target.name)
                continue
            progressed = await self._round(target, limit, now) or progressed
        # Both, not either: wait for a write in flight and write what is left.
        if not progressed and (await self._written() | self.write_outcomes()):
            progressed = True  # the write may have released parked deliveries: look again
        if self.batch is not None:
            progressed = await self._run_due_batches(paused) or progressed
        if self.api_calls and (not progressed or now >= self._next_api_flush):
            self.flush_api_calls(now)
        return progressed

    async def _round(self, target: Target, limit: int, now: datetime) -> bool:
        """Claim and deliver one round for ``target``; False when nothing was due."""
        delivered_some = False
        while True:
            claimed = await self._claim(target, limit, now)
            if not claimed:
                return delivered_some
            delivered_some = True
            before, calls, left = target.breaker.state, self.stats.calls, self._left_line()
            plans, refs = self._prepare(target, claimed)
            overlap = self._overlap or target.bucket is not None
            if overlap and limit > 1 and before is CircuitState.CLOSED:
                # Claim the next round and write the last one's outcomes, in threads, while
                # this round calls (docs/decisions/0016). On SQLite only for a target under
                # a rate limit: its calls wait for their slots, and the ledger's work fills
                # those waits instead of pausing the calls between rounds (docs/decisions/0017).
                await self._claim_ahead(target, limit)
            await self._calls(target, plans, refs)
            if target.breaker.state is not before:
                target.probe_until = None
                record_circuit(
                    self.queue.engine,
                    target.name,
                    state=target.breaker.state.value,
                    failures=target.breaker.consecutive_failures,
                    now=self.clock.now(),
                    reason=target.last_error,
                )
                target.shared_failures = target.breaker.consecutive_failures
            else:
                self._share_failures(target)
            if before is CircuitState.CLOSED or self.stats.calls > calls:
                return True
            if self._left_line() == left:
                return True  # not attempted (released): it keeps its place; probe next step
            # A probe whose delivery left the line without reaching the system (it parked,
            # waits for a person, or cannot be decoded) proved nothing: probe with the next.

    def _left_line(self) -> int:
        return self.stats.parked + self.stats.held + self.stats.dead_lettered

    async def _claim(self, target: Target, limit: int, now: datetime) -> list[Claimed]:
        """``target``'s next round: the one claimed ahead while the last round called, or,
        when there is none (or it came back empty), one claimed now with the outcomes still
        unwritten, so that an empty answer means nothing is due."""
        if target.breaker.state is not CircuitState.CLOSED:
            await self._release_ahead(target.name)  # claimed for a closed circuit: too many
        ahead = self._ahead.pop(target.name, None)
        if ahead is not None:
            claimed = await asyncio.wrap_future(ahead)
            if claimed:
                return claimed
        await self._written()
        return self.queue.claim(
            target=target.name,
            worker_id=self.worker_id,
            now=now,
            lease=self.settings.lease,
            limit=limit,
            outcomes=self._unwritten.pop(target.name, None),
        )

    async def _claim_ahead(self, target: Target, limit: int) -> None:
        """Claim ``target``'s next round, and write its last round's outcomes, in two
        transactions of their own, in threads, while this round calls: the database works
        beside the calls. The write before it has ended first: at most one is in flight."""
        if self._claimer is None:
            self._claimer = ThreadPoolExecutor(2, thread_name_prefix="revbridge-ledger")
        await self._written()
        unwritten = self._unwritten.pop(target.name, None)
        if unwritten is not None and not unwritten.empty():
            self._writing = self._claimer.submit(self._write, unwritten)
        self._ahead[target.name] = self._claimer.submit(
            self.queue.claim,
            target=target.name,
            worker_id=self.worker_id,
            now=self.clock.now(),
            lease=self.settings.lease,
            limit=limit,
        )

    async def _written(self) -> bool:
        """Wait for the outcomes being written in a thread, if any (True then); an error is
        the ledger's, raised here."""
        writing, self._writing = self._writing, None
        if writing is None:
            return False
        await asyncio.wrap_future(writing)
        return True

    async def _release_ahead(self, name: str) -> None:
        """Put back a round claimed ahead that will not be called (the target was paused,
        its circuit opened, the worker stops): pending again, attempts unchanged."""
        ahead = self._ahead.pop(name, None)
        claimed = await asyncio.wrap_future(ahead) if ahead is not None else []
        if claimed:
            self._unwritten.setdefault(name, Outcomes(self.worker_id)).released.extend(claimed)

    async def _set_aside(self, name: str) -> None:
        """No round for ``name`` now: put back what was claimed ahead for it, and write its
        outcomes (no claim of its own will carry them soon)."""
        await self._release_ahead(name)
        self.write_outcomes(name)

    async def release_ahead(self) -> None:
        """Put back every round claimed ahead and write what is unwritten: what a worker
        does before it stops, so that nothing it leased waits for its lease to expire."""
        for name in list(self._ahead):
            await self._release_ahead(name)
        await self._written()
        self.write_outcomes()
        if self._claimer is not None:
            self._claimer.shutdown()
            self._claimer = None

    def flush_api_calls(self, now: datetime) -> None:
        """Add the calls counted since the last flush to today's counters (at most once a
        second while busy, and whenever the worker goes idle or stops)."""
        if self.api_calls:
            self.queue.add_api_calls(now, self.api_calls)
            self.api_calls.clear()
        self._next_api_flush = now + _HOUSEKEEPING

    def _share_failures(self, target: Target) -> None:
        """Publish the closed circuit's failures in a row when they changed (a failure, or
        the success after some): nothing to write while every call succeeds."""
        b = target.breaker
        if b.state is CircuitState.CLOSED and b.consecutive_failures != target.shared_failures:
            try:
                share_failures(
                    self.queue.engine,
                    target.name,
                    failures=b.consecutive_failures,
                    now=self.clock.now(),
                )
            except DBAPIError as exc:  # a count for the next process: tried again next round
                log.warning("failures_unshared", target=target.name, error=str(exc)[:200])
                return
            target.shared_failures = b.consecutive_failures

    def _circuit_gate(
        self, target: Target, shared: TargetState | None, now: datetime
    ) -> int | None:
        """How many deliveries this process may claim for ``target`` now (None: none).

        First adopt the shared decision (another process opened, re-opened or closed the
        circuit); then, with the circuit open and its cooldown over, claim the one shared
        half-open probe, or stand aside while another process probes.
        """
        b = target.breaker
        holds_probe = target.probe_until is not None and now < target.probe_until
        if shared is None and b.state is not CircuitState.CLOSED:
            # Our transition never reached the ledger (it was down): publish it now, so that
            # the others stop too and the probe can be claimed.
            record_circuit(
                self.queue.engine,
                target.name,
                state=CircuitState.OPEN.value,
                failures=b.consecutive_failures,
                now=b.opened_at or now,
                reason=target.last_error,
            )
            b.state, b.probing = CircuitState.OPEN, False
        elif shared is not None:
            if shared.circuit == CircuitState.CLOSED.value:
                if b.state is not CircuitState.CLOSED:
                    b.record_success()  # another process's probe succeeded
                    target.probe_until = None
                if shared.failures != target.shared_failures:
                    # Other processes failed (or succeeded) since: count on from theirs.
                    b.consecutive_failures = target.shared_failures = shared.failures
            elif not (shared.circuit == CircuitState.HALF_OPEN.value and holds_probe):
                opened_at = shared.opened_at or now
                if b.state is not CircuitState.OPEN or b.opened_at != opened_at:
                    b.state, b.opened_at, b.probing = CircuitState.OPEN, opened_at, False
                    target.probe_until = None
        if b.state is CircuitState.CLOSED:
            return self.settings.claim_batch
        if b.state is CircuitState.HALF_OPEN:
            return 1  # this process holds the probe
        if not b.allow(now):
            return None  # cooling down
        if not claim_probe(
            self.queue.engine,
            target.name,
            now=now,
            cooldown=b.cooldown,
            probe_timeout=self.settings.lease,
            actor=self.worker_id,
        ):
            b.state, b.probing = CircuitState.OPEN, False  # another process probes
            return None
        target.probe_until = now + self.settings.lease
        b.probing = False  # allow() moved it to half-open; the one call takes the probe
        return 1

    async def _run_due_batches(self, paused: set[str]) -> bool:
        """Run every batch class whose schedule has come (its deliveries are due)."""
        assert self.batch is not None
        await self._written()
        self.write_outcomes()
        ran = False
        now = self.clock.now()
        for event_type in self.batch.due_classes(now):
            target = self.targets.get(TARGET_OF[SPECS[EventType(event_type)].direction])
            if target is None or target.name in paused or target.held(now):
                continue  # (None: a worker for some targets only, a drain of one target)
            b, before = target.breaker, target.breaker.state
            # This process holds the half-open probe, and no real-time delivery was due to
            # carry it (``step`` tried first): one batch item carries it. Without this, a
            # backlog of batch items only would never close the circuit again.
            probe = before is CircuitState.HALF_OPEN and (
                target.probe_until is not None and now < target.probe_until
            )
            if before is not CircuitState.CLOSED and not probe:
                continue  # open and cooling down, or another process probes
            target.batch_probe = probe
            try:
                report = await self.batch.run(event_type, now=now, probe=probe)
            finally:
                target.batch_probe = False
            if probe and b.state is CircuitState.HALF_OPEN and (report.delivered or report.failed):
                b.record_success()  # the system answered the probe
            if b.state is not before:
                target.probe_until = None
                record_circuit(
                    self.queue.engine,
                    target.name,
                    state=b.state.value,
                    failures=b.consecutive_failures,
                    now=self.clock.now(),
                    reason=target.last_error,
                )
                target.shared_failures = b.consecutive_failures
            else:
                self._share_failures(target)
            if report.items:
                ran = True
                self.batch_reports.append(report.as_dict())
        return ran

    # ------------------------------------------------------------------ one delivery

    async def deliver_round(self, target: Target, claimed: list[Claimed]) -> None:
        """Deliver claimed deliveries concurrently (within the target's budget); their
        outcomes are written with the next claim, or at once when none follows
        (``write_outcomes``)."""
        plans, refs = self._prepare(target, claimed)
        await self._calls(target, plans, refs)

    def _prepare(
        self, target: Target, claimed: list[Claimed]
    ) -> tuple[list[tuple[Claimed, Any, Plan]], dict[str, str]]:
        """Decode a round and look up, in one query, the records it needs and those it would
        create (a posted document is never created twice)."""
        self._out = Outcomes(self.worker_id)
        plans: list[tuple[Claimed, Any, Plan]] = []
        for c in claimed:
            try:
                data = decode_payload(EventType(c.type), c.payload)
            except (ValueError, DomainError) as exc:  # pydantic's ValidationError included
                # Accepted once, refused by this version's rules (or changed in the ledger by
                # hand): it cannot be delivered as it is, and must not stop the round.
                self.record_dead(c, f"terminal: the stored payload no longer decodes: {exc}")
                _log(c, target).error("undecodable_payload", error=str(exc))
                continue
            plans.append((c, data, plan_for(data, c.idempotency_key)))
        if any(c.type in LATEST_WINS for c in claimed):
            newer = self.queue.superseded(claimed, target.name)
            for c, _, _ in plans:
                if c.event_id in newer:
                    self.record_superseded(target, c, *newer[c.event_id])
            plans = [p for p in plans if p[0].event_id not in newer]
        wanted = {r for _, _, p in plans for r in p.needs}
        wanted.update(c.subject_ref for c, _, p in plans if p.creates_document)
        return plans, self.queue.resolve(target.name, sorted(wanted))

    def _lease_holds(self, c: Claimed, now: datetime) -> bool:
        """May this worker still call for ``c``, whose lease is past half its length?

        A call must end before its lease does, or another worker could resume the delivery
        (looking it up first, and not finding what is still in flight) and post it again. So
        the round's leases are renewed once half of them has gone (a round slowed down by a
        rate limit); one that expired is not renewed, and its delivery is not called.
        """
        lease = self.settings.lease
        renewed = self.queue.renew_leases(
            [r.event_id for r in self._calling], self.worker_id, now=now, until=now + lease
        )
        for r in self._calling:
            if r.event_id in renewed:
                r.renew_at = now + lease / 2
        return c.event_id in renewed

    async def _calls(
        self, target: Target, plans: list[tuple[Claimed, Any, Plan]], refs: dict[str, str]
    ) -> None:
        """Call the target for a prepared round; its outcomes become the unwritten ones.

        As many lanes as calls may be in flight at once, each taking the next delivery when
        its last one is done: the concurrency of a task per delivery without creating one
        (a task cost more than a zero-latency call).
        """
        assert target.slots is not None
        self._calling = [c for c, _, _ in plans]  # whose leases ``_lease_holds`` renews
        pending = iter(plans)

        async def lane() -> None:
            for c, data, plan in pending:
                await self._guarded(target, c, data, plan, refs)

        await asyncio.gather(*(lane() for _ in range(min(len(plans), target.slots.limit))))
        out, self._out = self._out, Outcomes(self.worker_id)
        if target.name in self._unwritten:  # a release put some there
            self._unwritten[target.name].merge(out)
        else:
            self._unwritten[target.name] = out

    def _write(self, out: Outcomes) -> None:
        self.queue.record(out, now=self.clock.now())

    def write_outcomes(self, target: str | None = None) -> bool:
        """Write the last rounds' outcomes now (of ``target``, or of all), when no claim of
        theirs follows to carry them; True when there were some."""
        names = [target] if target is not None else list(self._unwritten)
        out = Outcomes(self.worker_id)
        for name in names:
            found = self._unwritten.pop(name, None)
            if found is not None:
                out.merge(found)
        if out.empty():
            return False
        self._write(out)
        return True

    # ------------------------------------------------------------------ outcome sink

    def flush_outcomes(self) -> None:
        """Write outcomes collected outside ``deliver_round`` (the batch runner's)."""
        out, self._out = self._out, Outcomes(self.worker_id)
        self.queue.record(out, now=self.clock.now())

    def record_delivered(self, target: Target, c: Claimed, external_id: str) -> None:
        self._out.delivered.append((c, target.name, external_id))
        self.stats.delivered += 1

    def record_superseded(
        self, target: Target, c: Claimed, newer_event: int, external_id: str | None
    ) -> None:
        """``c`` is an older version of a record than one already delivered: done, not sent
        (sending it would overwrite the newer state)."""
        why = f"superseded by event {newer_event}, a newer version already in {target.name}"
        self._out.superseded.append((c, target.name, external_id, why))
        self.stats.superseded += 1
        _log(c, target).info("superseded", by=newer_event)

    def record_dead(self, c: Claimed, reason: str) -> None:
        self._out.dead.append((c, reason, self.worker_id))
        self.stats.dead_lettered += 1

    def record_released(self, c: Claimed) -> None:
        self._out.released.append(c)

    def record_held(self, c: Claimed, waits_for: str, reason: str) -> None:
        self._out.held.append((c, waits_for, reason))
        self.stats.held += 1

    def count_call(self, target: Target, event_type: str, pattern: str) -> None:
        self.api_calls[(target.name, event_type, pattern)] += 1

    async def _guarded(
        self, target: Target, c: Claimed, data: Any, plan: Plan, refs: dict[str, str]
    ) -> None:
        assert target.slots is not None
        entered = False
        try:
            async with target.slots.hold():
                entered = True
                await self._deliver(target, c, data, plan, refs)
        except RateLimited:
            if entered:
                raise
            # No slot freed up in time (other processes hold them all): not attempted.
            self.record_released(c)

    async def _deliver(
        self, target: Target, c: Claimed, data: Any, plan: Plan, refs: dict[str, str]
    ) -> None:
        now = self.clock.now()
        missing = [ref for ref in plan.needs if ref not in refs]
        if missing:
            self.record_parked(target, c, missing[0])
            _log(c, target).debug("parked", waits_for=missing[0])
            return
        if plan.creates_document and c.subject_ref in refs and not c.outcome_unknown:
            reason = (
                f"{c.subject_ref} is already in {target.name} as {refs[c.subject_ref]}; "
                "a posted document is never changed: send a credit memo or a reversal"
            )
            self.record_dead(c, reason)
            return

        probing = target.breaker.state is not CircuitState.CLOSED
        if target.held(now) or not target.breaker.allow(now):
            # Circuit open, or a 429's Retry-After not over: not attempted, attempts unchanged.
            self.record_released(c)
            return
        try:
            if target.bucket is not None:
                await target.bucket.acquire()
                now = self.clock.now()  # the wait for a slot may have been long
            if c.renew_at is not None and now >= c.renew_at and not self._lease_holds(c, now):
                # The lease expired while the round waited (another worker may resume this
                # delivery): calling now could post it twice. Not attempted.
                self.record_released(c)
                return
            external_id = await self._call(target, c, data, plan, refs)
        except Held as exc:
            # A person must decide first (a likely duplicate customer): not a failure.
            target.breaker.record_success()
            self.record_held(c, exc.waits_for, str(exc))
            _log(c, target).info("held", waits_for=exc.waits_for)
        except (TerminalError, DomainError) as exc:
            # The system answered (it is up), or a business rule refused the record: retrying
            # the same request cannot help.
            target.breaker.record_success()
            self.record_dead(c, f"terminal: {exc}")
            _log(c, target).warning("dead_letter", error=str(exc))
        except Exception as exc:  # unknown errors are transient: docs/decisions/0004
            if probing:
                # A failed probe says the system is still down, nothing about this event:
                # it keeps its attempts, so an outage of days dead-letters nothing. Its call
                # may have landed all the same (a lost answer): the next one looks it up.
                # A 429 says it is up (asking to slow down): that closes the circuit, and
                # the Retry-After pauses the target instead.
                if isinstance(exc, RateLimited):
                    target.breaker.record_success()
                else:
                    target.last_error = failure_reason(target.name, exc)
                    target.breaker.record_failure(self.clock.now())
                _throttled(target, exc, self.clock.now())
                self._out.probed.append(c)
                _log(c, target).debug("probe_failed", error=str(exc))
                return
            self.record_transient(target, c, exc)
            _log(c, target).debug("retry", error=str(exc))
        else:
            target.breaker.record_success()
            if target.bucket is not None:
                target.bucket.succeeded()
            self.record_delivered(target, c, external_id)

    async def _call(
        self,
        target: Target,
        c: Claimed,
        data: object,
        plan: Plan,
        refs: dict[str, str],
    ) -> str:
        port = target.port
        kind, ref = plan.kind, plan.external_ref
        self.stats.calls += 1
        self.api_calls[(target.name, c.type, c.pattern)] += 1
        # Dispatch on the plan: a record kind is a record in the ERP; none is a write-back to
        # Salesforce (not isinstance() on the runtime-checkable port protocols: that check
        # costs more than a fast target's whole call).
        if isinstance(kind, RecordKind):
            erp = cast(ErpPort, port)
            # An earlier attempt may have landed: a document is looked up before it is
            # created again. An upsert is sent again (idempotent by its key): a look-up
            # would find the record's earlier version and take this one as landed.
            if c.outcome_unknown and plan.creates_document:
                self.api_calls[(target.name, c.type, c.pattern)] += 1
                found = await erp.find(kind, ref)
                if found is not None:
                    self.stats.found_existing += 1
                    return found.erp_id
            return await call_erp(erp, data, ref, refs)  # type: ignore[arg-type]
        return await call_salesforce(cast(SalesforcePort, port), data, ref)  # type: ignore[arg-type]

    def record_transient(
        self, target: Target, c: Claimed, exc: Exception, *, call_failed: bool = True
    ) -> None:
        now = self.clock.now()
        if isinstance(exc, AccessRefused):
            # The system refuses the integration (credentials, token, user): every call
            # would fail alike, and no event is to blame. Stop calling it at once, keep
            # the event's attempts and age (the probe), and say why (decision 0038).
            target.last_error = failure_reason(target.name, exc)
            if call_failed and target.breaker.state is not CircuitState.OPEN:
                target.breaker.trip(now)
                log.error("access_refused", target=target.name, error=str(exc))
            self._out.probed.append(c)
            self.stats.retried += 1
            return
        if isinstance(exc, RateLimited):
            # "Too many requests" is an answer: the system is up. The rate falls and a
            # Retry-After pauses the target (``_throttled``); the circuit is for a system
            # that does not answer, and a 429 storm must not page "circuit open".
            if call_failed:
                target.breaker.record_success()
        elif call_failed:
            target.last_error = failure_reason(target.name, exc)
            target.breaker.record_failure(now)
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        _throttled(target, exc, now)
        if target.batch_probe:
            # The item carried the probe, as a real-time probe does: it keeps its attempts
            # (an outage of days dead-letters nothing), and it is looked up next time.
            self._out.probed.append(c)
            return
        if isinstance(exc, RateLimited) and retry_after is not None:
            # The system's pause, not this event's failure: the target is held until the
            # Retry-After (``_throttled``), and the event goes when it ends, keeping its
            # attempts and its age (a backlog a week old after an outage is not
            # dead-lettered because the system asked it to wait). Looked up next time.
            self._out.probed.append(c)
            self.stats.retried += 1
            return
        error = f"{type(exc).__name__}: {exc}"
        # A batch item waited for its schedule (a month-end class is weeks old when it first
        # runs): its age bound counts from the run, so a first failure never dead-letters it
        # as "too old"; its attempts still bound it.
        born = c.received_at if c.pattern != "batch" else (c.claimed_at or now)
        give_up = self.settings.retry.exhausted(c.attempt, born, now)
        if give_up:
            self.record_dead(c, f"{give_up}; last error: {error}")
            return
        delay = self.settings.retry.delay(c.attempt, self.rng, retry_after)
        self._out.retries.append((c, now + delay, error))
        self.stats.retried += 1

    def record_parked(self, target: Target, c: Claimed, waits_for: str) -> None:
        now = self.clock.now()
        if self.queue.expedite(
            target=target.name,
            subject_ref=waits_for,
            now=now,
            reason=f"needed now by event {c.event_id} ({c.type})",
        ):
            self.stats.expedited += 1
        self._out.parked.append((c, target.name, waits_for))
        self.stats.parked += 1
