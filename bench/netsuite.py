"""Deliveries/s into the NetSuite sandbox under its account concurrency limit, beside the
limit's theoretical maximum for the sandbox's configured latency (limit / latency)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from tests.contract.netsuite_adapter.conftest import connector_config

from bench.common import emit, progress
from revbridge.clock import SystemClock
from revbridge.core.events import EventType
from revbridge.core.policy import EventPolicy, Pattern, build_policy
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.generate import generate_events
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.sandbox import FaultSpec, SandboxConfig, running_sandbox
from revbridge.services.ingest import ingest_lines
from revbridge.store.db import create_store_engine, upgrade
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeSalesforce

LATENCY = timedelta(milliseconds=int(os.environ.get("BENCH_NETSUITE_LATENCY_MS", "100")))
CUSTOMERS = int(os.environ.get("BENCH_NETSUITE_CUSTOMERS", "300"))


def _customers() -> list[bytes]:
    seen: dict[str, dict] = {}
    seed = 0
    while len(seen) < CUSTOMERS:
        for e in generate_events(4000, seed=seed):
            if e["type"] == "customer.upserted":
                e["data"]["parent_customer_id"] = None
                e["source_id"] = e["data"]["customer_id"] = (
                    f"{e['data']['customer_id'][:12]}{seed:03d}"
                )
                seen.setdefault(e["data"]["customer_id"], e)
        seed += 1
    return [json.dumps(e).encode() for e in list(seen.values())[:CUSTOMERS]]


def _rate(limit: int) -> float:
    policy = build_policy(
        {
            EventType.CUSTOMER_UPSERTED: EventPolicy(
                type=EventType.CUSTOMER_UPSERTED,
                pattern=Pattern.REALTIME,
                schedule=None,
                rationale="benchmark",
            )
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_store_engine(f"sqlite:///{Path(tmp) / 'ns.db'}")
        upgrade(engine)
        ingest_lines(Ledger(engine), _customers(), policy=policy, origin="bench")
        config = SandboxConfig(concurrency_limit=limit, faults=FaultSpec(latency=LATENCY))
        with running_sandbox(config) as sandbox:
            erp = NetSuiteErp(connector_config(sandbox, concurrency_limit=limit))
            targets = {
                "erp": Target("erp", erp),
                "salesforce": Target("salesforce", FakeSalesforce()),
            }
            worker = Worker(
                engine,
                targets,
                clock=SystemClock(),
                settings=WorkerSettings(claim_batch=limit * 20),
            )

            async def run() -> float:
                start = time.perf_counter()
                stats = await worker.run_until_idle()
                seconds = time.perf_counter() - start
                await erp.close()
                assert stats.delivered == CUSTOMERS, stats
                return stats.delivered / seconds

            rate = asyncio.run(run())
        engine.dispose()
        return rate


def bench_netsuite() -> None:
    for limit in (5, 15):
        progress(f"NetSuite sandbox: {CUSTOMERS} deliveries at concurrency limit {limit}")
        rate = statistics.median(_rate(limit) for _ in range(3))
        ceiling = limit / LATENCY.total_seconds()
        emit(
            f"netsuite_deliveries_per_s_limit_{limit}",
            rate,
            "deliveries/s",
            f"theoretical max (limit / {LATENCY.total_seconds() * 1000:.0f} ms latency)",
            ceiling,
            ">= 80% of the theoretical max",
            rate >= 0.8 * ceiling,
        )
