"""Payments both ways: every planted variance is found, none is invented."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revbridge.engine.ports import ArDocument, PaymentDocument
from revbridge.recon.match import FindingKind, ReconResult
from revbridge.recon.period import reconcile_store
from revbridge.recon.thresholds import (
    AmountTolerance,
    ReconThresholds,
    ThresholdsByReconciliation,
)
from tests.unit.recon.sides import Document, store_of

OCTOBER = {"start": date(2026, 10, 1), "end": date(2026, 11, 1)}
PLANTABLE = [
    FindingKind.MISSING_IN_ERP,
    FindingKind.MISSING_IN_SOURCE,
    FindingKind.DUPLICATE_IN_ERP,
    FindingKind.DUPLICATE_IN_SOURCE,
    FindingKind.AMOUNT,
    FindingKind.CURRENCY,
    FindingKind.DATE,
    FindingKind.CUSTOMER,
    FindingKind.APPLICATION,
    FindingKind.BALANCE,
    None,
]
fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

payments = st.lists(
    st.builds(
        lambda ref, amount, origin, currency, day: PaymentDocument(
            key=f"k-{ref}",
            ref=ref,
            origin=origin,
            customer_ref="001A",
            currency=currency,
            amount=amount,
            doc_date=date(2026, 10, 1) + timedelta(days=day),
            applications=((f"inv-{ref}", amount),),
        ),
        ref=st.uuids().map(lambda u: u.hex[:12]),
        amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999.99"), places=2),
        origin=st.sampled_from(["salesforce", "erp"]),
        currency=st.sampled_from(["USD", "EUR", "JPY"]),
        day=st.integers(min_value=0, max_value=20),
    ),
    max_size=25,
    unique_by=lambda p: p.ref,
)


def _invoice(p: PaymentDocument, balance: Decimal = Decimal("100.00")) -> ArDocument:
    return ArDocument(
        key=f"k-inv-{p.ref}",
        ref=f"inv-{p.ref}",
        doc_type="invoice",
        customer_ref="001A",
        currency=p.currency,
        amount=p.amount + balance,
        doc_date=date(2026, 9, 15),
        status="open",
        balance=balance,
    )


def _payments(sf: list[Document], erp: list[Document]) -> ReconResult:
    with store_of(sf, erp) as store:
        return dict(reconcile_store(store.con, **OCTOBER))["payments"]


def _plant(
    p: PaymentDocument, kind: FindingKind | None, sf: list[Document], erp: list[Document]
) -> str:
    """Put ``p`` (and the invoice it pays) on both sides with one variance of ``kind``."""
    e, invoice, ref = p, _invoice(p), p.ref
    if kind is FindingKind.AMOUNT:
        e = dataclasses.replace(p, amount=p.amount + Decimal("0.01"))
    elif kind is FindingKind.CURRENCY:
        e = dataclasses.replace(p, currency="GBP")
    elif kind is FindingKind.DATE:
        e = dataclasses.replace(p, doc_date=p.doc_date + timedelta(days=4))
    elif kind is FindingKind.CUSTOMER:
        e = dataclasses.replace(p, customer_ref="001Z")
    elif kind is FindingKind.APPLICATION:
        e = dataclasses.replace(p, applications=((f"inv-{p.ref}", p.amount - Decimal("0.01")),))
    sf.append(invoice)
    if kind is FindingKind.BALANCE:
        erp.append(_invoice(p, balance=Decimal("99.99")))
        ref = invoice.ref
    else:
        erp.append(invoice)
    if kind is not FindingKind.MISSING_IN_SOURCE:
        sf.append(p)
    if kind is not FindingKind.MISSING_IN_ERP:
        erp.append(e)
    if kind is FindingKind.DUPLICATE_IN_SOURCE:
        sf.append(dataclasses.replace(p, key=f"{p.key}-again"))
    if kind is FindingKind.DUPLICATE_IN_ERP:
        erp.append(dataclasses.replace(e, key=f"{e.key}-again"))
    return ref


@fast
@given(payments)
def test_identical_sides_have_no_variance(plain: list[PaymentDocument]) -> None:
    """The same payments, applications and balances on both sides all match."""
    sf: list[Document] = []
    erp: list[Document] = []
    for p in plain:
        _plant(p, None, sf, erp)
    result = _payments(sf, list(reversed(erp)))
    assert result.findings == ()
    assert result.matched_count == len(plain)
    for total in result.matched:
        expected = sum(p.amount for p in plain if p.currency == total.currency)
        assert total.source_amount == total.erp_amount == expected


@fast
@given(payments, st.data())
def test_every_planted_variance_is_found_and_none_invented(
    plain: list[PaymentDocument], data: st.DataObject
) -> None:
    """Each payment carries at most one planted variance; the findings are exactly those."""
    sf: list[Document] = []
    erp: list[Document] = []
    planted: set[tuple[FindingKind, str]] = set()
    for p in plain:
        kind = data.draw(st.sampled_from(PLANTABLE))
        ref = _plant(p, kind, sf, erp)
        if kind is not None:
            planted.add((kind, ref))
    result = _payments(sf, erp)
    assert {(f.kind, f.ref) for f in result.findings} == planted
    assert all(not f.within_tolerance for f in result.findings)
    # A balance variance is the invoice's: its payment still matches.
    broken = {ref for kind, ref in planted if kind is not FindingKind.BALANCE}
    assert result.matched_count == sum(1 for p in plain if p.ref not in broken)


def test_an_application_variance_shows_both_listings() -> None:
    """The finding lists the invoices and amounts each side applied the payment to."""
    p = PaymentDocument(
        key="k1",
        ref="a0P1",
        origin="salesforce",
        customer_ref="001A",
        currency="USD",
        amount=Decimal("150.00"),
        doc_date=date(2026, 10, 5),
        applications=(("inv-a", Decimal("100.00")), ("inv-b", Decimal("50.00"))),
    )
    e = dataclasses.replace(p, applications=(("inv-a", Decimal("150.00")),))
    (finding,) = _payments([p], [e]).findings
    assert finding.kind is FindingKind.APPLICATION
    assert finding.source_value == "inv-a=100.0000;inv-b=50.0000"
    assert finding.erp_value == "inv-a=150.0000"
    assert finding.subject_refs == ("payment:a0P1", "erp_payment:a0P1")


def test_payment_dates_within_the_payments_threshold_are_tolerated() -> None:
    """A cash receipt booked two days after the Salesforce payment is within tolerance by
    default; a per-currency amount tolerance applies to payments only."""
    p = PaymentDocument(
        key="k1",
        ref="a0P1",
        origin="salesforce",
        customer_ref="001A",
        currency="JPY",
        amount=Decimal("1000"),
        doc_date=date(2026, 10, 5),
    )
    e = dataclasses.replace(p, doc_date=date(2026, 10, 7), amount=Decimal("1001"))
    thresholds = ThresholdsByReconciliation(
        payments=ReconThresholds(
            date_days=3, per_currency=(("JPY", AmountTolerance(absolute=Decimal("1"))),)
        )
    )
    with store_of([p], [e]) as store:
        results = dict(reconcile_store(store.con, thresholds=thresholds, **OCTOBER))
    kinds = {(f.kind, f.within_tolerance) for f in results["payments"].findings}
    assert kinds == {(FindingKind.DATE, True), (FindingKind.AMOUNT, True)}
    assert results["payments"].matched_count == 1
