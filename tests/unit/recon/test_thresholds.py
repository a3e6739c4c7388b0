"""Variance thresholds: nothing tolerated by default; absolute, relative, per currency."""

from __future__ import annotations

from decimal import Decimal

import pytest

from revbridge.recon.thresholds import (
    DEFAULT_THRESHOLDS,
    AmountTolerance,
    ReconThresholds,
    Verdict,
    judge_amount,
    judge_date_days,
)


def test_by_default_any_cent_is_a_case() -> None:
    """On an AR document the default tolerance is zero: one cent off is a case."""
    tolerance = DEFAULT_THRESHOLDS.for_currency("USD")
    assert judge_amount(Decimal("0.01"), Decimal("100"), tolerance) is Verdict.CASE
    assert judge_amount(Decimal("0"), Decimal("100"), tolerance) is Verdict.WITHIN_TOLERANCE


def test_absolute_bound_is_inclusive_and_symmetric() -> None:
    """A difference equal to the absolute bound, either way, is tolerated; beyond it is not."""
    tolerance = AmountTolerance(absolute=Decimal("0.05"))
    assert judge_amount(Decimal("-0.05"), Decimal("1"), tolerance) is Verdict.WITHIN_TOLERANCE
    assert judge_amount(Decimal("0.05"), Decimal("1"), tolerance) is Verdict.WITHIN_TOLERANCE
    assert judge_amount(Decimal("0.0501"), Decimal("1"), tolerance) is Verdict.CASE


def test_relative_bound_is_a_fraction_of_the_salesforce_amount() -> None:
    """0.1 % of a 1,000.00 credit memo (negative) tolerates a 1.00 difference, not 1.01."""
    tolerance = AmountTolerance(relative=Decimal("0.001"))
    assert judge_amount(Decimal("1.00"), Decimal("-1000"), tolerance) is Verdict.WITHIN_TOLERANCE
    assert judge_amount(Decimal("1.01"), Decimal("-1000"), tolerance) is Verdict.CASE


def test_per_currency_overrides_the_default() -> None:
    """A JPY rule applies to JPY documents only."""
    yen = AmountTolerance(absolute=Decimal("1"))
    thresholds = ReconThresholds(per_currency=(("JPY", yen),))
    assert thresholds.for_currency("JPY") is yen
    assert thresholds.for_currency("USD") == AmountTolerance()


def test_date_tolerance() -> None:
    """Dates ``date_days`` apart, either way, are tolerated."""
    thresholds = ReconThresholds(date_days=3)
    assert judge_date_days(-3, thresholds) is Verdict.WITHIN_TOLERANCE
    assert judge_date_days(4, thresholds) is Verdict.CASE


@pytest.mark.parametrize(
    "make",
    [
        lambda: AmountTolerance(absolute=Decimal("-0.01")),
        lambda: AmountTolerance(relative=Decimal("NaN")),
        lambda: AmountTolerance(absolute=0.01),  # type: ignore[arg-type]
        lambda: AmountTolerance(relative=Decimal("0.00000000001")),
        lambda: ReconThresholds(date_days=-1),
        lambda: ReconThresholds(per_currency=(("USD", AmountTolerance()),) * 2),
    ],
)
def test_nonsense_thresholds_are_refused(make: object) -> None:
    """Negative, non-finite, float, over-precise or repeated thresholds are refused."""
    with pytest.raises(ValueError, match=r"must|decimal places|twice"):
        make()  # type: ignore[operator]
