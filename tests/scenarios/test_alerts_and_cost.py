"""Alerts reach people once per incident and clear; API cost is counted and warned about."""

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from revbridge.clock import ManualClock
from revbridge.core.events import EventType
from revbridge.core.policy import EventPolicy, Pattern, build_policy
from revbridge.engine.alerts import Alerter, AlertRules, AppriseNotifier, LogNotifier
from revbridge.engine.circuit import CircuitBreaker
from revbridge.engine.worker import Target, Worker
from revbridge.generate import generate_events
from revbridge.services.cost import cost_report
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeErp, FakeSalesforce, Faults

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP endpoint on loopback that records what apprise posts to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_an_outage_alerts_once_and_sends_a_resolve_when_it_clears(ledger: Ledger, webhook) -> None:  # type: ignore[no-untyped-def]
    url, received = webhook
    clock = ManualClock(START)
    envs = list(generate_events(120, seed=3))
    ingest_lines(
        ledger,
        [json.dumps(e).encode() for e in envs],
        policy=build_policy(),
        origin="t",
        clock=clock,
    )
    erp = FakeErp(faults=Faults(down=True))
    alerter = Alerter(
        ledger.engine,
        AlertRules(backlog_age=timedelta(hours=2)),
        [LogNotifier(), AppriseNotifier([url])],
    )
    targets = {
        "erp": Target("erp", erp, breaker=CircuitBreaker(cooldown=timedelta(minutes=5))),
        "salesforce": Target("salesforce", FakeSalesforce()),
    }
    worker = Worker(ledger.engine, targets, clock=clock, seed=1, alerter=alerter)
    asyncio.run(worker.run_until_idle())
    asyncio.run(worker.run_until_idle())  # still down: no second alert for the same incident
    titles = [r["title"] for r in received]
    assert titles.count("revbridge: circuit open to erp") == 1
    clock.advance(timedelta(hours=3))
    asyncio.run(worker.run_until_idle())
    assert any("backlog to erp" in r["title"] for r in received)
    erp.faults.down = False
    for _ in range(20):
        clock.advance(timedelta(minutes=31))
        asyncio.run(worker.run_until_idle())
    resolved = [r["title"] for r in received if r["title"].startswith("RESOLVED")]
    assert "RESOLVED: revbridge: circuit open to erp" in resolved
    assert any("backlog to erp" in t for t in resolved)
    assert all(r["type"] in ("failure", "warning", "success", "info") for r in received)


def test_calls_are_counted_and_real_time_everywhere_is_warned_about(ledger: Ledger) -> None:
    clock = ManualClock(START)
    envs = list(generate_events(400, seed=6, days=1))
    ingest_lines(
        ledger,
        [json.dumps(e).encode() for e in envs],
        policy=build_policy(),
        origin="t",
        clock=clock,
    )
    worker = Worker(
        ledger.engine,
        {"erp": Target("erp", FakeErp()), "salesforce": Target("salesforce", FakeSalesforce())},
        clock=clock,
        seed=1,
    )
    stats = asyncio.run(worker.run_until_idle())
    report = cost_report(
        ledger.engine,
        build_policy(),
        clock.now(),
        budgets={"erp": 100_000, "salesforce": None},
        rate_limits={"erp": None, "salesforce": None},
    )
    assert sum(report["calls_today"].values()) == stats.calls
    assert report["warnings"] == []
    # Everything real-time with a tight budget: the report says so before the ERP does.
    everywhere = build_policy(
        {
            EventType.REVENUE_RECOGNIZED: EventPolicy(
                type=EventType.REVENUE_RECOGNIZED,
                pattern=Pattern.REALTIME,
                schedule=None,
                rationale="x",
            ),
            EventType.CUSTOMER_UPSERTED: EventPolicy(
                type=EventType.CUSTOMER_UPSERTED,
                pattern=Pattern.REALTIME,
                schedule=None,
                rationale="x",
            ),
        }
    )
    tight = cost_report(
        ledger.engine,
        everywhere,
        clock.now(),
        budgets={"erp": 500, "salesforce": None},
        rate_limits={"erp": 0.001, "salesforce": None},
    )
    assert any("real-time everywhere" in w for w in tight["warnings"])
    assert any("rate limit" in w for w in tight["warnings"])
