"""Variance thresholds: when a difference between Salesforce and the ERP is tolerated.

A threshold is a value, like a ``RetryPolicy``: absolute (in the currency's units) and relative
(a fraction of the Salesforce amount). A difference is tolerated when it is no larger than
either bound. The defaults tolerate nothing: on an AR document any cent is a variance, and a
document dated one day off is a case for someone to look at.

Thresholds apply to the ``amount`` and ``date`` comparisons only. A missing or duplicated
document, a different currency, customer or status is always a case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class Verdict(StrEnum):
    """What becomes of a variance: tolerated, or a case for a person."""

    WITHIN_TOLERANCE = "within_tolerance"
    CASE = "case"


@dataclass(frozen=True, slots=True, kw_only=True)
class AmountTolerance:
    """How far an ERP amount may be from the Salesforce amount and still be tolerated.

    ``absolute`` is in the currency's units (``Decimal("0.01")`` is one cent); ``relative`` is a
    fraction of the Salesforce amount (``Decimal("0.001")`` is 0.1 %). Both default to zero.
    """

    absolute: Decimal = Decimal("0.00")
    relative: Decimal = Decimal("0")

    def __post_init__(self) -> None:
        for name in ("absolute", "relative"):
            value = getattr(self, name)
            if type(value) is not Decimal or not value.is_finite() or value < 0:
                raise ValueError(f"{name}: {value!r} must be a finite, non-negative Decimal")
            if value.as_tuple().exponent < -10:  # type: ignore[operator]
                # The SQL holds thresholds as DECIMAL(.., 10); finer would be rounded there.
                raise ValueError(f"{name}: {value} has more than 10 decimal places")


EXACT = AmountTolerance()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconThresholds:
    """The thresholds of one reconciliation: a default and per-currency overrides.

    ``per_currency`` holds ``(currency, tolerance)`` pairs, a tuple so the value stays hashable;
    ``date_days`` is how many days apart the two document dates may be.
    """

    amount: AmountTolerance = EXACT
    per_currency: tuple[tuple[str, AmountTolerance], ...] = field(default=())
    date_days: int = 0

    def __post_init__(self) -> None:
        currencies = [c for c, _ in self.per_currency]
        if len(set(currencies)) != len(currencies):
            raise ValueError(f"per_currency: a currency appears twice in {currencies}")
        if self.date_days < 0:
            raise ValueError(f"date_days: {self.date_days} must not be negative")

    def for_currency(self, currency: str) -> AmountTolerance:
        """The amount tolerance that applies to documents in ``currency``."""
        for code, tolerance in self.per_currency:
            if code == currency:
                return tolerance
        return self.amount


DEFAULT_THRESHOLDS = ReconThresholds()


def judge_amount(
    difference: Decimal, source_amount: Decimal, tolerance: AmountTolerance
) -> Verdict:
    """Tolerated when ``|difference|`` is within the absolute or the relative bound.

    The relative bound is taken of the Salesforce amount, the document of record. This is the
    rule the SQL of ``match.py`` applies to every row; tests hold the two to each other.
    """
    size = abs(difference)
    if size <= tolerance.absolute or size <= tolerance.relative * abs(source_amount):
        return Verdict.WITHIN_TOLERANCE
    return Verdict.CASE


def judge_date_days(days_apart: int, thresholds: ReconThresholds) -> Verdict:
    """Tolerated when the two document dates are at most ``date_days`` apart."""
    if abs(days_apart) <= thresholds.date_days:
        return Verdict.WITHIN_TOLERANCE
    return Verdict.CASE
