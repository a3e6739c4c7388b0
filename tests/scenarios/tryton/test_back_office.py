"""What accountants do in Tryton reaches Salesforce; what they close stays closed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from revbridge.engine.ports import RecordKind
from revbridge.services.capture import capture_once, load_watermark, source_for
from revbridge.store.ledger import Ledger
from revbridge.store.schema import events
from revbridge.tryton.capture import capture_credit_status, capture_erp_payments
from revbridge.tryton.instance import InstanceInfo

from .conftest import POLICY, Hub, Ids, accountant, customer, invoice, payment, revenue, run

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# January of last year: inside the template's fiscal years, away from today's period.
CLOSED_DAY = dt.date(dt.datetime.now(dt.UTC).year - 1, 1, 15)


async def _paid_by_wire(
    hub: Hub, invoice_id: str, wire: tuple[str, str], *envelopes: dict[str, Any]
) -> None:
    """The hub delivers ``envelopes``; then the accountant records a wire (amount,
    reference) in Tryton against the invoice the hub posted."""
    hub.ingest(*envelopes)
    await hub.deliver()
    client, books = accountant(hub.info)
    try:
        await client.login()
        tryton_invoice = await books.find_invoice(invoice_id)
        assert tryton_invoice is not None
        amount, reference = wire
        await books.record_payment(
            tryton_invoice.id, Decimal(amount), reference=reference, date=dt.date.today()
        )
    finally:
        await client.aclose()


def test_a_payment_entered_in_tryton_reaches_the_salesforce_invoice(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """A wire the accountant records in Tryton marks the Salesforce invoice paid; the card
    payment the hub itself posted does not come back as a second payment."""
    wayne, inv, card = Ids.make("001"), Ids.make("a0X"), Ids.make("a0P")

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        try:
            await _paid_by_wire(
                hub,
                inv,
                ("1000.00", "WIRE-7781"),
                customer(wayne, "Wayne Enterprises"),
                invoice(inv, wayne, "INV-3001", [("Implementation services", 2, "950.00")]),
                payment(card, wayne, "400.00", [(inv, "400.00")]),
            )
            assert hub.states() == {"delivered": 3}

            envelopes, watermark = await capture_erp_payments(
                hub.erp, EPOCH, is_hub_payment=lambda ref: ref == card
            )
            assert [e["data"]["reference"] for e in envelopes] == ["WIRE-7781"]
            (wire,) = envelopes
            assert wire["type"] == "erp.payment.received"
            assert wire["data"]["customer_id"] == wayne
            assert wire["data"]["amount"] == "1000.00"
            assert wire["data"]["applications"][0]["invoice_id"] == inv
            assert hub.ingest(*envelopes).accepted == 1
            await hub.deliver()
            assert hub.salesforce.invoice_paid[inv] == Decimal("1000.00")
            assert hub.states() == {"delivered": 4}

            # Reading again from the new watermark finds the same wire at most: stored once.
            again, later = await capture_erp_payments(hub.erp, watermark)
            assert later >= watermark
            assert hub.ingest(*again).accepted == 0
            remaining = await hub.erp.invoice_balance(inv)
            assert remaining is not None
            assert remaining.open_amount == Decimal("500.00")  # 1,900 - 400 card - 1,000 wire
        finally:
            await hub.close()

    run(scenario())


def test_the_capture_loop_reads_tryton_as_the_worker_does(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """The worker's capture round (the adapter's source, one watermark) stores the wire the
    accountant entered and the customer's credit position, under the stream erp:tryton."""
    wayne, inv = Ids.make("001"), Ids.make("a0X")
    sold = [
        customer(wayne, "Wayne Enterprises"),
        invoice(inv, wayne, "INV-3002", [("Implementation services", 1, "700.00")]),
    ]

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        try:
            await _paid_by_wire(hub, inv, ("700.00", "WIRE-7782"), *sold)
            source = source_for(hub.erp)
            assert source is not None
            result = await capture_once(source, ledger, POLICY, clock=hub.clock)
            assert result.stream == "erp:tryton"
            assert load_watermark(ledger.engine, "erp:tryton") == result.watermark
            with ledger.engine.connect() as conn:
                kinds = set(conn.execute(select(events.c.type)).scalars())
            assert {"erp.payment.received", "customer.credit_status_changed"} <= kinds
        finally:
            await hub.close()

    run(scenario())


def test_a_customer_over_its_credit_limit_is_put_on_hold_in_salesforce(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """Limit 1,000, invoiced 1,500: on hold. Once 800 is paid in Tryton: active again."""
    stark, inv = Ids.make("001"), Ids.make("a0X")

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        client, books = accountant(tryton)
        try:
            hub.ingest(customer(stark, "Stark Industries"))
            await hub.deliver()
            party = await hub.erp.find(RecordKind.CUSTOMER, stark)
            assert party is not None
            await client.login()
            await books.set_credit_limit(int(party.erp_id), Decimal("1000.00"))
            hub.ingest(invoice(inv, stark, "INV-4001", [("Training day", 1, "1500.00")]))
            await hub.deliver()

            over = await hub.erp.parties_over_credit_limit()
            assert [b.code for b in over] == [party.number]
            envelopes, watermark = await capture_credit_status(hub.erp, EPOCH)
            mine = [e for e in envelopes if e["data"]["customer_id"] == stark]
            assert [e["data"]["status"] for e in mine] == ["on_hold"]
            assert mine[0]["data"]["credit_limit"] == "1000.00"
            hub.ingest(*mine)
            await hub.deliver()
            assert hub.salesforce.accounts[stark]["credit_hold"] is True

            tryton_invoice = await books.find_invoice(inv)
            assert tryton_invoice is not None
            await books.record_payment(
                tryton_invoice.id, Decimal("800.00"), reference="WIRE-9001", date=dt.date.today()
            )
            envelopes, _ = await capture_credit_status(hub.erp, watermark)
            mine = [e for e in envelopes if e["data"]["customer_id"] == stark]
            assert [e["data"]["status"] for e in mine] == ["active"]
            hub.ingest(*mine)
            await hub.deliver()
            assert hub.salesforce.accounts[stark]["credit_hold"] is False
            assert hub.dead_letters() == {}
        finally:
            await client.aclose()
            await hub.close()

    run(scenario())


def test_a_posting_into_a_closed_period_is_parked_for_an_accountant(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """January is closed: its invoice and its revenue entry are refused, with the reason,
    and nothing of them is in Tryton; the open month's entry posts normally."""
    tyrell, late_invoice, late_revenue = Ids.make("001"), Ids.make("a0X"), Ids.make("a0R")
    on_time = Ids.make("a0R")

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        client, books = accountant(tryton)
        try:
            await client.login()
            period = await books.find_period(CLOSED_DAY)
            await books.close_period(period.id)
            hub.ingest(
                customer(tyrell, "Tyrell Corp"),
                invoice(
                    late_invoice, tyrell, "INV-5001", [("Backdated", 1, "250.00")], on=CLOSED_DAY
                ),
                revenue(late_revenue, tyrell, late_invoice, CLOSED_DAY, "100.00"),
                revenue(on_time, tyrell, late_invoice, dt.date.today(), "100.00"),
            )
            stats = await hub.deliver()
            dead = hub.dead_letters()
            assert set(dead) == {late_invoice, late_revenue}
            for reason in dead.values():
                assert f"period {period.name} is closed" in reason
                assert "accountant" in reason
            assert stats.retried == 0  # refused for good at once, not retried
            assert await books.find_invoices(late_invoice) == []
            assert await books.find_journal_entry(late_revenue) is None
            assert await hub.erp.find(RecordKind.JOURNAL, on_time) is not None
        finally:
            await client.aclose()
            await hub.close()

    run(scenario())
