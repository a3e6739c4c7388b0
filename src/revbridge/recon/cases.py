"""The case workflow's rules, as pure functions: states, transitions, aging, fingerprints.

A finding outside its tolerance is a *case* for a person: one case per ``(reconciliation,
ref, kind)``; not one that waits for its batch window (in transit by policy, no case), nor
one on a document the hub is still delivering, until a later run still finds it so. A run
opens the cases it finds for the first time, refreshes those it finds again, and resolves by
itself (``auto_resolved``) an open case it no longer finds over a period that covers the
case's period: the delivery landed, the variance cleared.

::

    open ──► investigating ──► resolved (code + note)
      │            │
      └────────────┴─────────► accepted (a known, explained difference)

    resolved ──(found again by a run)──► open          accepted stays accepted unless
                                                       its amounts change

Nothing here reads a database or a clock: ``services.recon`` applies these rules to the
ledger's ``recon_cases`` and writes every transition to the audit log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from revbridge.errors import DomainError
from revbridge.recon.hub_state import FindingWithHubState
from revbridge.recon.match import ReconResult


class CaseState(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    ACCEPTED = "accepted"


ACTIVE = frozenset({CaseState.OPEN, CaseState.INVESTIGATING})
# What a person may do from each state (a run may also reopen a resolved case).
TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    CaseState.OPEN: frozenset({CaseState.INVESTIGATING, CaseState.RESOLVED, CaseState.ACCEPTED}),
    CaseState.INVESTIGATING: frozenset({CaseState.RESOLVED, CaseState.ACCEPTED}),
    CaseState.RESOLVED: frozenset(),
    CaseState.ACCEPTED: frozenset(),
}

DEAD_LETTER = "dead_letter"

AUTO_RESOLVED = "auto_resolved"
"""The resolution code of a case a later run no longer found (the variance cleared)."""

STUCK_AFTER = timedelta(hours=12)
"""How long after its first sighting a document still on its way opens its case at any run,
not only a run over its period (``stuck_in_transit``): less than the nightly cadence, so the
next nightly run (or the next day's, after a month-end run) finds it overdue."""

RESOLUTION_CODES = (
    "corrected_in_erp",
    "corrected_in_salesforce",
    "delivered_late",
    "duplicate_reversed",
    "timing_difference",
    "data_entry_error",
    "other",
    AUTO_RESOLVED,
)

# Aging buckets of open cases, in whole days open: (label, first day, last day or None).
AGING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-1", 0, 1),
    ("2-7", 2, 7),
    ("8-30", 8, 30),
    (">30", 31, None),
)


def check_transition(current: str, target: CaseState) -> None:
    """Refuse a transition a person may not make (``DomainError`` saying why)."""
    allowed = TRANSITIONS[CaseState(current)]
    if target not in allowed:
        can = ", ".join(sorted(allowed)) or "nothing (it is closed)"
        raise DomainError(f"a case {current} cannot become {target}; it can become: {can}")


def check_resolution_code(code: str) -> None:
    if code not in RESOLUTION_CODES or code == AUTO_RESOLVED:
        known = ", ".join(c for c in RESOLUTION_CODES if c != AUTO_RESOLVED)
        raise DomainError(f"unknown resolution code {code!r}; one of: {known}")


def days_open(opened_at: datetime, now: datetime) -> int:
    """Whole days since the case was opened (0 on its first day)."""
    return max(0, (now - opened_at).days)


def aging_bucket(days: int) -> str:
    """The aging bucket label (``0-1``, ``2-7``, ``8-30``, ``>30``) of a case ``days`` old."""
    for label, first, last in AGING_BUCKETS:
        if days >= first and (last is None or days <= last):
            return label
    raise ValueError(f"negative age: {days}")


def aging(ages: Iterable[int]) -> dict[str, int]:
    """How many cases fall in each aging bucket, every bucket present."""
    counts = {label: 0 for label, _, _ in AGING_BUCKETS}
    for days in ages:
        counts[aging_bucket(days)] += 1
    return counts


def _amount(value: Decimal | None) -> str:
    """A Decimal as text that does not depend on its stored scale (``10.00`` == ``10``)."""
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def amount_text(value: Decimal | None) -> str | None:
    """An amount as the ledger stores it: its exact decimal string, or None."""
    return None if value is None else format(value, "f")


def fingerprint(result: ReconResult) -> str:
    """A digest of a reconciliation's balances: matched totals and every difference found.

    Two runs over the same period give the same digest exactly when no balance changed:
    what matched (count and amounts per currency) and every variance (kind, ref, amounts,
    differing values). The hub's state is not a balance and stays out.
    """
    lines = sorted(
        f"m|{m.currency}|{m.count}|{_amount(m.source_amount)}|{_amount(m.erp_amount)}"
        for m in result.matched
    )
    lines += sorted(
        "f|"
        + "|".join(
            (
                f.kind.value,
                f.ref,
                f.currency or "",
                _amount(f.source_amount),
                _amount(f.erp_amount),
                f.source_value or "",
                f.erp_value or "",
            )
        )
        for f in result.findings
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseSnapshot:
    """What the workflow needs to know of a stored case to plan a run's changes."""

    id: int
    reconciliation: str
    ref: str
    kind: str
    state: str
    period_start: date
    period_end: date
    source_amount: str | None
    erp_amount: str | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.reconciliation, self.ref, self.kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    """A case-level finding of this run, with the reconciliation it belongs to."""

    reconciliation: str
    item: FindingWithHubState

    @property
    def key(self) -> tuple[str, str, str]:
        f = self.item.finding
        return (self.reconciliation, f.ref, f.kind.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sighting:
    """A finding an earlier run saw on a document still on its way, and when it first did."""

    reconciliation: str
    ref: str
    kind: str
    event_id: int | None
    first_seen_at: datetime
    period_start: date
    period_end: date
    first_run_id: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.reconciliation, self.ref, self.kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class CasePlan:
    """What a run changes: cases to open, to refresh, to reopen, to resolve by themselves;
    findings in transit to remember (no case), and sightings to forget."""

    to_open: tuple[Seen, ...]
    to_refresh: tuple[tuple[CaseSnapshot, Seen], ...]
    to_reopen: tuple[tuple[CaseSnapshot, Seen], ...]
    to_auto_resolve: tuple[CaseSnapshot, ...]
    in_transit: tuple[Seen, ...] = ()
    to_forget: tuple[Sighting, ...] = ()


def seen_before(sighting: Sighting | None, item: FindingWithHubState, now: datetime) -> bool:
    """Whether an earlier run (earlier than ``now``: the runs of one scheduler tick share
    their time) already found this finding on the same event still on its way."""
    return (
        sighting is not None
        and sighting.event_id == item.hub.event_id
        and sighting.first_seen_at < now
    )


def stuck_in_transit(
    sightings: Sequence[Sighting],
    found: Sequence[Seen],
    *,
    now: datetime,
    grace: timedelta = STUCK_AFTER,
) -> tuple[tuple[Sighting, Seen], ...]:
    """The earlier runs' sightings that are a case now, whatever the period of this run.

    ``found`` are the findings of each sighting's period as they stand (the read-back store
    and the hub's state now). A sighting is overdue when its finding is still there with the
    same event and the delivery is dead-lettered, or still on its way (not waiting for its
    batch window) and first seen at least ``grace`` before ``now``. A delivered document, a
    newer event or a finding gone is left for the next run over its period.
    """
    by_key = {s.key: s for s in found}
    stuck: list[tuple[Sighting, Seen]] = []
    for x in sightings:
        s = by_key.get(x.key)
        if s is None or x.event_id is None or s.item.hub.event_id != x.event_id:
            continue
        dead = s.item.hub.state == DEAD_LETTER
        waited = s.item.on_its_way and not s.item.awaits_batch and x.first_seen_at <= now - grace
        if dead or waited:
            stuck.append((x, s))
    return tuple(stuck)


def plan_cases(
    existing: Sequence[CaseSnapshot],
    seen: Sequence[Seen],
    *,
    start: date,
    end: date,
    now: datetime,
    sightings: Sequence[Sighting] = (),
    refreshed: bool = True,
) -> CasePlan:
    """Plan a run over ``[start, end)``: which cases it opens, refreshes, reopens, resolves.

    ``refreshed``: the run read both sides first. One that did not (``--no-refresh``: the
    same month's report in another format, seconds later) is no later run for a document
    in transit: it keeps it in transit and opens no case for it.

    A case is auto-resolved only when the run's period covers the case's period (a nightly
    run of the 3rd says nothing about a document of the 2nd). A resolved case found again is
    reopened; an accepted one only when its amounts changed (the accepted difference is no
    longer the one in front of us).

    A finding that awaits its batch window (``FindingWithHubState.awaits_batch``: a revenue
    entry before the month-end batch, or the control total those entries explain) is in
    transit, not a variance: it opens and reopens no case. An active case of it stays as it
    is (refreshed) and resolves by itself once the batch has posted the entry.

    A finding on a document otherwise still on its way (``FindingWithHubState.on_its_way``:
    pending, in flight, parked, held) is in transit too the first time a run finds it
    (``in_transit``: remembered, no case): the hub is delivering it. It opens (or reopens)
    its case when a later run (``now`` after the first sighting, with the same event: see
    ``seen_before``) still finds it undelivered (a run of any other period: ``stuck_in_transit``).
    A dead letter is a break at once. A sighting
    is forgotten when its finding becomes a case, or when a run over a period covering it no
    longer finds it in transit (delivered).
    """
    by_key = {c.key: c for c in existing}
    sighted = {x.key: x for x in sightings}
    found = {s.key for s in seen}
    to_open: list[Seen] = []
    refresh: list[tuple[CaseSnapshot, Seen]] = []
    reopen: list[tuple[CaseSnapshot, Seen]] = []
    watch: list[Seen] = []
    for s in seen:
        case = by_key.get(s.key)
        if s.item.awaits_batch and (case is None or case.state not in ACTIVE):
            continue  # in transit by policy (its batch window has not come): not a case
        if (
            s.item.on_its_way
            and (case is None or case.state not in ACTIVE)
            and not (refreshed and seen_before(sighted.get(s.key), s.item, now))
        ):
            watch.append(s)  # on its way, first seen now: in transit, not a case yet
            continue
        if case is None:
            to_open.append(s)
        elif case.state in ACTIVE:
            refresh.append((case, s))
        elif case.state == CaseState.RESOLVED:
            reopen.append((case, s))
        else:  # accepted
            f = s.item.finding
            same = (case.source_amount, case.erp_amount) == (
                amount_text(f.source_amount),
                amount_text(f.erp_amount),
            )
            (refresh if same else reopen).append((case, s))
    resolve = tuple(
        c
        for c in existing
        if c.state in ACTIVE
        and c.key not in found
        and start <= c.period_start
        and c.period_end <= end
    )
    watched = {s.key for s in watch}
    forget = tuple(
        x
        for x in sightings
        if x.key not in watched
        and (x.key in found or (start <= x.period_start and x.period_end <= end))
    )
    return CasePlan(
        to_open=tuple(to_open),
        to_refresh=tuple(refresh),
        to_reopen=tuple(reopen),
        to_auto_resolve=resolve,
        in_transit=tuple(watch),
        to_forget=forget,
    )
