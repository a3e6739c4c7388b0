"""A customer held for review on real SQLite and PostgreSQL: its own delivery state, counted
in the status, out of the delivery line, released only by its own review item's decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.events import EventType
from revbridge.core.sfid import make_id
from revbridge.engine.queue import DeliveryQueue, Outcomes
from revbridge.services import mdm, serve
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries
from revbridge.testing.policy import realtime_policy

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
POLICY = realtime_policy(EventType.CUSTOMER_UPSERTED)


def _customer(n: int) -> bytes:
    acc = make_id("001", n)
    return json.dumps(
        {
            "type": "customer.upserted",
            "source": "salesforce",
            "source_id": acc,
            "source_version": "v1",
            "occurred_at": NOW.isoformat(),
            "data": {"customer_id": acc, "name": f"Held Co {n}", "currency": "USD"},
        }
    ).encode()


def _review(ledger: Ledger, n: int) -> int:
    with ledger.engine.begin() as conn:
        return mdm.open_review(
            conn,
            kind="held",
            sf_account_id=make_id("001", n),
            erp_customer_number=f"N-{n}",
            erp_value={"erp_system": "fake-erp", "erp_entity": ""},
            message="likely the same",
            now=NOW,
        ).id


def _state(ledger: Ledger) -> dict[int, tuple[str, str | None, int]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(
                deliveries.c.event_id,
                deliveries.c.state,
                deliveries.c.parked_on,
                deliveries.c.attempts,
            )
        ).all()
    return {r.event_id: (r.state, r.parked_on, r.attempts) for r in rows}


def test_a_held_customer_waits_for_its_review_item_not_as_a_dead_letter(ledger: Ledger) -> None:
    """Held: counted as such, never claimed, attempt not counted; a decision on another item
    leaves it, its own item's decision puts it back in line, both audited."""
    clock = ManualClock(NOW)
    ingest_lines(ledger, [_customer(1), _customer(2)], policy=POLICY, origin="t", clock=clock)
    first, second = _review(ledger, 1), _review(ledger, 2)
    queue = DeliveryQueue(ledger.engine)
    claimed = queue.claim(
        target="erp", worker_id="w", now=NOW, lease=timedelta(seconds=60), limit=10
    )
    out = Outcomes("w")
    out.held = [
        (c, f"review:{r}", f"held for review {r}")
        for c, r in zip(claimed, (first, second), strict=True)
    ]
    queue.record(out, now=NOW)
    ids = sorted(c.event_id for c in claimed)
    assert _state(ledger) == {
        ids[0]: ("held", f"review:{first}", 0),
        ids[1]: ("held", f"review:{second}", 0),
    }
    assert mdm.show_review(ledger.engine, first)["held_events"] == [ids[0]]
    on_console = {(r["id"], r["state"], r["parked_on"]) for r in serve.parked(ledger.engine)}
    assert on_console == {(ids[0], "held", f"review:{first}"), (ids[1], "held", f"review:{second}")}
    by_state = ledger.status(NOW)["events"]["by_state"]
    assert (by_state["held"], by_state["dead_letter"], by_state["pending"]) == (2, 0, 0)
    later = NOW + timedelta(days=1)
    assert queue.claim(target="erp", worker_id="w", now=later, lease=timedelta(1), limit=10) == []

    decided = mdm.decide_review(
        ledger.engine, first, approve=False, actor="mdo", now=later, note="a different firm"
    )
    assert decided["released"] == 1
    assert decided["held_events"] == []
    assert _state(ledger)[ids[0]] == ("pending", None, 0)
    assert _state(ledger)[ids[1]] == ("held", f"review:{second}", 0)
    with ledger.engine.connect() as conn:
        trail = conn.execute(
            select(audit_log.c.action, audit_log.c.entity_id, audit_log.c.reason)
            .where(audit_log.c.action.in_(("held", "release")))
            .order_by(audit_log.c.id)
        ).all()
    assert [(a, e) for a, e, _ in trail] == [
        ("held", str(ids[0])),
        ("held", str(ids[1])),
        ("release", str(ids[0])),
    ]
    assert trail[-1].reason == (
        f"review {first} rejected: not the same customer, created as a new one (a different firm)"
    )


def test_a_customer_dead_lettered_as_held_before_holds_existed_is_released_too(
    ledger: Ledger,
) -> None:
    """A delivery an older version dead-lettered as held goes back in line with its Account's
    decision, audited as coming from the dead-letter queue."""
    clock = ManualClock(NOW)
    ingest_lines(ledger, [_customer(3)], policy=POLICY, origin="t", clock=clock)
    review = _review(ledger, 3)
    queue = DeliveryQueue(ledger.engine)
    [claimed] = queue.claim(
        target="erp", worker_id="w", now=NOW, lease=timedelta(seconds=60), limit=10
    )
    out = Outcomes("w")
    out.dead = [(claimed, f"terminal: customer held for review {review}", "worker")]
    queue.record(out, now=NOW)
    assert _state(ledger)[claimed.event_id][0] == "dead_letter"

    decided = mdm.decide_review(ledger.engine, review, approve=True, actor="mdo", now=NOW)
    assert decided["released"] == 1
    assert _state(ledger)[claimed.event_id] == ("pending", None, 0)
    with ledger.engine.connect() as conn:
        [(from_state, to_state)] = conn.execute(
            select(audit_log.c.from_state, audit_log.c.to_state).where(
                audit_log.c.action == "release"
            )
        ).all()
    assert (from_state, to_state) == ("dead_letter", "pending")
