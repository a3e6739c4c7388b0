"""Each reconciliation has its own thresholds, and each side's statuses are mapped."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import duckdb
import pytest

from revbridge.recon.match import DEFAULT_STATUS_MAP, FindingKind, StatusMap, reconcile_ar
from revbridge.recon.thresholds import (
    DEFAULT_THRESHOLDS,
    DEFAULT_THRESHOLDS_BY_RECONCILIATION,
    AmountTolerance,
    parse_thresholds,
)
from tests.unit.recon.ar import Doc, relation


def test_configured_thresholds_override_only_what_they_name() -> None:
    """A configured payments table changes payments alone; AR and revenue keep defaults."""
    chosen = parse_thresholds(
        {
            "payments": {
                "absolute": "0.01",
                "date_days": 5,
                "per_currency": {"JPY": {"absolute": 1}},
            }
        }
    )
    assert chosen.ar == DEFAULT_THRESHOLDS
    assert chosen.revenue == DEFAULT_THRESHOLDS
    assert chosen.payments.amount == AmountTolerance(absolute=Decimal("0.01"))
    assert chosen.payments.date_days == 5
    assert chosen.payments.for_currency("JPY") == AmountTolerance(absolute=Decimal("1"))
    assert DEFAULT_THRESHOLDS_BY_RECONCILIATION.payments.date_days == 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"gl": {}}, "unknown reconciliation"),
        ({"ar": {"tolerance": "1"}}, "unknown key"),
        ({"ar": {"absolute": "-1"}}, "non-negative"),
        ({"ar": {"date_days": "2"}}, "integer"),
    ],
)
def test_a_bad_threshold_table_is_refused(spec: dict[str, object], message: str) -> None:
    """A typo or a negative tolerance in the configuration fails loudly, naming the key."""
    with pytest.raises(ValueError, match=message):
        parse_thresholds(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"gl": {}}, "recon.thresholds: unknown reconciliation 'gl'"),
        ({"gl": {}, "ap": {}}, "recon.thresholds: unknown reconciliations 'ap', 'gl'"),
        ({"ar": {"tolerance": "1"}}, "recon.thresholds.ar: unknown key 'tolerance'"),
        ({"ar": {"tol": "1", "days": 2}}, "recon.thresholds.ar: unknown keys 'days', 'tol'"),
        (
            {"ar": {"per_currency": {"JPY": {"abs": "1"}}}},
            "unknown key 'abs'",
        ),
    ],
)
def test_an_unknown_name_is_refused_in_its_number(spec: dict[str, object], message: str) -> None:
    """One unknown name is "key", two are "keys": never "key(s)"."""
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        parse_thresholds(spec)


def test_ar_records_without_a_column_are_refused_naming_it() -> None:
    con = duckdb.connect()
    try:
        source = con.sql("SELECT 'a1' AS ref")
        erp = relation(con, "e", [])
        lacking = "doc_type, customer_ref, currency, amount, doc_date, status; they have ref"
        with pytest.raises(ValueError, match=f"^AR records lack the columns {lacking}$"):
            reconcile_ar(source, erp, connection=con)
    finally:
        con.close()


def _ar(source: list[Doc], erp: list[Doc], status_map: StatusMap | None) -> set[tuple[str, str]]:
    con = duckdb.connect()
    try:
        result = reconcile_ar(
            relation(con, "s", source),
            relation(con, "e", erp),
            connection=con,
            status_map=status_map,
        )
    finally:
        con.close()
    return {(f.kind.value, f.ref) for f in result.findings}


def test_statuses_are_compared_in_one_vocabulary() -> None:
    """Salesforce's 'Paid' and NetSuite's 'paid_in_full' agree; 'Partially Paid' and 'paid'
    do not; an unknown status is compared as it is."""
    doc = Doc(ref="a0X1", amount=Decimal("10"), doc_date=date(2026, 10, 3))
    pairs = [
        ("a0X1", "Paid", "paid_in_full"),
        ("a0X2", "Partially Paid", "paid"),
        ("a0X3", "Unpaid", "open"),
        ("a0X4", "Disputed", "open"),
    ]
    source = [doc.but(ref=r, status=s) for r, s, _ in pairs]
    erp = [doc.but(ref=r, status=e) for r, _, e in pairs]
    assert _ar(source, erp, DEFAULT_STATUS_MAP) == {("status", "a0X2"), ("status", "a0X4")}
    assert len(_ar(source, erp, None)) == 4


def test_an_applied_credit_memo_agrees_with_a_posted_credit_note() -> None:
    """Salesforce keeps a credit note Posted once applied while the ERP marks it paid: no
    variance; the same pair of statuses on an invoice, or a cancelled credit memo, is one."""
    memo = Doc(ref="a0Y1", doc_type="credit_memo", amount=Decimal("-10"))
    invoice = Doc(ref="a0Y2", amount=Decimal("10"))
    cancelled = memo.but(ref="a0Y3")
    source = [
        memo.but(status="Posted"),
        invoice.but(status="Posted"),
        cancelled.but(status="Posted"),
    ]
    erp = [memo.but(status="paid"), invoice.but(status="paid"), cancelled.but(status="cancelled")]
    assert _ar(source, erp, DEFAULT_STATUS_MAP) == {("status", "a0Y2"), ("status", "a0Y3")}


def test_an_invoice_booked_as_a_credit_memo_is_a_doc_type_finding() -> None:
    """The same ref as an invoice in Salesforce and a credit memo in the ERP is reported."""
    doc = Doc(ref="a0X1", amount=Decimal("10"))
    assert _ar([doc], [doc.but(doc_type="credit_memo")], None) == {
        (FindingKind.DOC_TYPE.value, "a0X1")
    }
