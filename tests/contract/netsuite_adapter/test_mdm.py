"""The customer master against the NetSuite sandbox over real HTTP: a three-level hierarchy,
re-parenting, a refused cycle, and a credit hold captured, written to the Account through the
crosswalk, then not echoed when the hub touches the customer again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from revbridge.clock import ManualClock
from revbridge.codec import decode_obj
from revbridge.core.events import CustomerCreditStatusChanged, EventType
from revbridge.core.sfid import make_id
from revbridge.engine.ports import RecordKind
from revbridge.engine.worker import Target, Worker
from revbridge.errors import DomainError
from revbridge.mdm.ownership import Ownership
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.services import mdm, operations
from revbridge.services.capture import ErpSource, capture_once
from revbridge.services.ingest import ingest_lines
from revbridge.services.mdm_sync import MdmErp, MdmSalesforce, filter_erp_capture
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeSalesforce
from revbridge.testing.policy import realtime_policy
from tests.contract.netsuite_adapter.conftest import Admin, run, suiteql
from tests.contract.netsuite_adapter.test_port import customer

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
A, B, C = make_id("001", 101), make_id("001", 102), make_id("001", 103)


def _parents(sandbox: Any) -> dict[str, str | None]:
    rows = suiteql(sandbox, "SELECT id, externalid, parent FROM customer")
    by_id = {str(r["id"]): r for r in rows}
    return {
        str(r["externalid"]): (
            str(by_id[str(r["parent"])]["externalid"]) if r.get("parent") else None
        )
        for r in rows
        if r.get("externalid")
    }


def test_hierarchy_cycle_and_credit_hold_on_netsuite(
    erp: NetSuiteErp, admin: Admin, sandbox: Any, sqlite_url: str
) -> None:
    """A > B > C lands with parents; C moves under A; A under C is refused by name; a credit
    hold reaches the Account through the crosswalk and is not captured back as a change."""
    engine = create_store_engine(sqlite_url)
    port = MdmErp(erp, engine, Ownership())
    eid = erp.external_id

    async def upsert(ref: str, parent: str | None, parent_erp: str | None, name: str) -> str:
        record = await port.upsert_customer(
            ref, customer(ref, name, parent_customer_id=parent), parent_erp
        )
        return record.erp_id

    async def story() -> None:
        ids: dict[str, str] = {}
        ids[A] = await upsert(A, None, None, "Alpha Holding")
        ids[B] = await upsert(B, A, ids[A], "Beta Region")
        ids[C] = await upsert(C, B, ids[B], "Gamma Branch")
        assert _parents(sandbox) == {eid(A): None, eid(B): eid(A), eid(C): eid(B)}
        await upsert(C, A, ids[A], "Gamma Branch")  # re-parenting
        assert _parents(sandbox)[eid(C)] == eid(A)
        await upsert(B, C, ids[C], "Beta Region")  # B under C (C under A): fine
        with pytest.raises(DomainError, match=rf"cycle rejected: {A} -> {B} -> {C} -> {A}"):
            await upsert(A, B, ids[B], "Alpha Holding")
        assert _parents(sandbox)[eid(A)] is None

        admin("PUT", f"/customer/{ids[C]}/credit", {"creditHoldOverride": "ON", "creditLimit": 900})
        envelopes, mark = await erp.capture_changes(None)
        kept, _ = filter_erp_capture(engine, "netsuite", envelopes, now=NOW)
        [hold] = [
            e
            for e in kept
            if e["type"] == "customer.credit_status_changed" and e["data"]["customer_id"] == C
        ]
        status = decode_obj(hold).data
        assert isinstance(status, CustomerCreditStatusChanged)
        sf = FakeSalesforce()
        writer = MdmSalesforce(sf, engine, Ownership(), erp_system="netsuite")
        await writer.update_credit_status("cs-1", status)
        assert sf.accounts[C]["credit_hold"] is True  # found through the crosswalk
        await upsert(C, A, ids[A], "Gamma Branch GmbH")  # the hub touches the customer
        again, _ = await erp.capture_changes(mark)
        kept, echoes = filter_erp_capture(engine, "netsuite", again, now=NOW)
        assert echoes == 1
        assert [e for e in kept if e["data"].get("customer_id") == C] == []
        await erp.close()

    run(story())
    assert mdm.lookup(engine, C)[0].erp_internal_id is not None
    engine.dispose()


def test_a_netsuite_customer_linked_at_go_live_is_updated_not_duplicated(
    erp: NetSuiteErp, sandbox: Any, sqlite_url: str
) -> None:
    """An Account resembling a customer keyed in NetSuite is held; once approved, its upsert
    updates that customer (it takes the hub's external id) and no second one exists."""
    engine = create_store_engine(sqlite_url)
    port = MdmErp(erp, engine, Ownership())
    acct = make_id("001", 201)

    async def story() -> None:
        native = await erp.upsert_customer(
            "seed", customer("seed", "Kramerica Industries Inc", erp_customer_number="K-1"), None
        )
        # Keyed by hand in NetSuite: no external id.
        await erp.http.request(
            "PATCH", f"/record/v1/customer/{native.erp_id}", body={"externalId": None}
        )
        with pytest.raises(DomainError, match="held for review"):
            await port.upsert_customer(
                acct, customer(acct, "Kramerica Industries", website="kramerica.com"), None
            )
        [item] = mdm.list_reviews(engine, kind="held")
        mdm.decide_review(engine, item["id"], approve=True, actor="mdo", now=NOW)
        record = await port.upsert_customer(acct, customer(acct, "Kramerica Industries"), None)
        assert record.erp_id == native.erp_id
        await erp.close()

    run(story())
    rows = suiteql(sandbox, "SELECT id, externalid, companyname FROM customer")
    assert [(r["externalid"], r["companyname"]) for r in rows] == [
        (erp.external_id(acct), "Kramerica Industries")
    ]
    engine.dispose()


def test_a_name_changed_in_netsuite_is_caught_by_the_capture(
    erp: NetSuiteErp, sandbox: Any, sqlite_url: str
) -> None:
    """The accountant renames a hub customer in NetSuite: the capture reads the new name with
    the customer, and the master opens a conflict (Salesforce owns the name) with both values;
    the name is not part of the ingested event."""
    engine = create_store_engine(sqlite_url)
    port = MdmErp(erp, engine, Ownership())
    acct = make_id("001", 301)

    async def story() -> list[dict[str, Any]]:
        record = await port.upsert_customer(acct, customer(acct, "Sabre Corporation"), None)
        _, mark = await erp.capture_changes(None)
        await erp.http.request(
            "PATCH",
            f"/record/v1/customer/{record.erp_id}",
            body={"companyName": "Sabre Corp (renamed in NetSuite)"},
        )
        plain, _ = await erp.capture_changes(mark)
        assert all("master" not in e for e in plain)  # what ingest takes, by default
        envelopes, _ = await erp.capture_changes(mark, with_master=True)
        kept, _ = filter_erp_capture(engine, "netsuite", envelopes, now=NOW)
        await erp.close()
        return kept

    kept = run(story())
    mine = [e for e in kept if e["data"].get("customer_id") == acct]
    assert [sorted(e) for e in mine] == [
        ["data", "occurred_at", "source", "source_id", "source_version", "type"]
    ]
    [item] = mdm.list_reviews(engine, kind="conflict")
    assert (item["attribute"], item["sf_value"], item["erp_value"], item["winner"]) == (
        "name",
        "Sabre Corporation",
        "Sabre Corp (renamed in NetSuite)",
        "salesforce",
    )
    engine.dispose()


def test_a_netsuite_rename_is_written_back_by_the_hub(
    erp: NetSuiteErp, sandbox: Any, sqlite_url: str
) -> None:
    """End to end on the sandbox: the Account reaches NetSuite through the worker, the
    accountant renames the customer, `capture erp` (capture_once) catches it, and the worker
    writes Salesforce's name back into NetSuite; nothing is dead-lettered."""
    engine = create_store_engine(sqlite_url)
    ledger = Ledger(engine)
    clock = ManualClock(NOW)
    port = MdmErp(erp, engine, Ownership(), clock=clock)
    sf = MdmSalesforce(FakeSalesforce(), engine, Ownership(), erp_system="netsuite", clock=clock)
    worker = Worker(
        engine,
        {"erp": Target("erp", port), "salesforce": Target("salesforce", sf)},  # type: ignore[arg-type]
        clock=clock,
        seed=3,
    )
    acct = make_id("001", 401)
    envelope = {
        "type": "customer.upserted",
        "source": "salesforce",
        "source_id": acct,
        "source_version": "v1",
        "occurred_at": NOW.isoformat(),
        "data": {"customer_id": acct, "name": "Bluth Company", "currency": "USD"},
    }
    policy = realtime_policy(EventType.CUSTOMER_UPSERTED)

    async def story() -> None:
        ingest_lines(
            ledger, [json.dumps(envelope).encode()], policy=policy, origin="t", clock=clock
        )
        await worker.run_until_idle()
        found = await erp.find(RecordKind.CUSTOMER, acct)
        assert found is not None
        source = ErpSource(port, name="netsuite")
        await capture_once(source, ledger, policy, clock=clock)  # the hub's own customer
        await erp.http.request(
            "PATCH", f"/record/v1/customer/{found.erp_id}", body={"companyName": "Bluth Co (old)"}
        )
        await capture_once(source, ledger, policy, clock=clock, ownership=Ownership())
        await worker.run_until_idle()
        await erp.close()

    run(story())
    rows = suiteql(sandbox, "SELECT externalid, companyname FROM customer")
    assert [(r["externalid"], r["companyname"]) for r in rows] == [
        (erp.external_id(acct), "Bluth Company")
    ]
    [item] = mdm.list_reviews(engine, kind="conflict")
    assert (item["sf_value"], item["erp_value"]) == ("Bluth Company", "Bluth Co (old)")
    assert operations.list_dead_letters(engine) == []
    engine.dispose()


def test_a_name_cut_to_netsuites_limit_is_not_taken_for_an_edit(
    erp: NetSuiteErp, sqlite_url: str
) -> None:
    """NetSuite keeps 83 characters of a longer Account name: the capture does not report
    that cut name as the ERP's, so no conflict is opened and nothing is written back."""
    engine = create_store_engine(sqlite_url)
    port = MdmErp(erp, engine, Ownership())
    acct = make_id("001", 501)
    long_name = (
        "The Very Long Official Registered Name Of A Holding Company With Many Words Ltd Group"
    )

    async def story() -> list[dict[str, Any]]:
        record = await port.upsert_customer(acct, customer(acct, long_name), None)
        await erp.http.request(  # touched for another reason: the record is read again
            "PATCH", f"/record/v1/customer/{record.erp_id}", body={"email": "ap@example.com"}
        )
        envelopes, _ = await erp.capture_changes(None, with_master=True)
        filter_erp_capture(engine, "netsuite", envelopes, now=NOW)
        await erp.close()
        return [e for e in envelopes if e["data"].get("customer_id") == acct]

    mine = run(story())
    assert len(long_name) > 83
    assert [("master" in e) for e in mine] == [False]
    assert mdm.list_reviews(engine) == []
    engine.dispose()
