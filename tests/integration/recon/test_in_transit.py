"""Month-end revenue waiting for its batch window is in transit, not a variance: the entries
and the control totals they explain carry the hub state ``scheduled``; a difference they do
not explain stays a break."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select, update

from revbridge.clock import ManualClock
from revbridge.config import Settings, parse_config
from revbridge.core.policy import build_policy
from revbridge.engine.ports import JournalDocument, JournalLineRow
from revbridge.generate import generate_events
from revbridge.recon.match import FindingKind
from revbridge.recon.period import PeriodRecon, reconcile_period
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries, events
from tests.unit.recon.sides import store_of

OCT_31 = datetime(2026, 10, 31, 18, tzinfo=UTC)  # the revenue batch fires on Nov 1, 03:00
DEFERRED, REVENUE = "2400 Deferred Revenue", "4000 Subscription Revenue"


def _entry(ref: str, amount: str) -> JournalDocument:
    return JournalDocument(
        key=f"k-{ref}", ref=ref, doc_type="revenue", customer_ref="001A", currency="EUR",
        period="2026-10", doc_date=date(2026, 10, 20),
        lines=(
            JournalLineRow(account=DEFERRED, debit=Decimal(amount), credit=Decimal(0)),
            JournalLineRow(account=REVENUE, debit=Decimal(0), credit=Decimal(amount)),
        ),
    )  # fmt: skip


def _revenue_in_the_ledger(ledger: Ledger) -> list[str]:
    """Three revenue entries captured on the 31st: the first delivered, two scheduled."""
    revenue = [e for e in generate_events(300, seed=4) if e["type"] == "revenue.recognized"][:3]
    assert len(revenue) == 3
    lines = [json.dumps(e).encode() for e in revenue]
    ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=ManualClock(OCT_31))
    refs = [e["source_id"] for e in revenue]
    with ledger.engine.begin() as conn:
        first = conn.execute(
            select(events.c.id).where(events.c.subject_ref == f"revenue:{refs[0]}")
        ).scalar_one()
        conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id == first)
            .values(state="delivered", attempts=1, delivered_at=OCT_31)
        )
    return refs


def _reconcile_october(
    ledger: Ledger,
    settings: Settings,
    sf: list[JournalDocument],
    erp: list[JournalDocument],
) -> PeriodRecon:
    """October reconciled on the 31st from these read-back sides, with the ledger's state."""
    store = store_of(sf, erp)
    try:
        return reconcile_period(
            settings, ledger.engine, scope="monthly", start=date(2026, 10, 1),
            end=date(2026, 11, 1), refresh=False, store=store, now=OCT_31,
        )  # fmt: skip
    finally:
        store.close()


def _october(ledger: Ledger, tmp_path: Path, erp_first_amount: str):
    settings = parse_config({}, None, tmp_path)
    a, b, c = _revenue_in_the_ledger(ledger)
    sf = [_entry(a, "100.00"), _entry(b, "20.00"), _entry(c, "3.00")]
    store = store_of(sf, [_entry(a, erp_first_amount)])
    try:
        return (a, b, c), reconcile_period(
            settings, ledger.engine, scope="monthly", start=date(2026, 10, 1),
            end=date(2026, 11, 1), refresh=False, store=store, now=OCT_31,
        )  # fmt: skip
    finally:
        store.close()


def test_entries_waiting_for_their_batch_and_the_totals_they_explain_are_in_transit(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Two entries scheduled for the 1st: both reported in transit, and the GL totals they
    alone make short are in transit too; none of it is a case."""
    (_a, b, c), run = _october(ledger, tmp_path, "100.00")
    found = {(i.finding.kind, i.finding.ref): i for i in run.of("revenue").findings}
    assert {(k, r) for k, r in found if k is FindingKind.MISSING_IN_ERP} == {
        (FindingKind.MISSING_IN_ERP, b),
        (FindingKind.MISSING_IN_ERP, c),
    }
    totals = [i for (k, _), i in found.items() if k is FindingKind.CONTROL_TOTAL]
    assert len(totals) == 2  # deferred and revenue, each 23.00 short in the GL
    assert {i.hub.state for i in found.values()} == {"scheduled"}
    assert all(i.awaits_batch and i.timing_difference for i in found.values())


def test_a_difference_the_scheduled_entries_do_not_explain_stays_a_break(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The delivered entry is 1.00 off in the GL: the control totals are a break (the two
    scheduled entries explain 23.00 of them, not 22.00), the entries still in transit."""
    (a, b, _c), run = _october(ledger, tmp_path, "101.00")
    found = {(i.finding.kind, i.finding.ref): i for i in run.of("revenue").findings}
    assert not found[(FindingKind.AMOUNT, a)].awaits_batch  # delivered: a real break
    assert found[(FindingKind.MISSING_IN_ERP, b)].awaits_batch
    totals = [i for (k, _), i in found.items() if k is FindingKind.CONTROL_TOTAL]
    assert totals
    assert all(i.hub.state == "not a record" and not i.awaits_batch for i in totals)
    # 123.00 in Salesforce, 101.00 in the GL, 22.00 of it in transit: 1.00 unexplained.
    assert {abs(i.finding.difference or 0) for i in totals} == {Decimal(22)}


def test_totals_explained_by_entries_still_being_delivered_are_in_transit(
    ledger: Ledger, tmp_path: Path
) -> None:
    """One of the two undelivered entries is past its batch window and pending a retry (tried
    once): the GL totals the two explain are ``in transit`` (on its way, not ``scheduled``),
    a timing difference like the entries, and not a break."""
    from revbridge.recon.hub_state import ON_ITS_WAY

    settings = parse_config({}, None, tmp_path)
    a, b, c = _revenue_in_the_ledger(ledger)
    with ledger.engine.begin() as conn:
        retry = conn.execute(
            select(events.c.id).where(events.c.subject_ref == f"revenue:{b}")
        ).scalar_one()
        conn.execute(update(deliveries).where(deliveries.c.event_id == retry).values(attempts=1))
    run = _reconcile_october(
        ledger,
        settings,
        [_entry(a, "100.00"), _entry(b, "20.00"), _entry(c, "3.00")],
        [_entry(a, "100.00")],
    )
    found = {(i.finding.kind, i.finding.ref): i for i in run.of("revenue").findings}
    assert found[(FindingKind.MISSING_IN_ERP, b)].hub.state == "pending"
    assert found[(FindingKind.MISSING_IN_ERP, c)].awaits_batch
    totals = [i for (k, _), i in found.items() if k is FindingKind.CONTROL_TOTAL]
    assert len(totals) == 2
    assert {i.hub.state for i in totals} == {ON_ITS_WAY}
    assert all(i.on_its_way and i.timing_difference and not i.awaits_batch for i in totals)


def test_totals_an_entry_revised_after_posting_explains_are_in_transit(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Salesforce revised entry b from 20.00 to 40.00 after the GL had posted 20.00; the new
    version waits for the batch, as does c (3.00, not posted). The GL is 23.00 short: what
    the two will change (20.00 more for b, 3.00 for c), not their whole 43.00. The totals
    are in transit (``scheduled``), no case; they used to open two cases at close."""
    settings = parse_config({}, None, tmp_path)
    a, b, c = _revenue_in_the_ledger(ledger)
    run = _reconcile_october(
        ledger,
        settings,
        [_entry(a, "100.00"), _entry(b, "40.00"), _entry(c, "3.00")],
        [_entry(a, "100.00"), _entry(b, "20.00")],
    )
    found = {(i.finding.kind, i.finding.ref): i for i in run.of("revenue").findings}
    assert found[(FindingKind.AMOUNT, b)].awaits_batch
    totals = [i for (k, _), i in found.items() if k is FindingKind.CONTROL_TOTAL]
    assert len(totals) == 2
    assert {abs(i.finding.difference or 0) for i in totals} == {Decimal(23)}
    assert {i.hub.state for i in totals} == {"scheduled"}
