"""Reports in four formats, each parsed back: JSON, CSV, the Excel workbook and the HTML page."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pytest
from openpyxl import load_workbook

from revbridge.recon.hub_state import FindingWithHubState, HubState
from revbridge.recon.match import reconcile_ar
from revbridge.recon.period import PeriodRecon, Reconciliation
from revbridge.recon.report.model import CaseRef, ReconReport, TrendPoint, build_report
from revbridge.recon.report.render import CSV_COLUMNS, render
from revbridge.recon.thresholds import AmountTolerance, ReconThresholds
from tests.unit.recon.ar import Doc, relation

NOW = datetime(2026, 11, 1, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def report() -> ReconReport:
    """October: three invoices match exactly, one is missing in the ERP (dead-lettered), one
    is a cent off (within a 0.05 tolerance) and one is 10.00 off in EUR (its corrected
    delivery still pending)."""
    con = duckdb.connect()
    sf = [
        Doc("a0X1", Decimal("100.00")),
        Doc("a0X2", Decimal("200.00")),
        Doc("a0X3", Decimal("300.00")),
        Doc("a0X4", Decimal("400.00")),
        Doc("a0X5", Decimal("50.00")),
        Doc("a0X6", Decimal("1000.00"), currency="EUR"),
    ]
    erp = [*sf[:3], sf[4].but(amount=Decimal("50.01")), sf[5].but(amount=Decimal("1010.00"))]
    result = reconcile_ar(
        relation(con, "s", sf),
        relation(con, "e", erp),
        ReconThresholds(amount=AmountTolerance(absolute=Decimal("0.05"))),
        connection=con,
    )
    hubs = {
        "a0X4": HubState(
            state="dead_letter",
            subject_ref="invoice:a0X4",
            event_id=41,
            attempts=12,
            last_error="400 customer inactive",
        ),
        "a0X6": HubState(state="pending", subject_ref="invoice:a0X6", event_id=8, attempts=1),
    }
    findings = tuple(
        FindingWithHubState(finding=f, hub=hubs.get(f.ref, HubState(state="delivered", event_id=7)))
        for f in result.findings
    )
    recon = PeriodRecon(
        scope="monthly",
        start=date(2026, 10, 1),
        end=date(2026, 11, 1),
        reconciliations=(Reconciliation(name="ar", result=result, findings=findings),),
        read_at=NOW,
    )
    trend = [
        TrendPoint(
            run_id=i,
            scope="nightly",
            period_start=date(2026, 10, i),
            started_at=NOW,
            variance_count=i % 3,
            within_tolerance_count=1,
            open_cases=i,
        )
        for i in range(1, 6)
    ]
    return build_report(
        recon,
        cases={("ar", "a0X4", "missing_in_erp"): CaseRef(id=9, state="open", days_open=3)},
        open_case_ages=[3, 12],
        trend=trend,
        generated_at=NOW,
        run_id=6,
    )


def test_the_json_report_has_the_documented_shape_with_exact_amounts(report: ReconReport) -> None:
    """JSON carries matched, variances (kind, ref, both amounts as decimal strings, hub state),
    within tolerance and open cases."""
    data = json.loads(render(report, "json"))
    assert data["matched"] == 4  # the cent within tolerance counts as matched
    assert data["within_tolerance"] == 1
    assert data["timing_differences"] == 1  # a0X6 is still pending in the hub
    assert data["open_cases"] == 2
    by_ref = {v["ref"]: v for v in data["variances"]}
    assert set(by_ref) == {"a0X4", "a0X5", "a0X6"}
    for v in data["variances"]:
        assert {"kind", "ref", "source_amount", "erp_amount", "hub_state"} <= set(v)
    assert by_ref["a0X4"]["kind"] == "missing_in_erp"
    assert by_ref["a0X4"]["erp_amount"] is None
    assert Decimal(by_ref["a0X4"]["source_amount"]) == Decimal("400.00")
    assert by_ref["a0X4"]["hub_state"] == "dead_letter"
    assert by_ref["a0X4"]["last_error"] == "400 customer inactive"
    assert by_ref["a0X4"]["case_id"] == 9
    assert Decimal(by_ref["a0X6"]["erp_amount"]) == Decimal("1010.00")
    assert data["aging"] == {"0-1": 0, "2-7": 1, "8-30": 1, ">30": 0}
    assert Decimal(data["matched_amounts"]["USD"]) == Decimal("650.00")


def test_the_csv_report_has_one_row_per_variance_with_both_sides(report: ReconReport) -> None:
    """CSV rows parse back with the header and the drill-down values."""
    rows = list(csv.DictReader(io.StringIO(render(report, "csv").decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3
    five = next(r for r in rows if r["ref"] == "a0X5")
    assert (five["kind"], five["within_tolerance"]) == ("amount", "True")
    assert Decimal(five["difference"]) == Decimal("0.01")


def test_the_workbook_has_a_summary_and_a_sheet_per_reconciliation_with_numbers(
    report: ReconReport,
) -> None:
    """Excel opens a Summary sheet and an ``ar`` sheet whose amounts are numbers in a
    currency format."""
    book = load_workbook(io.BytesIO(render(report, "xlsx")))
    assert book.sheetnames == ["Summary", "ar"]
    sheet = book["ar"]
    header = [c.value for c in sheet[1]]
    assert header == list(CSV_COLUMNS)
    rows = {r[2].value: r for r in sheet.iter_rows(min_row=2)}
    eur = rows["a0X6"]
    erp_cell = eur[header.index("erp_amount")]
    assert erp_cell.value == pytest.approx(1010.0)
    assert "EUR" in erp_cell.number_format
    summary = [[c.value for c in r] for r in book["Summary"].iter_rows()]
    assert ["ar", 4, 3, 1, "USD", pytest.approx(650.0), None] in summary
    # The per-reconciliation amount is what matched, not the variances beside it.
    header = ["reconciliation", "matched", "variances", "within tolerance", "currency"]
    assert [*header, "matched amount", None] in summary
    assert ["ar", "amount", 2, 1, "EUR", pytest.approx(10.0), "absolute differences"] in summary


def test_the_html_report_is_self_contained_with_both_charts_and_the_lines(
    report: ReconReport,
) -> None:
    """The page draws the trend and the aging as inline SVG, lists every line with its hub
    trace, and loads nothing from elsewhere."""
    page = render(report, "html").decode()
    assert page.count("<svg") == 2
    assert page.count('class="series"') == 3  # variances, within tolerance, open cases
    assert page.count("<circle") == 3 * 5  # one point per run and series
    assert 'data-bucket="2-7"' in page
    assert page.count('<tr class="line') == 3
    assert "400 customer inactive" in page
    assert "#9 open" in page
    assert "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_a_label_cannot_inject_markup_into_the_page(report: ReconReport) -> None:
    """An error text with HTML in it is shown as text."""
    from dataclasses import replace

    line = replace(report.lines[0], last_error="<script>alert(1)</script>")
    page = render(replace(report, lines=(line,)), "html").decode()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_amounts_are_shown_at_their_currency_scale_when_that_is_exact() -> None:
    """The read-back store keeps four decimals; a report shows 1,200.50 USD, 5,000 JPY and
    1.125 BHD, but never hides a digit of a value more precise than its currency."""
    from revbridge.recon.report.render import at_scale

    assert str(at_scale(Decimal("1200.5000"), "USD")) == "1200.50"
    assert str(at_scale(Decimal("5000.0000"), "JPY")) == "5000"
    assert str(at_scale(Decimal("1.1250"), "BHD")) == "1.125"
    assert str(at_scale(Decimal("0.0050"), "USD")) == "0.0050"
    assert str(at_scale(Decimal("7.5000"), None)) == "7.5000"


def test_the_page_and_the_csv_show_cents_not_four_decimals(report: ReconReport) -> None:
    """A USD line reads 400.00 on the page and in the CSV; the workbook formats EUR with two
    decimals."""
    page = render(report, "html").decode()
    assert ">400.00<" in page
    assert "400.0000" not in page
    rows = list(csv.DictReader(io.StringIO(render(report, "csv").decode())))
    assert next(r for r in rows if r["ref"] == "a0X4")["source_amount"] == "400.00"
    book = load_workbook(io.BytesIO(render(report, "xlsx")))
    header = [c.value for c in book["ar"][1]]
    eur = next(r for r in book["ar"].iter_rows(min_row=2) if r[2].value == "a0X6")
    assert eur[header.index("erp_amount")].number_format == '#,##0.00 "EUR"'


def test_entries_waiting_for_their_batch_with_a_case_are_not_counted_as_without_one(
    report: ReconReport,
) -> None:
    """Three revenue lines wait for their batch window, two of them with a case opened
    earlier: one is in transit without a case, and it is the one waiting for its batch (the
    run summary said "1 without a case: 3 wait for their batch window")."""
    from dataclasses import replace

    base = replace(
        report.lines[0], hub_state="scheduled", timing_difference=True, within_tolerance=False
    )
    lines = (
        replace(base, ref="e1", case_state=None, case_id=None),
        replace(base, ref="e2", case_state="open"),
        replace(base, ref="e3", case_state="investigating"),
    )
    scheduled = replace(report, lines=lines)
    assert (scheduled.awaiting_batch, scheduled.in_transit_without_case) == (3, 1)
    assert scheduled.awaiting_batch_without_case == 1


def test_a_document_that_differs_in_several_ways_counts_its_gap_once() -> None:
    """a0X1 is 5.00 off, dated another day and booked to another customer: three findings,
    each carrying its 5.00, but the categories add 5.00 once, under amount (date and customer
    say how it differs, not by how much). a0X2 is twice in Salesforce and not in the ERP:
    its gap is under missing_in_erp, not again under duplicate_in_source. The categories add
    up to the run's stored variance."""
    from revbridge.services.recon import _run_amounts

    con = duckdb.connect()
    sf = [Doc("a0X1", Decimal("100.00")), Doc("a0X2", Decimal("40.00")),
          Doc("a0X2", Decimal("40.00")), Doc("a0X3", Decimal("7.00"))]  # fmt: skip
    erp = [sf[0].but(amount=Decimal("105.00"), doc_date=date(2026, 11, 3), customer_ref="001B"),
           sf[3]]  # fmt: skip
    result = reconcile_ar(relation(con, "s", sf), relation(con, "e", erp), ReconThresholds(),
                          connection=con)  # fmt: skip
    assert sorted((f.ref, f.kind.value) for f in result.findings) == [
        ("a0X1", "amount"), ("a0X1", "customer"), ("a0X1", "date"),
        ("a0X2", "duplicate_in_source"), ("a0X2", "missing_in_erp"),
    ]  # fmt: skip
    hub = HubState(state="delivered", event_id=7)
    recon = PeriodRecon(
        scope="monthly",
        start=date(2026, 11, 1),
        end=date(2026, 12, 1),
        reconciliations=(
            Reconciliation(
                name="ar",
                result=result,
                findings=tuple(FindingWithHubState(finding=f, hub=hub) for f in result.findings),
            ),
        ),
        read_at=NOW,
    )
    report = build_report(recon, cases={}, open_case_ages=[], trend=[], generated_at=NOW)
    amounts = {c.kind: dict(c.amounts) for c in report.categories}
    assert amounts == {
        "amount": {"USD": Decimal("5.00")},
        "customer": {},
        "date": {},
        "duplicate_in_source": {},
        "missing_in_erp": {"USD": Decimal("80.00")},
    }
    stored = _run_amounts(recon)["variance"]
    assert {c: Decimal(a) for c, a in stored.items()} == {"USD": Decimal("85.00")}
    categories = json.loads(render(report, "json"))["categories"]
    assert {c["kind"]: c["amounts"] for c in categories}["date"] == {}
