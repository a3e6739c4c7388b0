"""The in-memory ERP and Salesforce are read back like the real ones: in pages, each change
once, and their state files keep both the records and where a read stopped."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path

from revbridge.core.events import (
    Application,
    CustomerUpserted,
    DocumentLine,
    InvoicePosted,
    PaymentReceived,
)
from revbridge.engine.ports import ArDocument, PaymentDocument, ReadbackKind, ReadbackPort
from revbridge.testing import FakeSalesforce
from revbridge.testing.fakes import FakeErp


def _invoice(ref: str, total: str = "100.00") -> InvoicePosted:
    return InvoicePosted(
        invoice_id=ref,
        invoice_number=f"INV-{ref}",
        customer_id="001A",
        currency="USD",
        invoice_date=date(2026, 10, 3),
        due_date=date(2026, 11, 2),
        lines=(
            DocumentLine(
                line_id="1",
                description="Platform",
                quantity=Decimal(1),
                unit_price=Decimal(total),
                amount=Decimal(total),
            ),
        ),
        subtotal=Decimal(total),
        tax_total=Decimal(0),
        total=Decimal(total),
    )


def _payment(ref: str, invoice: str, amount: str) -> PaymentReceived:
    return PaymentReceived(
        payment_id=ref,
        customer_id="001A",
        currency="USD",
        amount=Decimal(amount),
        received_on=date(2026, 10, 9),
        method="card",
        applications=(Application(invoice_id=invoice, amount=Decimal(amount)),),
    )


def test_the_fake_erp_pages_its_changes_and_keeps_its_place(tmp_path: Path) -> None:
    """Two invoices in pages of one; a payment then re-reads the invoice it paid, with its
    new balance and status; a reloaded state file continues from the same marks."""
    state = tmp_path / "erp.json"

    async def story() -> None:
        erp = FakeErp(state_file=state)
        assert isinstance(erp, ReadbackPort)
        cust = await erp.upsert_customer(
            "001A", CustomerUpserted(customer_id="001A", name="A", currency="USD"), None
        )
        a = await erp.create_invoice("a0X1", _invoice("a0X1"), cust.erp_id)
        await erp.create_invoice("a0X2", _invoice("a0X2"), cust.erp_id)
        first = await erp.read(ReadbackKind.AR, None, 1)
        second = await erp.read(ReadbackKind.AR, first.mark, 1)
        assert [d.ref for d in (*first.documents, *second.documents)] == ["a0X1", "a0X2"]
        assert (await erp.read(ReadbackKind.AR, second.mark, 1)).documents == ()
        await erp.record_payment(
            "a0P1", _payment("a0P1", "a0X1", "100.00"), cust.erp_id, {"a0X1": a.erp_id}
        )
        await erp.close()

        reloaded = FakeErp(state_file=state)
        (paid,) = (await reloaded.read(ReadbackKind.AR, second.mark, 10)).documents
        assert isinstance(paid, ArDocument)
        assert (paid.ref, paid.status, paid.balance, paid.customer_ref) == (
            "a0X1",
            "paid",
            Decimal(0),
            "001A",
        )
        (payment,) = (await reloaded.read(ReadbackKind.PAYMENTS, None, 10)).documents
        assert isinstance(payment, PaymentDocument)
        assert payment.applications == (("a0X1", Decimal("100.00")),)

    asyncio.run(story())


def test_the_fake_org_keeps_its_records_and_follows_payments(tmp_path: Path) -> None:
    """An invoice recorded in the fake org is paid by a Salesforce payment; both survive the
    state file, and the invoice's balance and status follow the payment."""
    state = tmp_path / "sf.json"
    sf = FakeSalesforce(state_file=state)
    sf.record(_invoice("a0X1", "150.00"))
    sf.record(_payment("a0P1", "a0X1", "50.00"))
    asyncio.run(sf.close())

    again = FakeSalesforce(state_file=state)
    page = asyncio.run(again.read(ReadbackKind.AR, None, 10))
    (invoice,) = page.documents
    assert isinstance(invoice, ArDocument)
    assert (invoice.status, invoice.balance) == ("Partially Paid", Decimal("100.00"))
    assert asyncio.run(again.read(ReadbackKind.AR, page.mark, 10)).documents == ()
    (payment,) = asyncio.run(again.read(ReadbackKind.PAYMENTS, None, 10)).documents
    assert isinstance(payment, PaymentDocument)
    assert (payment.origin, payment.amount) == ("salesforce", Decimal("50.00"))
