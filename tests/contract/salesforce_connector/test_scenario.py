"""A finance story end to end: Salesforce invoices reach the ERP; the ERP's cash comes back.

An account and a posted invoice are entered in Salesforce. The hub captures them, the worker
books the invoice in the ERP. The ERP then receives a wire for it; the hub writes that cash
back into Salesforce, where the invoice now shows as paid. The hub's own write is not
captured again as a new event.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.worker import Target, Worker
from revbridge.salesforce.capture import CaptureReport, SalesforceCapture
from revbridge.salesforce.writeback import SalesforceWriteBack
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries, events
from revbridge.testing import FakeErp

from .conftest import Org, run


def test_invoice_to_erp_and_erp_cash_back_to_the_salesforce_invoice(
    org: Org, sf_ledger: Ledger
) -> None:
    clock = ManualClock(datetime.now(UTC))
    policy = build_policy()
    account = org.create("Account", {"Name": "Northwind", "ERP_Customer_Number__c": "C-42"})
    invoice = org.create(
        "blng__Invoice__c",
        {
            "blng__Account__c": account,
            "blng__InvoiceDate__c": "2026-11-02",
            "blng__DueDate__c": "2026-12-02",
            "blng__Subtotal__c": 1000,
            "blng__TaxAmount__c": 100,
        },
    )
    org.create(
        "blng__InvoiceLine__c",
        {
            "blng__Invoice__c": invoice,
            "blng__Quantity__c": 10,
            "blng__UnitPrice__c": 100,
            "blng__Subtotal__c": 1000,
            "blng__TaxAmount__c": 100,
        },
    )
    org.update(
        "blng__Invoice__c",
        invoice,
        {"blng__InvoiceStatus__c": "Posted", "blng__InvoicePostedDate__c": "2026-11-02"},
    )
    erp = FakeErp()

    async def capture() -> CaptureReport:
        async with org.client() as client:
            return await SalesforceCapture(client, sf_ledger, policy, clock=clock).poll()

    async def deliver() -> None:
        writeback = SalesforceWriteBack(org.client())
        targets = {"erp": Target("erp", erp), "salesforce": Target("salesforce", writeback)}
        try:
            await Worker(sf_ledger.engine, targets, clock=clock, seed=1).run_until_idle()
        finally:
            await writeback.close()

    captured = run(capture())
    assert captured.accepted == 2
    run(deliver())
    assert erp.count("invoice", invoice) == 1

    # The ERP's accountant records a wire of 1,100.00 against the invoice.
    wire = {
        "type": "erp.payment.received",
        "source": "erp",
        "source_id": "WIRE-7",
        "source_version": "1",
        "occurred_at": clock.now().isoformat(),
        "data": {
            "erp_payment_id": "WIRE-7",
            "erp_customer_number": "C-42",
            "currency": "USD",
            "amount": "1100.00",
            "received_on": "2026-11-20",
            "method": "wire",
            "applications": [{"invoice_id": invoice, "amount": "1100.00"}],
        },
    }
    result = ingest_lines(
        sf_ledger, [json.dumps(wire).encode()], policy=policy, origin="erp", clock=clock
    )
    assert result.accepted == 1
    run(deliver())

    (row,) = org.records(
        f"SELECT blng__Balance__c, blng__Payments__c, blng__PaymentStatus__c "
        f"FROM blng__Invoice__c WHERE Id = '{invoice}'"
    )
    assert (row["blng__Balance__c"], row["blng__Payments__c"]) == (0, 1100)
    assert row["blng__PaymentStatus__c"] == "Paid"
    with sf_ledger.engine.connect() as conn:
        states = dict(
            conn.execute(
                select(events.c.type, deliveries.c.state).join(
                    deliveries, deliveries.c.event_id == events.c.id
                )
            ).all()
        )
    assert states["invoice.posted"] == "delivered"
    assert states["erp.payment.received"] == "delivered"

    # The hub's own payment and the invoice's new balance are not new events.
    again = run(capture())
    assert again.accepted == 0
    assert erp.count("payment", "WIRE-7") == 0
