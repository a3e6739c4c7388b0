"""A customer's month in Tryton's books: every Salesforce document lands once, at its amount."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from revbridge.codec import decode_line
from revbridge.core.events import InvoicePosted
from revbridge.engine.ports import RecordKind
from revbridge.store.ledger import Ledger
from revbridge.tryton.instance import InstanceInfo

from .conftest import Hub, Ids, credit_memo, customer, invoice, months_back, payment, revenue, run


def test_a_new_customer_is_invoiced_pays_in_part_gets_a_credit_and_earns_revenue(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """Invoice 1,200, paid 500, credited 200: Tryton says 500 is still owed, as Salesforce does.

    The subscription's 1,200 is then recognized over three months, 400 a month, from
    deferred revenue (2.2.2) into services revenue (4.1.2).
    """
    acme, inv, pay, memo = Ids.make("001"), Ids.make("a0X"), Ids.make("a0P"), Ids.make("a0C")
    entries = [Ids.make("a0R") for _ in range(3)]
    months = [months_back(2), months_back(1), months_back(0)]

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        try:
            hub.ingest(
                customer(acme, "Acme Corp", city="Austin"),
                invoice(inv, acme, "INV-1001", [("Platform seats", 3, "400.00")]),
                payment(pay, acme, "500.00", [(inv, "500.00")]),
                credit_memo(memo, acme, "CM-1001", "200.00", inv),
                *(
                    revenue(e, acme, inv, month, "400.00")
                    for e, month in zip(entries, months, strict=True)
                ),
            )
            await hub.deliver()
            assert hub.states() == {"delivered": 7}, hub.dead_letters()

            erp = hub.erp
            party = await erp.find(RecordKind.CUSTOMER, acme)
            assert party is not None
            assert party.number == f"SF-{acme}"  # no ERP number yet: a code from the Account id

            billed = await erp.invoice_balance(inv)
            assert billed is not None
            assert billed.state == "posted"
            assert billed.total == Decimal("1200.00")
            assert billed.open_amount == Decimal("500.00")  # 1,200 - 500 paid - 200 credited
            assert billed.number is not None
            assert billed.number.startswith("INV/")

            credit = await erp.invoice_balance(memo)
            assert credit is not None
            assert credit.total == Decimal("-200.00")

            owed = await erp.customer_balance(acme)
            assert owed is not None
            assert owed.receivable == Decimal("500.00")
            assert [
                p.amount for p in await erp.payments_since(hub.clock.now().replace(year=2000))
            ] == [Decimal("500.00")]

            for entry, month in zip(entries, months, strict=True):
                lines = [
                    line
                    for line in await erp.gl_lines(month.strftime("%Y-%m"))
                    if line.move_reference == entry
                ]
                by_account = {(line.account_code, line.debit, line.credit) for line in lines}
                assert by_account == {
                    ("2.2.2", Decimal("400.00"), Decimal("0")),
                    ("4.1.2", Decimal("0"), Decimal("400.00")),
                }
            for kind, ref in [
                (RecordKind.INVOICE, inv),
                (RecordKind.PAYMENT, pay),
                (RecordKind.CREDIT_MEMO, memo),
                (RecordKind.JOURNAL, entries[0]),
            ]:
                assert await erp.find(kind, ref) is not None, kind
        finally:
            await hub.close()

    run(scenario())


def test_the_customer_record_follows_salesforce(tryton: InstanceInfo, ledger: Ledger) -> None:
    """A renamed, relocated Account updates the same Tryton party; its code never changes."""
    globex = Ids.make("001")

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        try:
            hub.ingest(customer(globex, "Globex", city="Austin"))
            await hub.deliver()
            first = await hub.erp.find(RecordKind.CUSTOMER, globex)
            assert first is not None
            hub.ingest(
                customer(
                    globex,
                    "Globex Corporation",
                    city="Springfield",
                    street="742 Evergreen Terrace",
                    version="2",
                )
            )
            await hub.deliver()
            assert hub.states() == {"delivered": 2}
            again = await hub.erp.find(RecordKind.CUSTOMER, globex)
            assert again is not None
            assert again.erp_id == first.erp_id
            # Tryton keeps a party's code once set: the ERP number is the code it was given.
            assert again.number == first.number == f"SF-{globex}"
            (party,) = await hub.erp.client.model(
                "party.party", "read", [int(again.erp_id)], ["name", "addresses"]
            )
            assert party["name"] == "Globex Corporation"
            assert len(party["addresses"]) == 1
            (address,) = await hub.erp.client.model(
                "party.address", "read", party["addresses"], ["street", "city", "postal_code"]
            )
            assert (address["street"], address["city"]) == ("742 Evergreen Terrace", "Springfield")
        finally:
            await hub.close()

    run(scenario())


def test_the_same_invoice_delivered_twice_is_one_tryton_invoice(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """Sent twice by Salesforce, raced at once, or retried after a lost answer: one invoice."""
    hooli, inv, late = Ids.make("001"), Ids.make("a0X"), Ids.make("a0X")
    envelope = invoice(inv, hooli, "INV-2001", [("Premium support", 1, "300.00")])
    lost = invoice(late, hooli, "INV-2002", [("Training day", 2, "1500.00")])

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        try:
            hub.ingest(customer(hooli, "Hooli"))
            assert hub.ingest(envelope).accepted == 1
            assert hub.ingest(envelope).duplicates == 1  # the ledger already has it
            await hub.deliver()
            party = await hub.erp.find(RecordKind.CUSTOMER, hooli)
            assert party is not None

            # Two deliveries of the same invoice racing inside the adapter.
            data = _invoice_data(envelope)
            first, second = await asyncio.gather(
                hub.erp.create_invoice(inv, data, party.erp_id),
                hub.erp.create_invoice(inv, data, party.erp_id),
            )
            assert first.erp_id == second.erp_id

            # An earlier attempt reached Tryton but its answer never came back; the hub then
            # delivers the invoice again.
            landed = await hub.erp.create_invoice(late, _invoice_data(lost), party.erp_id)
            hub.ingest(lost)
            await hub.deliver()
            assert hub.states() == {"delivered": 3}

            for ref, total in [(inv, "300.00"), (late, "3000.00")]:
                found = await hub.erp.ops.find_invoices(ref)
                assert [i.total_amount for i in found] == [Decimal(total)]
            assert (await hub.erp.ops.find_invoices(late))[0].id == int(landed.erp_id)
        finally:
            await hub.close()

    run(scenario())


def _invoice_data(envelope: dict[str, object]) -> InvoicePosted:
    data = decode_line(json.dumps(envelope).encode()).data
    assert isinstance(data, InvoicePosted)
    return data
