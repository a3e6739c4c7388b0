"""Variance thresholds: when a difference between Salesforce and the ERP is tolerated.

A threshold is a value, like a ``RetryPolicy``: absolute (in the currency's units) and relative
(a fraction of the Salesforce amount). A difference is tolerated when it is no larger than
either bound. The defaults tolerate nothing: on an AR document any cent is a variance, and a
document dated one day off is a case for someone to look at.

Thresholds apply to the ``amount`` and ``date`` comparisons only. A missing or duplicated
document, a different currency, customer or status is always a case.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from revbridge.core.wording import agreeing


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


RECONCILIATIONS = ("ar", "payments", "revenue")


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdsByReconciliation:
    """Each reconciliation's own thresholds.

    Defaults, and why:

    - ``ar``: exact (any cent, any day is a case): an invoice is the same document on both sides.
    - ``payments``: exact amounts, dates up to 3 days apart: the ERP books a cash receipt on
      its deposit date, which trails the Salesforce payment date over a weekend.
    - ``revenue``: exact, per entry and per control total: a journal is posted from the entry
      itself, so any difference is a break.
    """

    ar: ReconThresholds = DEFAULT_THRESHOLDS
    payments: ReconThresholds = ReconThresholds(date_days=3)
    revenue: ReconThresholds = DEFAULT_THRESHOLDS

    def of(self, reconciliation: str) -> ReconThresholds:
        if reconciliation not in RECONCILIATIONS:
            raise ValueError(f"unknown reconciliation {reconciliation!r}; known: {RECONCILIATIONS}")
        value: ReconThresholds = getattr(self, reconciliation)
        return value


DEFAULT_THRESHOLDS_BY_RECONCILIATION = ThresholdsByReconciliation()


def _unknown(names: Collection[object], noun: str) -> str:
    """ "unknown key 'x'", "unknown keys 'x', 'y'": what is refused, each name quoted."""
    return f"unknown {agreeing(len(names), noun)} {', '.join(sorted(map(repr, names)))}"


def _tolerance(spec: Mapping[str, object], where: str) -> AmountTolerance:
    unknown = set(spec) - {"absolute", "relative"}
    if unknown:
        raise ValueError(f"{where}: {_unknown(unknown, 'key')}")
    return AmountTolerance(
        **{k: Decimal(str(v)) for k, v in spec.items()}  # str(): a TOML float never rounds
    )


def parse_thresholds(spec: Mapping[str, object]) -> ThresholdsByReconciliation:
    """Thresholds from configuration (a ``[recon.thresholds]`` table), over the defaults.

    ``{"payments": {"absolute": "0.01", "relative": "0", "date_days": 3,
    "per_currency": {"JPY": {"absolute": "1"}}}}``: each reconciliation's table may give the
    default tolerance (``absolute``, ``relative``), ``date_days`` and ``per_currency``
    tolerances; what it leaves out keeps its default.
    """
    unknown = set(spec) - set(RECONCILIATIONS)
    if unknown:
        raise ValueError(f"recon.thresholds: {_unknown(unknown, 'reconciliation')}")
    chosen: dict[str, ReconThresholds] = {}
    for name, raw in spec.items():
        if not isinstance(raw, Mapping):
            raise ValueError(f"recon.thresholds.{name}: a table is expected")
        base = DEFAULT_THRESHOLDS_BY_RECONCILIATION.of(name)
        extra = set(raw) - {"absolute", "relative", "date_days", "per_currency"}
        if extra:
            raise ValueError(f"recon.thresholds.{name}: {_unknown(extra, 'key')}")
        amount = base.amount
        if "absolute" in raw or "relative" in raw:
            amount = _tolerance(
                {k: raw[k] for k in ("absolute", "relative") if k in raw},
                f"recon.thresholds.{name}",
            )
        per_currency = base.per_currency
        if "per_currency" in raw:
            table = raw["per_currency"]
            if not isinstance(table, Mapping):
                raise ValueError(f"recon.thresholds.{name}.per_currency: a table is expected")
            per_currency = tuple(
                (str(c), _tolerance(t, f"recon.thresholds.{name}.per_currency.{c}"))
                for c, t in sorted(table.items())
            )
        days = raw.get("date_days", base.date_days)
        if not isinstance(days, int):
            raise ValueError(f"recon.thresholds.{name}.date_days: an integer is expected")
        chosen[name] = ReconThresholds(amount=amount, per_currency=per_currency, date_days=days)
    return ThresholdsByReconciliation(**chosen)
