"""The fake ERP's capture stamps a change with when it happened in the ERP, not when it is
read: a change read twice (two workers on one shared fake, a capture run again) is the same
envelope, which the ledger counts as a duplicate, never as a conflicting version."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from revbridge.clock import ManualClock
from revbridge.core.events import ErpPaymentReceived
from revbridge.core.policy import build_policy
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeErp

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _changes(erp: FakeErp) -> None:
    customer = erp.add_customer("C100", "Dunder Mifflin", currency="USD")
    erp.edit_customer(customer, credit_hold=True)
    erp.enter_payment(
        ErpPaymentReceived(
            erp_payment_id="WIRE-1",
            erp_customer_number="C100",
            customer_id="erp-native:C100",  # the ERP's own customer: the cash is applied to it
            currency="USD",
            amount=Decimal("250.00"),
            received_on=date(2026, 3, 1),
            method="wire",
        )
    )


def _read(erp: FakeErp) -> list[dict[str, Any]]:
    return asyncio.run(erp.capture_changes(None))[0]


def test_a_change_read_twice_is_the_same_envelope() -> None:
    clock = ManualClock(T0)
    erp = FakeErp(clock=clock)
    _changes(erp)
    first = _read(erp)
    clock.advance(timedelta(minutes=5))
    time.sleep(0.01)
    assert _read(erp) == first
    assert {e["occurred_at"] for e in first} == {T0.isoformat()}
    credit = next(e for e in first if e["type"] == "customer.credit_status_changed")
    assert credit["data"]["changed_at"] == T0.isoformat()


def test_a_later_change_carries_its_own_time() -> None:
    clock = ManualClock(T0)
    erp = FakeErp(clock=clock)
    customer = erp.add_customer("C100", "Dunder Mifflin")
    clock.advance(timedelta(hours=1))
    erp.edit_customer(customer, credit_hold=True)
    (envelope,) = _read(erp)
    assert envelope["occurred_at"] == (T0 + timedelta(hours=1)).isoformat()


def test_two_workers_reading_one_shared_erp_give_duplicates_not_conflicts(
    ledger: Ledger, tmp_path: Path
) -> None:
    state = tmp_path / "erp.json"
    one = FakeErp(state_file=state, shared=True)
    asyncio.run(_enter(one))
    other = FakeErp(state_file=state, shared=True)
    time.sleep(0.01)
    read_once, read_again = _read(one), _read(other)
    assert read_once == read_again
    clock = ManualClock(T0)
    policy = build_policy()
    lines = [json.dumps(e).encode() for e in read_once]
    first = ingest_lines(ledger, lines, policy=policy, origin="capture", clock=clock)
    again = ingest_lines(
        ledger,
        [json.dumps(e).encode() for e in read_again],
        policy=policy,
        origin="capture",
        clock=clock,
    )
    assert (first.accepted, first.conflicts, first.rejected) == (len(lines), 0, 0)
    assert (again.accepted, again.duplicates, again.conflicts) == (0, len(lines), 0)


async def _enter(erp: FakeErp) -> None:
    """The changes, in one of the shared ERP's transactions (as another process makes them)."""
    async with erp._txn(write=True):
        _changes(erp)


def test_a_state_file_keeps_when_each_change_happened(tmp_path: Path) -> None:
    state = tmp_path / "erp.json"
    erp = FakeErp(state_file=state, clock=ManualClock(T0))
    _changes(erp)
    before = _read(erp)
    asyncio.run(erp.close())
    assert _read(FakeErp(state_file=state)) == before
