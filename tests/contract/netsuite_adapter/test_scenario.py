"""A month of Salesforce activity delivered to the NetSuite sandbox through the real worker,
with responses lost after NetSuite committed: every document lands exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.retry import RetryPolicy
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.generate import generate_events
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.sandbox import RunningSandbox
from revbridge.services.ingest import ingest_lines
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeSalesforce
from tests.contract.netsuite_adapter.conftest import Admin, connector_config, suiteql

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NETSUITE_TYPE = {
    "invoice.posted": "CustInvc",
    "payment.received": "CustPymt",
    "credit_memo.issued": "CustCred",
}


def test_every_real_time_event_is_in_netsuite_exactly_once(
    sandbox: RunningSandbox, admin: Admin, sqlite_url: str
) -> None:
    envs = list(generate_events(150, seed=12))
    engine = create_store_engine(sqlite_url)
    ledger = Ledger(engine)
    clock = ManualClock(START)
    lines = [json.dumps(e).encode() for e in envs]
    assert ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock).rejected == 0

    admin.faults("lost_response_rate=0.2,seed=4")
    erp = NetSuiteErp(connector_config(sandbox))
    sf = FakeSalesforce()
    worker = Worker(
        engine,
        {"erp": Target("erp", erp), "salesforce": Target("salesforce", sf)},
        clock=clock,
        seed=1,
        settings=WorkerSettings(retry=RetryPolicy(max_attempts=50)),
    )

    async def drive() -> None:
        # One event loop for the whole run: the worker's semaphores live across rounds.
        for _ in range(60):
            await worker.run_until_idle()
            clock.advance(timedelta(minutes=31))
        await erp.close()

    asyncio.run(drive())
    engine.dispose()
    admin.faults(None)

    assert admin("GET", "/status")["lostResponses"] > 0
    assert worker.stats.found_existing > 0  # lost answers were resolved by lookup
    held = Counter(
        (r["type"], r["externalid"])
        for r in suiteql(
            sandbox, "SELECT type, externalid FROM transaction WHERE externalid IS NOT NULL"
        )
    )
    expected = [
        (NETSUITE_TYPE[e["type"]], f"SF-{e['source_id']}")
        for e in envs
        if e["type"] in NETSUITE_TYPE
    ]
    assert expected
    assert {key: held[key] for key in expected} == dict.fromkeys(expected, 1)
    assert all(n == 1 for n in held.values())
    totals = {
        r["externalid"]: Decimal(r["foreigntotal"])
        for r in suiteql(
            sandbox, "SELECT externalid, foreigntotal FROM transaction WHERE type = 'CustInvc'"
        )
    }
    for e in envs:
        if e["type"] == "invoice.posted":
            assert totals[f"SF-{e['source_id']}"] == Decimal(e["data"]["total"])
    customers = Counter(
        r["externalid"] for r in suiteql(sandbox, "SELECT externalid FROM customer")
    )
    assert all(n == 1 for n in customers.values())
    assert sf.calls["apply_erp_payment"] > 0
