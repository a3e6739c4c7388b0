"""Salesforce capture throughput: change events from the sandbox org into the ledger.

The org is filled through its real REST API (sObject Collections, 200 records a call): accounts,
then posted invoices with one line each, so every invoice makes three change events (create,
line create, status update) and every account one. Measured, median of 3:

- the baseline, the sandbox's bare emission rate: a CometD client that only handshakes,
  subscribes to ``/data/ChangeEvents`` at replay -2 and connects until nothing is left (1,000
  events a connect answer), keeping nothing;
- the value, the hub's stream path (``SalesforceCapture.stream``): the same CometD session and
  batches, echo and record-type filtering, re-reading the changed records by SOQL (created
  accounts are mapped from their CREATE events, which carry every field), mapping them to
  canonical events and storing them idempotently in a fresh SQLite ledger, replay id
  persisted per batch.

Target: at least 5,000 changes/s through the stream path (issue 5).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import emit, progress
from revbridge.core.policy import build_policy
from revbridge.salesforce.capture import CaptureSettings, SalesforceCapture
from revbridge.salesforce.client import JwtBearerAuth, SalesforceClient
from revbridge.salesforce.sandbox import SandboxConfig
from revbridge.salesforce.sandbox.tls import generate_jwt_keypair
from revbridge.store.db import create_store_engine, upgrade
from revbridge.store.ledger import Ledger

API = "/services/data/v62.0"
COMETD = "/cometd/62.0"
ACCOUNTS = 2_000
INVOICES = 6_000
TARGET = 5_000.0
RUNS = 3


def _collection(http: httpx.Client, method: str, records: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(records), 200):
        chunk = records[start : start + 200]
        response = http.request(
            method, f"{API}/composite/sobjects", json={"allOrNone": True, "records": chunk}
        )
        response.raise_for_status()
        ids += [r["id"] for r in response.json()]
    return ids


def _fill(http: httpx.Client) -> int:
    """Accounts, then posted invoices with a line each; the number of change events made."""
    accounts = _collection(
        http,
        "POST",
        [
            {"attributes": {"type": "Account"}, "Name": f"Bench Customer {i:05d}"}
            for i in range(ACCOUNTS)
        ],
    )
    invoices = _collection(
        http,
        "POST",
        [
            {
                "attributes": {"type": "blng__Invoice__c"},
                "blng__Account__c": accounts[i % ACCOUNTS],
                "blng__InvoiceDate__c": "2026-11-02",
                "blng__DueDate__c": "2026-12-02",
                "blng__Subtotal__c": 100 + i % 900,
                "blng__TaxAmount__c": 0,
            }
            for i in range(INVOICES)
        ],
    )
    _collection(
        http,
        "POST",
        [
            {
                "attributes": {"type": "blng__InvoiceLine__c"},
                "blng__Invoice__c": invoice,
                "blng__Quantity__c": 1,
                "blng__UnitPrice__c": 100 + i % 900,
                "blng__Subtotal__c": 100 + i % 900,
                "blng__TaxAmount__c": 0,
            }
            for i, invoice in enumerate(invoices)
        ],
    )
    _collection(
        http,
        "PATCH",
        [
            {
                "attributes": {"type": "blng__Invoice__c"},
                "id": invoice,
                "blng__InvoiceStatus__c": "Posted",
                "blng__InvoicePostedDate__c": "2026-11-02",
            }
            for invoice in invoices
        ],
    )
    return ACCOUNTS + 3 * INVOICES


def _bare_emission(http: httpx.Client) -> float:
    """Changes/s a do-nothing CometD subscriber reads (handshake, subscribe at -2, connects)."""
    start = time.perf_counter()
    handshake = http.post(
        COMETD,
        json=[
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            }
        ],
    ).json()[0]
    client_id = handshake["clientId"]
    http.post(
        COMETD,
        json=[
            {
                "channel": "/meta/subscribe",
                "clientId": client_id,
                "subscription": "/data/ChangeEvents",
                "ext": {"replay": {"/data/ChangeEvents": -2}},
            }
        ],
    ).raise_for_status()
    read = 0
    while True:
        answer = http.post(
            COMETD,
            json=[
                {
                    "channel": "/meta/connect",
                    "clientId": client_id,
                    "connectionType": "long-polling",
                    "advice": {"timeout": 0},
                }
            ],
        ).json()
        events = [m for m in answer if m.get("channel") == "/data/ChangeEvents"]
        if not events:
            break
        read += len(events)
    elapsed = time.perf_counter() - start
    http.post(COMETD, json=[{"channel": "/meta/disconnect", "clientId": client_id}])
    return read / elapsed


def _stream_capture(base_url: str, key_path: Path, config: SandboxConfig, folder: Path) -> float:
    """Changes/s through the hub's stream path into a fresh SQLite ledger."""
    url = f"sqlite:///{folder / f'capture-{time.monotonic_ns()}.db'}"
    engine = create_store_engine(url)
    upgrade(engine)
    ledger = Ledger(engine)
    auth = JwtBearerAuth(
        login_url=base_url,
        client_id=config.client_id,
        username=config.username,
        private_key_path=key_path,
    )

    async def go() -> tuple[int, int, float]:
        async with SalesforceClient(auth) as client:
            capture = SalesforceCapture(client, ledger, build_policy(), CaptureSettings())
            start = time.perf_counter()
            report = await capture.stream(start_replay_id=-2)
            return report.read, report.accepted, time.perf_counter() - start

    try:
        read, accepted, elapsed = asyncio.run(go())
    finally:
        engine.dispose()
    if accepted < ACCOUNTS + INVOICES:
        raise RuntimeError(f"the stream captured {accepted} events, expected all of them")
    return read / elapsed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _sandbox_process(cert: Path) -> Iterator[str]:
    """The sandbox org in its own process, as a real org is remote: its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "revbridge.cli",
            "sandbox",
            "salesforce",
            "--port",
            str(port),
            "--cert",
            str(cert),
            "--api-limit",
            "10000000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/services/data", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Salesforce sandbox did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_salesforce_capture() -> None:
    defaults = SandboxConfig()
    with tempfile.TemporaryDirectory(prefix="rb-bench-sf-") as tmp:
        folder = Path(tmp)
        key_path, cert_pem = generate_jwt_keypair(folder / "jwt")
        cert = folder / "connected-app.crt"
        cert.write_bytes(cert_pem)
        with (
            _sandbox_process(cert) as base_url,
            httpx.Client(base_url=base_url, timeout=60) as http,
        ):
            token = http.post(
                "/services/oauth2/token",
                data={
                    "grant_type": "password",
                    "client_id": defaults.client_id,
                    "client_secret": defaults.client_secret,
                    "username": defaults.username,
                    "password": defaults.password,
                },
            ).json()["access_token"]
            http.headers["Authorization"] = f"Bearer {token}"
            progress(
                f"salesforce capture: filling the org ({ACCOUNTS} accounts, {INVOICES} invoices)"
            )
            changes = _fill(http)
            bare, hub = [], []
            for run in range(RUNS):
                progress(f"salesforce capture: run {run + 1}/{RUNS} over {changes} changes")
                bare.append(_bare_emission(http))
                hub.append(_stream_capture(base_url, key_path, defaults, folder))
        bare.sort()
        hub.sort()
        emit(
            "salesforce_capture_stream",
            hub[RUNS // 2],
            "changes/s",
            "sandbox_bare_emission",
            bare[RUNS // 2],
            f">= {TARGET:.0f} changes/s",
            hub[RUNS // 2] >= TARGET,
            changes=changes,
            share_of_emission=round(hub[RUNS // 2] / bare[RUNS // 2], 3),
        )
