"""``webhook``: signed envelopes into the ledger over real HTTP (``revbridge serve``, SQLite).

20,000 generated envelopes are POSTed to ``/webhooks/events`` in signed batches of 500 (one
request each, all-or-nothing); then 200 single-envelope requests measure the time to the
2xx, which is sent only once the event is committed. Baseline: the file ingest's rate
(``revbridge ingest``) on the same machine and the same envelopes.

Targets: batched at least half the file ingest's rate (HTTP, signature and nonce included);
single-envelope p95 within 25 ms of a bare FastAPI endpoint's p95 served and called the
same way (the harness's own cost: client and server share one process) - the hub's part is
three SQLite commits (the nonce, the events, the audit entry). The load average is reported
beside: on a shared 2-core machine the numbers scale with it.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import emit
from revbridge.api.app import create_app
from revbridge.api.server import run_in_thread
from revbridge.config import parse_config
from revbridge.generate import generate_events
from revbridge.services import open_ledger
from revbridge.services.access import sign
from revbridge.services.ingest import ingest_lines

SECRET = b"bench-secret"
N = 20_000
BATCH = 500
SINGLES = 200


def bench_webhook() -> None:
    from revbridge.logs import configure

    configure("WARNING")
    os.environ["REVBRIDGE_WEBHOOK_SECRET"] = SECRET.decode()
    envelopes = [json.dumps(e).encode() for e in generate_events(N + SINGLES, seed=11)]
    with tempfile.TemporaryDirectory(prefix="rb-bench-serve-") as tmp:
        base = Path(tmp)
        settings = parse_config(
            {
                "store": {"url": f"sqlite:///{base / 'hub.db'}"},
                "server": {"rate_limit_per_min": 1_000_000, "max_body_bytes": 50_000_000},
            },
            None,
            base,
        )
        file_settings = parse_config(
            {"store": {"url": f"sqlite:///{base / 'file.db'}"}}, None, base
        )
        file_ledger = open_ledger(file_settings)
        started = time.perf_counter()
        ingest_lines(file_ledger, envelopes[:N], policy=file_settings.policy, origin="bench")
        file_rate = N / (time.perf_counter() - started)
        file_ledger.engine.dispose()

        ledger = open_ledger(settings)
        with (
            run_in_thread(create_app(settings, ledger=ledger)) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            started = time.perf_counter()
            for i in range(0, N, BATCH):
                body = b"\n".join(envelopes[i : i + BATCH])
                sig = sign(SECRET, body, int(time.time()))
                r = client.post(
                    "/webhooks/events",
                    content=body,
                    headers={"X-Revbridge-Signature": sig, "Content-Type": "application/x-ndjson"},
                )
                assert r.status_code == 202, r.text
            batched_rate = N / (time.perf_counter() - started)
            latencies = []
            for body in envelopes[N:]:
                sig = sign(SECRET, body, int(time.time()))
                t0 = time.perf_counter()
                r = client.post(
                    "/webhooks/events", content=body, headers={"X-Revbridge-Signature": sig}
                )
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 202, r.text
        ledger.engine.dispose()
    p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
    bare = _bare_p95_ms()
    load = round(os.getloadavg()[0], 2)
    emit(
        "webhook_batched",
        batched_rate,
        "events/s",
        "file ingest, same envelopes",
        file_rate,
        ">= 0.5 x file ingest",
        batched_rate >= 0.5 * file_rate,
        batch=BATCH,
        load_avg=load,
    )
    emit(
        "webhook_single_p95",
        p95,
        "ms",
        "bare FastAPI endpoint, same harness",
        bare,
        "< bare + 25 ms to the 2xx (committed)",
        p95 < bare + 25,
        p50_ms=round(statistics.median(latencies) * 1000, 2),
        load_avg=load,
    )


def _bare_p95_ms() -> float:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/bare")
    def bare() -> dict[str, int]:
        return {"ok": 1}

    times = []
    with run_in_thread(app) as url, httpx.Client(base_url=url) as client:
        for _ in range(SINGLES):
            t0 = time.perf_counter()
            client.post("/bare", content=b"{}")
            times.append(time.perf_counter() - t0)
    return statistics.quantiles(times, n=20)[-1] * 1000
