"""The hub at work, for the reconciliation stories: ingest, record in the org, deliver."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from revbridge.clock import ManualClock
from revbridge.codec import decode_payload
from revbridge.core.events import EventType
from revbridge.core.policy import EventPolicy, Pattern, build_policy
from revbridge.engine.ports import ErpPort
from revbridge.engine.worker import Target, Worker
from revbridge.recon.match import FindingKind
from revbridge.recon.period import PeriodRecon
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeSalesforce

NOW = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
SF_TYPES = {"invoice.posted", "credit_memo.issued", "payment.received", "revenue.recognized"}


def deliver(
    ledger: Ledger,
    erp: ErpPort,
    sf: FakeSalesforce,
    envs: list[dict[str, Any]],
    *,
    record_in_salesforce: bool = True,
    run_worker: bool = True,
) -> None:
    """Ingest ``envs`` (every type real-time), put the Salesforce ones in the org as its own
    records, and let the worker deliver everything due; both sides are closed after."""
    overrides = {
        t: EventPolicy(type=t, pattern=Pattern.REALTIME, schedule=None, rationale="test")
        for t in (EventType.REVENUE_RECOGNIZED, EventType.CUSTOMER_UPSERTED)
    }
    clock = ManualClock(NOW)
    lines = [json.dumps(e).encode() for e in envs]
    ingest_lines(ledger, lines, policy=build_policy(overrides), origin="test", clock=clock)
    if record_in_salesforce:
        for e in envs:
            if e["type"] in SF_TYPES:
                sf.record(decode_payload(EventType(e["type"]), json.dumps(e["data"])))  # type: ignore[arg-type]

    async def run() -> None:
        if run_worker:
            worker = Worker(
                ledger.engine,
                {"erp": Target("erp", erp), "salesforce": Target("salesforce", sf)},
                clock=clock,
                seed=1,
            )
            stats = await worker.run_until_idle()
            assert stats.dead_lettered == 0
        await erp.close()
        await sf.close()

    asyncio.run(run())


def findings(run: PeriodRecon) -> set[tuple[str, FindingKind, str]]:
    """Each case-level finding of the run as (reconciliation, kind, ref)."""
    return {
        (r.name, f.finding.kind, f.finding.ref)
        for r in run.reconciliations
        for f in r.findings
        if not f.finding.within_tolerance
    }
