"""Cash entered by an accountant in the ERP reaches the Salesforce invoice: capture, ledger,
delivery, with a watermark that only moves after the ledger has the events."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.worker import Target, Worker
from revbridge.generate import generate_events
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.sandbox import running_sandbox
from revbridge.services.capture import capture_once, load_watermark, source_for
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeSalesforce
from tests.contract.netsuite_adapter.conftest import Admin, connector_config

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_an_erp_payment_is_captured_and_marks_the_salesforce_invoice_paid(ledger: Ledger) -> None:
    envs = list(generate_events(40, seed=11))
    invoice = next(e for e in envs if e["type"] == "invoice.posted")
    customer = [
        e
        for e in envs
        if e["type"] == "customer.upserted"
        and e["data"]["customer_id"] == invoice["data"]["customer_id"]
    ]
    clock = ManualClock(START)
    ingest_lines(
        ledger,
        [json.dumps(e).encode() for e in [*customer, invoice]],
        policy=build_policy(),
        origin="sf",
        clock=clock,
    )
    with running_sandbox() as sandbox:
        admin = Admin(sandbox)

        async def story() -> tuple[FakeSalesforce, list[int]]:
            erp = NetSuiteErp(connector_config(sandbox))
            sf = FakeSalesforce()
            worker = Worker(
                ledger.engine,
                {"erp": Target("erp", erp), "salesforce": Target("salesforce", sf)},
                clock=clock,
                seed=1,
            )
            await (
                worker.run_until_idle()
            )  # the invoice (and its customer, just in time) in NetSuite
            refs = worker.queue.resolve(
                "erp",
                [f"invoice:{invoice['source_id']}", f"customer:{invoice['data']['customer_id']}"],
            )
            source = source_for(erp)
            assert source is not None
            first = await capture_once(source, ledger, build_policy(), clock=clock)
            reads = [first.read]
            # The accountant records a wire against the invoice in NetSuite.
            admin(
                "POST",
                "/customerPayment",
                {
                    "customer": {"id": refs[f"customer:{invoice['data']['customer_id']}"]},
                    "payment": 100,
                    "tranDate": "2026-10-28",
                    "account": {"id": "2"},
                    "apply": {
                        "items": [
                            {
                                "doc": {"id": refs[f"invoice:{invoice['source_id']}"]},
                                "apply": True,
                                "amount": 100,
                            }
                        ]
                    },
                },
            )
            clock.advance(timedelta(minutes=5))
            second = await capture_once(source, ledger, build_policy(), clock=clock)
            reads.append(second.ingest.accepted)
            third = await capture_once(source, ledger, build_policy(), clock=clock)  # nothing new
            reads.append(third.ingest.accepted)
            await worker.run_until_idle()
            await erp.close()
            return sf, reads

        sf, reads = asyncio.run(story())
    assert reads[1] >= 1
    assert reads[2] == 0  # the same watermark reads nothing twice
    by_type = ledger.status(START)["events"]["by_type"]
    assert by_type["erp.payment.received"] == 1  # the accountant's wire; the hub's own not echoed
    assert "payment.received" not in by_type
    assert sf.invoice_paid[invoice["source_id"]] == Decimal("100")
    assert load_watermark(ledger.engine, "erp:netsuite") is not None
