"""The Salesforce org as configured by a user: capture by poll from the CLI, write-back by the
worker, against the sandbox over real HTTP (password flow, secrets from the environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from revbridge.cli.main import app
from revbridge.salesforce.sandbox import SandboxConfig
from revbridge.salesforce.sandbox.server import run_in_thread
from tests.integration.conftest import run_json, runner


def test_capture_from_a_configured_org_and_quarantine_nothing_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SandboxConfig(seed=True)
    with run_in_thread(config) as sandbox:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("REVBRIDGE_CONFIG", raising=False)
        (tmp_path / "revbridge.toml").write_text(
            f"""
[salesforce]
kind = "salesforce"
login_url = "{sandbox.base_url}"
client_id = "{config.client_id}"
username = "{config.username}"
"""
        )
        missing = runner.invoke(app, ["capture", "salesforce", "--json"])
        assert missing.exit_code != 0  # no secrets in the environment: a clear error
        assert "SALESFORCE_CLIENT_SECRET" in str(missing.exception)
        monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", config.client_secret)
        monkeypatch.setenv("SALESFORCE_PASSWORD", config.password)
        first = run_json(["capture", "salesforce", "--mode", "poll", "--json"])
        assert first["read"] > 0
        assert first["accepted"] > 0
        again = run_json(["capture", "salesforce", "--mode", "poll", "--json"])
        assert again["accepted"] == 0  # the watermark (and the ledger's idempotency) hold
        status = run_json(["status", "--json"])
        assert status["events"]["total"] == first["accepted"]
        assert status["quarantine"] == first["quarantined"]
        # Each capture's API requests count against the org's daily limit.
        assert status["api"]["calls_today_by_type"]["salesforce"]["capture (poll)"] >= 2
