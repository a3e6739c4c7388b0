"""The report of one reconciliation run, as a value every renderer reads.

``build_report`` turns a ``PeriodRecon`` (what was found), the cases it maps to, the aging of
the open cases and the recent runs (the trend) into a ``ReconReport``. The renderers (JSON,
CSV, Excel, HTML) only lay it out; none of them computes anything of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from revbridge.recon.cases import aging
from revbridge.recon.hub_state import SCHEDULED
from revbridge.recon.period import PeriodRecon


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRef:
    """The case a finding belongs to, as the ledger holds it after the run."""

    id: int
    state: str
    days_open: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLine:
    """One variance with both sides and the hub's trace (the drill-down)."""

    reconciliation: str
    kind: str
    ref: str
    doc_type: str | None
    currency: str | None
    source_amount: Decimal | None
    erp_amount: Decimal | None
    difference: Decimal | None
    source_value: str | None
    erp_value: str | None
    within_tolerance: bool
    hub_state: str
    timing_difference: bool
    event_id: int | None
    attempts: int
    last_error: str | None
    case_id: int | None
    case_state: str | None
    days_open: int | None
    # The document number people know it by (INV-..., CM-...), where the hub has it.
    number: str | None = None

    @property
    def erp_currency(self) -> str | None:
        """The currency of ``erp_amount``: the ERP's own in a currency variance (``erp_value``),
        else the document's."""
        return erp_currency_of(self.kind, self.currency, self.erp_value)


def erp_currency_of(kind: str, currency: str | None, erp_value: str | None) -> str | None:
    """The currency the ERP's amount of a finding is in: a ``currency`` finding's ERP side
    is in its ``erp_value``; every other finding's in the document's ``currency``."""
    return erp_value if kind == "currency" and erp_value else currency


@dataclass(frozen=True, slots=True, kw_only=True)
class Category:
    """Variances of one kind in one reconciliation: how many, and how much (per currency).

    ``amounts`` adds the absolute differences (``amount_basis`` says so), each document's once:
    in the category of its gap (``GAP_KINDS``: missing, duplicate, amount, balance); its date,
    customer, status, currency, document type, period or application findings count without
    adding (a currency variance has no comparable amount at all). Control totals are the
    exception:
    both legs of a balanced journal differ by the same amount, so adding them counts the gap
    twice; their amount is one leg (``category_amounts``).
    """

    reconciliation: str
    kind: str
    count: int
    within_tolerance: int
    amounts: tuple[tuple[str, Decimal], ...]
    amount_basis: str = "absolute differences"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconSummary:
    """One reconciliation's headline: what matched and how many variances."""

    name: str
    source_count: int
    erp_count: int
    matched_count: int
    matched_amounts: tuple[tuple[str, Decimal], ...]
    variance_count: int
    within_tolerance: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendPoint:
    """A recent run, for the variance trend."""

    run_id: int
    scope: str
    period_start: date
    started_at: datetime
    variance_count: int
    within_tolerance_count: int
    open_cases: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconReport:
    scope: str
    start: date
    end: date  # exclusive
    run_id: int | None
    generated_at: datetime
    read_at: datetime
    summaries: tuple[ReconSummary, ...]
    categories: tuple[Category, ...]
    lines: tuple[ReportLine, ...]
    open_cases: int
    aging: tuple[tuple[str, int], ...]
    trend: tuple[TrendPoint, ...]
    signoff: str | None = None

    @property
    def matched_count(self) -> int:
        return sum(s.matched_count for s in self.summaries)

    @property
    def matched_amounts(self) -> tuple[tuple[str, Decimal], ...]:
        return _totals((c, a) for s in self.summaries for c, a in s.matched_amounts)

    @property
    def variance_count(self) -> int:
        return len(self.lines)

    @property
    def within_tolerance(self) -> int:
        return sum(1 for line in self.lines if line.within_tolerance)

    @property
    def timing_differences(self) -> int:
        """Variances the hub is still delivering (pending, in flight, parked, held, scheduled):
        in transit, likely to clear."""
        return sum(1 for line in self.lines if line.timing_difference)

    @property
    def in_transit_without_case(self) -> int:
        """Of the timing differences outside tolerance, those with no active case: the hub is
        delivering them and no run has yet found them still undelivered later."""
        return sum(
            1
            for line in self.lines
            if line.timing_difference
            and not line.within_tolerance
            and line.case_state not in ("open", "investigating")
        )

    @property
    def awaiting_batch_without_case(self) -> int:
        """Of ``in_transit_without_case``, those waiting for their batch class's window: no
        case before it (the rest are due or late: a case if a later run still finds them)."""
        return sum(
            1
            for line in self.lines
            if line.hub_state == SCHEDULED
            and not line.within_tolerance
            and line.case_state not in ("open", "investigating")
        )

    @property
    def awaiting_batch(self) -> int:
        """Of the timing differences, those waiting for their batch class's window
        (``scheduled``): in transit by policy, no case."""
        return sum(1 for line in self.lines if line.hub_state == SCHEDULED)


def _totals(pairs: Iterable[tuple[str, Decimal]]) -> tuple[tuple[str, Decimal], ...]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for currency, amount in pairs:
        sums[currency] += amount
    return tuple(sorted(sums.items()))


ONE_LEG = "one leg of the journals (debit side)"
ABSOLUTE = "absolute differences"

# The kinds a document's amount gap is told under, first first: every finding of a document
# carries the same difference (ERP minus Salesforce totals), so a document that differs in
# several ways (amount and date, missing and duplicated) counts its gap in one category only.
# The other kinds (currency, date, customer, status, doc_type, period, application) say how
# it differs, not by how much: they add no amount.
GAP_KINDS = (
    "missing_in_erp",
    "missing_in_source",
    "duplicate_in_erp",
    "duplicate_in_source",
    "amount",
    "balance",
    "control_total",
)


def gap_carriers(lines: Iterable[ReportLine]) -> set[tuple[str, str, str]]:
    """``(reconciliation, ref, kind)`` of the finding that carries each document's gap: the
    first of ``GAP_KINDS`` among its findings with a difference."""
    best: dict[tuple[str, str], str] = {}
    for line in lines:
        if line.difference is None or line.kind not in GAP_KINDS:
            continue
        key = (line.reconciliation, line.ref)
        if key not in best or GAP_KINDS.index(line.kind) < GAP_KINDS.index(best[key]):
            best[key] = line.kind
    return {(name, ref, kind) for (name, ref), kind in best.items()}


def category_amounts(
    kind: str, differences: Iterable[tuple[str, Decimal]]
) -> tuple[tuple[tuple[str, Decimal], ...], str]:
    """The amount per currency of a category's ``(currency, difference)`` pairs, and what it is.

    Most kinds add the absolute differences. A ``control_total`` difference is one leg of a
    journal per GL account (an unposted revenue entry is -X in deferred revenue and +X in
    revenue): the amount is one leg, the larger of the sums of the positive and of the
    negative differences per currency (for balanced journals they are equal: the unposted
    amount), never both legs added.
    """
    pairs = list(differences)
    if kind != "control_total":
        return _totals((c, abs(d)) for c, d in pairs), ABSOLUTE
    up = dict(_totals((c, d) for c, d in pairs if d > 0))
    down = dict(_totals((c, -d) for c, d in pairs if d < 0))
    return (
        tuple(
            (c, max(up.get(c, Decimal(0)), down.get(c, Decimal(0))))
            for c in sorted(up.keys() | down.keys())
        ),
        ONE_LEG,
    )


def build_report(
    recon: PeriodRecon,
    *,
    cases: Mapping[tuple[str, str, str], CaseRef],
    open_case_ages: Sequence[int],
    trend: Sequence[TrendPoint],
    generated_at: datetime,
    run_id: int | None = None,
    signoff: str | None = None,
    numbers: Mapping[int, str] | None = None,
) -> ReconReport:
    """The report of ``recon``: ``cases`` by ``(reconciliation, ref, kind)``, the ages in days
    of every open case (for the aging), ``trend`` the recent runs oldest first, ``numbers``
    the document number of each hub event that has one (by event id)."""
    numbers = numbers or {}
    lines: list[ReportLine] = []
    summaries: list[ReconSummary] = []
    for r in recon.reconciliations:
        for item in r.findings:
            f, hub = item.finding, item.hub
            case = cases.get((r.name, f.ref, f.kind.value))
            lines.append(
                ReportLine(
                    reconciliation=r.name,
                    kind=f.kind.value,
                    ref=f.ref,
                    doc_type=f.doc_type,
                    currency=f.currency,
                    source_amount=f.source_amount,
                    erp_amount=f.erp_amount,
                    difference=f.difference,
                    source_value=f.source_value,
                    erp_value=f.erp_value,
                    within_tolerance=f.within_tolerance,
                    hub_state=hub.state,
                    timing_difference=item.timing_difference,
                    event_id=hub.event_id,
                    attempts=hub.attempts,
                    last_error=hub.last_error,
                    case_id=case.id if case else None,
                    case_state=case.state if case else None,
                    days_open=case.days_open if case else None,
                    number=numbers.get(hub.event_id) if hub.event_id is not None else None,
                )
            )
        summaries.append(
            ReconSummary(
                name=r.name,
                source_count=r.result.source_count,
                erp_count=r.result.erp_count,
                matched_count=r.result.matched_count,
                matched_amounts=_totals((m.currency, m.source_amount) for m in r.result.matched),
                variance_count=len(r.findings),
                within_tolerance=sum(1 for i in r.findings if i.finding.within_tolerance),
            )
        )
    by_category: dict[tuple[str, str], list[ReportLine]] = defaultdict(list)
    for line in lines:
        by_category[(line.reconciliation, line.kind)].append(line)
    carriers = gap_carriers(lines)
    categories = tuple(
        Category(
            reconciliation=name,
            kind=kind,
            count=len(group),
            within_tolerance=sum(1 for g in group if g.within_tolerance),
            amounts=amounts,
            amount_basis=basis,
        )
        for (name, kind), group in sorted(by_category.items())
        for amounts, basis in (
            category_amounts(
                kind,
                (
                    (g.currency or "", g.difference)
                    for g in group
                    if g.difference is not None and (g.reconciliation, g.ref, g.kind) in carriers
                ),
            ),
        )
    )
    counts = aging(open_case_ages)
    return ReconReport(
        scope=recon.scope,
        start=recon.start,
        end=recon.end,
        run_id=run_id,
        generated_at=generated_at,
        read_at=recon.read_at,
        summaries=tuple(summaries),
        categories=categories,
        lines=tuple(lines),
        open_cases=len(open_case_ages),
        aging=tuple(counts.items()),
        trend=tuple(trend),
        signoff=signoff,
    )
