"""Both sides through the ports with the fakes: what changes in the org is captured into the
ledger and delivered to the ERP exactly once, through a failed read and a capture that
crashed before its watermark was saved; cash entered in the ERP comes back to the org's
invoice."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete

from revbridge.clock import ManualClock
from revbridge.core.events import (
    FROM_ERP,
    Application,
    CustomerCreditStatusChanged,
    ErpPaymentReceived,
    EventType,
)
from revbridge.core.policy import build_policy
from revbridge.engine.ports import ArDocument, ReadbackKind
from revbridge.engine.worker import Target, Worker
from revbridge.errors import TerminalError, TransientError
from revbridge.generate import generate_events
from revbridge.services.capture import capture_once, capture_until_current, source_for
from revbridge.services.operations import set_paused
from revbridge.store.ledger import Ledger
from revbridge.store.schema import watermarks
from revbridge.testing import FakeErp, FakeSalesforce, Faults
from revbridge.testing.policy import realtime_policy

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
POLICY = realtime_policy(*EventType)


def test_org_changes_reach_the_erp_once_and_erp_cash_comes_back(ledger: Ledger) -> None:
    clock = ManualClock(START)
    org = FakeSalesforce(page_size=25, faults=Faults(fail_next=1))
    envelopes = [e for e in generate_events(150, seed=5) if e["type"] not in FROM_ERP]
    for envelope in envelopes:
        org.post(envelope)
    erp = FakeErp()

    async def story() -> None:
        # The first read fails: nothing is stored and the watermark stays where it was.
        with pytest.raises(TransientError):
            await capture_once(org, ledger, POLICY, clock=clock)
        first = await capture_once(org, ledger, POLICY, clock=clock)
        assert (first.read, first.ingest.accepted) == (25, 25)
        # A capture that crashed after its ingest and before its watermark: read again.
        with ledger.engine.begin() as conn:
            conn.execute(delete(watermarks))
        rounds = await capture_until_current(org, ledger, POLICY, clock=clock)
        assert sum(r.ingest.accepted for r in rounds) == len(envelopes) - 25
        assert sum(r.ingest.duplicates for r in rounds) == 25  # re-read: not doubled
        assert rounds[-1].read == 0

        worker = Worker(
            ledger.engine,
            {"erp": Target("erp", erp), "salesforce": Target("salesforce", org)},
            clock=clock,
            seed=1,
        )
        stats = await worker.run_until_idle()
        assert stats.dead_lettered == 0

        # An accountant applies a wire to an invoice in the ERP; its capture brings it back.
        open_doc = next(d for d in erp.records("invoice") if d.open > 0)
        data = next(
            e["data"]
            for e in envelopes
            if e["type"] == "invoice.posted" and e["data"]["invoice_id"] == open_doc.external_ref
        )
        open_amount = open_doc.open
        erp.enter_payment(
            ErpPaymentReceived(
                erp_payment_id="WIRE-1",
                erp_customer_number="C-1",
                customer_id=data["customer_id"],
                currency=data["currency"],
                amount=open_amount,
                received_on=date(2026, 11, 2),
                method="wire",
                applications=(Application(invoice_id=data["invoice_id"], amount=open_amount),),
            )
        )
        source = source_for(erp)
        assert source is not None
        await capture_until_current(source, ledger, POLICY, clock=clock)
        await worker.run_until_idle()
        doc = org.get(ReadbackKind.AR, data["invoice_id"])
        assert isinstance(doc, ArDocument)
        assert doc.balance == Decimal(0)
        assert doc.status == "Paid"

    asyncio.run(story())
    assert erp.duplicates() == {}
    for e in envelopes:
        if e["type"] == "invoice.posted":
            assert erp.count("invoice", e["data"]["invoice_id"]) == 1
        elif e["type"] == "payment.received":
            assert erp.count("payment", e["data"]["payment_id"]) == 1
    by_type = ledger.status(START)["events"]["by_type"]
    assert by_type["erp.payment.received"] == 1  # the wire; the hub's own payments not echoed
    assert sum(n for t, n in by_type.items() if t not in FROM_ERP) == len(envelopes)


def test_credit_statuses_captured_after_a_customer_batch_reach_their_accounts(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Customers delivered by the nightly batch, then the ERP's capture: each credit status
    is written on the customer's own Account, never on one keyed by the ERP's number."""
    clock = ManualClock(START)
    envelopes = [e for e in generate_events(150, seed=5) if e["type"] not in FROM_ERP]
    org, erp = FakeSalesforce(), FakeErp()
    for envelope in envelopes:
        org.post(envelope)
    policy = build_policy()  # customers in the nightly batch

    async def story() -> None:
        await capture_until_current(org, ledger, policy, clock=clock)
        worker = Worker(
            ledger.engine,
            {"erp": Target("erp", erp), "salesforce": Target("salesforce", org)},
            clock=clock,
            seed=1,
            batch_dir=tmp_path / "batches",
        )
        await worker.run_until_idle()
        clock.advance(timedelta(days=1))  # past the nightly run
        await worker.run_until_idle()
        source = source_for(erp)
        assert source is not None
        await capture_until_current(source, ledger, policy, clock=clock)
        stats = await worker.run_until_idle()
        assert stats.dead_lettered == 0

    asyncio.run(story())
    customers = {e["data"]["customer_id"] for e in envelopes if e["type"] == "customer.upserted"}
    assert set(org.accounts) == customers
    assert all(org.accounts[c].get("erp_customer_number") for c in customers)


def test_the_org_refuses_a_credit_status_for_an_erp_customer_no_account_knows() -> None:
    org = FakeSalesforce()
    status = CustomerCreditStatusChanged(
        erp_customer_number="C-404",
        status="on_hold",
        credit_hold=True,
        currency="USD",
        changed_at=START,
    )
    with pytest.raises(TerminalError, match="no Salesforce Account has ERP customer number"):
        asyncio.run(org.update_credit_status("credit:C-404", status))
    assert org.accounts == {}
    known = dataclasses.replace(status, customer_id="001000000000001AAA", erp_customer_number="C-1")
    asyncio.run(org.update_credit_status("credit:C-1", known))
    by_number = dataclasses.replace(known, customer_id=None, credit_hold=False, status="active")
    asyncio.run(org.update_credit_status("credit:C-1:2", by_number))
    assert org.accounts["001000000000001AAA"]["credit_hold"] is False


def test_a_paused_side_is_not_captured_from(ledger: Ledger) -> None:
    """`dr pause` means the system is not called: its capture reads nothing and says why;
    resumed, it reads everything it skipped."""
    org = FakeSalesforce()
    for envelope in [e for e in generate_events(30, seed=5) if e["type"] not in FROM_ERP]:
        org.post(envelope)
    set_paused(ledger.engine, "salesforce", paused=True, now=START, actor="kim", reason="up")
    skipped = asyncio.run(capture_once(org, ledger, POLICY))
    assert skipped.skipped is not None
    assert "salesforce is paused" in skipped.skipped
    assert (skipped.read, org.calls["changes"]) == (0, 0)
    set_paused(ledger.engine, "salesforce", paused=False, now=START, actor="kim", reason="done")
    rounds = asyncio.run(capture_until_current(org, ledger, POLICY))
    assert sum(r.ingest.accepted for r in rounds) == len(org.feed)
