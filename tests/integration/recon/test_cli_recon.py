"""`revbridge recon ...` as a scheduler and a controller use it: reports in every format,
the exit code on too many open cases, cases worked and a month signed off from the shell."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from revbridge.cli.main import app
from revbridge.engine.ports import ArDocument
from revbridge.recon.readback import ReadbackStore
from tests.unit.recon.sides import NOW, ListReader

runner = CliRunner()


def _doc(n: int, status: str, amount: str = "100.00") -> ArDocument:
    return ArDocument(
        key=f"k{n}",
        ref=f"a0X{n:05d}",
        doc_type="invoice",
        customer_ref="001A",
        currency="USD",
        amount=Decimal(amount),
        doc_date=date(2026, 10, 5),
        status=status,
    )


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    """A configuration on the test ledger whose read-back store holds October: four invoices,
    one missing in the ERP and one 2.50 off."""
    path = tmp_path / "revbridge.toml"
    path.write_text(f'[store]\nurl = "{store_url}"\n\n[recon]\nmax_open_cases = 1\n')
    sf = [_doc(n, "Unpaid") for n in range(1, 5)]
    erp = [_doc(1, "open"), _doc(2, "open", "102.50"), _doc(3, "open")]
    with ReadbackStore(tmp_path / "recon.duckdb") as store:
        asyncio.run(store.refresh("sf", ListReader(sf), now=NOW))
        asyncio.run(store.refresh("erp", ListReader(erp), now=NOW))
    return path


def _run(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["recon", "run", "--scope", "monthly", "--period", "2026-10", "--no-refresh",
         "-c", str(config), *args],
    )  # fmt: skip
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def test_too_many_open_cases_exit_3_and_the_json_report_says_why(config: Path) -> None:
    """Two cases open against a limit of one: exit code 3, and the JSON names both."""
    code, stdout = _run(config, "--format", "json")
    assert code == 3
    data = json.loads(stdout)
    assert (data["matched"], data["open_cases"], data["within_tolerance"]) == (2, 2, 0)
    assert sorted((v["kind"], v["ref"]) for v in data["variances"]) == [
        ("amount", "a0X00002"),
        ("missing_in_erp", "a0X00004"),
    ]
    assert {v["hub_state"] for v in data["variances"]} == {"never captured"}


def test_every_format_is_written_and_reads_back(config: Path, tmp_path: Path) -> None:
    """--out writes HTML, CSV and an Excel workbook (format from --format or the suffix)."""
    for suffix in ("html", "csv", "xlsx"):
        code, _ = _run(config, "--out", str(tmp_path / f"oct.{suffix}"))
        assert code == 3
    page = (tmp_path / "oct.html").read_text()
    assert page.count("<svg") == 2
    assert "a0X00004" in page
    rows = list(csv.DictReader(io.StringIO((tmp_path / "oct.csv").read_text())))
    assert {r["ref"] for r in rows} == {"a0X00002", "a0X00004"}
    book = load_workbook(tmp_path / "oct.xlsx")
    assert book.sheetnames == ["Summary", "ar", "payments", "revenue"]


def test_a_controller_works_the_cases_and_signs_the_month_off(config: Path) -> None:
    """Cases accepted and resolved from the shell bring the run under its limit (exit 0);
    then ana prepares and ben reviews October."""
    _run(config)
    listed = runner.invoke(app, ["recon", "cases", "list", "--json", "-c", str(config)])
    cases = json.loads(listed.stdout)
    assert len(cases) == 2
    amount = next(c for c in cases if c["kind"] == "amount")
    missing = next(c for c in cases if c["kind"] == "missing_in_erp")
    c = ["-c", str(config)]
    steps = [
        ["recon", "cases", "investigate", str(missing["id"]), "--actor", "ben", *c],
        ["recon", "cases", "accept", str(amount["id"]), "--note", "freight, agreed", *c],
        ["recon", "cases", "resolve", str(missing["id"]), "--code", "delivered_late",
         "--note", "replayed from the DLQ", *c],
    ]  # fmt: skip
    for step in steps:
        result = runner.invoke(app, step)
        assert result.exit_code == 0, result.output
    shown = json.loads(
        runner.invoke(app, ["recon", "cases", "show", str(missing["id"]), "--json", *c]).stdout
    )
    assert [h["action"] for h in shown["history"]] == [
        "recon.case.opened", "recon.case.investigating", "recon.case.resolved",
    ]  # fmt: skip
    # The ERP still lacks the invoice: the run finds it again and reopens the case.
    code, _ = _run(config)
    assert code == 0  # one open case, the limit is one
    result = runner.invoke(
        app,
        ["recon", "cases", "accept", str(missing["id"]), "--note", "credit note next month", *c],
    )
    assert result.exit_code == 0, result.output
    _run(config)
    for role, who in (("preparer", "ana"), ("reviewer", "ben")):
        result = runner.invoke(
            app,
            ["recon", "signoff", "--period", "2026-10", "--as", role, "--actor", who, "--json", *c],
        )
        assert result.exit_code == 0, result.output
    status = json.loads(runner.invoke(app, ["recon", "status", "--json", *c]).stdout)
    assert status["signoffs"][0]["state"] == "signed"
    assert status["cases_by_state"]["accepted"] == 2
