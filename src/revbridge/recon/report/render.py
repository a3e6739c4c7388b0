"""Lay a ``ReconReport`` out as JSON, CSV, an Excel workbook or a self-contained HTML page.

Amounts stay ``Decimal`` everywhere and are written as their exact strings, except in the
Excel cells (see ``render_xlsx``).
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from revbridge.core.money import MINOR_UNITS, at_minor_unit
from revbridge.recon.report.model import ReconReport, ReportLine
from revbridge.recon.report.svg import aging_chart, trend_chart

FORMATS = ("html", "csv", "xlsx", "json")

CSV_COLUMNS = (
    "reconciliation",
    "kind",
    "ref",
    "doc_type",
    "currency",
    "source_amount",
    "erp_amount",
    "difference",
    "source_value",
    "erp_value",
    "within_tolerance",
    "hub_state",
    "timing_difference",
    "event_id",
    "attempts",
    "last_error",
    "case_id",
    "case_state",
    "days_open",
    # Last, so that the columns before it keep their places.
    "number",
)


def at_scale(value: Decimal, currency: str | None) -> Decimal:
    """``value`` at its currency's minor unit when that loses nothing (1200.5000 USD -> 1200.50).

    The read-back store keeps four decimals for every currency; a report shows the currency's
    own scale. A value more precise than its currency (or of an unknown currency) is shown whole.
    """
    return at_minor_unit(value, currency)


def _text(value: Decimal | None, currency: str | None = None) -> str | None:
    return None if value is None else format(at_scale(value, currency), "f")


def _line_dict(line: ReportLine) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in CSV_COLUMNS:
        value = getattr(line, column)
        currency = line.erp_currency if column == "erp_amount" else line.currency
        out[column] = _text(value, currency) if isinstance(value, Decimal) else value
    return out


def report_dict(report: ReconReport) -> dict[str, Any]:
    """The report as plain JSON-ready data (amounts as decimal strings)."""
    return {
        "scope": report.scope,
        "period": {"start": report.start.isoformat(), "end": report.end.isoformat()},
        "run_id": report.run_id,
        "generated_at": report.generated_at.isoformat(),
        "read_at": report.read_at.isoformat(),
        "matched": report.matched_count,
        "matched_amounts": {c: _text(a, c) for c, a in report.matched_amounts},
        "within_tolerance": report.within_tolerance,
        "timing_differences": report.timing_differences,
        "in_transit_without_case": report.in_transit_without_case,
        "open_cases": report.open_cases,
        "signoff": report.signoff,
        "reconciliations": [
            {
                "name": s.name,
                "source_count": s.source_count,
                "erp_count": s.erp_count,
                "matched": s.matched_count,
                "matched_amounts": {c: _text(a, c) for c, a in s.matched_amounts},
                "variances": s.variance_count,
                "within_tolerance": s.within_tolerance,
            }
            for s in report.summaries
        ],
        "categories": [
            {
                "reconciliation": c.reconciliation,
                "kind": c.kind,
                "count": c.count,
                "within_tolerance": c.within_tolerance,
                "amounts": {cur: _text(a, cur) for cur, a in c.amounts},
                "amount_basis": c.amount_basis,
            }
            for c in report.categories
        ],
        "aging": dict(report.aging),
        "variances": [_line_dict(line) for line in report.lines],
        "trend": [
            {
                "run_id": p.run_id,
                "scope": p.scope,
                "period_start": p.period_start.isoformat(),
                "started_at": p.started_at.isoformat(),
                "variances": p.variance_count,
                "within_tolerance": p.within_tolerance_count,
                "open_cases": p.open_cases,
            }
            for p in report.trend
        ],
    }


def render_json(report: ReconReport) -> bytes:
    return (json.dumps(report_dict(report), indent=2) + "\n").encode()


def render_csv(report: ReconReport) -> bytes:
    """The drill-down lines, one row per variance (the summary is in the other formats)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for line in report.lines:
        writer.writerow(_line_dict(line))
    return buffer.getvalue().encode()


def _excel_number(value: Decimal | None) -> float | None:
    # Excel cells hold IEEE doubles: this is the one place revbridge turns money into a float,
    # for finance to sum and filter in Excel. The exact amounts are in the JSON and CSV.
    return None if value is None else float(value)


def _money_format(currency: str | None) -> str:
    """The currency's decimals (JPY none, BHD three) with thousands separators and the ISO code
    as a literal suffix."""
    places = MINOR_UNITS.get(currency or "", 2)
    number = "#,##0" + ("." + "0" * places if places else "")
    return f'{number} "{currency}"' if currency else number


def render_xlsx(report: ReconReport) -> bytes:
    """A workbook: a summary sheet, then one sheet per reconciliation with its lines."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    bold = Font(bold=True)
    book = Workbook()
    summary = book.active
    summary.title = "Summary"
    summary.append(["Reconciliation", f"{report.scope} {report.start} to {report.end} (excl.)"])
    summary.append(["Run", report.run_id])
    summary.append(["Read at", report.read_at.isoformat()])
    summary.append(["Open cases", report.open_cases])
    summary.append(["Timing differences (hub still delivering)", report.timing_differences])
    summary.append(["Sign-off", report.signoff or "not signed off"])
    summary.append([])
    # The amount here is what matched, as the HTML page's "matched amount": a bare "amount"
    # beside "variances" read as the size of the variances.
    header = [
        "reconciliation", "matched", "variances", "within tolerance", "currency",
        "matched amount",
    ]  # fmt: skip
    summary.append(header)
    for cell in summary[summary.max_row]:
        cell.font = bold
    for s in report.summaries:
        amounts = s.matched_amounts or (("", Decimal(0)),)
        for currency, amount in amounts:
            summary.append(
                [s.name, s.matched_count, s.variance_count, s.within_tolerance, currency,
                 _excel_number(amount)]
            )  # fmt: skip
            summary.cell(summary.max_row, 6).number_format = _money_format(currency)
    summary.append([])
    summary.append(
        ["reconciliation", "kind", "count", "within tolerance", "currency", "amount", "amount is"]
    )
    for cell in summary[summary.max_row]:
        cell.font = bold
    for c in report.categories:
        for currency, amount in c.amounts or (("", Decimal(0)),):
            summary.append(
                [c.reconciliation, c.kind, c.count, c.within_tolerance, currency,
                 _excel_number(amount), c.amount_basis]
            )  # fmt: skip
            summary.cell(summary.max_row, 6).number_format = _money_format(currency)
    summary.append([])
    summary.append(["aging (days open)", "open cases"])
    for label, n in report.aging:
        summary.append([label, n])

    money_columns = {"source_amount", "erp_amount", "difference"}
    for s in report.summaries:
        sheet = book.create_sheet(s.name)
        sheet.append(list(CSV_COLUMNS))
        for cell in sheet[1]:
            cell.font = bold
        for line in (line for line in report.lines if line.reconciliation == s.name):
            row = [
                _excel_number(getattr(line, c)) if c in money_columns else getattr(line, c)
                for c in CSV_COLUMNS
            ]
            sheet.append(row)
            for i, column in enumerate(CSV_COLUMNS, start=1):
                if column in money_columns:
                    side = line.erp_currency if column == "erp_amount" else line.currency
                    sheet.cell(sheet.max_row, i).number_format = _money_format(side)
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def render_html(report: ReconReport) -> bytes:
    """A self-contained page: inline CSS and SVG, no script, no external resource."""
    env = Environment(
        loader=PackageLoader("revbridge.recon.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["amount"] = lambda v, currency=None: (
        "" if v is None else format(at_scale(v, currency), ",f")
    )
    page = env.get_template("report.html.j2").render(
        report=report,
        trend_svg=trend_chart(report.trend),
        aging_svg=aging_chart(report.aging),
    )
    return page.encode()


def render(report: ReconReport, fmt: str) -> bytes:
    """The report in ``fmt`` (``html``, ``csv``, ``xlsx``, ``json``)."""
    renderers = {
        "html": render_html,
        "csv": render_csv,
        "xlsx": render_xlsx,
        "json": render_json,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown report format {fmt!r}; one of {FORMATS}")
    return renderers[fmt](report)
