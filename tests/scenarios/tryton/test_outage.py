"""Tryton goes down in the middle of a run and comes back: nothing is lost, nothing doubled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from revbridge.engine.ports import RecordKind
from revbridge.store.ledger import Ledger
from revbridge.tryton.instance import InstanceInfo, TrytonInstance

from .conftest import Hub, Ids, customer, invoice, payment, run


def test_a_tryton_restart_mid_run_loses_and_duplicates_nothing(
    tryton: InstanceInfo, tryton_instance: TrytonInstance, ledger: Ledger
) -> None:
    """The server is stopped while invoices are being posted and started again later.

    Deliveries cut off mid-call are retried, and the retry finds what had already landed;
    while the server is down the hub only buffers. Afterwards every invoice and payment is
    in Tryton exactly once, at its amount.
    """
    umbrella = Ids.make("001")
    invoices = [Ids.make("a0X") for _ in range(4)]
    payments = [Ids.make("a0P") for _ in range(2)]
    amounts = ["110.00", "220.00", "330.00", "440.00"]

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        try:
            hub.ingest(
                customer(umbrella, "Umbrella Corp"),
                *(
                    invoice(ref, umbrella, f"INV-60{i}", [("Platform subscription", 1, amount)])
                    for i, (ref, amount) in enumerate(zip(invoices, amounts, strict=True))
                ),
                payment(payments[0], umbrella, "110.00", [(invoices[0], "110.00")]),
                payment(payments[1], umbrella, "100.00", [(invoices[1], "100.00")]),
            )

            async def stop_soon() -> None:
                # Long enough for the customer and a first invoice to be on their way.
                await asyncio.sleep(1.5)
                await asyncio.to_thread(tryton_instance.down)

            await asyncio.gather(hub.worker.run_until_idle(), stop_soon())
            assert not tryton_instance.status().running
            # A few hours of downtime: the circuit opens, deliveries wait, none gives up.
            for _ in range(6):
                hub.clock.advance(timedelta(minutes=31))
                await hub.worker.run_until_idle()
            assert hub.states()["dead_letter"] == 0
            assert hub.states()["delivered"] < 7

            await asyncio.to_thread(tryton_instance.up)
            for _ in range(10):
                hub.clock.advance(timedelta(minutes=31))
                await hub.worker.run_until_idle()
                if hub.states() == {"delivered": 7}:
                    break
            assert hub.states() == {"delivered": 7}, hub.dead_letters()

            for ref, amount in zip(invoices, amounts, strict=True):
                found = await hub.erp.ops.find_invoices(ref)
                assert [i.total_amount for i in found] == [Decimal(amount)], ref
            for ref in payments:
                assert (
                    len(
                        await hub.erp.ops.client.search_read(
                            "account.move", [("description", "=", ref)], ["id"]
                        )
                    )
                    == 1
                )
            assert await hub.erp.find(RecordKind.PAYMENT, payments[1]) is not None
            second = await hub.erp.invoice_balance(invoices[1])
            assert second is not None
            assert second.open_amount == Decimal("120.00")
            owed = await hub.erp.customer_balance(umbrella)
            assert owed is not None
            assert owed.receivable == Decimal("1100.00") - Decimal("210.00")
        finally:
            await hub.close()
            tryton_instance.up()  # the next module finds the server running

    run(scenario())
