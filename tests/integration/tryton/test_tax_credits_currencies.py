"""Tax as Salesforce computed it, credit notes applied in part or split, foreign currencies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from revbridge.core.events import (
    Application,
    CreditMemoIssued,
    DocumentLine,
    InvoicePosted,
    PaymentReceived,
    RevenueRecognized,
)
from revbridge.core.events import JournalLine as EventJournalLine
from revbridge.engine.ports import RecordKind
from revbridge.errors import TerminalError
from revbridge.tryton.adapter import TrytonErp
from revbridge.tryton.instance import InstanceInfo
from revbridge.tryton.operations import InvoiceLine, InvoiceTax, JournalLine, TrytonAccounting

from .conftest import Session, run

TODAY = dt.datetime.now(dt.UTC).date()
D = Decimal


def lines(amount: str, description: str = "Subscription") -> list[InvoiceLine]:
    return [InvoiceLine(description=description, quantity=D(1), unit_price=D(amount))]


def tax(base: str, amount: str) -> list[InvoiceTax]:
    return [
        InvoiceTax(
            description="Sales tax 8.00 % (Salesforce)",
            base=D(base),
            amount=D(amount),
            account_code="2.2.3",
            tax_name="Sales tax (Salesforce)",
        )
    ]


async def move_lines_of(ops: TrytonAccounting, invoice_id: int) -> set[tuple[str, D, D]]:
    (row,) = await ops.client.model("account.invoice", "read", [invoice_id], ["move"])
    rows = await ops.client.search_read(
        "account.move.line", [("move", "=", row["move"])], ["account.code", "debit", "credit"]
    )
    return {(r["account."]["code"], r["debit"], r["credit"]) for r in rows}


def test_tax_is_posted_at_salesforces_amount_on_the_tax_liability(tryton: InstanceInfo) -> None:
    """1,000 + 80.01 of tax: the customer owes 1,080.01; 80.01 is a liability, not revenue."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            party = await ops.ensure_party("TAX-1", "Taxed Inc")
            # 80.01, not the 80.00 a rate would give: Salesforce's rounding is the one kept.
            invoice = await ops.create_invoice(
                party.id, "TAX-INV-1", lines("1000"), invoice_date=TODAY, taxes=tax("1000", "80.01")
            )
            assert invoice.total_amount == D("1080.01")
            assert invoice.amount_to_pay == D("1080.01")
            assert await move_lines_of(ops, invoice.id) == {
                ("1.2.1", D("1080.01"), D(0)),
                ("4.1.2", D(0), D("1000.00")),
                ("2.2.3", D(0), D("80.01")),
            }
            (row,) = await ops.client.model(
                "account.invoice", "read", [invoice.id], ["tax_amount", "taxes"]
            )
            assert row["tax_amount"] == D("80.01")
            (line,) = await ops.client.model(
                "account.invoice.tax", "read", row["taxes"], ["manual", "tax.name", "base"]
            )
            assert line["manual"]  # kept as given, never recomputed
            assert line["tax."]["name"] == "Sales tax (Salesforce)"
            assert line["base"] == D("1000.00")

            note = await ops.create_credit_note(
                party.id, "TAX-CN-1", lines("100"), invoice_date=TODAY, taxes=tax("100", "8")
            )
            assert note.total_amount == D("-108.00")
            assert await move_lines_of(ops, note.id) == {
                ("1.2.1", D(0), D("108.00")),
                ("4.1.2", D("100.00"), D(0)),
                ("2.2.3", D("8.00"), D(0)),
            }

    run(scenario())


def test_a_credit_note_split_over_two_invoices_with_credit_left_open(
    tryton: InstanceInfo,
) -> None:
    """300 of credit: 100 to one invoice, 150 to another; 50 stays open on the customer."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            party = await ops.ensure_party("SPLIT-1", "Split Ltd")
            first = await ops.create_invoice(
                party.id, "SPLIT-INV-1", lines("400"), invoice_date=TODAY
            )
            second = await ops.create_invoice(
                party.id, "SPLIT-INV-2", lines("150"), invoice_date=TODAY
            )
            note = await ops.create_credit_note(
                party.id, "SPLIT-CN-1", lines("300"), invoice_date=TODAY
            )
            parts = [(first.id, D("100")), (second.id, D("150"))]
            one, two = await ops.apply_credit_note_parts(note.id, parts, date=TODAY)
            assert (one.state, one.amount_to_pay) == ("posted", D("300.00"))
            assert (two.state, two.amount_to_pay) == ("paid", D(0))
            assert set((await ops.credit_note_applications(note.id)).values()) == {
                first.id,
                second.id,
            }
            assert (await ops.party_balance(party.id)).receivable == D("250.00")  # 550 - 300
            # Nothing is written off: the only moves are the documents and the split.
            writeoffs = await ops.client.search_read(
                "account.move.line", [("account.code", "=", "6.2.1")], ["id"]
            )
            assert writeoffs == []

            again = await ops.apply_credit_note_parts(note.id, parts, date=TODAY)
            assert [i.amount_to_pay for i in again] == [D("300.00"), D(0)]

            # The 50 left can still be applied; more than that is refused.
            third = await ops.create_invoice(
                party.id, "SPLIT-INV-3", lines("80"), invoice_date=TODAY
            )
            with pytest.raises(TerminalError, match="credit still open"):
                await ops.apply_credit_note_parts(note.id, [(third.id, D("60"))])
            (rest,) = await ops.apply_credit_note_parts(note.id, [(third.id, None)])
            assert rest.amount_to_pay == D("30.00")
            await ops.record_payment(first.id, D("300"), reference="SPLIT-PAY", date=TODAY)
            assert (await ops.get_invoice(first.id)).state == "paid"

    run(scenario())


def test_foreign_currency_invoice_credit_and_payment_settle_in_that_currency(
    tryton: InstanceInfo,
) -> None:
    """EUR 1,000.01 credited 333.33 and paid 666.68: paid in EUR, the rounding cent in 6.2.1."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            party = await ops.ensure_party("EUR-1", "Euro GmbH")
            invoice = await ops.create_invoice(
                party.id, "EUR-INV-1", lines("1000.01"), invoice_date=TODAY, currency="EUR"
            )
            assert (invoice.currency, invoice.total_amount) == ("EUR", D("1000.01"))
            note = await ops.create_credit_note(
                party.id, "EUR-CN-1", lines("500"), invoice_date=TODAY, currency="EUR"
            )
            reduced = await ops.apply_credit_note(note.id, invoice.id, D("333.33"))
            assert reduced.amount_to_pay == D("666.68")
            await ops.record_payment(invoice.id, D("666.68"), reference="EUR-PAY", date=TODAY)
            settled = await ops.get_invoice(invoice.id)
            assert (settled.state, settled.currency, settled.amount_to_pay) == ("paid", "EUR", 0)

            yen = await ops.create_invoice(
                party.id, "JPY-INV-1", lines("180001"), invoice_date=TODAY, currency="JPY"
            )
            assert (yen.currency, yen.total_amount) == ("JPY", D("180001"))
            await ops.record_payment(yen.id, D("80001"), reference="JPY-PAY", date=TODAY)
            assert (await ops.get_invoice(yen.id)).amount_to_pay == D("100000")

    run(scenario())


def test_journal_entry_in_a_foreign_currency(tryton: InstanceInfo) -> None:
    """GBP 100 of revenue recognized: the lines carry GBP 100, converted to USD, balanced."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            entry = await ops.post_journal_entry(
                "GBP-RR-1",
                TODAY,
                [
                    JournalLine(account_code="2.2.2", debit=D("100"), currency="GBP"),
                    JournalLine(account_code="4.1.2", credit=D("100"), currency="GBP"),
                ],
            )
            rows = await ops.client.search_read(
                "account.move.line",
                [("move", "=", entry.id)],
                ["debit", "credit", "amount_second_currency", "second_currency.code"],
            )
            assert {r["amount_second_currency"] for r in rows} == {D("100.00"), D("-100.00")}
            assert {r["second_currency."]["code"] for r in rows} == {"GBP"}
            usd = D("100") / D("0.79")
            assert sum(r["debit"] for r in rows) == sum(r["credit"] for r in rows)
            assert sum(r["debit"] for r in rows) == usd.quantize(D("0.01"))

    run(scenario())


def test_an_invoice_dated_before_one_already_numbered_keeps_its_date_for_the_books(
    tryton: InstanceInfo,
) -> None:
    """Numbered after a later-dated invoice: Tryton's invoice date moves up, the GL does not."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            party = await ops.ensure_party("ORDER-1", "Late Arrivals plc")
            later = TODAY - dt.timedelta(days=2)
            earlier = TODAY - dt.timedelta(days=9)
            await ops.create_invoice(party.id, "ORDER-INV-2", lines("10"), invoice_date=later)
            late = await ops.create_invoice(
                party.id, "ORDER-INV-1", lines("20"), invoice_date=earlier
            )
            assert late.state == "posted"
            assert late.invoice_date is not None
            assert late.invoice_date >= later  # the latest date numbered so far
            (row,) = await ops.client.model(
                "account.invoice", "read", [late.id], ["accounting_date", "move.date"]
            )
            assert row["accounting_date"] == earlier
            assert row["move."]["date"] == earlier

    run(scenario())


def test_the_adapter_applies_a_taxed_euro_credit_memo_over_two_invoices(
    tryton: InstanceInfo,
) -> None:
    """EUR 120 of credit (100 + 20 tax): 50 and 40 applied; 30 left; both invoices reduced."""

    async def scenario() -> None:
        erp = TrytonErp.connect(tryton.url, tryton.database, tryton.api_user, tryton.api_password)
        try:
            await erp.client.ensure_login()
            party = await erp.ops.ensure_party("ADAPT-1", "Adapter SA")
            refs = {}
            for ref, net in [("a0XADAPT1", "100.00"), ("a0XADAPT2", "200.00")]:
                invoice = InvoicePosted(
                    invoice_id=ref,
                    invoice_number=f"INV-{ref}",
                    customer_id="001ADAPT",
                    currency="EUR",
                    invoice_date=TODAY,
                    due_date=TODAY + dt.timedelta(days=30),
                    lines=(
                        DocumentLine(
                            line_id="1",
                            description="Seats",
                            quantity=D(1),
                            unit_price=D(net),
                            amount=D(net),
                            tax_amount=D(net) / 5,
                        ),
                    ),
                    subtotal=D(net),
                    tax_total=D(net) / 5,
                    total=D(net) * 6 / 5,
                )
                refs[ref] = (await erp.create_invoice(ref, invoice, str(party.id))).erp_id
            memo = CreditMemoIssued(
                credit_memo_id="a0CADAPT1",
                credit_memo_number="CM-ADAPT-1",
                customer_id="001ADAPT",
                currency="EUR",
                issued_on=TODAY,
                lines=(
                    DocumentLine(
                        line_id="1",
                        description="Credit",
                        quantity=D(1),
                        unit_price=D(100),
                        amount=D(100),
                        tax_amount=D(20),
                    ),
                ),
                subtotal=D(100),
                tax_total=D(20),
                total=D(120),
                applications=(
                    Application(invoice_id="a0XADAPT1", amount=D(50)),
                    Application(invoice_id="a0XADAPT2", amount=D(40)),
                ),
            )
            assert await erp.find(RecordKind.CREDIT_MEMO, "a0CADAPT1") is None
            record = await erp.create_credit_memo("a0CADAPT1", memo, str(party.id), refs)
            again = await erp.create_credit_memo("a0CADAPT1", memo, str(party.id), refs)
            assert again.erp_id == record.erp_id
            assert await erp.find(RecordKind.CREDIT_MEMO, "a0CADAPT1") == record
            first = await erp.invoice_balance("a0XADAPT1")
            second = await erp.invoice_balance("a0XADAPT2")
            note = await erp.invoice_balance("a0CADAPT1")
            assert first is not None
            assert second is not None
            assert note is not None
            assert (first.currency, first.total, first.open_amount) == ("EUR", D(120), D(70))
            assert (second.total, second.open_amount) == (D(240), D(200))
            assert (note.currency, note.total, note.open_amount) == ("EUR", D(-120), D(-30))
            # Its comment, for an accountant in Tryton: "2 invoices", not "2 invoice(s)".
            (row,) = await erp.client.model(
                "account.invoice", "read", [int(record.erp_id)], ["comment"]
            )
            assert row["comment"].startswith("revbridge: applied to 2 invoices: 50")
        finally:
            await erp.close()

    run(scenario())


def test_the_adapter_posts_unapplied_euro_cash_and_a_yen_revenue_entry(
    tryton: InstanceInfo,
) -> None:
    """EUR 100 received, 60 applied: 40 sits on the customer in EUR; JPY revenue keeps JPY."""

    async def scenario() -> None:
        erp = TrytonErp.connect(tryton.url, tryton.database, tryton.api_user, tryton.api_password)
        try:
            await erp.client.ensure_login()
            party = await erp.ops.ensure_party("CASH-1", "Cash Euro SARL")
            invoice = await erp.ops.create_invoice(
                party.id, "a0XCASH1", lines("60"), invoice_date=TODAY, currency="EUR"
            )
            payment = PaymentReceived(
                payment_id="a0PCASH1",
                customer_id="001CASH",
                currency="EUR",
                amount=D(100),
                received_on=TODAY,
                method="wire",
                applications=(Application(invoice_id="a0XCASH1", amount=D(60)),),
            )
            record = await erp.record_payment(
                "a0PCASH1", payment, str(party.id), {"a0XCASH1": str(invoice.id)}
            )
            assert await erp.find(RecordKind.PAYMENT, "a0PCASH1") == record
            assert (await erp.ops.get_invoice(invoice.id)).state == "paid"
            unapplied = await erp.client.search_read(
                "account.move.line",
                [("move.description", "=", "a0PCASH1 [2/2]"), ("account.code", "=", "1.2.1")],
                ["amount_second_currency", "second_currency.code", "credit"],
            )
            assert [
                (r["amount_second_currency"], r["second_currency."]["code"]) for r in unapplied
            ] == [(D("-40.00"), "EUR")]
            assert unapplied[0]["credit"] == (D(40) / D("0.92")).quantize(D("0.01"))

            entry = RevenueRecognized(
                schedule_entry_id="a0RYEN1",
                schedule_id="RS-1",
                period=TODAY.strftime("%Y-%m"),
                entry_date=TODAY,
                lines=(
                    EventJournalLine(
                        account="2400 Deferred Revenue", debit=D(15001), currency="JPY"
                    ),
                    EventJournalLine(
                        account="4000 Subscription Revenue", credit=D(15001), currency="JPY"
                    ),
                ),
            )
            posted = await erp.post_journal("a0RYEN1", entry, None)
            rows = await erp.client.search_read(
                "account.move.line",
                [("move", "=", int(posted.erp_id))],
                ["debit", "credit", "amount_second_currency", "second_currency.code"],
            )
            assert sorted(r["amount_second_currency"] for r in rows) == [D(-15001), D(15001)]
            assert {r["second_currency."]["code"] for r in rows} == {"JPY"}
            assert sum(r["debit"] for r in rows) == sum(r["credit"] for r in rows) == D("100.01")
        finally:
            await erp.close()

    run(scenario())
