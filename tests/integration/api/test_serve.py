"""``revbridge serve`` as users run it: in-process delivery, the CLI, graceful shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from revbridge.store.schema import deliveries

from .conftest import SECRET, build_hub, envelopes, jsonl


def test_events_received_by_webhook_are_delivered_by_the_in_process_worker(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the embedded default, serve alone takes events in and delivers them to the ERP."""
    monkeypatch.setenv("REVBRIDGE_WEBHOOK_SECRET", SECRET)
    for hub in build_hub(store_url, tmp_path, run_workers=True):
        assert hub.signed("/webhooks/events", jsonl(envelopes(30, seed=5))).status_code == 202
        deadline = time.monotonic() + 30
        delivered = 0
        while time.monotonic() < deadline:
            with hub.ledger.engine.connect() as conn:
                delivered = conn.execute(
                    select(func.count()).where(deliveries.c.state == "delivered")
                ).scalar_one()
            if delivered:
                break
            time.sleep(0.2)
        assert delivered > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revbridge.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "REVBRIDGE_CONFIG": str(cwd / "revbridge.toml")},
    )


@pytest.mark.slow
def test_the_cli_creates_tokens_serves_and_stops_gracefully(tmp_path: Path) -> None:
    """token create prints the token once; serve answers with it; SIGTERM stops it cleanly."""
    assert _cli("init", cwd=tmp_path).returncode == 0
    made = _cli("token", "create", "--name", "ops", "--role", "operator", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("rb_")
    listed = _cli("token", "list", cwd=tmp_path)
    assert "ops" in listed.stdout
    assert token not in listed.stdout
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "revbridge.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "REVBRIDGE_CONFIG": str(tmp_path / "revbridge.toml")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /healthz"
            time.sleep(0.2)
        status = httpx.get(f"{base}/api/v1/status", headers={"Authorization": f"Bearer {token}"})
        assert status.status_code == 200
        assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, errors = proc.communicate(timeout=40)
        code = proc.returncode
    # uvicorn finishes its graceful shutdown (lifespan: the worker stops), then re-raises
    # SIGTERM so a supervisor sees the signal: -15 here, never a timeout or a traceback.
    assert code in (0, -signal.SIGTERM)
    assert b"Traceback" not in errors
    revoked = _cli("token", "revoke", "ops", cwd=tmp_path)
    assert revoked.returncode == 0
