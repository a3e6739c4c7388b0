"""Read-back over real HTTP: the org's invoices, credit notes and payments read page by
page into the reconciliation store, and on the next refresh only what changed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select

from revbridge.core import sfid
from revbridge.core.policy import build_policy
from revbridge.engine.ports import PaymentDocument, ReadbackPort
from revbridge.recon.period import reconcile_store
from revbridge.recon.readback import ReadbackStore, RefreshReport
from revbridge.salesforce.mapping import BILLING
from revbridge.salesforce.readback import SalesforceReadback
from revbridge.salesforce.writeback import payment_key
from revbridge.services.ingest import ingest_lines
from revbridge.services.recon_readback import write_back_aliases
from revbridge.store.ledger import Ledger
from revbridge.store.schema import events
from tests.unit.recon.sides import ListReader

from .conftest import Org, run
from .test_writeback import call, erp_payment, invoice

NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def refresh(org: Org, store: ReadbackStore) -> RefreshReport:
    async def go() -> RefreshReport:
        reader = SalesforceReadback(org.client(), BILLING)
        try:
            return await store.refresh("sf", reader, now=NOW, page_size=2)
        finally:
            await reader.close()

    return run(go())


def test_the_read_back_is_a_readback_port(org: Org) -> None:
    """The Salesforce reader offers what the reconciliation's store reads through."""
    assert isinstance(SalesforceReadback(org.client(), BILLING), ReadbackPort)


def test_invoices_and_a_written_back_payment_are_read_then_only_changes(org: Org) -> None:
    """Three invoices (over two pages) and the ERP's payment land in the store with their
    balances, payment status and applications; a second refresh reads only the invoice a
    user then changed."""
    account = org.create("Account", {"Name": "Payer", "ERP_Customer_Number__c": "C-1"})
    first, second, third = (invoice(org, account, n) for n in (100, 200, 300))
    call(org, "apply_erp_payment", "erp:RCPT-1", erp_payment({first: "100", second: "50"}))
    with ReadbackStore() as store:
        report = refresh(org, store)
        assert report.documents == {"ar": 3, "payments": 1, "journals": 0}
        rows = store.con.execute(
            "SELECT ref, doc_type, customer_ref, amount, status, balance FROM sf_ar ORDER BY amount"
        ).fetchall()
        assert [(r[3], r[4], r[5]) for r in rows] == [
            (Decimal("100.0000"), "Paid", Decimal("0.0000")),
            (Decimal("200.0000"), "Partially Paid", Decimal("150.0000")),
            (Decimal("300.0000"), "Unpaid", Decimal("300.0000")),
        ]
        assert {r[1] for r in rows} == {"invoice"}
        assert len({r[2] for r in rows}) == 1
        (payment,) = store.con.execute(
            "SELECT key, ref, origin, amount FROM sf_payments"
        ).fetchall()
        assert payment[1:] == (payment_key("erp:RCPT-1"), "erp", Decimal("150.0000"))
        applied = store.con.execute(
            "SELECT invoice_ref, amount FROM sf_payment_apps ORDER BY amount"
        ).fetchall()
        assert [a for _, a in applied] == [Decimal("50.0000"), Decimal("100.0000")]

        org.update("blng__Invoice__c", third, {"blng__InvoiceStatus__c": "Cancelled"})
        again = refresh(org, store)
        assert again.documents == {"ar": 1, "payments": 0, "journals": 0}
        assert store.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'Cancelled') FROM sf_ar"
        ).fetchone() == (3, 1)


def test_a_written_back_payment_matches_the_erp_payment_it_came_from(
    org: Org, sf_ledger: Ledger
) -> None:
    """The write-back keys its payment by a hash of the event; the ledger turns it back into
    the ERP payment id, so the payment pairs with the ERP's cash receipt."""
    account = org.create("Account", {"Name": "Payer", "ERP_Customer_Number__c": "C-1"})
    first = invoice(org, account, 100)
    envelope = {
        "type": "erp.payment.received",
        "source": "netsuite",
        "source_id": "RCPT-1",
        "source_version": "1",
        "occurred_at": "2026-11-20T10:00:00+00:00",
        "data": {
            "erp_payment_id": "RCPT-1",
            "erp_customer_number": "C-1",
            "currency": "USD",
            "amount": "100.00",
            "received_on": "2026-11-20",
            "method": "wire",
            "applications": [{"invoice_id": first, "amount": "100.00"}],
        },
    }
    ingest_lines(sf_ledger, [json.dumps(envelope).encode()], policy=build_policy(), origin="t")
    with sf_ledger.engine.connect() as conn:
        (key,) = conn.execute(select(events.c.idempotency_key)).one()
    call(org, "apply_erp_payment", key, erp_payment({first: "100"}, amount=Decimal("100.00")))
    receipt = PaymentDocument(
        key="9001",
        ref="RCPT-1",
        origin="erp",
        customer_ref=account,
        currency="USD",
        amount=Decimal("100.00"),
        doc_date=date(2026, 11, 20),
        applications=((first, Decimal("100.00")),),
    )
    with ReadbackStore() as store:
        refresh(org, store)
        run(store.refresh("erp", ListReader([receipt]), now=NOW))
        store.set_payment_aliases(write_back_aliases(sf_ledger.engine))
        results = dict(reconcile_store(store.con, start=date(2026, 11, 1), end=date(2026, 12, 1)))
    payments = results["payments"]
    assert [f.kind for f in payments.findings] == []
    assert payments.matched_count == 1


def test_a_recognized_revenue_transaction_is_read_as_a_two_line_journal(org: Org) -> None:
    """A Billing revenue transaction, recognized in its finance period, is read as deferred
    revenue to revenue for its amount; one still deferred has no lines."""
    account = org.create("Account", {"Name": "Subscriber"})
    period = org.create(
        "blng__FinancePeriod__c",
        {
            "Name": "Oct 2026",
            "blng__PeriodStartDate__c": "2026-10-01",
            "blng__PeriodEndDate__c": "2026-10-31",
        },
    )
    schedule = org.create(
        "blng__RevenueSchedule__c",
        {"blng__Account__c": account, "blng__TotalRevenueAmount__c": 1200},
    )
    recognized, _deferred = (
        org.create(
            "blng__RevenueTransaction__c",
            {
                "blng__RevenueSchedule__c": schedule,
                "blng__RevenueFinancePeriod__c": period,
                "blng__RevenueAmount__c": 100,
                "blng__Account__c": account,
                "blng__Status__c": status,
            },
        )
        for status in ("Recognized", "Deferred")
    )
    with ReadbackStore() as store:
        assert refresh(org, store).documents["journals"] == 2
        lines = store.con.execute(
            "SELECT ref, period, doc_date, account, debit, credit FROM sf_revenue ORDER BY debit"
        ).fetchall()
    assert {r[0] for r in lines} == {sfid.to_18(recognized)}
    assert [(r[1], str(r[2]), r[3], r[4], r[5]) for r in lines] == [
        ("2026-10", "2026-10-31", "4000 Revenue", Decimal("0.0000"), Decimal("100.0000")),
        ("2026-10", "2026-10-31", "2400 Deferred Revenue", Decimal("100.0000"), Decimal("0.0000")),
    ]
