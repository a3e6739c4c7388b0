"""NetSuite's summarized revenue through the engine's batch route: one journal per period and
currency, one line per GL account, every schedule entry traceable to its line."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.retry import RetryPolicy
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.generate import generate_events
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.sandbox import RunningSandbox
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries, events
from revbridge.store.tables_engine import summary_lines
from revbridge.testing import FakeSalesforce
from tests.contract.netsuite_adapter.conftest import Admin, connector_config, suiteql

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _ingest(ledger: Ledger, envs: list[dict], clock: ManualClock) -> None:
    lines = [json.dumps(e).encode() for e in envs]
    assert ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock).rejected == 0


def _expected(revenue: list[dict]) -> dict[tuple[str, str], Decimal]:
    """Net per (journal external id, account number), debit positive, in its currency."""
    net: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in revenue:
        for line in e["data"]["lines"]:
            eid = f"SF-REV-{e['data']['period']}-{line['currency']}"
            net[(eid, line["account"].split()[0])] += Decimal(line["debit"]) - Decimal(
                line["credit"]
            )
    return {k: v for k, v in net.items() if v}


def _in_netsuite(sandbox: RunningSandbox) -> dict[tuple[str, str], Decimal]:
    rows = suiteql(
        sandbox,
        "SELECT t.externalid, a.acctnumber, tl.debitforeignamount, tl.creditforeignamount"
        " FROM transactionline tl JOIN account a ON a.id = tl.account"
        " JOIN transaction t ON t.id = tl.transaction WHERE t.externalid LIKE 'SF-REV-%'",
    )
    held: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in rows:  # in the journal's own currency
        held[(r["externalid"], r["acctnumber"])] += Decimal(
            r.get("debitforeignamount") or 0
        ) - Decimal(r.get("creditforeignamount") or 0)
    return dict(held)


def test_revenue_is_summarized_per_period_and_account_traceable_and_never_doubled(
    sandbox: RunningSandbox, admin: Admin, ledger: Ledger, tmp_path: Path
) -> None:
    """Month-end revenue becomes one NetSuite journal per currency, lost answers and a late
    entry included, and each schedule entry points at the journal line that carries it."""
    clock = ManualClock(START)
    envs = list(generate_events(200, seed=5))
    _ingest(ledger, envs, clock)
    erp = NetSuiteErp(connector_config(sandbox, revenue_posting="summarized"))
    worker = Worker(
        ledger.engine,
        {"erp": Target("erp", erp), "salesforce": Target("salesforce", FakeSalesforce())},
        clock=clock,
        seed=1,
        batch_dir=tmp_path / "batches",
        settings=WorkerSettings(retry=RetryPolicy(max_attempts=50)),  # default max_age
    )
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    late = json.loads(json.dumps(revenue[0]))
    late["source_id"] = late["data"]["schedule_entry_id"] = "a0R0000000LATEAAA"
    late["data"]["lines"][0]["debit"] = late["data"]["lines"][1]["credit"] = "7.25"

    async def drive() -> None:
        await worker.run_until_idle()  # real time: customers, invoices, payments
        clock.advance(timedelta(days=30))  # month end: the revenue batch is due
        admin.faults("lost_response_rate=0.4,seed=7")  # NetSuite posts, the answer is lost
        for _ in range(12):
            await worker.run_until_idle()
            clock.advance(timedelta(minutes=31))
        admin.faults(None)
        _ingest(ledger, [late], clock)  # a late entry for the same period
        await worker.batch.run("revenue.recognized", now=clock.now(), force=True)  # type: ignore[union-attr]
        await erp.close()

    asyncio.run(drive())
    revenue.append(late)
    journals = suiteql(
        sandbox, "SELECT externalid FROM transaction WHERE externalid LIKE 'SF-REV-%'"
    )
    currencies = {line["currency"] for e in revenue for line in e["data"]["lines"]}
    assert sorted(j["externalid"] for j in journals) == sorted(
        f"SF-REV-2026-10-{c}" for c in currencies
    )  # one journal per period and currency, whatever was lost and rerun
    assert _in_netsuite(sandbox) == _expected(revenue)  # per account, late entry included

    with ledger.engine.connect() as conn:
        state = dict(
            conn.execute(
                select(events.c.idempotency_key, deliveries.c.state)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(events.c.type == "revenue.recognized")
            ).all()
        )
        trace = conn.execute(
            select(
                events.c.subject_ref,
                summary_lines.c.summary_ref,
                summary_lines.c.erp_id,
                summary_lines.c.account,
                summary_lines.c.debit,
                summary_lines.c.credit,
            ).join(events, events.c.id == summary_lines.c.event_id)
        ).all()
        delivered_as = dict(
            conn.execute(
                select(events.c.subject_ref, deliveries.c.external_ref)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(events.c.type == "revenue.recognized")
            ).all()
        )
    assert set(state.values()) == {"delivered"}
    journal_id = {
        r["externalid"]: str(r["id"])
        for r in suiteql(
            sandbox, "SELECT id, externalid FROM transaction WHERE externalid LIKE 'SF-REV-%'"
        )
    }
    per_entry: dict[str, list[tuple[str, Decimal, Decimal, str]]] = defaultdict(list)
    for subject, ref, erp_id, account, debit, credit in trace:
        assert journal_id[f"SF-{ref}"] == erp_id  # the line's journal, by its NetSuite id
        assert delivered_as[subject] == erp_id
        per_entry[subject].append((account, Decimal(debit), Decimal(credit), ref))
    for e in revenue:  # every entry, each of its lines, in its period's journal
        subject = next(s for s in delivered_as if s.endswith(e["data"]["schedule_entry_id"]))
        currency = e["data"]["lines"][0]["currency"]
        assert sorted(per_entry[subject]) == sorted(
            (
                line["account"],
                Decimal(line["debit"]),
                Decimal(line["credit"]),
                f"REV-2026-10-{currency}",
            )
            for line in e["data"]["lines"]
        )
