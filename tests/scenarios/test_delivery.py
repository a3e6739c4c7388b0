"""Delivery stories on the real ledger (SQLite and PostgreSQL) against the fake ERP."""

import asyncio
import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.ratelimit import TokenBucket
from revbridge.engine.retry import RetryPolicy
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries, events
from revbridge.testing import FakeErp, FakeSalesforce, Faults, most_calls_in_one_second

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _ingest(ledger: Ledger, envs: list[dict], clock: ManualClock) -> None:
    lines = [json.dumps(e).encode() for e in envs]
    result = ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock)
    assert result.rejected == 0


def _states(ledger: Ledger) -> Counter[str]:
    with ledger.engine.connect() as conn:
        return Counter(s for (s,) in conn.execute(select(deliveries.c.state)))


def _worker(ledger: Ledger, erp: FakeErp, sf: FakeSalesforce, clock: ManualClock, **kw) -> Worker:  # type: ignore[no-untyped-def]
    targets = {"erp": Target("erp", erp), "salesforce": Target("salesforce", sf)}
    return Worker(ledger.engine, targets, clock=clock, seed=1, **kw)


def _realtime_to_erp(envs: list[dict]) -> list[dict]:
    return [
        e for e in envs if e["type"] in ("invoice.posted", "payment.received", "credit_memo.issued")
    ]


def _assert_each_real_time_event_once(erp: FakeErp, envs: list[dict]) -> None:
    for e in _realtime_to_erp(envs):
        kind = {
            "invoice.posted": "invoice",
            "payment.received": "payment",
            "credit_memo.issued": "credit_memo",
        }[e["type"]]
        assert erp.count(kind, e["source_id"]) == 1, e["source_id"]


def test_every_real_time_event_reaches_the_erp_exactly_once(ledger: Ledger) -> None:
    """Invoices pull their customer ahead of the nightly batch; payments follow invoices."""
    clock = ManualClock(START)
    envs = list(generate_events(400, seed=5))
    _ingest(ledger, envs, clock)
    erp, sf = FakeErp(), FakeSalesforce()
    stats = asyncio.run(_worker(ledger, erp, sf, clock).run_until_idle())
    _assert_each_real_time_event_once(erp, envs)
    assert erp.duplicates() == {}
    assert stats.expedited > 0  # customers went ahead of their nightly batch, just in time
    # Batch classes wait for their schedule: revenue at month-end, GL nightly.
    with ledger.engine.connect() as conn:
        pending_types = {
            t
            for (t,) in conn.execute(
                select(events.c.type)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(deliveries.c.state == "pending")
            )
        }
    assert "invoice.posted" not in pending_types
    assert "revenue.recognized" in pending_types
    # ERP-to-Salesforce real-time flows were written back.
    assert sf.calls["apply_erp_payment"] > 0


def test_a_payment_before_its_invoice_waits_parked_then_follows(ledger: Ledger) -> None:
    clock = ManualClock(START)
    envs = list(generate_events(60, seed=8))
    pay = next(e for e in envs if e["type"] == "payment.received")
    inv_id = pay["data"]["applications"][0]["invoice_id"]
    invoice = next(
        e for e in envs if e["type"] == "invoice.posted" and e["data"]["invoice_id"] == inv_id
    )
    customer = [
        e
        for e in envs
        if e["type"] == "customer.upserted"
        and e["data"]["customer_id"] == pay["data"]["customer_id"]
    ]
    erp, sf = FakeErp(), FakeSalesforce()
    _ingest(ledger, [*customer, pay], clock)
    asyncio.run(_worker(ledger, erp, sf, clock).run_until_idle())
    with ledger.engine.connect() as conn:
        row = conn.execute(
            select(deliveries.c.state, deliveries.c.parked_on)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(events.c.type == "payment.received")
        ).one()
    assert tuple(row) == ("parked", f"invoice:{inv_id}")
    assert erp.count("payment", pay["source_id"]) == 0
    _ingest(ledger, [invoice], clock)
    asyncio.run(_worker(ledger, erp, sf, clock).run_until_idle())
    assert erp.count("invoice", inv_id) == 1
    assert erp.count("payment", pay["source_id"]) == 1


def test_lost_responses_never_post_twice(ledger: Ledger) -> None:
    """The ERP committed but the answer was lost: the retry finds the record instead."""
    clock = ManualClock(START)
    envs = list(generate_events(150, seed=12))
    _ingest(ledger, envs, clock)
    erp = FakeErp(faults=Faults(lost_response_rate=0.3, seed=3))
    w = _worker(
        ledger,
        erp,
        FakeSalesforce(),
        clock,
        settings=WorkerSettings(retry=RetryPolicy(max_attempts=50)),
    )
    for _ in range(200):
        asyncio.run(w.run_until_idle())
        clock.advance(timedelta(minutes=31))
    assert erp.duplicates() == {}
    assert w.stats.found_existing > 0
    _assert_each_real_time_event_once(erp, envs)
    # Amounts are right, not just counts: every invoice's total matches its source.
    totals = {d.external_ref: d.total for d in erp.records("invoice")}
    for e in envs:
        if e["type"] == "invoice.posted":
            assert totals[e["source_id"]] == Decimal(e["data"]["total"])


def test_an_erp_outage_opens_the_circuit_buffers_and_drains_after_recovery(ledger: Ledger) -> None:
    clock = ManualClock(START)
    envs = list(generate_events(200, seed=2))
    _ingest(ledger, envs, clock)
    erp = FakeErp(faults=Faults(down=True))
    w = _worker(ledger, erp, FakeSalesforce(), clock)
    asyncio.run(w.run_until_idle())
    calls_while_down = sum(erp.calls.values())
    assert w.targets["erp"].breaker.state == "open"
    assert calls_while_down <= 10  # the breaker stopped the storm
    # A simulated day of downtime: the hub keeps buffering, nothing is lost or dead-lettered.
    for _ in range(24):
        clock.advance(timedelta(hours=1))
        asyncio.run(w.run_until_idle())
    assert _states(ledger)["dead_letter"] == 0
    erp.faults.down = False
    for _ in range(30):
        clock.advance(timedelta(minutes=31))
        asyncio.run(w.run_until_idle())
    assert w.targets["erp"].breaker.state == "closed"
    assert erp.duplicates() == {}
    _assert_each_real_time_event_once(erp, envs)


def test_cron_runs_of_until_idle_count_failures_together_and_open_the_circuit(
    ledger: Ledger,
) -> None:
    """`worker --until-idle` from cron: each run is a new process that meets only a few due
    deliveries, fewer than the threshold. The failures in a row are counted across runs (in
    the ledger), so the third run opens the circuit and later runs stop calling: the events
    keep their attempts instead of spending them run after run. Before, each run counted
    from zero and the circuit never opened."""
    from revbridge.engine.circuit import CircuitBreaker
    from revbridge.engine.targets_state import target_states

    clock = ManualClock(START)
    erp = FakeErp(faults=Faults(down=True))

    def cron_run() -> Worker:
        # A new process: a new breaker (threshold 5), the same ledger.
        targets = {
            "erp": Target("erp", erp, breaker=CircuitBreaker(failure_threshold=5)),
            "salesforce": Target("salesforce", FakeSalesforce()),
        }
        w = Worker(ledger.engine, targets, clock=clock, seed=1)
        asyncio.run(w.run_until_idle())
        return w

    first = {}  # each Account's first version: distinct customers, one call each
    for e in generate_events(400, seed=3):
        if e["type"] == "customer.upserted":
            first.setdefault(e["source_id"], e)
    customers = list(first.values())
    from revbridge.core.events import EventType
    from revbridge.testing.policy import realtime_policy

    policy = realtime_policy(EventType.CUSTOMER_UPSERTED)  # one call per customer
    for run, batch in enumerate((customers[0:2], customers[2:4], customers[4:6]), start=1):
        lines = [json.dumps(e).encode() for e in batch]
        ingest_lines(ledger, lines, policy=policy, origin="t", clock=clock)
        w = cron_run()
        state = target_states(ledger.engine)["erp"]
        if run < 3:
            assert (w.targets["erp"].breaker.state, state.circuit) == ("closed", "closed")
            assert state.failures == 2 * run  # 2 calls failed in each run, counted on
    assert state.circuit == "open"  # 2 + 2 + 1: the fifth failure in a row opened it
    calls = sum(erp.calls.values())
    clock.advance(timedelta(seconds=10))  # within the cooldown: the next runs call nobody
    ingest_lines(
        ledger, [json.dumps(customers[6]).encode()], policy=policy, origin="t", clock=clock
    )
    cron_run()
    assert sum(erp.calls.values()) == calls
    erp.faults.down = False  # back: a probe after the cooldown closes it and resets the count
    for _ in range(40):
        clock.advance(timedelta(minutes=31))
        cron_run()
    state = target_states(ledger.engine)["erp"]
    assert (state.circuit, state.failures) == ("closed", 0)
    assert _states(ledger) == Counter({"delivered": 7})


def test_terminal_errors_go_to_the_dead_letter_queue_with_the_reason(ledger: Ledger) -> None:
    """A posting into a closed period is refused: dead-lettered with why, never retried."""
    clock = ManualClock(START)
    envs = list(generate_events(40, seed=1))
    invoices = [e for e in envs if e["type"] == "invoice.posted"]
    closed = invoices[0]["data"]["invoice_date"][:7]
    erp = FakeErp()
    erp.closed_periods.add(closed)
    _ingest(ledger, envs, clock)
    asyncio.run(_worker(ledger, erp, FakeSalesforce(), clock).run_until_idle())
    with ledger.engine.connect() as conn:
        dead = dict(
            conn.execute(
                select(events.c.source_id, deliveries.c.last_error)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(deliveries.c.state == "dead_letter")
            ).all()
        )
        audited = conn.execute(
            select(audit_log.c.entity_id).where(audit_log.c.action == "dead_letter")
        ).all()
    in_closed = {e["source_id"] for e in invoices if e["data"]["invoice_date"].startswith(closed)}
    assert in_closed <= set(dead)
    assert all(f"period {closed} is closed" in dead[s] for s in in_closed)
    assert len(audited) == len(dead)
    assert all(erp.count("invoice", s) == 0 for s in in_closed)  # nothing half-posted


def test_two_workers_on_postgresql_share_the_circuit_and_one_probes_at_a_time(
    pg_url: str,
) -> None:
    """When one worker process opens the ERP's circuit the other stops calling too, only one
    of them probes after the cooldown, and both resume when the probe succeeds."""
    from revbridge.engine.circuit import CircuitBreaker
    from revbridge.store.db import create_store_engine

    clock = ManualClock(START)
    engines = [create_store_engine(pg_url), create_store_engine(pg_url)]  # one per process
    try:
        envs = list(generate_events(200, seed=2))
        _ingest(Ledger(engines[0]), envs, clock)
        erp = FakeErp(faults=Faults(down=True))
        a, b = (
            Worker(
                engine,
                {
                    "erp": Target(
                        "erp",
                        erp,
                        breaker=CircuitBreaker(failure_threshold=3, cooldown=timedelta(minutes=5)),
                    ),
                    "salesforce": Target("salesforce", FakeSalesforce()),
                },
                clock=clock,
                seed=n,
                worker_id=f"w{n}",
                settings=WorkerSettings(claim_batch=5),
            )
            for n, engine in enumerate(engines)
        )

        def calls() -> int:
            return sum(erp.calls.values())

        for _ in range(10):  # a meets the outage and opens the circuit
            asyncio.run(a.step())
            if a.targets["erp"].breaker.state == "open":
                break
        assert a.targets["erp"].breaker.state == "open"
        before = calls()
        asyncio.run(b.run_until_idle())  # b sees a's decision: it calls nobody
        assert calls() == before
        assert b.targets["erp"].breaker.state == "open"

        clock.advance(timedelta(minutes=6))  # cooldown over: exactly one probe, by one worker
        before = calls()
        asyncio.run(a.step())
        asyncio.run(b.step())
        assert calls() - before == 1
        assert {a.targets["erp"].breaker.state, b.targets["erp"].breaker.state} == {"open"}

        erp.faults.down = False  # the ERP is back; the next probe succeeds and both resume
        clock.advance(timedelta(minutes=6))
        asyncio.run(b.step())
        assert b.targets["erp"].breaker.state == "closed"
        for w in (a, b):
            asyncio.run(w.run_until_idle())
        assert a.targets["erp"].breaker.state == "closed"
        assert a.stats.delivered > 0
        assert erp.duplicates() == {}
        _assert_each_real_time_event_once(erp, envs)
    finally:
        for engine in engines:
            engine.dispose()


def test_rounds_of_one_each_needing_the_last_still_deliver_everything_once(
    ledger: Ledger,
) -> None:
    """A round's outcomes are written with the next claim (docs/decisions/0016): a payment
    claimed right after its invoice parks or waits its turn, then lands, once, in order."""
    clock = ManualClock(START)
    envs = list(generate_events(120, seed=8))
    _ingest(ledger, envs, clock)
    erp, sf = FakeErp(), FakeSalesforce()
    w = _worker(ledger, erp, sf, clock, settings=WorkerSettings(claim_batch=1))
    asyncio.run(w.run_until_idle())
    assert not w._unwritten  # idle: every outcome is in the ledger
    states = _states(ledger)
    assert states["in_flight"] == 0
    assert states["parked"] == 0
    assert erp.duplicates() == {}
    _assert_each_real_time_event_once(erp, envs)
    created = {d.external_ref: int(d.erp_id) for d in erp.records("invoice")}
    by_customer: dict[str, list[int]] = {}
    for e in envs:  # in ingest order
        if e["type"] == "invoice.posted":
            by_customer.setdefault(e["data"]["customer_id"], []).append(created[e["source_id"]])
    assert all(ids == sorted(ids) for ids in by_customer.values())  # each customer's order


def test_a_circuit_whose_opening_never_reached_the_ledger_still_probes_and_closes(
    ledger: Ledger,
) -> None:
    """If the ledger was down when the circuit opened, the worker publishes it later and
    still probes and recovers, instead of staying open for good."""
    from sqlalchemy import delete

    from revbridge.engine.circuit import CircuitBreaker
    from revbridge.store.schema import targets as targets_table

    clock = ManualClock(START)
    envs = list(generate_events(80, seed=2))
    _ingest(ledger, envs, clock)
    erp = FakeErp(faults=Faults(down=True))
    w = Worker(
        ledger.engine,
        {
            "erp": Target(
                "erp",
                erp,
                breaker=CircuitBreaker(failure_threshold=2, cooldown=timedelta(minutes=5)),
            ),
            "salesforce": Target("salesforce", FakeSalesforce()),
        },
        clock=clock,
        seed=1,
    )
    asyncio.run(w.run_until_idle())
    assert w.targets["erp"].breaker.state == "open"
    with ledger.engine.begin() as conn:
        conn.execute(delete(targets_table))  # the publication was lost
    erp.faults.down = False
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        asyncio.run(w.run_until_idle())
    assert w.targets["erp"].breaker.state == "closed"
    _assert_each_real_time_event_once(erp, envs)


def test_a_stored_payload_that_no_longer_decodes_is_dead_lettered_and_the_round_goes_on(
    ledger: Ledger,
) -> None:
    """An accepted event that this version's rules refuse (amount finer than the currency)
    cannot be delivered: it goes to the dead-letter queue with why, and the others of its
    round are delivered all the same."""
    clock = ManualClock(START)
    envs = [e for e in generate_events(200, seed=3) if e["type"] == "erp.payment.received"]
    assert len(envs) >= 3
    _ingest(ledger, envs, clock)
    bad = envs[1]["source_id"]
    with ledger.engine.begin() as conn:
        (payload,) = conn.execute(select(events.c.payload).where(events.c.source_id == bad)).one()
        data = json.loads(payload)
        data["amount"] = data["amount"] + "1"  # one digit finer than the currency allows
        conn.execute(
            events.update().where(events.c.source_id == bad).values(payload=json.dumps(data))
        )
    sf = FakeSalesforce()
    stats = asyncio.run(_worker(ledger, FakeErp(), sf, clock).run_until_idle())
    with ledger.engine.connect() as conn:
        state = dict(
            conn.execute(
                select(events.c.source_id, deliveries.c.state).join(
                    deliveries, deliveries.c.event_id == events.c.id
                )
            ).all()
        )
        (reason,) = conn.execute(
            select(deliveries.c.last_error)
            .join(events, deliveries.c.event_id == events.c.id)
            .where(events.c.source_id == bad)
        ).one()
    assert state.pop(bad) == "dead_letter"
    assert "stored payload no longer decodes" in reason
    assert "amount" in reason
    assert set(state.values()) == {"delivered"}
    assert (stats.delivered, stats.dead_lettered) == (len(envs) - 1, 1)
    assert sf.calls["apply_erp_payment"] == len(envs) - 1


def test_on_postgresql_a_round_claimed_ahead_is_put_back_when_the_target_pauses_or_the_worker_stops(
    pg_url: str,
) -> None:
    """On PostgreSQL the next round is claimed while this one calls (docs/decisions/0016).
    A round claimed ahead that is not going to be called goes back to pending at once, its
    attempts unchanged: nothing waits a lease for a worker that will not call it."""
    from revbridge.engine.targets_state import upsert_target
    from revbridge.store.db import create_store_engine

    clock = ManualClock(START)
    engine = create_store_engine(pg_url)
    try:
        ledger = Ledger(engine)
        envs = [e for e in generate_events(400, seed=4) if e["type"] == "erp.payment.received"]
        _ingest(ledger, envs, clock)
        sf = FakeSalesforce()
        w = _worker(ledger, FakeErp(), sf, clock, settings=WorkerSettings(claim_batch=5))

        def rows() -> Counter[tuple[str, int]]:
            with engine.connect() as conn:
                return Counter(
                    (s, n)
                    for s, n in conn.execute(
                        select(deliveries.c.state, deliveries.c.attempts).where(
                            deliveries.c.target == "salesforce"
                        )
                    )
                )

        async def one_step_then_pause() -> None:
            assert await w.step()
            assert "salesforce" in w._ahead  # the next round, claimed during this one
            with engine.begin() as conn:
                upsert_target(conn, "salesforce", clock.now(), paused=True)
            calls = sf.calls["apply_erp_payment"]
            await w.step()  # paused: the round claimed ahead is put back, not called
            assert sf.calls["apply_erp_payment"] == calls
            w.write_outcomes()

        asyncio.run(one_step_then_pause())
        assert rows() == Counter({("delivered", 1): 5, ("pending", 0): len(envs) - 5})

        with engine.begin() as conn:
            upsert_target(conn, "salesforce", clock.now(), paused=False)

        async def run_then_stop() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(w.run_forever(stop))
            while sf.calls["apply_erp_payment"] < 15:
                await asyncio.sleep(0)
            stop.set()
            await task

        asyncio.run(run_then_stop())
        left = rows()
        assert not any(state == "in_flight" for state, _ in left)
        delivered = sum(n for (state, _), n in left.items() if state == "delivered")
        assert delivered == sf.calls["apply_erp_payment"]
        assert left[("pending", 0)] == len(envs) - delivered
    finally:
        engine.dispose()


def test_a_rate_limited_target_is_drained_with_the_ledger_work_beside_its_calls(
    ledger: Ledger,
) -> None:
    """Under a rate limit the next round is claimed and the last one written in threads while
    the calls wait for their slots (on SQLite too): still each event once, payments after
    their invoices, and no second with more calls than the limit."""
    clock = ManualClock(START)
    envs = list(generate_events(400, seed=5))
    _ingest(ledger, envs, clock)
    erp, sf = FakeErp(), FakeSalesforce()
    bucket = TokenBucket(400, burst=1)
    targets = {"erp": Target("erp", erp, bucket=bucket), "salesforce": Target("salesforce", sf)}
    worker = Worker(ledger.engine, targets, clock=clock, seed=1)
    stamps: list[float] = []
    real_call = erp.create_invoice

    async def stamped(*args, **kwargs):  # type: ignore[no-untyped-def]
        stamps.append(time.monotonic())
        return await real_call(*args, **kwargs)

    erp.create_invoice = stamped  # type: ignore[method-assign]
    claimed_in: list[str] = []
    real_claim = worker.queue.claim

    def claim(**kwargs):  # type: ignore[no-untyped-def]
        claimed_in.append(threading.current_thread().name)
        return real_claim(**kwargs)

    worker.queue.claim = claim  # type: ignore[method-assign]
    asyncio.run(worker.run_until_idle())
    _assert_each_real_time_event_once(erp, envs)
    assert erp.duplicates() == {}
    assert any(name.startswith("revbridge-ledger") for name in claimed_in)  # beside the calls
    assert len(stamps) > 50
    assert most_calls_in_one_second(stamps) <= 400


def test_a_429s_retry_after_holds_every_worker_until_then(ledger: Ledger) -> None:
    """One worker hears "429, retry after 90 s": no worker calls the system before then (the
    pause is shared through the ledger), `dr status` shows it, and afterwards all is delivered."""
    from revbridge.services.operations import dr_status

    clock = ManualClock(START)
    envs = list(generate_events(60, seed=3))
    _ingest(ledger, envs, clock)
    erp = FakeErp(faults=Faults(throttle_next=1, retry_after=timedelta(seconds=90)))
    first = _worker(ledger, erp, FakeSalesforce(), clock, worker_id="first")
    asyncio.run(first.run_until_idle())
    assert sum(erp.calls.values()) == 1  # the 429; the rest of its round was put back
    assert first.stats.retried == 1
    assert erp.docs == []
    until = START + timedelta(seconds=90)
    assert dr_status(ledger.engine, clock.now())["erp"]["retry_after_until"] == until

    clock.advance(timedelta(seconds=60))
    other = _worker(ledger, erp, FakeSalesforce(), clock, worker_id="other")  # another process
    asyncio.run(other.run_until_idle())
    assert sum(erp.calls.values()) == 1  # it knew of the pause without hearing a 429 itself
    assert _states(ledger)["in_flight"] == 0  # nothing left leased meanwhile

    clock.advance(timedelta(seconds=31))
    assert dr_status(ledger.engine, clock.now())["erp"]["retry_after_until"] is None
    for _ in range(5):
        asyncio.run(other.run_until_idle())
        clock.advance(timedelta(minutes=31))
    _assert_each_real_time_event_once(erp, envs)


def test_a_429_storm_slows_the_worker_down_and_never_opens_the_circuit(ledger: Ledger) -> None:
    """Thirty 429s in a row (more than the circuit's threshold of five failures): the system
    is answering, so the circuit stays closed (no "circuit open" page, no cooldown with
    nothing delivered); each Retry-After pauses the target, and everything is delivered.
    The backlog is older than the retry policy's age bound (an outage of eight days just
    ended): a 429 is the system's pause, not the event's failure, so none is dead-lettered."""
    from revbridge.services.operations import dr_status

    clock = ManualClock(START)
    envs = list(generate_events(60, seed=3))
    _ingest(ledger, envs, clock)
    clock.advance(timedelta(days=8))
    erp = FakeErp(faults=Faults(throttle_next=30, retry_after=timedelta(seconds=1)))
    worker = _worker(ledger, erp, FakeSalesforce(), clock)
    breaker = worker.targets["erp"].breaker
    seen: set[str] = set()
    for _ in range(40):
        asyncio.run(worker.run_until_idle())
        seen.add(str(breaker.state))
        assert dr_status(ledger.engine, clock.now())["erp"]["circuit"] == "closed"
        clock.advance(timedelta(seconds=2))
    assert erp.faults.throttle_next == 0
    assert seen == {"closed"}
    for _ in range(5):
        asyncio.run(worker.run_until_idle())
        clock.advance(timedelta(minutes=31))
    _assert_each_real_time_event_once(erp, envs)
    assert worker.stats.dead_lettered == 0


def _invoices_with_customers(n_invoices: int, seed: int) -> list[dict]:
    """The first invoice of ``n_invoices`` customers, and those customers' upserts."""
    envs = list(generate_events(1500, seed=seed))
    first: dict[str, dict] = {}
    for e in envs:
        if e["type"] == "invoice.posted":
            first.setdefault(e["data"]["customer_id"], e)
    invoices = list(first.values())[:n_invoices]
    assert len(invoices) == n_invoices
    wanted = {e["data"]["customer_id"] for e in invoices}
    customers = [
        e for e in envs if e["type"] == "customer.upserted" and e["data"]["customer_id"] in wanted
    ]
    return customers + invoices


def _ingest_customers_real_time(ledger: Ledger, envs: list[dict], clock: ManualClock) -> None:
    """Customers delivered now, not in their nightly batch: the records the invoices need."""
    from revbridge.core.events import EventType
    from revbridge.testing.policy import realtime_policy

    lines = [json.dumps(e).encode() for e in envs]
    policy = realtime_policy(EventType.CUSTOMER_UPSERTED)
    assert ingest_lines(ledger, lines, policy=policy, origin="t", clock=clock).rejected == 0


def test_a_probe_whose_answer_was_lost_is_looked_up_not_posted_again(ledger: Ledger) -> None:
    """The circuit's one probe reached the ERP, which posted the invoice and lost the answer:
    the probe failed, so the delivery went back in line without counting the attempt, and
    the next attempt still looks the invoice up instead of posting it twice."""
    from revbridge.engine.circuit import CircuitBreaker

    clock = ManualClock(START)
    envs = _invoices_with_customers(1, seed=4)
    _ingest(ledger, envs, clock)
    erp = FakeErp()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=timedelta(seconds=30))
    targets = {
        "erp": Target("erp", erp, breaker=breaker),
        "salesforce": Target("salesforce", FakeSalesforce()),
    }
    w = Worker(ledger.engine, targets, clock=clock, seed=1)
    asyncio.run(w.run_until_idle())  # customers (just in time) and the invoice: delivered
    invoice = next(e for e in envs if e["type"] == "invoice.posted")
    assert erp.count("invoice", invoice["source_id"]) == 1
    # The ERP fails another call (the circuit opens), then another invoice of the same
    # customer comes: its first attempt will be the probe.
    breaker.record_failure(clock.now())
    assert breaker.state == "open"
    again = dict(invoice, source_id=invoice["source_id"][:-3] + "ZZZ")
    again["data"] = dict(invoice["data"], invoice_id=again["source_id"])
    _ingest(ledger, [again], clock)
    asyncio.run(w.run_until_idle())
    assert erp.count("invoice", again["source_id"]) == 0
    clock.advance(timedelta(seconds=31))
    erp.faults.lose_next_response = 1  # the probe posts it; its answer is lost
    asyncio.run(w.run_until_idle())
    assert erp.count("invoice", again["source_id"]) == 1
    assert breaker.state == "open"  # the probe failed
    for _ in range(3):
        clock.advance(timedelta(seconds=31))
        asyncio.run(w.run_until_idle())
    assert breaker.state == "closed"
    assert erp.count("invoice", again["source_id"]) == 1
    assert erp.duplicates() == {}
    assert w.stats.found_existing == 1


def test_a_replayed_dead_letter_whose_post_may_have_landed_is_looked_up_first(
    ledger: Ledger,
) -> None:
    """Attempt 1 posted the invoice and lost the answer; attempt 2's look-up failed and the
    delivery gave up. Replayed, it looks the invoice up before it posts anything."""
    from revbridge.services.operations import replay

    clock = ManualClock(START)
    envs = _invoices_with_customers(1, seed=4)
    invoice = next(e for e in envs if e["type"] == "invoice.posted")
    _ingest_customers_real_time(ledger, [e for e in envs if e is not invoice], clock)
    erp = FakeErp()
    settings = WorkerSettings(retry=RetryPolicy(max_attempts=2))
    w = _worker(ledger, erp, FakeSalesforce(), clock, settings=settings)
    asyncio.run(w.run_until_idle())  # the customer
    _ingest(ledger, [invoice], clock)
    erp.faults.lose_next_response = 1
    asyncio.run(w.run_until_idle())  # attempt 1: posted, the answer lost
    clock.advance(timedelta(minutes=31))
    erp.faults.fail_next = 1
    asyncio.run(w.run_until_idle())  # attempt 2: the look-up fails, it gives up
    assert _states(ledger)["dead_letter"] == 1
    assert erp.count("invoice", invoice["source_id"]) == 1
    replay(ledger.engine, now=clock.now(), actor="ops", reason="ERP fixed")
    asyncio.run(w.run_until_idle())
    assert _states(ledger)["dead_letter"] == 0
    assert erp.count("invoice", invoice["source_id"]) == 1
    assert erp.duplicates() == {}


class _WaitingBudget:
    """A rate budget whose every slot comes ``seconds`` later on the manual clock; meanwhile
    another worker resumes any delivery whose lease expired (as one on another host would)."""

    def __init__(self, clock: ManualClock, ledger: Ledger, seconds: int) -> None:
        from revbridge.engine.queue import DeliveryQueue

        self.clock, self.seconds = clock, seconds
        self.queue = DeliveryQueue(ledger.engine)
        self.taken: list[int] = []

    async def acquire(self) -> None:
        self.clock.advance(timedelta(seconds=self.seconds))
        now = self.clock.now()
        self.queue.recover_expired_leases(now=now)
        taken = self.queue.claim(
            target="erp", worker_id="other", now=now, lease=timedelta(hours=1), limit=100
        )
        self.taken += [c.event_id for c in taken]

    def throttled(self) -> None:
        pass

    def succeeded(self) -> None:
        pass


@pytest.mark.parametrize("seconds", [10, 70])
def test_a_round_slowed_by_its_rate_limit_renews_its_leases_and_never_calls_past_one(
    ledger: Ledger, seconds: int
) -> None:
    """Slots 10 s apart: the round's 60 s leases are renewed as it goes, nobody else resumes
    them, and each invoice is posted once. Slots 70 s apart: the round's leases run out while
    it waits and cannot be renewed, so the worker calls nothing more of it (another worker
    resumed those deliveries) and writes nothing over them."""
    clock = ManualClock(START)
    envs = _invoices_with_customers(12, seed=6)
    invoices = [e for e in envs if e["type"] == "invoice.posted"]
    _ingest_customers_real_time(ledger, [e for e in envs if e not in invoices], clock)
    erp = FakeErp()
    asyncio.run(_worker(ledger, erp, FakeSalesforce(), clock).run_until_idle())
    _ingest(ledger, invoices, clock)
    budget = _WaitingBudget(clock, ledger, seconds)
    targets = {
        "erp": Target("erp", erp, bucket=budget),
        "salesforce": Target("salesforce", FakeSalesforce()),
    }
    w = Worker(ledger.engine, targets, clock=clock, seed=1, worker_id="slow")
    asyncio.run(w.step())  # one round: the first invoice of each customer
    asyncio.run(w.release_ahead())  # and its outcomes written
    posted = [d.external_ref for d in erp.records("invoice")]
    assert len(posted) == len(set(posted))
    with ledger.engine.connect() as conn:
        holders = Counter(
            (s, wid)
            for s, wid in conn.execute(
                select(deliveries.c.state, deliveries.c.worker_id)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(events.c.type == "invoice.posted")
            )
        )
    if seconds == 10:
        assert budget.taken == []  # renewed in time: nobody resumed them
        assert holders[("delivered", "slow")] == len(posted) == 12  # over 60 s of slots
    else:
        assert posted == []  # the leases ran out while it waited for its first slot
        assert len(budget.taken) > 1  # resumed by the other worker
        assert holders[("in_flight", "other")] == len(budget.taken)  # and left to it


def _customer_versions():  # type: ignore[no-untyped-def]
    """``version(n, name, hour)``: version ``n`` of one generated Account, named ``name``,
    changed at ``hour`` on 1 October."""
    first = next(e for e in generate_events(40, seed=3) if e["type"] == "customer.upserted")

    def version(n: int, name: str, hour: int) -> dict:
        v = json.loads(json.dumps(first))
        v["source_version"] = str(n)
        v["occurred_at"] = f"2026-10-01T{hour:02d}:00:00+00:00"
        v["data"]["name"] = name
        return v

    return version


def test_an_older_customer_version_never_overwrites_a_newer_one(ledger: Ledger, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Version 2 of an Account reached the ERP; version 1 arrives late (real-time), and
    another old version is run in its nightly batch: neither is sent, both are done, and the
    ERP keeps version 2's name. Each is in the audit log with what superseded it."""
    from revbridge.store.schema import attempts

    clock = ManualClock(START)
    version = _customer_versions()

    _ingest_customers_real_time(ledger, [version(2, "Paris SAS", 10)], clock)
    erp = FakeErp()
    w = Worker(
        ledger.engine,
        {"erp": Target("erp", erp), "salesforce": Target("salesforce", FakeSalesforce())},
        clock=clock,
        seed=1,
        batch_dir=tmp_path / "batches",
    )
    asyncio.run(w.run_until_idle())
    (customer,) = erp.records("customer")
    assert customer.data["name"] == "Paris SAS"
    calls = sum(erp.calls.values())

    _ingest_customers_real_time(ledger, [version(1, "Berlin GmbH", 8)], clock)  # late
    _ingest(ledger, [version(0, "Old Name Ltd", 6)], clock)  # its nightly batch
    asyncio.run(w.run_until_idle())
    report = asyncio.run(w.batch.run("customer.upserted", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert report.superseded == 1
    assert sum(erp.calls.values()) == calls  # nothing was sent
    (customer,) = erp.records("customer")
    assert customer.data["name"] == "Paris SAS"
    assert w.stats.superseded == 2
    assert _states(ledger) == {"delivered": 3}
    with ledger.engine.connect() as conn:
        audited = list(
            conn.execute(
                select(audit_log.c.reason).where(audit_log.c.action == "superseded")
            ).scalars()
        )
        assert len(audited) == 2
        assert all("superseded by event 1," in r for r in audited)
        outcomes = Counter(conn.execute(select(attempts.c.outcome)).scalars())
    assert outcomes["superseded"] == 2
    # Status tells them from what was sent: superseded made no call.
    events_ = ledger.status(clock.now())["events"]
    assert (events_["by_state"]["delivered"], events_["by_state"]["superseded"]) == (1, 2)
    assert sum(events_["by_state"].values()) == events_["total"] == 3
    assert events_["by_pattern"] == {
        "realtime": {"delivered": 1, "superseded": 1},
        "batch": {"superseded": 1},
    }
    # One sent again after it was superseded (a revert), and delivered by a call: delivered.
    with ledger.engine.begin() as conn:
        again = conn.execute(
            select(attempts.c.event_id).where(attempts.c.outcome == "superseded").limit(1)
        ).scalar_one()
        conn.execute(
            attempts.insert().values(
                event_id=again,
                attempt_no=2,
                worker_id="w",
                started_at=clock.now(),
                finished_at=clock.now(),
                outcome="delivered",
            )
        )
    by_state = ledger.status(clock.now())["events"]["by_state"]
    assert (by_state["delivered"], by_state["superseded"]) == (2, 1)


def test_a_dead_letter_that_a_newer_version_superseded_says_so_and_replay_closes_it(
    ledger: Ledger,
) -> None:
    """Version 1 of an Account was refused (a terminal error: dead letter); version 2 was
    delivered since. The dead letter is listed with what superseded it, and its replay
    closes it as superseded without calling the ERP: version 2's name stays."""
    from revbridge.services.operations import list_dead_letters, replay

    clock = ManualClock(START)
    version = _customer_versions()

    erp = FakeErp(faults=Faults(terminal_next=1))
    w = _worker(ledger, erp, FakeSalesforce(), clock)
    _ingest_customers_real_time(ledger, [version(1, "Berlin GmbH", 8)], clock)
    asyncio.run(w.run_until_idle())
    (dead,) = list_dead_letters(ledger.engine)
    assert dead["superseded_by"] is None  # nothing newer yet: a dead letter to look at

    _ingest_customers_real_time(ledger, [version(2, "Paris SAS", 10)], clock)
    asyncio.run(w.run_until_idle())
    (dead,) = list_dead_letters(ledger.engine)
    with ledger.engine.connect() as conn:
        newer = conn.execute(
            select(deliveries.c.event_id).where(deliveries.c.state == "delivered")
        ).scalar_one()
    assert dead["superseded_by"] == newer
    from revbridge.cli.main import _dead_letter_note

    assert _dead_letter_note(dead) == (
        f"terminal: 400 Bad Request: rejected by the system's validation "
        f"(superseded since by event {newer}, delivered)"
    )
    calls = sum(erp.calls.values())

    assert replay(ledger.engine, now=clock.now(), actor="kim", reason="stale", event_id=dead["id"])
    asyncio.run(w.run_until_idle())
    assert sum(erp.calls.values()) == calls  # closed without a call
    by_state = ledger.status(clock.now())["events"]["by_state"]
    assert (by_state["delivered"], by_state["superseded"], by_state["dead_letter"]) == (1, 1, 0)
    (customer,) = erp.records("customer")
    assert customer.data["name"] == "Paris SAS"


def test_a_customer_pulled_ahead_of_its_batch_stays_real_time_when_a_worker_starts(
    ledger: Ledger,
) -> None:
    """An invoice pulled its customer ahead of the nightly batch while the ERP was down. A
    worker starting meanwhile follows the configured policy (``reroute_to_policy``), which
    must not send that customer back to the night: the invoice would wait for it."""
    from revbridge.services.reroute import reroute_to_policy

    clock = ManualClock(START)
    envs = _invoices_with_customers(1, seed=4)
    _ingest(ledger, envs, clock)
    erp = FakeErp(faults=Faults(down=True))
    asyncio.run(_worker(ledger, erp, FakeSalesforce(), clock).run_until_idle())

    def patterns() -> dict[str, tuple[str, str]]:
        with ledger.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.type, deliveries.c.pattern, deliveries.c.state).join(
                    events, events.c.id == deliveries.c.event_id
                )
            ).all()
        return {t: (p, s) for t, p, s in rows}

    assert patterns()["customer.upserted"][0] == "realtime"  # pulled ahead, not yet sent
    assert reroute_to_policy(ledger.engine, build_policy(), now=clock.now()) == []
    assert patterns()["customer.upserted"][0] == "realtime"
    erp.faults.down = False
    for _ in range(5):
        clock.advance(timedelta(minutes=31))
        asyncio.run(_worker(ledger, erp, FakeSalesforce(), clock).run_until_idle())
    assert patterns() == {
        "customer.upserted": ("realtime", "delivered"),
        "invoice.posted": ("realtime", "delivered"),
    }


def _account(version: int, name: str) -> dict:
    return {
        "type": "customer.upserted",
        "source": "salesforce",
        "source_id": "001000000000042AAA",
        "source_version": f"v{version}",
        "occurred_at": (START + timedelta(minutes=version)).isoformat(),
        "data": {"customer_id": "001000000000042AAA", "name": name, "currency": "USD"},
    }


@pytest.mark.parametrize("fault", ["fail_next", "lose_next_response"])
def test_a_customer_update_that_failed_once_is_sent_again_not_taken_as_landed(
    ledger: Ledger, fault: str
) -> None:
    """A retried upsert is sent again. Looking it up first, as a retried create is, would
    find the customer from its earlier version and take the update as landed: the new
    name would never reach the ERP. An upsert is idempotent by its key, so sending it
    again is safe; a document that would post twice is still looked up first."""
    from revbridge.core.events import EventType
    from revbridge.testing.policy import realtime_policy

    policy = realtime_policy(EventType.CUSTOMER_UPSERTED)
    clock = ManualClock(START)
    erp, sf = FakeErp(), FakeSalesforce()
    w = _worker(ledger, erp, sf, clock)

    def send(env: dict) -> None:
        line = json.dumps(env).encode()
        assert ingest_lines(ledger, [line], policy=policy, origin="t", clock=clock).rejected == 0

    send(_account(1, "Old Name"))
    asyncio.run(w.run_until_idle())
    setattr(erp.faults, fault, 1)
    send(_account(2, "New Name"))
    for _ in range(5):
        asyncio.run(w.run_until_idle())
        clock.advance(timedelta(minutes=5))
    assert _states(ledger) == Counter({"delivered": 2})
    [customer] = erp.customers()
    assert customer["name"] == "New Name"
