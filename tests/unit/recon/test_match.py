"""AR matching in DuckDB: every planted variance is found, none is invented."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revbridge.recon.match import FindingKind, reconcile_ar
from revbridge.recon.thresholds import (
    AmountTolerance,
    ReconThresholds,
    Verdict,
    judge_amount,
)
from tests.unit.recon.ar import Doc, relation

amounts = st.decimals(
    min_value=Decimal("-99999999.9999"), max_value=Decimal("99999999.9999"), places=4
)
docs = st.lists(
    st.builds(
        Doc,
        ref=st.uuids().map(lambda u: u.hex[:18]),
        amount=amounts,
        doc_type=st.sampled_from(["invoice", "credit_memo"]),
        customer_ref=st.sampled_from(["001A", "001B", "001C"]),
        currency=st.sampled_from(["USD", "EUR", "JPY"]),
        status=st.sampled_from(["posted", "paid"]),
    ),
    max_size=30,
    unique_by=lambda d: d.ref,
)
# The kinds a document match can plant (payments and revenue have kinds of their own).
AR_KINDS = [
    k
    for k in FindingKind
    if k
    not in (
        FindingKind.APPLICATION,
        FindingKind.BALANCE,
        FindingKind.PERIOD,
        FindingKind.CONTROL_TOTAL,
    )
]
KINDS = [*AR_KINDS, None]
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _reconcile(source: list[Doc], erp: list[Doc], thresholds: ReconThresholds | None = None):  # type: ignore[no-untyped-def]
    con = duckdb.connect()
    try:
        args = (relation(con, "s", source), relation(con, "e", erp))
        if thresholds is None:
            return reconcile_ar(*args, connection=con)
        return reconcile_ar(*args, thresholds, connection=con)
    finally:
        con.close()


@fast
@given(docs)
def test_identical_sides_have_no_variance(source: list[Doc]) -> None:
    """The same documents on both sides all match, in count and amount per currency."""
    result = _reconcile(source, list(reversed(source)))
    assert result.findings == ()
    assert result.matched_count == len(source)
    for total in result.matched:
        expected = sum(d.amount for d in source if d.currency == total.currency)
        assert total.source_amount == total.erp_amount == expected


def _plant(doc: Doc, kind: FindingKind | None, source: list[Doc], erp: list[Doc]) -> None:
    """Put ``doc`` on both sides with one variance of ``kind`` (or none)."""
    s, e = doc, doc
    if kind is FindingKind.AMOUNT:
        e = doc.but(amount=doc.amount + Decimal("0.0001"))
    elif kind is FindingKind.CURRENCY:
        e = doc.but(currency="GBP")
    elif kind is FindingKind.DATE:
        e = doc.but(doc_date=doc.doc_date + timedelta(days=1))
    elif kind is FindingKind.CUSTOMER:
        e = doc.but(customer_ref="001Z")
    elif kind is FindingKind.STATUS:
        e = doc.but(status="void")
    elif kind is FindingKind.DOC_TYPE:
        e = doc.but(doc_type="credit_memo" if doc.doc_type == "invoice" else "invoice")
    if kind is not FindingKind.MISSING_IN_SOURCE:
        source.append(s)
    if kind is not FindingKind.MISSING_IN_ERP:
        erp.append(e)
    if kind is FindingKind.DUPLICATE_IN_SOURCE:
        source.append(s)
    if kind is FindingKind.DUPLICATE_IN_ERP:
        erp.append(e)


@fast
@given(docs, st.data())
def test_every_planted_variance_is_found_and_none_invented(
    plain: list[Doc], data: st.DataObject
) -> None:
    """Each document carries at most one planted variance; the findings are exactly those."""
    source: list[Doc] = []
    erp: list[Doc] = []
    planted: set[tuple[FindingKind, str]] = set()
    for doc in plain:
        kind = data.draw(st.sampled_from(KINDS))
        _plant(doc, kind, source, erp)
        if kind is not None:
            planted.add((kind, doc.ref))
    result = _reconcile(source, erp)
    assert {(f.kind, f.ref) for f in result.findings} == planted
    assert all(not f.within_tolerance for f in result.findings)
    assert result.matched_count == sum(1 for d in plain if (d.ref) not in {r for _, r in planted})


def test_findings_carry_exact_decimal_amounts_and_difference() -> None:
    """An amount variance reports both amounts and ERP minus Salesforce, as Decimals."""
    doc = Doc(ref="a0X1", amount=Decimal("100.10"))
    result = _reconcile([doc], [doc.but(amount=Decimal("100.07"))])
    (finding,) = result.findings
    assert finding.kind is FindingKind.AMOUNT
    assert (finding.source_amount, finding.erp_amount) == (Decimal("100.10"), Decimal("100.07"))
    assert finding.difference == Decimal("-0.03")
    assert isinstance(finding.difference, Decimal)
    assert finding.currency == "USD"


def test_missing_and_duplicates_report_side_totals() -> None:
    """A missing document reports its amount; a duplicate reports the copies and their total."""
    a, b = Doc(ref="a", amount=Decimal("5")), Doc(ref="b", amount=Decimal("7"))
    result = _reconcile([a, b], [b, b])
    by_kind = {f.kind: f for f in result.findings}
    assert set(by_kind) == {FindingKind.MISSING_IN_ERP, FindingKind.DUPLICATE_IN_ERP}
    assert by_kind[FindingKind.MISSING_IN_ERP].difference == Decimal("-5")
    dup = by_kind[FindingKind.DUPLICATE_IN_ERP]
    assert (dup.erp_copies, dup.erp_amount, dup.difference) == (2, Decimal("14"), Decimal("7"))


def test_within_tolerance_amounts_are_reported_and_still_match() -> None:
    """A cent inside a one-cent tolerance is a finding within tolerance and counts as matched."""
    doc = Doc(ref="a", amount=Decimal("10.00"))
    thresholds = ReconThresholds(amount=AmountTolerance(absolute=Decimal("0.01")))
    result = _reconcile([doc], [doc.but(amount=Decimal("10.01"))], thresholds)
    assert [f.within_tolerance for f in result.findings] == [True]
    assert result.cases == ()
    assert result.matched_count == 1


def test_date_tolerance_in_days() -> None:
    """A document dated within ``date_days`` is tolerated; beyond it is a case."""
    doc = Doc(ref="a", amount=Decimal("1"))
    erp = [doc.but(doc_date=doc.doc_date + timedelta(days=2))]
    assert _reconcile([doc], erp, ReconThresholds(date_days=2)).cases == ()
    assert len(_reconcile([doc], erp, ReconThresholds(date_days=1)).cases) == 1


@fast
@given(
    source=amounts,
    diff=st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=4),
    absolute=st.decimals(min_value=Decimal("0"), max_value=Decimal("10"), places=4),
    relative=st.decimals(min_value=Decimal("0"), max_value=Decimal("0.01"), places=6),
    per_currency=st.booleans(),
)
def test_sql_tolerance_agrees_with_the_pure_rule(
    source: Decimal, diff: Decimal, absolute: Decimal, relative: Decimal, per_currency: bool
) -> None:
    """The SQL decides within tolerance exactly as ``judge_amount`` does."""
    erp_amount = source + diff
    if diff == 0 or abs(erp_amount) > Decimal("99999999999999"):
        return
    tolerance = AmountTolerance(absolute=absolute, relative=relative)
    thresholds = (
        ReconThresholds(per_currency=(("USD", tolerance),))
        if per_currency
        else ReconThresholds(amount=tolerance)
    )
    doc = Doc(ref="a", amount=source)
    (finding,) = _reconcile([doc], [doc.but(amount=erp_amount)], thresholds).findings
    expected = judge_amount(diff, source, tolerance) is Verdict.WITHIN_TOLERANCE
    assert finding.within_tolerance is expected


def test_parquet_paths_and_arrow_tables_are_inputs(tmp_path: Path) -> None:
    """Parquet files on disk reconcile as the same documents in memory do."""
    con = duckdb.connect()
    doc = Doc(ref="a", amount=Decimal("3.50"))
    relation(con, "s", [doc]).write_parquet(str(tmp_path / "s.parquet"))
    relation(con, "e", [doc.but(status="paid")]).write_parquet(str(tmp_path / "e.parquet"))
    result = reconcile_ar(tmp_path / "s.parquet", str(tmp_path / "e.parquet"))
    assert [(f.kind, f.source_value, f.erp_value) for f in result.findings] == [
        (FindingKind.STATUS, "posted", "paid")
    ]
    arrow = con.table("s").to_arrow_table()
    assert reconcile_ar(arrow, arrow).matched_count == 1


def test_float_amounts_are_refused() -> None:
    """Money is never a float: a DOUBLE amount column is an error, not a silent rounding."""
    con = duckdb.connect()
    rel = con.sql(
        "SELECT 'a' AS ref, 'invoice' AS doc_type, 'c' AS customer_ref, 'USD' AS currency, "
        "1.1::DOUBLE AS amount, DATE '2026-01-01' AS doc_date, 'posted' AS status"
    )
    with pytest.raises(TypeError, match="never a float"):
        reconcile_ar(rel, rel, connection=con)


def test_a_missing_column_is_named() -> None:
    """An input without the AR columns is refused with the columns it lacks."""
    con = duckdb.connect()
    rel = con.sql("SELECT 'a' AS ref")
    with pytest.raises(ValueError, match="doc_type"):
        reconcile_ar(rel, rel, connection=con)


def test_relations_of_the_default_connection_need_no_connection() -> None:
    """Relations made with ``duckdb.sql`` reconcile without naming a connection."""
    rel = duckdb.sql(
        "SELECT 'a' AS ref, 'invoice' AS doc_type, 'c' AS customer_ref, 'USD' AS currency, "
        "1.10::DECIMAL(18,4) AS amount, DATE '2026-01-01' AS doc_date, 'posted' AS status"
    )
    assert reconcile_ar(rel, rel).matched_count == 1


def test_a_relation_of_another_connection_is_refused() -> None:
    """A relation from a connection other than the one given is a clear error."""
    other, mine = duckdb.connect(), duckdb.connect()
    rel = relation(other, "s", [Doc(ref="a", amount=Decimal("1"))])
    with pytest.raises(ValueError, match="belong to the connection"):
        reconcile_ar(rel, rel, connection=mine)


def test_a_ref_duplicated_on_both_sides_is_reported_once_per_side() -> None:
    """Two copies on each side: one duplicate finding per side, with each side's total."""
    doc = Doc(ref="a", amount=Decimal("2.50"))
    result = _reconcile([doc, doc], [doc, doc.but(amount=Decimal("3"))])
    assert [(f.kind, f.source_amount, f.erp_amount, f.difference) for f in result.findings] == [
        (FindingKind.DUPLICATE_IN_ERP, Decimal("5"), Decimal("5.5"), Decimal("0.5")),
        (FindingKind.DUPLICATE_IN_SOURCE, Decimal("5"), Decimal("5.5"), Decimal("0.5")),
    ]
    assert result.matched == ()
