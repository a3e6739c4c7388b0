"""A controller's October close on the embedded default, from the shell: the month-end run
opens cases, the revenue batch lands and its cases resolve by themselves, the rest are
worked, and the month is signed off by two people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from revbridge.cli.main import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _run_october() -> tuple[int, dict[str, object]]:
    result = runner.invoke(
        app, ["recon", "run", "--scope", "monthly", "--period", "2026-10", "--format", "json"]
    )
    return result.exit_code, json.loads(result.stdout)


def test_october_close_from_first_run_to_sign_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revenue entries still waiting for their batch are timing differences whose cases
    resolve by themselves once the batch posts them; the other cases are accepted with a
    note; then a preparer and a reviewer sign October off."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVBRIDGE_CONFIG", raising=False)
    _ok("init")
    _ok("generate", "--events", "300", "--seed", "3", "-o", "events.jsonl")
    _ok("ingest", "events.jsonl")
    _ok("worker", "--until-idle")

    code, first = _run_october()
    assert code == 3  # cases are open and the default limit is none
    variances = first["variances"]
    assert isinstance(variances, list)
    revenue_missing = [
        v for v in variances if v["reconciliation"] == "revenue" and v["kind"] == "missing_in_erp"
    ]
    assert revenue_missing
    assert {v["hub_state"] for v in revenue_missing} == {"pending"}
    assert first["timing_differences"] == len(revenue_missing)

    _ok("batch", "run", "--class", "revenue.recognized")
    code, second = _run_october()
    assert not any(
        v["reconciliation"] == "revenue" and v["kind"] == "missing_in_erp"
        for v in second["variances"]  # type: ignore[union-attr]
    )
    resolved = json.loads(_ok("recon", "cases", "list", "--state", "resolved", "--json"))
    assert {c["ref"] for c in resolved} >= {v["ref"] for v in revenue_missing}
    assert {c["resolution_code"] for c in resolved} == {"auto_resolved"}

    for case in json.loads(_ok("recon", "cases", "list", "--json")):
        _ok("recon", "cases", "accept", str(case["id"]), "--note", "explained at close",
            "--actor", "ana")  # fmt: skip
    code, third = _run_october()
    assert (code, third["open_cases"]) == (0, 0)
    _ok("recon", "signoff", "--period", "2026-10", "--as", "preparer", "--actor", "ana")
    _ok("recon", "signoff", "--period", "2026-10", "--as", "reviewer", "--actor", "ben")
    status = json.loads(_ok("recon", "status", "--json"))
    assert status["signoffs"][0]["state"] == "signed"
