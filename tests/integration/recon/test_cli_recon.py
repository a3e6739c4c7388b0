"""`revbridge recon ...` as a scheduler and a controller use it: reports in every format,
the exit code on too many open cases, cases worked and a month signed off from the shell."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
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


@pytest.fixture
def two_currencies(tmp_path: Path, store_url: str) -> Path:
    """October in EUR and JPY, large amounts: a EUR invoice missing in the ERP, a JPY one
    off by 1,000 yen, and one that matches."""
    path = tmp_path / "revbridge.toml"
    path.write_text(f'[store]\nurl = "{store_url}"\n\n[recon]\nmax_open_cases = 5\n')

    def doc(n: int, currency: str, amount: str, status: str) -> ArDocument:
        return ArDocument(
            key=f"k{n}", ref=f"a0XLONGREF{n:010d}", doc_type="invoice",
            customer_ref="001A", currency=currency, amount=Decimal(amount),
            doc_date=date(2026, 10, 5), status=status,
        )  # fmt: skip

    sf = [
        doc(1, "EUR", "1234567.89", "Unpaid"),
        doc(2, "JPY", "98765432", "Unpaid"),
        doc(3, "USD", "10.00", "Unpaid"),
    ]
    erp = [doc(2, "JPY", "98766432", "open"), doc(3, "USD", "10.00", "open")]
    with ReadbackStore(tmp_path / "recon.duckdb") as store:
        asyncio.run(store.refresh("sf", ListReader(sf), now=NOW))
        asyncio.run(store.refresh("erp", ListReader(erp), now=NOW))
    return path


def test_amounts_are_shown_at_their_currencys_scale_and_never_cut(two_currencies: Path) -> None:
    """At 80 columns: the summary, the cases table (with a currency column) and a case show
    every amount whole, at its currency's minor unit, thousands grouped."""
    from revbridge.cli.recon import out

    assert out.width == 80
    code, summary = _run(two_currencies)
    assert code == 0
    assert "1,234,567.89 EUR" in summary
    assert "1,000 JPY" in summary
    assert ".0000" not in summary
    c = ["-c", str(two_currencies)]
    table = runner.invoke(app, ["recon", "cases", "list", *c]).stdout
    assert "…" not in table
    assert "cur" in table.splitlines()[0]
    lines = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.strip()}
    eur = next(v for v in lines.values() if "EUR" in v)
    jpy = next(v for v in lines.values() if "JPY" in v)
    assert "1,234,567.89" in eur
    assert [v for v in jpy if v[0].isdigit() and "," in v] == ["98,765,432", "98,766,432"]
    cases = json.loads(runner.invoke(app, ["recon", "cases", "list", "--json", *c]).stdout)
    assert {x["source_amount"] for x in cases} == {"1234567.8900", "98765432.0000"}  # as stored
    none = runner.invoke(app, ["recon", "cases", "list", "--state", "accepted", *c]).stdout
    assert none.strip() == "no cases in state accepted"  # not a bare header
    none = runner.invoke(app, ["recon", "cases", "list", "--reconciliation", "revenue", *c])
    assert none.stdout.strip() == "no cases in revenue in state open, investigating"
    jpy_id = next(x["id"] for x in cases if x["currency"] == "JPY")
    shown = runner.invoke(app, ["recon", "cases", "show", str(jpy_id), *c]).stdout
    assert "source_amount: 98,765,432 JPY" in shown
    assert "difference: 1,000 JPY" in shown
    assert "None->" not in shown
    assert " operator opened found by run 1 (monthly 2026-10-01..2026-11-01)" in " ".join(
        shown.split()
    )


def test_a_report_file_of_an_unknown_kind_is_refused_naming_the_formats(
    config: Path, tmp_path: Path
) -> None:
    """--out r.pdf: the error names the extensions and formats there are (exit 2)."""
    result = runner.invoke(
        app,
        ["recon", "run", "--scope", "monthly", "--period", "2026-10", "--no-refresh",
         "-c", str(config), "--out", str(tmp_path / "r.pdf")],
    )  # fmt: skip
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())
    assert "--out" in message
    assert "'r.pdf'" in message
    assert ".html, .csv, .xlsx, .json" in message
    assert not (tmp_path / "r.pdf").exists()


def test_a_voided_sign_off_is_a_sentence(config: Path, tmp_path: Path) -> None:
    """A run that voids October's sign-off says so in words, not as a Python list."""
    c = ["-c", str(config)]
    _run(config)
    for case in json.loads(runner.invoke(app, ["recon", "cases", "list", "--json", *c]).stdout):
        runner.invoke(app, ["recon", "cases", "accept", str(case["id"]), "--note", "ok", *c])
    _run(config)
    result = runner.invoke(
        app, ["recon", "signoff", "--period", "2026-10", "--as", "preparer", "--actor", "ana", *c]
    )
    assert result.exit_code == 0, result.output
    with ReadbackStore(tmp_path / "recon.duckdb") as store:  # the missing invoice lands
        erp = [_doc(1, "open"), _doc(2, "open", "102.50"), _doc(3, "open"), _doc(4, "open")]
        asyncio.run(store.refresh("erp", ListReader(erp), now=NOW))
    _, stdout = _run(config)
    assert "[1]" not in stdout
    assert "sign-off voided (id 1)" in " ".join(stdout.split())


def test_recon_status_shows_each_period_whole_and_each_runs_reason(config: Path) -> None:
    """At 80 columns the last runs show their whole period (a nightly and a month-end run
    differ by it); each run's reason (an outage's run) is in --json, and in the table where
    there is room."""
    from datetime import UTC, datetime

    from rich.console import Console

    from revbridge.cli._ledger import open_engine
    from revbridge.cli.recon import _runs_table, out
    from revbridge.services.recon import default_reconciler, run_recon

    assert out.width == 80
    _run(config)
    why = "outage of erp 2026-10-05T10:00:00+00:00..2026-10-05T19:00:00+00:00 (circuit opened)"
    settings, engine = open_engine(config)
    run_recon(engine, default_reconciler(settings, engine), scope="nightly",
              start=date(2026, 10, 5), end=date(2026, 10, 6), actor="recon-scheduler",
              now=datetime.now(UTC), refresh=False, reason=why)  # fmt: skip
    engine.dispose()
    c = ["-c", str(config)]
    table = runner.invoke(app, ["recon", "status", *c]).stdout
    assert "…" not in table
    assert "2026-10-01..2026-11-01" in table
    assert "2026-10-05..2026-10-06" in table
    assert all(len(line) <= 80 for line in table.splitlines())
    runs = json.loads(runner.invoke(app, ["recon", "status", "--json", *c]).stdout)["recent_runs"]
    assert [r["reason"] for r in runs] == [why, None]  # the first, by hand: no reason
    wide = Console(width=140, record=True)
    wide.print(_runs_table(runs, width=140))
    assert "(circuit opened)" in wide.export_text()


def test_the_signoff_help_names_every_kind_of_document_it_waits_for() -> None:
    """The sign-off is refused while invoices, credit memos, payments or revenue entries of
    the month are in transit; its help said only revenue entries."""
    result = runner.invoke(app, ["recon", "signoff", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Refused while documents of the month (invoices, credit memos, payments" in text


def test_a_currency_case_shows_the_erp_amount_in_the_erps_currency(
    tmp_path: Path, store_url: str
) -> None:
    """An invoice of 12,960.00 GBP the ERP holds as 12,961 JPY: the case and the report show
    the ERP's amount in yen (no decimals), not as 12,961.00 GBP."""
    path = tmp_path / "revbridge.toml"
    path.write_text(f'[store]\nurl = "{store_url}"\n\n[recon]\nmax_open_cases = 5\n')
    gbp = dataclasses.replace(_doc(1, "Unpaid", "12960.00"), currency="GBP")
    jpy = dataclasses.replace(_doc(1, "open", "12961"), currency="JPY")
    with ReadbackStore(tmp_path / "recon.duckdb") as store:
        asyncio.run(store.refresh("sf", ListReader([gbp]), now=NOW))
        asyncio.run(store.refresh("erp", ListReader([jpy]), now=NOW))
    code, _ = _run(path, "--out", str(tmp_path / "oct.json"))
    assert code == 0
    [line] = json.loads((tmp_path / "oct.json").read_text())["variances"]
    assert (line["kind"], line["erp_amount"], line["erp_value"]) == ("currency", "12961", "JPY")
    _run(path, "--out", str(tmp_path / "oct.html"))
    assert "12,961 JPY" in (tmp_path / "oct.html").read_text()
    c = ["-c", str(path)]
    [case] = json.loads(runner.invoke(app, ["recon", "cases", "list", "--json", *c]).stdout)
    shown = runner.invoke(app, ["recon", "cases", "show", str(case["id"]), *c]).stdout
    assert "erp_amount: 12,961 JPY" in shown
    assert "source_amount: 12,960.00 GBP" in shown
    table = runner.invoke(app, ["recon", "cases", "list", *c]).stdout
    assert "12,961 JPY" in " ".join(table.split())
    assert "12,961.00" not in table
