"""Write-back over real HTTP: ERP payments, credit status, reporting and GL references,
idempotent by external id (twice leaves the same state as once)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from revbridge.core.events import (
    Application,
    CustomerBalance,
    CustomerCreditStatusChanged,
    ErpPaymentReceived,
    GlPosted,
    JournalLine,
    ReportingRefreshed,
)
from revbridge.engine.ports import SalesforcePort
from revbridge.errors import TerminalError
from revbridge.salesforce.writeback import SalesforceWriteBack, WriteBackSettings, payment_key

from .conftest import Org, run


def invoice(org: Org, account: str, subtotal: int) -> str:
    return org.create(
        "blng__Invoice__c",
        {
            "blng__Account__c": account,
            "blng__Subtotal__c": subtotal,
            "blng__TaxAmount__c": 0,
            "blng__InvoiceStatus__c": "Posted",
            "blng__InvoicePostedDate__c": "2026-11-01",
        },
    )


def erp_payment(invoices: dict[str, str], **changes: Any) -> ErpPaymentReceived:
    values: dict[str, Any] = {
        "erp_payment_id": "RCPT-1",
        "erp_customer_number": "C-1",
        "currency": "USD",
        "amount": Decimal("150.00"),
        "received_on": date(2026, 11, 20),
        "method": "wire",
        "applications": tuple(
            Application(invoice_id=i, amount=Decimal(a)) for i, a in invoices.items()
        ),
    }
    values.update(changes)
    return ErpPaymentReceived(**values)


def call(org: Org, method: str, *args: Any, settings: WriteBackSettings | None = None) -> Any:
    async def go() -> Any:
        port = SalesforceWriteBack(org.client(), settings)
        try:
            return await getattr(port, method)(*args)
        finally:
            await port.close()

    return run(go())


def test_the_write_back_is_a_salesforce_port(org: Org) -> None:
    assert isinstance(SalesforceWriteBack(org.client()), SalesforcePort)


def test_an_erp_payment_lowers_the_invoice_balances_once(org: Org) -> None:
    """Applied twice (a lost response, a replay): one payment, balances lowered once."""
    account = org.create("Account", {"Name": "Payer", "ERP_Customer_Number__c": "C-1"})
    first, second = invoice(org, account, 100), invoice(org, account, 200)
    payment = erp_payment({first: "100", second: "50"})
    payment_id = call(org, "apply_erp_payment", "erp:RCPT-1", payment)
    again = call(org, "apply_erp_payment", "erp:RCPT-1", payment)
    assert again == payment_id
    rows = org.records(
        "SELECT Id, blng__Balance__c, blng__PaymentStatus__c FROM blng__Invoice__c "
        "ORDER BY blng__Subtotal__c"
    )
    assert [(r["blng__Balance__c"], r["blng__PaymentStatus__c"]) for r in rows] == [
        (0, "Paid"),
        (150, "Partially Paid"),
    ]
    payments = org.records("SELECT Id, blng__Amount__c, blng__Status__c FROM blng__Payment__c")
    assert [(p["blng__Amount__c"], p["blng__Status__c"]) for p in payments] == [(150, "Processed")]
    assert call(org, "find", "erp:RCPT-1") == payment_id
    assert call(org, "find", "erp:other") is None


def test_revenue_cloud_payments_apply_to_invoices(org: Org) -> None:
    account = org.create("Account", {"Name": "Payer RC", "ERP_Customer_Number__c": "C-1"})
    inv = org.create(
        "Invoice",
        {"BillingAccountId": account, "TotalAmount": 300, "TotalTaxAmount": 0, "Status": "Posted"},
    )
    settings = WriteBackSettings(model="revenue_cloud")
    payment = erp_payment({inv: "120"}, amount=Decimal("120.00"))
    first = call(org, "apply_erp_payment", "erp:RC-1", payment, settings=settings)
    assert call(org, "apply_erp_payment", "erp:RC-1", payment, settings=settings) == first
    (row,) = org.records("SELECT Balance, NetPaymentsApplied FROM Invoice")
    assert (row["Balance"], row["NetPaymentsApplied"]) == (180, 120)


def test_a_payment_for_an_unknown_customer_is_terminal(org: Org) -> None:
    with pytest.raises(TerminalError, match="no Salesforce Account"):
        call(org, "apply_erp_payment", "erp:X", erp_payment({}))


def test_a_refused_allocation_leaves_an_unfinished_draft_not_a_payment(org: Org) -> None:
    """The allocation to a deleted invoice fails: the payment stays Draft and is not found."""
    account = org.create("Account", {"Name": "Payer", "ERP_Customer_Number__c": "C-1"})
    gone = invoice(org, account, 100)
    org.http.delete(f"/services/data/v62.0/sobjects/blng__Invoice__c/{gone}")
    with pytest.raises(TerminalError, match=r"INVALID_CROSS_REFERENCE_KEY|ENTITY_IS_DELETED"):
        call(org, "apply_erp_payment", "erp:RCPT-9", erp_payment({gone: "100"}))
    assert [
        p["blng__Status__c"] for p in org.records("SELECT blng__Status__c FROM blng__Payment__c")
    ] == ["Draft"]
    assert call(org, "find", "erp:RCPT-9") is None


def test_an_attempt_cut_off_half_way_is_finished_not_doubled(org: Org) -> None:
    account = org.create("Account", {"Name": "Payer", "ERP_Customer_Number__c": "C-1"})
    first, second = invoice(org, account, 100), invoice(org, account, 200)
    # What a crash between the allocations and the final status would leave behind:
    draft = org.create(
        "blng__Payment__c",
        {
            "blng__Account__c": account,
            "blng__Amount__c": 150,
            "ERP_Receipt_Number__c": payment_key("erp:RCPT-1"),
        },
    )
    org.create(
        "blng__PaymentAllocationInvoice__c",
        {"blng__Payment__c": draft, "blng__Invoice__c": first, "blng__Amount__c": 100},
    )
    assert call(org, "find", "erp:RCPT-1") is None
    payment = erp_payment({first: "100", second: "50"})
    assert call(org, "apply_erp_payment", "erp:RCPT-1", payment) == draft
    allocations = org.records("SELECT blng__Invoice__c FROM blng__PaymentAllocationInvoice__c")
    assert sorted(a["blng__Invoice__c"] for a in allocations) == sorted([first, second])
    assert call(org, "find", "erp:RCPT-1") == draft


def test_credit_status_sets_hold_limit_and_terms(org: Org) -> None:
    account = org.create("Account", {"Name": "Risky", "ERP_Customer_Number__c": "C-7"})
    status = CustomerCreditStatusChanged(
        erp_customer_number="C-7",
        status="on_hold",
        credit_hold=True,
        currency="USD",
        credit_limit=Decimal("5000.00"),
        payment_terms="Net 15",
        changed_at=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
    )
    assert call(org, "update_credit_status", "erp:CS-7", status) == account
    call(org, "update_credit_status", "erp:CS-7", status)
    (row,) = org.records(
        "SELECT Credit_Hold__c, Credit_Limit__c, Payment_Terms__c, ERP_Sync_Status__c FROM Account"
    )
    assert row == {
        "attributes": row["attributes"],
        "Credit_Hold__c": True,
        "Credit_Limit__c": 5000,
        "Payment_Terms__c": "Net 15",
        "ERP_Sync_Status__c": "on_hold",
    }


def test_reporting_refresh_updates_accounts_in_collections(org: Org) -> None:
    numbers = [f"C-{i}" for i in range(250)]
    for start in range(0, 250, 200):
        records = [
            {"attributes": {"type": "Account"}, "Name": n, "ERP_Customer_Number__c": n}
            for n in numbers[start : start + 200]
        ]
        org.http.post(
            "/services/data/v62.0/composite/sobjects", json={"allOrNone": True, "records": records}
        )
    report = ReportingRefreshed(
        as_of=date(2026, 11, 25),
        balances=tuple(
            CustomerBalance(
                erp_customer_number=n,
                currency="USD",
                open_balance=Decimal("10.25"),
                overdue_balance=Decimal("4.50") if i % 2 else Decimal(0),
                days_overdue=12 if i % 2 else 0,
                last_payment_on=date(2026, 11, 3) if i % 2 else None,
                last_payment_amount=Decimal("99.95") if i % 2 else None,
            )
            for i, n in enumerate([*numbers, "C-unknown"])
        ),
    )
    call(org, "refresh_reporting", "erp:R-1", report)  # the defaults: the org's AR fields
    rows = org.records(
        "SELECT ERP_Customer_Number__c, AR_Open_Balance__c, AR_Overdue_Balance__c, "
        "AR_Days_Overdue__c, AR_Last_Payment_Date__c, AR_Last_Payment_Amount__c, "
        "ERP_Last_Sync__c FROM Account"
    )
    assert len(rows) == 250
    odd = {n for i, n in enumerate(numbers) if i % 2}
    assert {
        (
            r["ERP_Customer_Number__c"] in odd,
            r["AR_Open_Balance__c"],
            r["AR_Overdue_Balance__c"],
            r["AR_Days_Overdue__c"],
            r["AR_Last_Payment_Date__c"],
            r["AR_Last_Payment_Amount__c"],
            r["ERP_Last_Sync__c"][:10],
        )
        for r in rows
    } == {
        (True, 10.25, 4.5, 12, "2026-11-03", 99.95, "2026-11-25"),
        (False, 10.25, 0, 0, None, None, "2026-11-25"),
    }


def test_gl_posting_reference_lands_on_the_source_record(org: Org) -> None:
    account = org.create("Account", {"Name": "Booked"})
    inv = invoice(org, account, 100)
    journal = GlPosted(
        erp_journal_id="JE-1",
        journal_number="JE-0001",
        period="2026-11",
        posting_date=date(2026, 11, 20),
        source_ref=f"invoice:{inv}",
        lines=(
            JournalLine(account="1200", debit=Decimal(100), currency="USD"),
            JournalLine(account="4000", credit=Decimal(100), currency="USD"),
        ),
    )
    assert call(org, "record_gl_posting", "erp:JE-1", journal) == inv  # the default field
    (row,) = org.records("SELECT ERP_GL_Reference__c FROM blng__Invoice__c")
    assert row["ERP_GL_Reference__c"] == "JE-0001"
    settings = WriteBackSettings(gl_reference_fields={"blng__Invoice__c": "ERP_Document_Number__c"})
    assert call(org, "record_gl_posting", "erp:JE-1", journal, settings=settings) == inv
    (row,) = org.records("SELECT ERP_Document_Number__c FROM blng__Invoice__c")
    assert row["ERP_Document_Number__c"] == "JE-0001"
