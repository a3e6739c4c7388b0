"""Closing a period: Tryton then refuses postings dated in it, and the hub sees a terminal error."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from revbridge.errors import TerminalError
from revbridge.tryton.instance import InstanceInfo
from revbridge.tryton.operations import InvoiceLine, JournalLine

from .conftest import Session, run

# January of last year: inside the template's fiscal years, and away from today's period.
CLOSED_DAY = dt.date(dt.datetime.now(dt.UTC).year - 1, 1, 15)


def test_posting_into_a_closed_period_is_terminal(tryton: InstanceInfo) -> None:
    """Once a period is closed, a journal entry or an invoice dated in it fails for good."""

    async def scenario() -> None:
        async with Session(tryton) as ops:
            lines = [
                JournalLine(account_code="4.1.2", debit=Decimal(100)),
                JournalLine(account_code="2.2.2", credit=Decimal(100)),
            ]
            before = await ops.post_journal_entry("JE-BEFORE-CLOSE", CLOSED_DAY, lines)
            assert before.state == "posted"
            period = await ops.find_period(CLOSED_DAY)
            closed = await ops.close_period(period.id)
            assert closed.state == "closed"
            assert closed.start_date <= CLOSED_DAY <= closed.end_date

            with pytest.raises(TerminalError, match="closed") as refused:
                await ops.post_journal_entry("JE-AFTER-CLOSE", CLOSED_DAY, lines)
            assert period.name in str(refused.value)
            assert await ops.find_journal_entry("JE-AFTER-CLOSE") is None

            party = await ops.ensure_party("SF-LATE-1", "Late Bookings Inc")
            line = InvoiceLine(description="Backdated", quantity=Decimal(1), unit_price=Decimal(5))
            with pytest.raises(TerminalError, match=f'reopen the period "{period.name}"'):
                await ops.create_invoice(party.id, "INV-LATE", [line], invoice_date=CLOSED_DAY)
            # The invoice was created before its posting failed: it waits as a draft, and a
            # retry after the period reopens posts that draft instead of a duplicate.
            late = await ops.find_invoice("INV-LATE")
            assert late is not None
            assert late.state == "draft"

            # The period's books still hold what was posted before the close.
            assert [m.move_reference for m in await ops.move_lines(period.id)] == [
                "JE-BEFORE-CLOSE",
                "JE-BEFORE-CLOSE",
            ]

    run(scenario())
