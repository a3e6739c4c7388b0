"""Revenue against the GL: planted entry variances are found, and the control totals per
period and account agree with a plain sum of both sides' lines."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revbridge.engine.ports import JournalDocument, JournalLineRow
from revbridge.recon.match import FindingKind, ReconResult
from revbridge.recon.period import reconcile_store
from tests.unit.recon.sides import Document, store_of

OCTOBER = {"start": date(2026, 10, 1), "end": date(2026, 11, 1)}
DEFERRED, REVENUE = "2400 Deferred Revenue", "4000 Subscription Revenue"
PLANTABLE = [
    FindingKind.MISSING_IN_ERP,
    FindingKind.MISSING_IN_SOURCE,
    FindingKind.DUPLICATE_IN_ERP,
    FindingKind.AMOUNT,
    FindingKind.CURRENCY,
    FindingKind.DATE,
    FindingKind.CUSTOMER,
    FindingKind.PERIOD,
    None,
]
fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _entry(ref: str, amount: Decimal, currency: str, day: int) -> JournalDocument:
    return JournalDocument(
        key=f"k-{ref}",
        ref=ref,
        doc_type="revenue",
        customer_ref="001A",
        currency=currency,
        period="2026-10",
        doc_date=date(2026, 10, 1) + timedelta(days=day),
        lines=(
            JournalLineRow(account=DEFERRED, debit=amount, credit=Decimal(0)),
            JournalLineRow(account=REVENUE, debit=Decimal(0), credit=amount),
        ),
    )


entries = st.lists(
    st.builds(
        _entry,
        ref=st.uuids().map(lambda u: u.hex[:12]),
        amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2),
        currency=st.sampled_from(["USD", "EUR"]),
        day=st.integers(min_value=0, max_value=25),
    ),
    max_size=20,
    unique_by=lambda e: e.ref,
)


def _journal(e: JournalDocument, **changes: object) -> JournalDocument:
    return dataclasses.replace(e, key=f"gl-{e.key}", doc_type="journal", **changes)  # type: ignore[arg-type]


def _scaled(e: JournalDocument, factor: Decimal) -> tuple[JournalLineRow, ...]:
    return tuple(
        dataclasses.replace(x, debit=x.debit * factor, credit=x.credit * factor) for x in e.lines
    )


def _revenue(sf: list[Document], erp: list[Document]) -> ReconResult:
    with store_of(sf, erp) as store:
        return dict(reconcile_store(store.con, **OCTOBER))["revenue"]


def _control_totals(sf: list[Document], erp: list[Document]) -> set[str]:
    """The oracle: each (period, account, currency) whose net differs, summed in Python."""
    nets: defaultdict[tuple[str, str, str], list[Decimal]] = defaultdict(
        lambda: [Decimal(0), Decimal(0)]
    )
    accounts = {x.account for d in sf if isinstance(d, JournalDocument) for x in d.lines}
    for side, docs in enumerate((sf, erp)):
        for d in docs:
            assert isinstance(d, JournalDocument)
            if not (OCTOBER["start"] <= d.doc_date < OCTOBER["end"]):
                continue
            for x in d.lines:
                if x.account in accounts:
                    nets[(d.period, x.account, d.currency)][side] += x.debit - x.credit
    return {f"{p}|{a}|{c}" for (p, a, c), (s, e) in nets.items() if s != e}


def _plant(
    e: JournalDocument, kind: FindingKind | None, sf: list[Document], erp: list[Document]
) -> None:
    j = _journal(e)
    if kind is FindingKind.AMOUNT:
        j = _journal(e, lines=_scaled(e, Decimal(2)))
    elif kind is FindingKind.CURRENCY:
        j = _journal(e, currency="GBP")
    elif kind is FindingKind.DATE:
        j = _journal(e, doc_date=e.doc_date + timedelta(days=1))
    elif kind is FindingKind.CUSTOMER:
        j = _journal(e, customer_ref="001Z")
    elif kind is FindingKind.PERIOD:
        j = _journal(e, period="2026-11")
    if kind is not FindingKind.MISSING_IN_SOURCE:
        sf.append(e)
    if kind is not FindingKind.MISSING_IN_ERP:
        erp.append(j)
    if kind is FindingKind.DUPLICATE_IN_ERP:
        erp.append(dataclasses.replace(j, key=f"{j.key}-again"))


@fast
@given(entries)
def test_identical_sides_have_no_variance(plain: list[JournalDocument]) -> None:
    """Every entry has its journal and every control total agrees."""
    sf: list[Document] = []
    erp: list[Document] = []
    for e in plain:
        _plant(e, None, sf, erp)
    result = _revenue(sf, erp)
    assert result.findings == ()
    assert result.matched_count == len(plain)


@fast
@given(entries, st.data())
def test_every_planted_variance_is_found_and_none_invented(
    plain: list[JournalDocument], data: st.DataObject
) -> None:
    """Per entry, exactly the planted kinds; per period and account, exactly the control
    totals a plain sum says differ."""
    sf: list[Document] = []
    erp: list[Document] = []
    planted: set[tuple[FindingKind, str]] = set()
    for e in plain:
        kind = data.draw(st.sampled_from(PLANTABLE))
        _plant(e, kind, sf, erp)
        if kind is not None:
            planted.add((kind, e.ref))
    result = _revenue(sf, erp)
    per_entry = {
        (f.kind, f.ref) for f in result.findings if f.kind is not FindingKind.CONTROL_TOTAL
    }
    totals = {f.ref for f in result.findings if f.kind is FindingKind.CONTROL_TOTAL}
    assert per_entry == planted
    assert totals == _control_totals(sf, erp)
    assert all(f.subject_prefixes == () for f in result.findings if f.ref in totals)


def test_a_manual_journal_in_a_revenue_account_moves_only_the_control_total() -> None:
    """A journal entered by hand in the ERP is no entry's, but it changes the period's total."""
    entry = _entry("a0R1", Decimal("100.00"), "USD", 3)
    manual = dataclasses.replace(
        _journal(entry), key="gl-manual", ref="erp:gl-manual", lines=_scaled(entry, Decimal("0.5"))
    )
    result = _revenue([entry], [_journal(entry), manual])
    assert {(f.kind, f.ref, f.difference) for f in result.findings} == {
        (FindingKind.CONTROL_TOTAL, f"2026-10|{DEFERRED}|USD", Decimal("50.00")),
        (FindingKind.CONTROL_TOTAL, f"2026-10|{REVENUE}|USD", Decimal("-50.00")),
    }
    assert result.matched_count == 1


def test_the_control_total_amount_is_the_unposted_revenue_once_not_both_legs() -> None:
    """Two entries (51,900.00 and 73.25 EUR) missing in the ERP: each account's control total
    differs by the whole amount (deferred revenue -, revenue +), and the report's control
    total amount is the unposted revenue, 51,973.25 EUR, as large as the missing entries' own
    category, not twice it; the JSON says the same, and the run's stored variance counts the
    gap once, not once per view."""
    from revbridge.recon.hub_state import FindingWithHubState, HubState
    from revbridge.recon.period import PeriodRecon, Reconciliation
    from revbridge.recon.report.model import build_report
    from revbridge.recon.report.render import report_dict
    from revbridge.services.recon import _run_amounts

    sf: list[Document] = [
        _entry("a0R1", Decimal("51900.00"), "EUR", 3),
        _entry("a0R2", Decimal("73.25"), "EUR", 4),
    ]
    result = _revenue(sf, [])
    hub = HubState(state="dead_letter")
    recon = PeriodRecon(
        scope="monthly",
        start=OCTOBER["start"],
        end=OCTOBER["end"],
        reconciliations=(
            Reconciliation(
                name="revenue",
                result=result,
                findings=tuple(FindingWithHubState(finding=f, hub=hub) for f in result.findings),
            ),
        ),
        read_at=datetime(2026, 11, 1, 3, tzinfo=UTC),
    )
    report = build_report(recon, cases={}, open_case_ages=[], trend=[], generated_at=recon.read_at)
    by_kind = {c.kind: c for c in report.categories}
    assert by_kind["control_total"].count == 2
    assert by_kind["control_total"].amounts == (("EUR", Decimal("51973.25")),)
    assert by_kind["missing_in_erp"].amounts == (("EUR", Decimal("51973.25")),)
    assert "one leg" in by_kind["control_total"].amount_basis
    data = {c["kind"]: c for c in report_dict(report)["categories"]}
    assert data["control_total"]["amounts"] == {"EUR": "51973.25"}
    assert data["control_total"]["amount_basis"] == by_kind["control_total"].amount_basis
    # The run's variance: the gap once (the entries and the control totals are two views).
    variance = _run_amounts(recon)["variance"]
    assert {c: Decimal(a) for c, a in variance.items()} == {"EUR": Decimal("51973.25")}


def test_the_run_variance_counts_each_revenue_gap_once_whichever_view_sees_more() -> None:
    """An entry of 100.00 USD missing in the ERP is 100.00 in the entries and 100.00 in the
    control totals: the run's variance is 100.00, not 200.00. A hand journal of 40.00 EUR
    (no entry of its own) only the control totals see: 40.00. An invoice missing in AR adds
    its own 30.00 USD."""
    from revbridge.recon.hub_state import FindingWithHubState, HubState
    from revbridge.recon.match import Finding
    from revbridge.recon.period import PeriodRecon, Reconciliation
    from revbridge.services.recon import _run_amounts

    usd, eur = _entry("a0R1", Decimal("100.00"), "USD", 3), _entry("a0R2", Decimal("80"), "EUR", 4)
    manual = dataclasses.replace(
        _journal(eur), key="gl-manual", ref="erp:gl-manual", lines=_scaled(eur, Decimal("0.5"))
    )
    revenue = _revenue([usd, eur], [_journal(eur), manual])
    invoice = Finding(kind=FindingKind.MISSING_IN_ERP, ref="a0X1", doc_type="invoice",
                      currency="USD", source_amount=Decimal("30.00"), erp_amount=None,
                      difference=Decimal("-30.00"), within_tolerance=False, source_value=None,
                      erp_value=None)  # fmt: skip
    ar = ReconResult(source_count=1, erp_count=0, findings=(invoice,), matched=())
    hub = HubState(state="dead_letter")
    recon = PeriodRecon(
        scope="monthly",
        start=OCTOBER["start"],
        end=OCTOBER["end"],
        reconciliations=tuple(
            Reconciliation(
                name=name,
                result=result,
                findings=tuple(FindingWithHubState(finding=f, hub=hub) for f in result.findings),
            )
            for name, result in (("ar", ar), ("revenue", revenue))
        ),
        read_at=datetime(2026, 11, 1, 3, tzinfo=UTC),
    )
    variance = _run_amounts(recon)["variance"]
    assert {c: Decimal(a) for c, a in variance.items()} == {
        "EUR": Decimal("40"),
        "USD": Decimal("130.00"),
    }


def test_the_run_variance_counts_a_document_that_differs_in_several_ways_once() -> None:
    """An invoice whose amount and date both differ is two findings, each carrying the
    document's gap of 25.00 USD: the run's variance is 25.00, not 50.00. A second invoice
    differing only in its status adds its own 10.00."""
    from revbridge.recon.hub_state import FindingWithHubState, HubState
    from revbridge.recon.match import Finding
    from revbridge.recon.period import PeriodRecon, Reconciliation
    from revbridge.services.recon import _run_amounts

    def finding(kind: FindingKind, ref: str, difference: str) -> Finding:
        return Finding(kind=kind, ref=ref, doc_type="invoice", currency="USD",
                       source_amount=Decimal("100.00"), erp_amount=Decimal("100.00")
                       + Decimal(difference), difference=Decimal(difference),
                       within_tolerance=False, source_value=None, erp_value=None)  # fmt: skip

    findings = (
        finding(FindingKind.AMOUNT, "a0X1", "25.00"),
        finding(FindingKind.DATE, "a0X1", "25.00"),
        finding(FindingKind.STATUS, "a0X2", "-10.00"),
    )
    ar = ReconResult(source_count=2, erp_count=2, findings=findings, matched=())
    recon = PeriodRecon(
        scope="nightly",
        start=date(2026, 10, 31),
        end=date(2026, 11, 1),
        reconciliations=(
            Reconciliation(
                name="ar",
                result=ar,
                findings=tuple(
                    FindingWithHubState(finding=f, hub=HubState(state="delivered"))
                    for f in findings
                ),
            ),
        ),
        read_at=datetime(2026, 11, 1, 2, tzinfo=UTC),
    )
    variance = _run_amounts(recon)["variance"]
    assert {c: Decimal(a) for c, a in variance.items()} == {"USD": Decimal("35.00")}
