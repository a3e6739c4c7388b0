"""A round's outcomes as the ledger keeps them, on real SQLite and PostgreSQL.

On PostgreSQL a round whose outcomes are all deliveries is written by one statement in
autocommit; any other round by several statements in one transaction. Both must leave the
same ledger: each delivery marked only by its lease holder, the record remembered, the
attempt kept, and what was parked on a delivered record let go.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.events import EventType
from revbridge.engine.queue import Claimed, DeliveryQueue, Outcomes
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines
from revbridge.services.operations import trace
from revbridge.store.ledger import Ledger
from revbridge.store.schema import attempts, audit_log, deliveries, external_refs
from revbridge.testing.policy import realtime_policy

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
POLICY = realtime_policy(EventType.CUSTOMER_UPSERTED)


def _ingest(ledger: Ledger, envs: list[dict]) -> None:  # type: ignore[type-arg]
    lines = [json.dumps(e).encode() for e in envs]
    result = ingest_lines(ledger, lines, policy=POLICY, origin="t", clock=ManualClock(NOW))
    assert result.rejected == 0


def _claim(queue: DeliveryQueue, worker: str, at: datetime) -> list[Claimed]:
    return queue.claim(target="erp", worker_id=worker, now=at, lease=LEASE, limit=50)


def _delivered(worker: str, claimed: list[Claimed]) -> Outcomes:
    out = Outcomes(worker)
    out.delivered = [(c, "erp", f"ERP-{c.event_id}") for c in claimed]
    return out


def _delivery(ledger: Ledger, event_id: int) -> tuple[object, ...]:
    with ledger.engine.connect() as conn:
        row = conn.execute(
            select(
                deliveries.c.state,
                deliveries.c.external_ref,
                deliveries.c.parked_on,
                deliveries.c.delivered_at,
            ).where(deliveries.c.event_id == event_id)
        ).one()
    return tuple(row)


def test_a_round_of_deliveries_marks_remembers_records_and_lets_go(ledger: Ledger) -> None:
    envs = list(generate_events(80, seed=8))
    pay = next(e for e in envs if e["type"] == "payment.received")
    invoice_id = pay["data"]["applications"][0]["invoice_id"]
    invoice = next(
        e for e in envs if e["type"] == "invoice.posted" and e["data"]["invoice_id"] == invoice_id
    )
    customers = [e for e in envs if e["type"] == "customer.upserted"]
    queue = DeliveryQueue(ledger.engine)

    # The customers: rounds of deliveries only (a customer's later versions in later rounds).
    _ingest(ledger, customers)
    first = _claim(queue, "w", NOW)
    assert len(first) == len({e["data"]["customer_id"] for e in customers}) > 1
    done = NOW + timedelta(seconds=1)
    assert queue.record(_delivered("w", first), now=done) == 0
    while later_versions := _claim(queue, "w", done):
        queue.record(_delivered("w", later_versions), now=done)
    for c in first:
        assert _delivery(ledger, c.event_id) == ("delivered", f"ERP-{c.event_id}", None, done)
    with ledger.engine.connect() as conn:
        refs = dict(
            conn.execute(
                select(external_refs.c.subject_ref, external_refs.c.external_id).where(
                    external_refs.c.target == "erp"
                )
            ).all()
        )
        tried = conn.execute(
            select(
                attempts.c.event_id,
                attempts.c.attempt_no,
                attempts.c.worker_id,
                attempts.c.started_at,
                attempts.c.finished_at,
                attempts.c.outcome,
                attempts.c.external_ref,
            ).order_by(attempts.c.event_id)
        ).all()
    assert {c.subject_ref: f"ERP-{c.event_id}" for c in first}.items() <= refs.items()
    assert [tuple(t) for t in tried if t.event_id in {c.event_id for c in first}] == [
        (c.event_id, 1, "w", NOW, done, "delivered", f"ERP-{c.event_id}")
        for c in sorted(first, key=lambda c: c.event_id)
    ]

    # A payment before its invoice parks (a round of another kind)...
    _ingest(ledger, [pay])
    (payment,) = _claim(queue, "w", done)
    parked = Outcomes("w")
    parked.parked = [(payment, "erp", f"invoice:{invoice_id}")]
    queue.record(parked, now=done)
    assert _delivery(ledger, payment.event_id)[:3] == ("parked", None, f"invoice:{invoice_id}")

    # ...and the round that delivers the invoice lets it go.
    _ingest(ledger, [invoice])
    (inv,) = _claim(queue, "w", done)
    assert queue.record(_delivered("w", [inv]), now=done) == 1
    assert _delivery(ledger, payment.event_id)[:3] == ("pending", None, None)
    assert [c.event_id for c in _claim(queue, "w", done)] == [payment.event_id]


def test_only_the_lease_holder_marks_a_delivery_but_the_record_is_remembered(
    ledger: Ledger,
) -> None:
    """A worker whose lease was taken over loses the race harmlessly: the delivery stays with
    the new holder, and the record it made is remembered all the same."""
    customers = [e for e in generate_events(40, seed=3) if e["type"] == "customer.upserted"]
    queue = DeliveryQueue(ledger.engine)
    _ingest(ledger, customers[:1])
    (c,) = _claim(queue, "old", NOW)
    later = NOW + LEASE + timedelta(seconds=1)
    assert queue.recover_expired_leases(now=later) == 1
    (again,) = _claim(queue, "new", later)
    assert (again.event_id, again.attempt) == (c.event_id, 2)
    queue.record(_delivered("old", [c]), now=later)
    assert _delivery(ledger, c.event_id)[0] == "in_flight"
    assert queue.resolve("erp", [c.subject_ref]) == {c.subject_ref: f"ERP-{c.event_id}"}


def _distinct_customers(n: int) -> list[dict]:  # type: ignore[type-arg]
    """The first upsert of ``n`` customers: each heads its own line."""
    first: dict[str, dict] = {}  # type: ignore[type-arg]
    for e in generate_events(400, seed=3):
        if e["type"] == "customer.upserted":
            first.setdefault(e["data"]["customer_id"], e)
    assert len(first) >= n
    return list(first.values())[:n]


def test_a_stale_worker_overwrites_nothing_the_new_lease_holder_owns(ledger: Ledger) -> None:
    """Retried, dead-lettered, parked, held, put back: none of a stale worker's outcomes
    change a delivery that another worker took over after its lease expired (nor audit a
    dead letter or a hold that did not happen)."""
    queue = DeliveryQueue(ledger.engine)
    _ingest(ledger, _distinct_customers(6))
    claimed = _claim(queue, "old", NOW)
    assert len(claimed) == 6
    later = NOW + LEASE + timedelta(seconds=1)
    assert queue.recover_expired_leases(now=later) == 6
    assert len(_claim(queue, "new", later)) == 6
    a, b, c, d, e, f = claimed
    stale = Outcomes("old")
    stale.retries = [(a, later + timedelta(minutes=5), "TransientError: 503")]
    stale.dead = [(b, "terminal: refused", "old")]
    stale.parked = [(c, "erp", "customer:elsewhere")]
    stale.held = [(d, "review:1", "a likely duplicate")]
    stale.released = [e]
    stale.probed = [f]
    queue.record(stale, now=later)
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.state, deliveries.c.worker_id, deliveries.c.attempts)
        ).all()
        audited = conn.execute(select(audit_log.c.action)).scalars().all()
    assert {tuple(r) for r in rows} == {("in_flight", "new", 2)}
    assert "dead_letter" not in audited
    assert "held" not in audited


def test_a_probe_put_back_is_looked_up_first_next_time(ledger: Ledger) -> None:
    """A failed probe's call may have landed (its answer lost): put back without counting the
    attempt, but never below one, so the next claim looks the record up first."""
    queue = DeliveryQueue(ledger.engine)
    _ingest(ledger, _distinct_customers(2))
    probed, released = _claim(queue, "w", NOW)
    assert (probed.outcome_unknown, released.outcome_unknown) == (False, False)
    out = Outcomes("w")
    out.probed, out.released = [probed], [released]
    queue.record(out, now=NOW)
    again = {c.event_id: c for c in _claim(queue, "w", NOW)}
    assert (again[probed.event_id].attempt, again[probed.event_id].outcome_unknown) == (2, True)
    assert (again[released.event_id].attempt, again[released.event_id].outcome_unknown) == (
        1,
        False,
    )


def test_leases_are_renewed_for_their_holder_only_while_they_last(ledger: Ledger) -> None:
    queue = DeliveryQueue(ledger.engine)
    _ingest(ledger, _distinct_customers(2))
    first, second = _claim(queue, "w", NOW)
    assert first.renew_at == NOW + LEASE / 2
    half = NOW + LEASE / 2
    ids = [first.event_id, second.event_id]
    assert queue.renew_leases(ids, "someone-else", now=half, until=half + LEASE) == set()
    assert queue.renew_leases(ids, "w", now=half, until=half + LEASE) == set(ids)
    expired = half + LEASE + timedelta(seconds=1)
    assert queue.renew_leases(ids, "w", now=expired, until=expired + LEASE) == set()


def test_a_write_back_to_salesforce_keeps_its_id_on_the_delivery_not_in_the_references(
    ledger: Ledger,
) -> None:
    """Only records in the ERP are remembered (later deliveries depend on them, a posted
    document must never be created twice); a Salesforce write-back's id stays on its delivery
    and its attempt, whichever way the round is written."""
    envs = list(generate_events(120, seed=8))
    customer = next(e for e in envs if e["type"] == "customer.upserted")
    by_customer = {
        e["data"]["erp_customer_number"]: e for e in envs if e["type"] == "erp.payment.received"
    }
    backs = list(by_customer.values())[:4]  # four customers: four heads of line
    assert len(backs) == 4
    _ingest(ledger, [customer, *backs])
    queue = DeliveryQueue(ledger.engine)
    to_erp = _claim(queue, "w", NOW)
    to_sf = queue.claim(target="salesforce", worker_id="w", now=NOW, lease=LEASE, limit=2)
    assert len(to_erp) == 1
    assert len(to_sf) == 2

    # A round of deliveries only, to both targets (on PostgreSQL: the one-statement write).
    out = _delivered("w", to_erp)
    out.delivered += [(c, "salesforce", f"a0Y{c.event_id}") for c in to_sf]
    done = NOW + timedelta(seconds=1)
    queue.record(out, now=done)
    # A round with a retry in it (the statement-per-outcome write).
    last, again = queue.claim(target="salesforce", worker_id="w", now=done, lease=LEASE, limit=5)
    out = Outcomes("w")
    out.delivered = [(last, "salesforce", f"a0Y{last.event_id}")]
    out.retries = [(again, done + timedelta(minutes=1), "Timeout: try again")]
    queue.record(out, now=done)

    with ledger.engine.connect() as conn:
        refs = conn.execute(select(external_refs.c.target, external_refs.c.subject_ref)).all()
        tried = dict(conn.execute(select(attempts.c.event_id, attempts.c.external_ref)).all())
    assert [tuple(r) for r in refs] == [("erp", to_erp[0].subject_ref)]
    for c in [*to_sf, last]:
        assert _delivery(ledger, c.event_id) == ("delivered", f"a0Y{c.event_id}", None, done)
        assert tried[c.event_id] == f"a0Y{c.event_id}"
        assert trace(ledger.engine, c.event_id)["target_record"] == f"a0Y{c.event_id}"
    assert trace(ledger.engine, to_erp[0].event_id)["target_record"] == f"ERP-{to_erp[0].event_id}"
