"""A controller's October close on the embedded default, from the shell: the month-end run
before the revenue batch shows the entries in transit (no case), the batch lands and they are
gone, any other case is worked, and the month is signed off by two people."""

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


def _october_delivered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, events: int) -> None:
    """The embedded default in ``tmp_path``: October generated, ingested and delivered, the
    batch classes still waiting for their window."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVBRIDGE_CONFIG", raising=False)
    _ok("init")
    _ok("generate", "--events", str(events), "--seed", "3", "-o", "events.jsonl")
    _ok("ingest", "events.jsonl")
    _ok("worker", "--until-idle")


def _run_october() -> tuple[int, dict[str, object]]:
    result = runner.invoke(
        app, ["recon", "run", "--scope", "monthly", "--period", "2026-10", "--format", "json"]
    )
    return result.exit_code, json.loads(result.stdout)


def test_october_close_from_first_run_to_sign_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revenue entries still waiting for their batch window are in transit, not variances:
    the run reports them (and the control totals they explain) with the hub state
    ``scheduled`` and opens no case for them; once the batch posts them they are gone. The
    other cases are accepted with a note; then a preparer and a reviewer sign October off."""
    _october_delivered(tmp_path, monkeypatch, events=300)

    code, first = _run_october()
    variances = first["variances"]
    assert isinstance(variances, list)
    revenue = [v for v in variances if v["reconciliation"] == "revenue"]
    missing = [v for v in revenue if v["kind"] == "missing_in_erp"]
    totals = [v for v in revenue if v["kind"] == "control_total"]
    assert missing
    assert totals
    assert {(v["hub_state"], v["case_id"]) for v in revenue} == {("scheduled", None)}
    assert first["timing_differences"] >= len(revenue)
    opened = json.loads(_ok("recon", "cases", "list", "--reconciliation", "revenue", "--json"))
    assert opened == []
    assert code == (3 if first["open_cases"] else 0)

    _ok("batch", "run", "--class", "revenue.recognized")
    code, second = _run_october()
    assert not any(
        v["reconciliation"] == "revenue"
        for v in second["variances"]  # type: ignore[union-attr]
    )

    for case in json.loads(_ok("recon", "cases", "list", "--json")):
        _ok("recon", "cases", "accept", str(case["id"]), "--note", "explained at close",
            "--actor", "ana")  # fmt: skip
    code, third = _run_october()
    assert (code, third["open_cases"]) == (0, 0)
    _ok("recon", "signoff", "--period", "2026-10", "--as", "preparer", "--actor", "ana")
    _ok("recon", "signoff", "--period", "2026-10", "--as", "reviewer", "--actor", "ben")
    status = json.loads(_ok("recon", "status", "--json"))
    assert status["signoffs"][0]["state"] == "signed"


def test_the_run_summary_says_revenue_waiting_for_its_batch_is_no_case_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the revenue batch, the summary line says the entries wait for their batch
    window and are no case before it; it used to say they become a case if a later run
    still finds them, which is true only of documents due or late."""
    _october_delivered(tmp_path, monkeypatch, events=120)
    result = runner.invoke(app, ["recon", "run", "--scope", "monthly", "--period", "2026-10"])
    text = " ".join(result.stdout.split())
    line = text[text.index("in transit") : text.index("open cases by age")]
    assert "waiting for a batch window (no case before it)" in line
    assert "a case if a later run" not in line
