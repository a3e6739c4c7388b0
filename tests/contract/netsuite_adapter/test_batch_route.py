"""The engine's batch classes delivered to the NetSuite sandbox as CSV import files: one
import job per file instead of one call per record, a renamed customer updated, a record
with a missing mapping refused alone, nothing posted twice when the job's answer is lost."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from revbridge.clock import ManualClock
from revbridge.core.events import Contact
from revbridge.core.policy import build_policy
from revbridge.engine.ports import BatchItem, BatchOutcome, RecordKind
from revbridge.engine.worker import Target, Worker
from revbridge.generate import generate_events
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.sandbox import RunningSandbox
from revbridge.services.ingest import ingest_lines
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.store.schema import batches, deliveries, events
from revbridge.testing import FakeSalesforce
from tests.contract.netsuite_adapter.conftest import Admin, connector_config, run, suiteql
from tests.contract.netsuite_adapter.test_port import customer

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _ingest(ledger: Ledger, envs: list[dict], clock: ManualClock) -> None:
    lines = [json.dumps(e).encode() for e in envs]
    assert ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock).rejected == 0


def _worker(engine: Engine, erp: NetSuiteErp, clock: ManualClock, tmp_path: Path) -> Worker:
    targets = {"erp": Target("erp", erp), "salesforce": Target("salesforce", FakeSalesforce())}
    return Worker(engine, targets, clock=clock, seed=1, batch_dir=tmp_path / "batches")


def test_the_nightly_and_month_end_classes_go_as_csv_import_files(
    sandbox: RunningSandbox, admin: Admin, sqlite_url: str, tmp_path: Path
) -> None:
    envs = list(generate_events(150, seed=12))
    engine = create_store_engine(sqlite_url)
    ledger, clock = Ledger(engine), ManualClock(START)
    _ingest(ledger, envs, clock)
    erp = NetSuiteErp(connector_config(sandbox))
    worker = _worker(engine, erp, clock, tmp_path)

    async def days(n: int, step: timedelta = timedelta(hours=6)) -> None:
        for _ in range(int(n * timedelta(days=1) / step)):
            await worker.run_until_idle()
            clock.advance(step)

    asyncio.run(days(1))  # the real-time classes, with their customers just in time
    admin.faults("lost_response_rate=1,seed=3")  # every answer of the first files is lost
    clock.advance(timedelta(days=29))  # the nightly class and the October close are due
    asyncio.run(worker.run_until_idle())
    admin.faults(None)
    asyncio.run(days(2))

    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    customers = {e["source_id"] for e in envs if e["type"] == "customer.upserted"}
    assert revenue
    assert customers
    with engine.connect() as conn:
        states = Counter(s for (s,) in conn.execute(select(deliveries.c.state)))
        files = conn.execute(
            select(batches.c.event_type, batches.c.file_format, batches.c.state).where(
                batches.c.target == "erp"
            )
        ).all()
    assert set(states) == {"delivered"}, states
    assert {(t, f) for t, f, _ in files} == {
        ("customer.upserted", "netsuite-csv"),
        ("revenue.recognized", "netsuite-csv"),
    }
    assert len(files) < 10  # files, not one call per record
    journals = Counter(
        r["externalid"]
        for r in suiteql(sandbox, "SELECT externalid FROM transaction WHERE type = 'Journal'")
    )
    assert journals == Counter({f"SF-{e['source_id']}": 1 for e in revenue})
    held = Counter(r["externalid"] for r in suiteql(sandbox, "SELECT externalid FROM customer"))
    assert {f"SF-{c}" for c in customers} <= set(held)
    assert all(n == 1 for n in held.values())

    # A customer renamed in Salesforce: the next nightly file updates it in NetSuite.
    renamed = next(e for e in envs if e["type"] == "customer.upserted")
    later = {
        **renamed,
        "source_version": "v-renamed",
        "occurred_at": clock.now().isoformat(),
        "data": {**renamed["data"], "name": "Renamed Holdings"},
    }
    _ingest(ledger, [later], clock)
    asyncio.run(days(1))
    names = suiteql(
        sandbox,
        f"SELECT companyname FROM customer WHERE externalid = 'SF-{renamed['source_id']}'",
    )
    assert [r["companyname"] for r in names] == ["Renamed Holdings"]
    asyncio.run(erp.close())
    engine.dispose()


def test_a_journal_whose_account_is_not_mapped_is_refused_alone(
    sandbox: RunningSandbox, sqlite_url: str, tmp_path: Path
) -> None:
    everything = list(generate_events(150, seed=12))
    envs = [e for e in everything if e["type"] == "revenue.recognized"]
    broken = {
        **envs[0],
        "data": {
            **envs[0]["data"],
            "lines": [
                {**line, "account": "9999 Suspense" if line["credit"] != "0" else line["account"]}
                for line in envs[0]["data"]["lines"]
            ],
        },
    }
    engine = create_store_engine(sqlite_url)
    ledger, clock = Ledger(engine), ManualClock(START)
    _ingest(ledger, [broken if e is envs[0] else e for e in everything], clock)
    erp = NetSuiteErp(connector_config(sandbox))
    worker = _worker(engine, erp, clock, tmp_path)
    clock.advance(timedelta(days=30))
    asyncio.run(worker.run_until_idle())
    asyncio.run(erp.close())
    with engine.connect() as conn:
        rows = conn.execute(
            select(events.c.source_id, deliveries.c.state, deliveries.c.last_error).join(
                events, events.c.id == deliveries.c.event_id
            )
        ).all()
    engine.dispose()
    dead = [(s, err) for s, state, err in rows if state == "dead_letter"]
    assert [s for s, _ in dead] == [broken["source_id"]]
    assert "9999" in dead[0][1]
    assert {state for s, state, _ in rows if s != broken["source_id"]} == {"delivered"}
    journals = suiteql(sandbox, "SELECT externalid FROM transaction WHERE type = 'Journal'")
    assert len(journals) == len(envs) - 1


def _customer_fields(sandbox: RunningSandbox, eid: str) -> dict[str, object]:
    [row] = suiteql(
        sandbox,
        f"SELECT companyname, parent, email, phone FROM customer WHERE externalid = '{eid}'",
    )
    return {k: row.get(k) for k in ("companyname", "parent", "email", "phone")}


def test_a_customer_change_has_the_same_result_in_the_nightly_file_as_in_real_time(
    sandbox: RunningSandbox,
) -> None:
    """A customer moved to the top of its hierarchy loses its parent whichever route the
    change takes; a contact's email or phone absent from the change is left alone by both
    (the real-time upsert omits it, the file leaves its cell blank)."""
    parent = customer("001TOP", "Top Holdings")
    erp = NetSuiteErp(connector_config(sandbox))
    child = customer(
        "001KID",
        "Kid Ltd",
        parent_customer_id="001TOP",
        contacts=(Contact(name="AP", email="ap@kid.example", phone="+1 555 0100"),),
    )
    twin = customer(
        "001TWIN",
        "Twin Ltd",
        parent_customer_id="001TOP",
        contacts=(Contact(name="AP", email="ap@kid.example", phone="+1 555 0100"),),
    )
    moved = {
        "001KID": replace(child, parent_customer_id=None, contacts=()),
        "001TWIN": replace(twin, parent_customer_id=None, contacts=()),
    }

    async def go() -> list[BatchOutcome]:
        try:
            top = await erp.upsert_customer("001TOP", parent, None)
            for ref, data in (("001KID", child), ("001TWIN", twin)):
                await erp.upsert_customer(ref, data, top.erp_id)
            await erp.upsert_customer("001KID", moved["001KID"], None)  # real time
            items = [BatchItem(external_ref="001TWIN", data=moved["001TWIN"], refs={})]
            content = erp.render_batch(RecordKind.CUSTOMER, items)  # the nightly file
            return await erp.submit_batch(RecordKind.CUSTOMER, content, {})
        finally:
            await erp.close()

    outcomes = run(go())
    assert [(o.external_ref, o.error) for o in outcomes] == [("001TWIN", None)]
    real_time, nightly = (
        _customer_fields(sandbox, "SF-001KID"),
        _customer_fields(sandbox, "SF-001TWIN"),
    )
    assert real_time["parent"] is None
    assert {**nightly, "companyname": None} == {**real_time, "companyname": None}
