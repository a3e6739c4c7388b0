"""The case workflow's rules: transitions, aging, fingerprints and what a run changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revbridge.errors import DomainError
from revbridge.recon.cases import (
    AUTO_RESOLVED,
    CaseSnapshot,
    CaseState,
    Seen,
    aging,
    aging_bucket,
    check_resolution_code,
    check_transition,
    days_open,
    fingerprint,
    plan_cases,
)
from revbridge.recon.hub_state import FindingWithHubState, HubState
from revbridge.recon.match import ReconResult, reconcile_ar
from tests.unit.recon.ar import Doc, relation

OCT = (date(2026, 10, 1), date(2026, 11, 1))
NOW = datetime(2026, 11, 1, 3, tzinfo=UTC)


def _ar(source: list[Doc], erp: list[Doc]) -> ReconResult:
    con = duckdb.connect()
    return reconcile_ar(relation(con, "s", source), relation(con, "e", erp), connection=con)


def _seen(result: ReconResult) -> list[Seen]:
    return [
        Seen(
            reconciliation="ar",
            item=FindingWithHubState(finding=f, hub=HubState(state="dead_letter")),
        )
        for f in result.cases
    ]


def _case(
    ref: str, kind: str, state: str, period: tuple[date, date] = OCT, **kw: str
) -> CaseSnapshot:
    return CaseSnapshot(
        id=hash((ref, kind)) % 1000,
        reconciliation="ar",
        ref=ref,
        kind=kind,
        state=state,
        period_start=period[0],
        period_end=period[1],
        source_amount=kw.get("source_amount", "100.0000"),
        erp_amount=kw.get("erp_amount"),
    )


def test_a_closed_case_cannot_be_worked_again() -> None:
    """Open may go to investigating, resolved or accepted; a resolved case refuses any move."""
    check_transition("open", CaseState.INVESTIGATING)
    check_transition("investigating", CaseState.ACCEPTED)
    with pytest.raises(DomainError, match="cannot become"):
        check_transition("resolved", CaseState.INVESTIGATING)
    with pytest.raises(DomainError, match="cannot become"):
        check_transition("investigating", CaseState.OPEN)


def test_only_known_resolution_codes_are_taken_and_auto_resolved_is_the_runs_own() -> None:
    """A person resolves with a known code; ``auto_resolved`` is kept for the runs."""
    check_resolution_code("corrected_in_erp")
    for bad in ("fixed", AUTO_RESOLVED):
        with pytest.raises(DomainError, match="resolution code"):
            check_resolution_code(bad)


def test_aging_buckets_split_at_1_7_and_30_days() -> None:
    """A case is 0-1 days old up to its second day, then 2-7, 8-30 and over 30."""
    assert [aging_bucket(d) for d in (0, 1, 2, 7, 8, 30, 31, 400)] == [
        "0-1", "0-1", "2-7", "2-7", "8-30", "8-30", ">30", ">30",
    ]  # fmt: skip
    opened = datetime(2026, 10, 1, 9, tzinfo=UTC)
    assert days_open(opened, opened + timedelta(days=8, hours=1)) == 8
    assert aging([0, 3, 9, 45, 45]) == {"0-1": 1, "2-7": 1, "8-30": 1, ">30": 2}


def test_the_fingerprint_changes_only_when_a_balance_changes() -> None:
    """The same documents give the same digest, whatever their stored scale; a cent moved
    on one invoice gives another digest."""
    docs = [Doc("a0X1", Decimal("100.00")), Doc("a0X2", Decimal("50"))]
    rescaled = [Doc("a0X1", Decimal("100.0000")), Doc("a0X2", Decimal("50.00"))]
    moved = [Doc("a0X1", Decimal("100.01")), Doc("a0X2", Decimal("50"))]
    base = fingerprint(_ar(docs, docs))
    assert fingerprint(_ar(rescaled, rescaled)) == base
    assert fingerprint(_ar(docs, moved)) != base
    assert fingerprint(_ar(moved, moved)) != base


def test_a_run_opens_new_cases_and_refreshes_known_ones() -> None:
    """A variance found for the first time opens a case; one already open is refreshed."""
    result = _ar([Doc("a0X1", Decimal("100")), Doc("a0X2", Decimal("5"))], [])
    existing = [_case("a0X1", "missing_in_erp", "open")]
    plan = plan_cases(existing, _seen(result), start=OCT[0], end=OCT[1], now=NOW)
    assert [s.item.finding.ref for s in plan.to_open] == ["a0X2"]
    assert [c.ref for c, _ in plan.to_refresh] == ["a0X1"]
    assert plan.to_auto_resolve == ()
    assert plan.to_reopen == ()


def test_a_variance_that_cleared_resolves_its_case_only_over_a_covering_period() -> None:
    """An open case not found again is auto-resolved by a run over its period, never by a
    run over another day."""
    existing = [
        _case("a0X1", "missing_in_erp", "investigating", (date(2026, 10, 5), date(2026, 10, 6)))
    ]
    month = plan_cases(existing, [], start=OCT[0], end=OCT[1], now=NOW)
    assert [c.ref for c in month.to_auto_resolve] == ["a0X1"]
    other_day = plan_cases(existing, [], start=date(2026, 10, 6), end=date(2026, 10, 7), now=NOW)
    assert other_day.to_auto_resolve == ()


def test_a_resolved_case_found_again_reopens_and_an_accepted_one_only_if_it_moved() -> None:
    """A fix that did not hold reopens its case; an accepted difference stays accepted until
    its amounts change."""
    result = _ar([Doc("a0X1", Decimal("100")), Doc("a0X2", Decimal("7"))], [])
    existing = [
        _case("a0X1", "missing_in_erp", "resolved"),
        _case("a0X2", "missing_in_erp", "accepted", source_amount="7.0000"),
    ]
    plan = plan_cases(existing, _seen(result), start=OCT[0], end=OCT[1], now=NOW)
    assert [c.ref for c, _ in plan.to_reopen] == ["a0X1"]
    assert [c.ref for c, _ in plan.to_refresh] == ["a0X2"]
    moved = _ar([Doc("a0X2", Decimal("8"))], [])
    assert [
        c.ref
        for c, _ in plan_cases(existing, _seen(moved), start=OCT[0], end=OCT[1], now=NOW).to_reopen
    ] == ["a0X2"]


_STATES = st.sampled_from([s.value for s in CaseState])
_KEYS = st.tuples(st.sampled_from(["ar", "payments"]), st.sampled_from(["a", "b", "c", "d"]),
                  st.sampled_from(["amount", "missing_in_erp"]))  # fmt: skip


@given(
    existing=st.dictionaries(_KEYS, _STATES, max_size=12),
    found=st.sets(_KEYS, max_size=12),
)
def test_a_run_plans_each_finding_once_and_never_resolves_what_it_found(
    existing: dict[tuple[str, str, str], str], found: set[tuple[str, str, str]]
) -> None:
    """Every case-level finding is opened, refreshed or reopened exactly once; only active
    cases it did not find are auto-resolved; closed cases it did not find are left alone."""
    from revbridge.recon.match import Finding, FindingKind

    cases = [
        CaseSnapshot(id=i, reconciliation=r, ref=ref, kind=k, state=state,
                     period_start=OCT[0], period_end=OCT[1], source_amount="1", erp_amount=None)
        for i, ((r, ref, k), state) in enumerate(existing.items())
    ]  # fmt: skip
    seen = [
        Seen(
            reconciliation=r,
            item=FindingWithHubState(
                finding=Finding(kind=FindingKind(k), ref=ref, doc_type=None, currency="USD",
                                source_amount=Decimal(1), erp_amount=None,
                                difference=Decimal(-1), within_tolerance=False),
                hub=HubState(state="dead_letter"),
            ),
        )
        for r, ref, k in found
    ]  # fmt: skip
    plan = plan_cases(cases, seen, start=OCT[0], end=OCT[1], now=NOW)
    planned = [s.key for s in plan.to_open] + [s.key for _, s in plan.to_refresh + plan.to_reopen]
    assert sorted(planned) == sorted(found)
    assert {s.key for s in plan.to_open} == found - set(existing)
    resolved = {c.key for c in plan.to_auto_resolve}
    assert resolved == {k for k, v in existing.items() if v in ("open", "investigating")} - found


def test_a_finding_waiting_for_its_batch_window_opens_no_case() -> None:
    """A document whose delivery waits for its batch class's window (``scheduled``) is in
    transit: no case is opened or reopened for it; an active case of it is kept, not
    resolved, until the delivery lands and the finding is gone."""
    found = _ar([Doc(r, Decimal("100")) for r in ("a0X1", "a0X2", "a0X3")], [])
    seen = [
        Seen(reconciliation="ar",
             item=FindingWithHubState(finding=f, hub=HubState(state="scheduled")))
        for f in found.cases
    ]  # fmt: skip
    assert seen
    assert all(s.item.awaits_batch for s in seen)
    active = _case("a0X2", "missing_in_erp", "open")
    resolved = _case("a0X3", "missing_in_erp", "resolved")
    plan = plan_cases([active, resolved], seen, start=OCT[0], end=OCT[1], now=NOW)
    assert plan.to_open == ()
    assert plan.to_reopen == ()
    assert [c.id for c, _ in plan.to_refresh] == [active.id]
    assert plan.to_auto_resolve == ()


@pytest.mark.parametrize("state", ["pending", "in_flight", "parked", "held"])
def test_a_document_still_on_its_way_is_in_transit_until_a_later_run_still_finds_it(
    state: str,
) -> None:
    """A missing invoice whose delivery is on its way opens no case on first sight (nor in
    another run of the same tick); a later run that finds it still undelivered, same event,
    opens it; a newer event starts over; a dead letter is a case at once."""
    from revbridge.recon.cases import Sighting

    found = _ar([Doc("a0X1", Decimal("100"))], [])

    def seen(hub_state: str, event_id: int = 7) -> list[Seen]:
        hub = HubState(state=hub_state, event_id=event_id)
        return [Seen(reconciliation="ar", item=FindingWithHubState(finding=f, hub=hub))
                for f in found.cases]  # fmt: skip

    first = plan_cases([], seen(state), start=OCT[0], end=OCT[1], now=NOW)
    assert (first.to_open, [s.key for s in first.in_transit]) == (
        (),
        [("ar", "a0X1", "missing_in_erp")],
    )
    sighting = Sighting(reconciliation="ar", ref="a0X1", kind="missing_in_erp", event_id=7,
                        first_seen_at=NOW, period_start=OCT[0], period_end=OCT[1])  # fmt: skip
    same_tick = plan_cases([], seen(state), start=OCT[0], end=OCT[1], now=NOW, sightings=[sighting])
    assert same_tick.to_open == ()
    assert len(same_tick.in_transit) == 1
    later = NOW + timedelta(days=1)
    again = plan_cases([], seen(state), start=OCT[0], end=OCT[1], now=later, sightings=[sighting])
    assert [s.key for s in again.to_open] == [sighting.key]
    assert again.in_transit == ()
    assert again.to_forget == (sighting,)
    newer = plan_cases(
        [], seen(state, 8), start=OCT[0], end=OCT[1], now=later, sightings=[sighting]
    )
    assert newer.to_open == ()
    assert len(newer.in_transit) == 1
    dead = plan_cases([], seen("dead_letter"), start=OCT[0], end=OCT[1], now=NOW)
    assert len(dead.to_open) == 1
    assert dead.in_transit == ()
    # Delivered since: a run covering the sighting's period no longer finds it, forgets it.
    gone = plan_cases([], [], start=OCT[0], end=OCT[1], now=later, sightings=[sighting])
    assert gone.to_forget == (sighting,)


def test_a_sighting_is_stuck_when_dead_lettered_or_still_on_its_way_past_the_grace() -> None:
    """Any run opens the case of an earlier sighting whose delivery is dead-lettered, or
    still on its way 12 hours after it was first seen; not one delivered, waiting for its
    batch window, on a newer event, or seen within the grace."""
    from revbridge.recon.cases import STUCK_AFTER, Sighting, stuck_in_transit

    found = _ar([Doc("a0X1", Decimal("100"))], [])
    sighting = Sighting(reconciliation="ar", ref="a0X1", kind="missing_in_erp", event_id=7,
                        first_seen_at=NOW, period_start=OCT[0], period_end=OCT[1])  # fmt: skip

    def stuck(hub_state: str, *, after: timedelta = STUCK_AFTER, event_id: int = 7) -> bool:
        hub = HubState(state=hub_state, event_id=event_id)
        seen = [Seen(reconciliation="ar", item=FindingWithHubState(finding=f, hub=hub))
                for f in found.cases]  # fmt: skip
        return bool(stuck_in_transit([sighting], seen, now=NOW + after))

    assert timedelta(hours=12) == STUCK_AFTER
    assert stuck("pending")
    assert stuck("parked", after=timedelta(hours=23))
    assert not stuck("pending", after=timedelta(hours=11))
    assert stuck("dead_letter", after=timedelta(minutes=5))
    assert not stuck("delivered", after=timedelta(days=2))
    assert not stuck("scheduled", after=timedelta(days=2))
    assert not stuck("pending", event_id=8)
    assert not stuck_in_transit([sighting], [], now=NOW + timedelta(days=2))
