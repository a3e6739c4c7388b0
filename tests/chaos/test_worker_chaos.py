"""Chaos on PostgreSQL with four worker processes: kills, lost responses, dropped connections,
and a database restart.

Reproducible from a seed (the fault sequence per worker, the kill schedule). After the faults
heal and the backlog drains: every accepted real-time event is in the ERP exactly once with
the right amount, or in the dead-letter queue with a reason; counts balance; nothing is in
flight; each customer's invoices reached the ERP in their order.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from revbridge.core.policy import build_policy
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries, events

SEED = int(os.environ.get("REVBRIDGE_CHAOS_SEED", "20261126"))
WORKERS = 4
EVENTS = 300
CHAOS_SECONDS = 25
KINDS = {
    "invoice.posted": "invoice",
    "payment.received": "payment",
    "credit_memo.issued": "credit_memo",
}

pytestmark = pytest.mark.slow


def _config(path: Path, url: str, erp_state: Path, faults: str, n: int) -> Path:
    cfg = path / f"worker-{n}.toml"
    cfg.write_text(
        f"""
[store]
url = "{url}"
[erp]
kind = "fake"
shared = true
state_file = "{erp_state}"
faults = "{faults}"
[salesforce]
state_file = "{path / f"sf-{n}.json"}"
[engine]
lease_s = 2
claim_batch = 10
initial_backoff_s = 0.05
max_backoff_s = 0.5
max_attempts = 60
failure_threshold = 1000
circuit_cooldown_s = 1
"""
    )
    return cfg


def _start(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "revbridge.cli", "worker", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "REVBRIDGE_LOG_LEVEL": "ERROR"},
    )


def _drop_connections(url: str) -> None:
    u = make_url(url)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, dbname="postgres", autocommit=True
    ) as c:
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (u.database,),
        )


def _restart_postgresql() -> bool:
    """Restart the local PostgreSQL cluster (CI and developer machines run one); False when
    this machine cannot (no cluster tools, not root): connection drops still cover the case."""
    tool = shutil.which("pg_ctlcluster")
    clusters = Path("/etc/postgresql")
    if tool is None or os.geteuid() != 0 or not clusters.is_dir():
        return False
    version = sorted(p.name for p in clusters.iterdir())[-1]
    subprocess.run(
        [tool, "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for _ in range(60):
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0:
            return True
        time.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back after the restart")


def test_workers_killed_and_faults_injected_lose_and_duplicate_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    envs = list(generate_events(EVENTS, seed=SEED % 1000))
    engine = create_store_engine(pg_url)
    ledger = Ledger(engine)
    # Duplicate and out-of-order source events: every event twice, in shuffled windows.
    shuffled = envs + envs[::7]
    for i in range(0, len(shuffled), 20):
        window = shuffled[i : i + 20]
        rng.shuffle(window)
        shuffled[i : i + 20] = window
    result = ingest_lines(
        ledger, [json.dumps(e).encode() for e in shuffled], policy=build_policy(), origin="chaos"
    )
    assert result.accepted == EVENTS

    erp_state = tmp_path / "erp.json"
    faults = (
        "error_rate=0.08,lost_response_rate=0.08,throttle_next=3,"
        "die_before_call_rate=0.01,die_after_commit_rate=0.01,latency_s=0.002"
    )
    configs = [
        _config(tmp_path, pg_url, erp_state, f"{faults},seed={SEED + n}", n) for n in range(WORKERS)
    ]
    procs = [_start(c) for c in configs]
    deadline = time.monotonic() + CHAOS_SECONDS
    kills = 0
    dropped = restarted = False
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.3, 1.2))
        victim = rng.randrange(WORKERS)
        if procs[victim].poll() is None:
            procs[victim].send_signal(signal.SIGKILL)  # between claim and call, or after: any time
            kills += 1
        if not dropped and time.monotonic() > deadline - CHAOS_SECONDS * 2 / 3:
            _drop_connections(pg_url)  # every connection to the ledger cut at once
            dropped = True
        if dropped and not restarted and time.monotonic() > deadline - CHAOS_SECONDS / 3:
            restarted = True
            _restart_postgresql()  # the database itself goes away and comes back
        for n, p in enumerate(procs):
            if p.poll() is not None:  # killed by us or by a die_* fault: a new one takes over
                procs[n] = _start(configs[n])
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert kills > 5

    # Heal: no faults, wait for the dead workers' leases, drain.
    clean = _config(tmp_path, pg_url, erp_state, "", 99)
    time.sleep(2.5)
    for _ in range(20):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "revbridge.cli",
                "worker",
                "--until-idle",
                "--json",
                "--config",
                str(clean),
            ],
            capture_output=True,
            check=True,
            env={**os.environ, "REVBRIDGE_LOG_LEVEL": "ERROR"},
        )
        if json.loads(out.stdout)["calls"] == 0:
            break
        time.sleep(0.6)

    with engine.connect() as conn:
        rows = conn.execute(
            select(
                events.c.id,
                events.c.type,
                events.c.source_id,
                events.c.customer_ref,
                deliveries.c.state,
                deliveries.c.pattern,
                deliveries.c.last_error,
            ).join(deliveries, deliveries.c.event_id == events.c.id)
        ).all()
    engine.dispose()
    # The workers also capture what changed in the ERP (credit positions): not this test's.
    source = {e["source_id"]: e for e in envs}
    rows = [r for r in rows if r.source_id in source]
    assert len(rows) == EVENTS
    realtime = [r for r in rows if r.pattern == "realtime"]
    states = {r.state for r in realtime}
    assert states <= {"delivered", "dead_letter"}, states  # nothing in flight, pending or parked
    assert all(r.last_error for r in realtime if r.state == "dead_letter")

    erp = json.loads(erp_state.read_text())
    by_ref = defaultdict(list)
    for d in erp["docs"]:
        by_ref[(d["kind"], d["external_ref"])].append(d)
    assert [
        k for k, v in by_ref.items() if len(v) > 1 and k[0] != "customer"
    ] == []  # no duplicate posting
    for r in realtime:
        if r.type in KINDS and r.state == "delivered":
            (doc,) = by_ref[(KINDS[r.type], r.source_id)]
            data = source[r.source_id]["data"]
            expected = data.get("total") or data.get("amount")
            assert Decimal(doc["total"]) == Decimal(expected)
        if r.type in KINDS and r.state == "dead_letter":
            assert (KINDS[r.type], r.source_id) not in by_ref
    # Per-customer order: each customer's invoices were created in event order.
    invoices = sorted(
        (r for r in realtime if r.type == "invoice.posted" and r.state == "delivered"),
        key=lambda r: r.id,
    )
    per_customer: dict[str, list[int]] = defaultdict(list)
    for r in invoices:
        per_customer[r.customer_ref].append(int(by_ref[("invoice", r.source_id)][0]["erp_id"]))
    for customer, erp_ids in per_customer.items():
        assert erp_ids == sorted(erp_ids), customer
