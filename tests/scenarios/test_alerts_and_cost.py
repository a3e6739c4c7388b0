"""Alerts reach people once per incident and clear; API cost is counted and warned about."""

import asyncio
import json
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

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


def _ingest(ledger: Ledger, envs: list[dict], clock: ManualClock) -> None:  # type: ignore[type-arg]
    lines = [json.dumps(e).encode() for e in envs]
    ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock)


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
    _ingest(ledger, envs, clock)
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
    (backlog,) = [r["title"] for r in received if "backlog to erp" in r["title"]]
    # Said as people say it ("3 h", "3 h 1 min"), never "3:00:30.283892".
    assert re.fullmatch(r"revbridge: real-time backlog to erp is \d+ h( \d+ min)? old", backlog)
    erp.faults.down = False
    for _ in range(20):
        clock.advance(timedelta(minutes=31))
        asyncio.run(worker.run_until_idle())
    resolved = [r["title"] for r in received if r["title"].startswith("RESOLVED")]
    assert "RESOLVED: revbridge: circuit open to erp" in resolved
    # A resolve message says what cleared and when, not the failing-now body again.
    (cleared,) = [
        r["message"] for r in received if r["title"] == "RESOLVED: revbridge: circuit open to erp"
    ]
    assert cleared.startswith("Cleared at ")
    assert ": revbridge: circuit open to erp (open " in cleared
    assert "keep failing" not in cleared
    assert any("backlog to erp" in t for t in resolved)
    assert all(r["type"] in ("failure", "warning", "success", "info") for r in received)


def test_calls_are_counted_and_real_time_everywhere_is_warned_about(ledger: Ledger) -> None:
    clock = ManualClock(START)
    envs = list(generate_events(400, seed=6, days=1))
    _ingest(ledger, envs, clock)
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


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def notify(self, title: str, body: str, severity: str) -> bool:
        with self._lock:
            self.sent.append(title)
        return True


def test_a_circuit_probing_stays_one_incident_and_two_checkers_page_once(ledger: Ledger) -> None:
    """Half-open is still open (a probe is running): the incident does not resolve and reopen
    each cooldown. Two processes that find the same condition at the same moment open it once
    and resolve it once."""
    from revbridge.engine.targets_state import record_circuit

    rec = _Recorder()
    checkers = [Alerter(ledger.engine, AlertRules(), [rec]) for _ in range(2)]
    now = START
    for episode in range(8):
        for state in ("open", "half_open", "open", "closed"):
            now += timedelta(minutes=1)
            record_circuit(ledger.engine, "erp", state=state, failures=5, now=now)
            barrier = threading.Barrier(2)

            def check(
                alerter: Alerter, at: datetime = now, barrier: threading.Barrier = barrier
            ) -> None:
                barrier.wait()
                alerter.check(at)

            threads = [threading.Thread(target=check, args=(a,)) for a in checkers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        opened = rec.sent.count("revbridge: circuit open to erp")
        assert opened == episode + 1, rec.sent
        assert rec.sent.count("RESOLVED: revbridge: circuit open to erp") == episode + 1


def test_the_rate_limit_is_checked_for_the_types_together_and_by_status(
    ledger: Ledger, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Each real-time type alone fits the ERP's rate limit, all of them together do not; the
    configured limit reaches `revbridge status`."""
    clock = ManualClock(START)
    envs = list(generate_events(400, seed=6, days=1))
    _ingest(ledger, envs, clock)
    base = cost_report(
        ledger.engine,
        build_policy(),
        clock.now(),
        budgets={"erp": None, "salesforce": None},
        rate_limits={"erp": None, "salesforce": None},
    )
    realtime_to_erp = ("invoice.posted", "payment.received", "credit_memo.issued")
    peaks = [base["peak_per_hour"][t] for t in realtime_to_erp]
    between = (max(peaks) + sum(peaks)) / 2 / 3600  # over each alone, under all together
    report = cost_report(
        ledger.engine,
        build_policy(),
        clock.now(),
        budgets={"erp": None, "salesforce": None},
        rate_limits={"erp": between, "salesforce": None},
    )
    assert [w for w in report["warnings"] if w.startswith("erp: ")] != []
    assert not any(w.endswith("consider batch for this type") for w in report["warnings"])

    config = tmp_path / "revbridge.toml"
    config.write_text(
        f'[store]\nurl = "{ledger.engine.url.render_as_string(hide_password=False)}"\n'
        f'[erp]\nkind = "fake"\nrate_limit_per_s = {between}\n'
    )
    # In its own process, as an operator runs it (and its connections end with it).
    out = subprocess.run(
        [sys.executable, "-m", "revbridge.cli", "status", "--json", "--config", str(config)],
        capture_output=True,
        check=True,
    )
    assert any("rate limit" in w for w in json.loads(out.stdout)["api"]["warnings"])


def test_a_failed_batch_alert_points_to_a_retry_and_a_partial_one_to_its_dead_letters(
    ledger: Ledger,
) -> None:
    """A failed submission leaves its items pending (they retry): its alert carries the error
    and the command that retries now, not the (empty) dead-letter list; a partial run's
    failed items are dead letters, and its alert says how many and where to look."""
    from revbridge.engine.alerts import evaluate
    from revbridge.store.schema import batches

    common = {"target": "erp", "created_at": START, "record_count": 3, "control_totals": "{}"}
    with ledger.engine.begin() as conn:
        conn.execute(
            batches.insert(),
            [
                {
                    **common,
                    "event_type": "revenue.recognized",
                    "state": "failed",
                    "summary": json.dumps({"error": "503 from /import: " + "x" * 400}),
                },
                {
                    **common,
                    "event_type": "customer.upserted",
                    "state": "partial",
                    "summary": json.dumps({"failed": 2, "retried": 1}),
                },
            ],
        )
    bodies = {c.key: c.body for c in evaluate(ledger.engine, AlertRules(), START)}
    failed = bodies["batch_failed:revenue.recognized"]
    assert "failed: 503 from /import: xxx" in failed
    assert len(failed) < 600  # a long error is cut, the advice after it is kept
    assert "they stay pending and retry" in failed
    assert "`revbridge batch run --class revenue.recognized`" in failed
    assert "dlq list" not in failed
    partial = bodies["batch_failed:customer.upserted"]
    assert "2 items failed and were dead-lettered" in partial
    assert "`revbridge dlq list --type customer.upserted`" in partial
    assert "1 will retry" in partial


def _failed_attempt(event_id: int) -> dict[str, object]:
    return {
        "event_id": event_id,
        "attempt_no": 1,
        "worker_id": "w",
        "started_at": START,
        "finished_at": START,
        "outcome": "failed",
    }


def test_alert_counts_read_in_the_singular_and_the_plural(ledger: Ledger) -> None:
    """One dead letter is "1 new dead letter" and "1 delivery gave up"; one attempt of one is
    "1 of 1 delivery attempt"; one failed batch item "was" dead-lettered. Several: plurals."""
    from revbridge.engine.alerts import evaluate
    from revbridge.store.schema import attempts, batches, deliveries

    _ingest(ledger, list(generate_events(3, seed=1)), ManualClock(START))
    with ledger.engine.begin() as conn:
        first, *others = conn.execute(select(deliveries.c.event_id, deliveries.c.target)).all()
        conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id == first.event_id)
            .values(state="dead_letter", updated_at=START)
        )
        conn.execute(attempts.insert(), [_failed_attempt(first.event_id)])
        conn.execute(
            batches.insert().values(
                target="erp",
                created_at=START,
                record_count=2,
                control_totals="{}",
                event_type="customer.upserted",
                state="partial",
                summary=json.dumps({"failed": 1, "retried": 1}),
            )
        )
    rules = AlertRules(min_attempts=1)
    found = {c.key: c for c in evaluate(ledger.engine, rules, START)}
    dead = found["dead_letters"]
    assert dead.title == "revbridge: 1 new dead letter"
    assert dead.body == "1 delivery gave up in the last 15 min. See `revbridge dlq list`."
    rate = found[f"failure_rate:{first.target}"]
    assert rate.body == (
        f"1 of 1 delivery attempt to {first.target} failed in the last 15 min (threshold 50%)."
    )
    partial = found["batch_failed:customer.upserted"].body
    assert "ended partial: 1 item failed and was dead-lettered" in partial
    assert "1 will retry on its own (`revbridge batch run --class customer.upserted` " in partial
    assert "retries it now)" in partial

    with ledger.engine.begin() as conn:
        conn.execute(update(deliveries).values(state="dead_letter", updated_at=START))
        conn.execute(attempts.insert(), [_failed_attempt(o.event_id) for o in others])
    found = {c.key: c for c in evaluate(ledger.engine, rules, START)}
    assert found["dead_letters"].title == "revbridge: 3 new dead letters"
    assert found["dead_letters"].body.startswith("3 deliveries gave up in the last 15 min.")
    for target, n in Counter(d.target for d in (first, *others)).items():
        attempts_to = "1 of 1 delivery attempt" if n == 1 else f"{n} of {n} delivery attempts"
        assert found[f"failure_rate:{target}"].body.startswith(f"{attempts_to} to {target} ")
