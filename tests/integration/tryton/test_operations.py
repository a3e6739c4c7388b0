"""Each accounting operation against the real trytond server, as the adapter will use it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from revbridge.errors import TerminalError, UnbalancedJournal
from revbridge.tryton.instance import InstanceInfo
from revbridge.tryton.operations import InvoiceLine, JournalLine, TrytonAccounting

from .conftest import Session, run

TODAY = dt.datetime.now(dt.UTC).date()


def services(amount: str, description: str = "Subscription") -> list[InvoiceLine]:
    return [InvoiceLine(description=description, quantity=Decimal(1), unit_price=Decimal(amount))]


async def invoiced(ops: TrytonAccounting, code: str, reference: str, amount: str) -> int:
    party = await ops.ensure_party(code, f"Customer {code}")
    invoice = await ops.create_invoice(party.id, reference, services(amount), invoice_date=TODAY)
    return invoice.id


def test_ensure_party_creates_once_and_adds_identifiers(tryton: InstanceInfo) -> None:
    """A party is found by its code; a second call creates nothing and only adds identifiers."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            first = await ops.ensure_party("SF-ACC-1", "Acme Corp", identifier="crm:001A")
            again = await ops.ensure_party("SF-ACC-1", "Acme Renamed", identifier="crm:001A")
            more = await ops.ensure_party("SF-ACC-1", "Acme Corp", identifier="erp:77")
            assert first.id == again.id == more.id
            assert again.name == "Acme Corp"
            assert first.identifiers == ("crm:001A",)
            assert set(more.identifiers) == {"crm:001A", "erp:77"}
            by_identifier = await ops.find_party_by_identifier("crm:001A")
            assert by_identifier is not None
            assert by_identifier.id == first.id
            assert await ops.find_party("SF-ACC-404") is None

    run(scenario())


def test_invoice_is_posted_and_found_by_reference(tryton: InstanceInfo) -> None:
    """A posted invoice has a number, its total to pay, and the same reference finds it again."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            party = await ops.ensure_party("SF-ACC-2", "Globex")
            lines = [
                InvoiceLine(description="Seats", quantity=Decimal(3), unit_price=Decimal("100")),
                InvoiceLine(description="Setup", quantity=Decimal(1), unit_price=Decimal("49.99")),
            ]
            invoice = await ops.create_invoice(
                party.id, "Q2C-INV-1001", lines, invoice_date=TODAY, description="Order 1001"
            )
            assert invoice.state == "posted"
            assert invoice.number is not None
            assert invoice.number.startswith("INV/")
            assert invoice.total_amount == Decimal("349.99")
            assert invoice.amount_to_pay == Decimal("349.99")
            assert invoice.currency == "USD"
            found = await ops.find_invoice("Q2C-INV-1001")
            assert found == invoice
            retried = await ops.create_invoice(party.id, "Q2C-INV-1001", lines, invoice_date=TODAY)
            assert retried.id == invoice.id
            assert len(await ops.find_invoices("Q2C-INV-1001")) == 1
            assert await ops.find_invoice("Q2C-INV-404") is None
            balance = await ops.party_balance(party.id)
            assert balance.receivable == Decimal("349.99")

    run(scenario())


def test_draft_invoice_in_foreign_currency_is_posted_on_retry(tryton: InstanceInfo) -> None:
    """A draft left by an interrupted delivery is posted, not duplicated, when it is retried."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            party = await ops.ensure_party("SF-ACC-3", "Initech GmbH")
            draft = await ops.create_invoice(
                party.id,
                "Q2C-INV-EUR",
                services("200"),
                invoice_date=TODAY,
                currency="EUR",
                post=False,
            )
            assert draft.state == "draft"
            assert draft.number is None
            posted = await ops.create_invoice(
                party.id, "Q2C-INV-EUR", services("200"), invoice_date=TODAY, currency="EUR"
            )
            assert posted.id == draft.id
            assert posted.state == "posted"
            assert posted.currency == "EUR"
            assert posted.amount_to_pay == Decimal("200.00")

    run(scenario())


def test_partial_then_final_payment(tryton: InstanceInfo) -> None:
    """A partial payment lowers the amount to pay; the final one marks the invoice paid."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            invoice_id = await invoiced(ops, "SF-ACC-4", "Q2C-INV-1004", "1000")
            first = await ops.record_payment(
                invoice_id, Decimal("600"), reference="PAY-555", date=TODAY
            )
            assert first.amount == Decimal("600.00")
            assert first.invoice_id == invoice_id
            assert first.reference == "PAY-555"
            assert first.state == "posted"
            after_first = await ops.get_invoice(invoice_id)
            assert after_first.state == "posted"
            assert after_first.amount_to_pay == Decimal("400.00")

            again = await ops.record_payment(
                invoice_id, Decimal("600"), reference="PAY-555", date=TODAY
            )
            assert again.move_id == first.move_id
            assert (await ops.get_invoice(invoice_id)).amount_to_pay == Decimal("400.00")

            await ops.record_payment(invoice_id, Decimal("400"), reference="PAY-556", date=TODAY)
            paid = await ops.get_invoice(invoice_id)
            assert paid.state == "paid"
            assert paid.amount_to_pay == Decimal(0)
            # Tryton dates a reconciliation by its latest line, here the 30-day due date.
            assert paid.reconciled == TODAY + dt.timedelta(days=30)
            found = await ops.find_payment("PAY-556")
            assert found is not None
            assert found.amount == Decimal("400.00")

            with pytest.raises(TerminalError, match="exceeds what is left to pay"):
                await ops.record_payment(invoice_id, Decimal("1"), reference="PAY-557", date=TODAY)

    run(scenario())


def test_payments_since_watermark(tryton: InstanceInfo) -> None:
    """Only payments changed at or after the watermark come back, oldest change first."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            invoice_id = await invoiced(ops, "SF-ACC-5", "Q2C-INV-1005", "300")
            await ops.record_payment(invoice_id, Decimal("100"), reference="WM-1", date=TODAY)
            everything = await ops.payments_since(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
            mark = max(p.changed_at for p in everything)
            assert mark.tzinfo is not None
            await ops.record_payment(invoice_id, Decimal("50"), reference="WM-2", date=TODAY)
            newer = await ops.payments_since(mark)
            references = [p.reference for p in newer]
            assert "WM-2" in references
            assert references[-1] == "WM-2"
            assert all(p.changed_at >= mark for p in newer)
            future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            assert await ops.payments_since(future) == []

    run(scenario())


def test_credit_note_applied_to_invoice(tryton: InstanceInfo) -> None:
    """A credit note for the whole balance settles the invoice: both end up paid."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            invoice_id = await invoiced(ops, "SF-ACC-6", "Q2C-INV-1006", "400")
            party = await ops.find_party("SF-ACC-6")
            assert party is not None
            note = await ops.create_credit_note(
                party.id, "Q2C-CN-1006", services("400", "Refund"), invoice_date=TODAY
            )
            assert note.is_credit_note
            assert note.state == "posted"
            assert note.total_amount == Decimal("-400.00")
            assert note.number is not None
            assert note.number.startswith("CN/")
            settled = await ops.apply_credit_note(note.id, invoice_id)
            assert settled.state == "paid"
            assert settled.amount_to_pay == 0
            assert (await ops.get_invoice(note.id)).state == "paid"
            assert (await ops.party_balance(party.id)).receivable == 0
            # Applying it again changes nothing.
            assert (await ops.apply_credit_note(note.id, invoice_id)).state == "paid"

    run(scenario())


def test_partial_credit_note_then_payment(tryton: InstanceInfo) -> None:
    """A smaller credit note lowers the amount to pay; the payment of the rest settles all."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            invoice_id = await invoiced(ops, "SF-ACC-7", "Q2C-INV-1007", "1000")
            party = await ops.find_party("SF-ACC-7")
            assert party is not None
            note = await ops.create_credit_note(
                party.id, "Q2C-CN-1007", services("250", "Discount"), invoice_date=TODAY
            )
            reduced = await ops.apply_credit_note(note.id, invoice_id)
            assert reduced.state == "posted"
            assert reduced.amount_to_pay == Decimal("750.00")
            await ops.record_payment(invoice_id, Decimal("750"), reference="PAY-7", date=TODAY)
            assert (await ops.get_invoice(invoice_id)).state == "paid"
            assert (await ops.get_invoice(note.id)).state == "paid"

            big = await ops.create_credit_note(
                party.id, "Q2C-CN-1007B", services("5000"), invoice_date=TODAY
            )
            other = await ops.create_invoice(
                party.id, "Q2C-INV-1007B", services("10"), invoice_date=TODAY
            )
            with pytest.raises(TerminalError, match="exceeds what is left to pay"):
                await ops.apply_credit_note(big.id, other.id)

    run(scenario())


def test_journal_entry_posted_once_and_listed_in_its_period(tryton: InstanceInfo) -> None:
    """A balanced entry is posted under its reference and its lines show in the period."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            lines = [
                JournalLine(account_code="4.1.2", debit=Decimal("750"), description="defer"),
                JournalLine(account_code="2.2.2", credit=Decimal("750"), description="defer"),
            ]
            entry = await ops.post_journal_entry("RR-3001-m01", TODAY, lines)
            assert entry.state == "posted"
            assert entry.journal == "MISC"
            assert entry.number is not None
            again = await ops.post_journal_entry("RR-3001-m01", TODAY, lines)
            assert again.id == entry.id
            period = await ops.find_period(TODAY)
            assert period.id == entry.period_id
            assert period.state == "open"
            mine = [line for line in await ops.move_lines(period.id) if line.move_id == entry.id]
            assert sorted((line.account_code, line.debit, line.credit) for line in mine) == [
                ("2.2.2", Decimal(0), Decimal("750.00")),
                ("4.1.2", Decimal("750.00"), Decimal(0)),
            ]
            assert {line.move_reference for line in mine} == {"RR-3001-m01"}

            with pytest.raises(UnbalancedJournal):
                await ops.post_journal_entry(
                    "RR-BAD", TODAY, [JournalLine(account_code="4.1.2", debit=Decimal(1))]
                )

    run(scenario())


def test_parties_over_credit_limit(tryton: InstanceInfo) -> None:
    """A party invoiced beyond its limit is reported; one within its limit is not."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            risky = await ops.ensure_party("SF-RISK-1", "Risky Ltd")
            safe = await ops.ensure_party("SF-SAFE-1", "Safe Ltd")
            await ops.set_credit_limit(risky.id, Decimal("500"))
            await ops.set_credit_limit(safe.id, Decimal("5000"))
            await ops.create_invoice(risky.id, "CL-1", services("800"), invoice_date=TODAY)
            await ops.create_invoice(safe.id, "CL-2", services("800"), invoice_date=TODAY)
            over = await ops.parties_over_credit_limit()
            assert [b.code for b in over] == ["SF-RISK-1"]
            assert over[0].credit_amount == Decimal("800.00")
            assert over[0].credit_limit == Decimal("500")
            await ops.set_credit_limit(risky.id, None)
            assert await ops.parties_over_credit_limit() == []

    run(scenario())
