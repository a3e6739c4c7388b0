"""The customer master against the org sandbox over real HTTP: a credit hold written to the
Account through the crosswalk, and that write not coming back as a customer change."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.events import EventType
from revbridge.engine.worker import Target, Worker
from revbridge.mdm.ownership import Ownership
from revbridge.salesforce.capture import CaptureReport, SalesforceCapture
from revbridge.salesforce.writeback import SalesforceWriteBack
from revbridge.services import mdm
from revbridge.services.ingest import ingest_lines
from revbridge.services.mdm_sync import MdmErp, MdmSalesforce, filter_salesforce_capture
from revbridge.store.ledger import Ledger
from revbridge.store.schema import events
from revbridge.testing import FakeErp
from revbridge.testing.policy import realtime_policy

from .conftest import Org

NOW = datetime.now(UTC)  # the capture stamps with the real clock
POLICY = realtime_policy(EventType.CUSTOMER_UPSERTED)


def _customer_events(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return len(
            conn.execute(select(events.c.id).where(events.c.type == "customer.upserted")).all()
        )


def test_a_credit_hold_written_by_the_hub_is_not_captured_back(org: Org, sf_ledger: Ledger) -> None:
    """Account captured, delivered and linked; the ERP's hold lands on it through the
    crosswalk; the next poll drops that Account version as an echo; a real rename is kept."""
    account = org.create("Account", {"Name": "Echo Master Inc"})

    async def poll() -> CaptureReport:
        client = org.client()
        try:
            cap = SalesforceCapture(
                client,
                sf_ledger,
                POLICY,
                envelope_filter=lambda envs: filter_salesforce_capture(sf_ledger.engine, envs),
            )
            return await cap.poll(["Account"])
        finally:
            await client.aclose()

    asyncio.run(poll())
    assert _customer_events(sf_ledger) == 1

    async def deliver() -> None:
        client = org.client()
        own = Ownership()
        erp = FakeErp()
        clock = ManualClock(datetime.now(UTC))
        worker = Worker(
            sf_ledger.engine,
            {
                "erp": Target("erp", MdmErp(erp, sf_ledger.engine, own, clock=clock)),
                "salesforce": Target(
                    "salesforce",
                    MdmSalesforce(
                        SalesforceWriteBack(client),
                        sf_ledger.engine,
                        own,
                        erp_system=erp.capabilities.name,
                        clock=clock,
                    ),
                ),
            },
            clock=clock,
            seed=1,
        )
        try:
            await worker.run_until_idle()
            number = mdm.lookup(sf_ledger.engine, account)[0].erp_customer_number
            assert number is not None
            envelope = {
                "type": "customer.credit_status_changed",
                "source": "erp",
                "source_id": f"CS-{number}",
                "source_version": "v1",
                "occurred_at": NOW.isoformat(),
                "data": {
                    "erp_customer_number": number,
                    "status": "on_hold",
                    "credit_hold": True,
                    "currency": "USD",
                    "credit_limit": "2500.00",
                    "payment_terms": "Net 30",
                    "changed_at": NOW.isoformat(),
                },
            }
            ingest_lines(
                sf_ledger, [json.dumps(envelope).encode()], policy=POLICY, origin="t", clock=clock
            )
            await worker.run_until_idle()
        finally:
            await client.aclose()

    asyncio.run(deliver())
    (row,) = org.records(
        f"SELECT Credit_Hold__c, Credit_Limit__c FROM Account WHERE Id = '{account}'"
    )
    assert row["Credit_Hold__c"] is True
    assert float(row["Credit_Limit__c"]) == 2500.0

    echoed = asyncio.run(poll())
    assert echoed.echoes == 1
    assert _customer_events(sf_ledger) == 1

    org.update("Account", account, {"Name": "Echo Master Holdings"})
    renamed = asyncio.run(poll())
    assert renamed.accepted == 1
    assert _customer_events(sf_ledger) == 2


def test_a_rename_in_salesforce_is_reverted_when_the_erp_owns_the_name(org: Org) -> None:
    """With ``[mdm.owners] name = "erp"``, the Account's new name is written back over."""
    from revbridge.core.events import CustomerUpserted
    from revbridge.core.sfid import to_18
    from revbridge.store.db import create_store_engine, upgrade

    account = to_18(org.create("Account", {"Name": "Owned By ERP Ltd"}))
    engine = create_store_engine("sqlite://")
    upgrade(engine)
    own = Ownership.from_config({"name": "erp"})

    async def go() -> None:
        client = org.client()
        erp = FakeErp()
        port = MdmErp(erp, engine, own, salesforce=SalesforceWriteBack(client))
        try:
            first = CustomerUpserted(customer_id=account, name="Owned By ERP Ltd", currency="USD")
            await port.upsert_customer(account, first, None)
            renamed = CustomerUpserted(customer_id=account, name="Renamed In SF", currency="USD")
            await port.upsert_customer(account, renamed, None)
            assert erp.customers()[0]["name"] == "Owned By ERP Ltd"  # not propagated
        finally:
            await client.aclose()

    asyncio.run(go())
    (row,) = org.records(f"SELECT Name FROM Account WHERE Id = '{account}'")
    assert row["Name"] == "Owned By ERP Ltd"
    [item] = mdm.list_reviews(engine, kind="conflict")
    assert (item["sf_value"], item["erp_value"], item["winner"]) == (
        "Renamed In SF",
        "Owned By ERP Ltd",
        "erp",
    )


def test_match_reads_the_orgs_accounts(org: Org) -> None:
    """`mdm match` without a CSV reads the Accounts over the API, address included."""
    from revbridge.services.mdm_sync import salesforce_candidates

    org.create(
        "Account", {"Name": "Read Me GmbH", "BillingCity": "Berlin", "BillingPostalCode": "10115"}
    )

    async def go() -> list:
        client = org.client()
        try:
            return await salesforce_candidates(client)
        finally:
            await client.aclose()

    [candidate] = asyncio.run(go())
    assert (candidate.norm_name, candidate.postal_code) == ("read me", "10115")
