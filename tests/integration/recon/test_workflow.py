"""The reconciliation workflow on a real ledger (SQLite and PostgreSQL): runs open, update and
resolve cases; people work them; a month is signed off and voided when its balances move."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.config import parse_config
from revbridge.core.policy import build_policy
from revbridge.engine.ports import ArDocument
from revbridge.errors import DomainError
from revbridge.recon.period import PeriodRecon, reconcile_period
from revbridge.services.ingest import ingest_lines
from revbridge.services.recon import (
    accept_case,
    investigate_case,
    list_cases,
    recon_status,
    resolve_case,
    run_recon,
    show_case,
    sign_off,
)
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries, events
from revbridge.store.tables_recon import recon_in_transit, recon_runs
from tests.unit.recon.sides import store_of

T0 = datetime(2026, 11, 1, 3, tzinfo=UTC)
OCT = (date(2026, 10, 1), date(2026, 11, 1))


def invoice(n: int, amount: str = "100.00", day: int = 5, status: str = "Unpaid") -> ArDocument:
    """Invoice ``n`` as Salesforce holds it (``status="open"``: as the ERP holds it)."""
    return ArDocument(
        key=f"k{n}",
        ref=f"a0X{n:05d}",
        doc_type="invoice",
        customer_ref="001A",
        currency="USD",
        amount=Decimal(amount),
        doc_date=date(2026, 10, day),
        status=status,
    )


class Sides:
    """Salesforce and the ERP as read back; the reconciler runs the real three
    reconciliations over them, with the hub state read from the ledger."""

    def __init__(self, ledger: Ledger, tmp: Path) -> None:
        self.sf = [invoice(n) for n in range(1, 6)]
        self.erp = [invoice(n, status="open") for n in range(1, 6)]
        self.ledger = ledger
        self.settings = parse_config({}, None, tmp)

    def reconcile(self, scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        store = store_of(self.sf, self.erp)
        try:
            return reconcile_period(
                self.settings, self.ledger.engine, scope=scope, start=start, end=end,
                refresh=False, store=store, now=T0,
            )  # fmt: skip
        finally:
            store.close()

    def run(self, scope: str = "monthly", period: tuple[date, date] = OCT, at: datetime = T0):
        return run_recon(
            self.ledger.engine, self.reconcile, scope=scope, start=period[0], end=period[1],
            actor="ana", now=at,
        )  # fmt: skip


@pytest.fixture
def sides(ledger: Ledger, tmp_path: Path) -> Sides:
    return Sides(ledger, tmp_path)


def _audit(ledger: Ledger, entity_type: str) -> list[tuple[str, str | None, str | None]]:
    with ledger.engine.connect() as conn:
        return [
            (r.action, r.from_state, r.to_state)
            for r in conn.execute(
                select(audit_log)
                .where(audit_log.c.entity_type == entity_type)
                .order_by(audit_log.c.id)
            )
        ]


def test_a_run_opens_a_case_per_variance_and_records_itself(sides: Sides) -> None:
    """An invoice missing in the ERP and one off by 5.00 open two cases, audited; the run is
    recorded with its counts and its fingerprints."""
    sides.erp = [
        sides.erp[0],
        dataclasses.replace(sides.erp[1], amount=Decimal("105.00")),
        *sides.erp[3:],
    ]
    outcome = sides.run()
    assert (outcome.opened, outcome.open_cases) == (2, 2)
    cases = list_cases(sides.ledger.engine, now=T0)
    assert sorted((c.kind, c.ref) for c in cases) == [
        ("amount", "a0X00002"),
        ("missing_in_erp", "a0X00003"),
    ]
    assert {c.hub_state for c in cases} == {"never captured"}
    amount = next(c for c in cases if c.kind == "amount")
    assert Decimal(amount.difference or "") == Decimal("5.00")
    assert _audit(sides.ledger, "recon_case") == [("recon.case.opened", None, "open")] * 2
    with sides.ledger.engine.connect() as conn:
        run = conn.execute(select(recon_runs)).one()
    assert (run.scope, run.matched_count, run.variance_count, run.open_cases) == (
        "monthly",
        3,
        2,
        2,
    )
    assert outcome.report.matched_count == 3


def test_a_variance_that_clears_resolves_its_case_by_itself(sides: Sides) -> None:
    """The late delivery lands in the ERP: the next run resolves the case as auto_resolved,
    in the audit log; a later break of the same invoice reopens it."""
    sides.erp = sides.erp[:4]
    sides.run()
    (case,) = list_cases(sides.ledger.engine, now=T0)
    sides.erp.append(invoice(5, status="open"))
    later = sides.run(at=T0 + timedelta(hours=1))
    assert (later.auto_resolved, later.open_cases) == (1, 0)
    detail = show_case(sides.ledger.engine, case.id, now=T0)
    assert (detail.case.state, detail.case.resolution_code) == ("resolved", "auto_resolved")
    assert [h.action for h in detail.history] == ["recon.case.opened", "recon.case.auto_resolved"]

    sides.erp.pop()
    again = sides.run(at=T0 + timedelta(hours=2))
    assert again.reopened == 1
    assert show_case(sides.ledger.engine, case.id, now=T0).case.state == "open"


def test_a_case_is_investigated_then_resolved_or_accepted_with_every_step_audited(
    sides: Sides,
) -> None:
    """Open -> investigating -> resolved (code and note), open -> accepted; a closed case
    refuses further moves and the refusal changes nothing."""
    sides.erp = sides.erp[:3]
    sides.run()
    first, second = list_cases(sides.ledger.engine, now=T0)
    engine = sides.ledger.engine
    took = investigate_case(engine, first.id, actor="ben", note="checking the ERP", now=T0)
    assert (took.state, took.assignee) == ("investigating", "ben")
    with pytest.raises(DomainError, match="resolution code"):
        resolve_case(engine, first.id, actor="ben", code="fixed", note="x", now=T0)
    done = resolve_case(
        engine, first.id, actor="ben", code="corrected_in_erp", note="re-posted", now=T0
    )
    assert (done.state, done.resolution_code, done.note) == (
        "resolved",
        "corrected_in_erp",
        "re-posted",
    )
    with pytest.raises(DomainError, match="cannot become"):
        accept_case(engine, first.id, actor="ben", note="no", now=T0)
    with pytest.raises(DomainError, match="note"):
        accept_case(engine, second.id, actor="ben", note=" ", now=T0)
    accepted = accept_case(
        engine, second.id, actor="cho", note="written off, approved by CFO", now=T0
    )
    assert accepted.state == "accepted"
    history = show_case(engine, first.id, now=T0).history
    assert [(h.action, h.actor, h.to_state) for h in history] == [
        ("recon.case.opened", "ana", "open"),
        ("recon.case.investigating", "ben", "investigating"),
        ("recon.case.resolved", "ben", "resolved"),
    ]
    assert history[2].details == {"resolution_code": "corrected_in_erp"}
    assert list_cases(engine, now=T0) == []
    status = recon_status(engine, now=T0)
    assert status.cases_by_state == {"open": 0, "investigating": 0, "resolved": 1, "accepted": 1}


def test_an_unknown_case_state_is_refused_naming_the_known_ones(sides: Sides) -> None:
    with pytest.raises(DomainError) as caught:
        list_cases(sides.ledger.engine, now=T0, states=["open", "closed"])
    assert str(caught.value) == (
        "unknown case state closed; known: open, investigating, resolved, accepted"
    )


def test_an_unknown_reconciliation_is_refused_not_listed_as_no_case(sides: Sides) -> None:
    """`--reconciliation payment` (for payments) listed nothing, which reads as "no case"
    while the payments had open ones: refused, naming the three."""
    sides.erp = sides.erp[1:]
    sides.run()
    assert len(list_cases(sides.ledger.engine, now=T0, reconciliation="ar")) == 1
    with pytest.raises(DomainError) as caught:
        list_cases(sides.ledger.engine, now=T0, reconciliation="payment")
    assert str(caught.value) == "unknown reconciliation 'payment'; known: ar, payments, revenue"


def test_open_cases_age_in_buckets(sides: Sides) -> None:
    """A case opened 10 days ago is in the 8-30 bucket; one opened today in 0-1."""
    sides.erp = sides.erp[:4]
    sides.run(at=T0 - timedelta(days=10))
    sides.erp = sides.erp[:3]
    sides.run()
    status = recon_status(sides.ledger.engine, now=T0)
    assert status.aging == {"0-1": 1, "2-7": 0, "8-30": 1, ">30": 0}
    assert sorted(c.days_open for c in list_cases(sides.ledger.engine, now=T0)) == [0, 10]


def test_a_month_is_signed_off_by_two_people_and_voided_when_a_balance_moves(sides: Sides) -> None:
    """Preparer then a different reviewer sign October; a later month-end run that finds an
    invoice changed voids the sign-off, audited; the period can be prepared again."""
    engine = sides.ledger.engine
    with pytest.raises(DomainError, match="no month-end run"):
        sign_off(engine, period="2026-10", role="preparer", actor="ana", now=T0)
    sides.run()
    prepared = sign_off(engine, period="2026-10", role="preparer", actor="ana", now=T0)
    assert prepared.state == "prepared"
    with pytest.raises(DomainError, match="someone else"):
        sign_off(engine, period="2026-10", role="reviewer", actor="ana", now=T0)
    signed = sign_off(engine, period="2026-10", role="reviewer", actor="ben", now=T0)
    assert (signed.state, signed.reviewer) == ("signed", "ben")

    unchanged = sides.run(at=T0 + timedelta(hours=1))
    assert unchanged.voided_signoffs == ()

    sides.erp[0] = dataclasses.replace(sides.erp[0], amount=Decimal("90.00"))
    changed = sides.run(at=T0 + timedelta(days=3))
    assert changed.voided_signoffs == (signed.id,)
    assert recon_status(engine, now=T0).signoffs[0].state == "voided"
    assert _audit(sides.ledger, "recon_signoff") == [
        ("recon.signoff.prepared", None, "prepared"),
        ("recon.signoff.signed", "prepared", "signed"),
        ("recon.signoff.voided", "signed", "voided"),
    ]
    with pytest.raises(DomainError, match="still open"):
        sign_off(engine, period="2026-10", role="preparer", actor="ana", now=T0)


def revenue_entry(ref: str, day: date, currency: str, amount: str) -> bytes:
    lines = [
        {"account": account, "debit": debit, "credit": credit, "currency": currency}
        for account, debit, credit in (
            ("2400 Deferred Revenue", amount, "0"),
            ("4000 Subscription Revenue", "0", amount),
        )
    ]
    at = f"{day.isoformat()}T00:00:00+00:00"
    return json.dumps({
        "type": "revenue.recognized", "source": "salesforce", "source_id": ref,
        "source_version": at, "occurred_at": at,
        "data": {"schedule_entry_id": ref, "schedule_id": "RS-1", "period": f"{day:%Y-%m}",
                 "entry_date": day.isoformat(), "lines": lines},
    }).encode()  # fmt: skip


def test_a_month_is_not_signed_off_while_its_revenue_is_in_transit(sides: Sides) -> None:
    """Revenue entries of October not yet delivered (waiting for their batch window) refuse
    the sign-off, named with their control totals per currency and when they are due; a
    reason overrides, and is audited with what was in transit."""
    engine = sides.ledger.engine
    sides.run()
    lines = [
        revenue_entry("a0R1", date(2026, 10, 5), "USD", "1200.00"),
        revenue_entry("a0R2", date(2026, 10, 31), "USD", "300.50"),
        revenue_entry("a0R3", date(2026, 10, 9), "EUR", "50.00"),
        revenue_entry("a0R4", date(2026, 11, 2), "USD", "999.00"),  # November's: not October's
    ]
    ingested = ingest_lines(
        sides.ledger, lines, policy=build_policy(), origin="t", clock=ManualClock(T0)
    )
    assert ingested.rejected == 0
    with pytest.raises(
        DomainError, match=r"3 revenue entries \(control totals EUR 50.00, USD 1500.50\); due "
    ) as e:
        sign_off(engine, period="2026-10", role="preparer", actor="ana", now=T0)
    # What is in transit, then its due time: the due time is not read as the period's.
    assert "still in transit to the ERP: 3 revenue entries (control totals" in str(e.value)
    assert "--override-in-transit" in str(e.value)
    with pytest.raises(DomainError, match="in transit"):
        sign_off(engine, period="2026-10", role="preparer", actor="ana", now=T0,
                 override_in_transit="  ")  # fmt: skip
    prepared = sign_off(
        engine, period="2026-10", role="preparer", actor="ana", now=T0,
        override_in_transit="GL batch checked by hand",
    )  # fmt: skip
    assert prepared.state == "prepared"
    with engine.connect() as conn:
        row = conn.execute(
            select(audit_log).where(audit_log.c.action == "recon.signoff.prepared")
        ).one()
    assert row.reason == "GL batch checked by hand"
    details = json.loads(row.details)["in_transit"]
    assert (details["entries"], details["by_type"]["revenue.recognized"]["control_totals"]) == (
        3, {"EUR": "50.00", "USD": "1500.50"}
    )  # fmt: skip

    with engine.begin() as conn:  # the batch posts them
        conn.execute(deliveries.update().values(state="delivered"))
    signed = sign_off(engine, period="2026-10", role="reviewer", actor="ben", now=T0)
    assert signed.state == "signed"


def test_a_month_is_not_signed_off_while_its_invoices_are_on_their_way(sides: Sides) -> None:
    """An invoice of October still on its way to the ERP is reported in transit, not a case
    (decision 0030), so no case blocks the preparer; the sign-off names it instead, with the
    month's revenue on its way beside it."""
    from revbridge.generate import generate_events

    engine = sides.ledger.engine
    sides.run()
    october = [
        e
        for e in generate_events(300, seed=11)
        if e["type"] == "invoice.posted" and e["data"]["invoice_date"].startswith("2026-10")
    ][:2]
    assert len(october) == 2
    lines = [json.dumps(e).encode() for e in october]
    lines.append(revenue_entry("a0R9", date(2026, 10, 5), "USD", "10.00"))
    clock = ManualClock(T0)
    assert (
        ingest_lines(sides.ledger, lines, policy=build_policy(), origin="t", clock=clock).accepted
        == 3
    )
    totals: dict[str, Decimal] = {}
    for e in october:
        c = e["data"]["currency"]
        totals[c] = totals.get(c, Decimal(0)) + Decimal(e["data"]["total"])
    named = ", ".join(f"{c} {t}" for c, t in sorted(totals.items()))
    with pytest.raises(DomainError) as e:
        sign_off(engine, period="2026-10", role="preparer", actor="ana", now=T0)
    assert f"2 invoices (control totals {named})" in str(e.value)
    assert "1 revenue entry (control totals USD 10.00)" in str(e.value)


def test_a_nightly_run_inside_a_signed_month_voids_it_when_the_month_moved(sides: Sides) -> None:
    """A nightly run of a day in a signed-off month checks the month's balances again."""
    engine = sides.ledger.engine
    sides.run()
    sign_off(engine, period="2026-10", role="preparer", actor="ana", now=T0)
    sides.sf.append(invoice(9, day=20))
    sides.erp.append(invoice(9, "99.00", day=20, status="open"))
    night = sides.run("nightly", (date(2026, 10, 7), date(2026, 10, 8)), at=T0 + timedelta(days=1))
    assert len(night.voided_signoffs) == 1
    assert "ar" in (recon_status(engine, now=T0).signoffs[0].void_reason or "")


def test_configured_thresholds_decide_between_tolerance_and_a_case(
    ledger: Ledger, tmp_path: Path
) -> None:
    """With `[recon.thresholds.ar]` 0.05 absolute and 1.00 for JPY, a USD invoice 0.03 off is
    within tolerance (no case), one 0.10 off opens a case, a JPY invoice 1 off does not."""
    sides = Sides(ledger, tmp_path)
    sides.settings = parse_config(
        {"recon": {"thresholds": {"ar": {"absolute": "0.05",
                                         "per_currency": {"JPY": {"absolute": "1"}}}}}},
        None,
        tmp_path,
    )  # fmt: skip
    yen = dataclasses.replace(invoice(6, "5000"), currency="JPY")
    sides.sf.append(yen)
    sides.erp = [
        dataclasses.replace(sides.erp[0], amount=Decimal("100.03")),
        dataclasses.replace(sides.erp[1], amount=Decimal("100.10")),
        *sides.erp[2:],
        dataclasses.replace(yen, amount=Decimal("5001"), status="open"),
    ]
    outcome = sides.run()
    assert outcome.report.within_tolerance == 2
    assert [(c.kind, c.ref) for c in list_cases(ledger.engine, now=T0)] == [("amount", "a0X00002")]


def test_a_case_a_raised_threshold_tolerates_says_it_still_differs(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A controller raises `[recon.thresholds.ar]` above an open case's difference: the next
    run resolves it (within tolerance, no case), and its note and history say what it still
    differs by, not that the variance cleared (the difference is still there)."""
    sides = Sides(ledger, tmp_path)
    sides.erp[1] = dataclasses.replace(sides.erp[1], amount=Decimal("102.50"))
    sides.run()
    (case,) = list_cases(ledger.engine, now=T0)
    sides.settings = parse_config(
        {"recon": {"thresholds": {"ar": {"absolute": "5.00"}}}}, None, tmp_path
    )
    later = sides.run(at=T0 + timedelta(hours=1))
    assert (later.auto_resolved, later.report.within_tolerance) == (1, 1)
    detail = show_case(ledger.engine, case.id, now=T0)
    assert detail.case.resolution_code == "auto_resolved"
    assert detail.case.note is not None
    assert "still differs by 2.50 USD" in detail.case.note
    assert "[recon.thresholds.ar]" in detail.case.note
    assert "cleared" not in detail.case.note
    assert detail.history[-1].reason == detail.case.note


def test_a_bad_threshold_fails_at_load_naming_the_key(tmp_path: Path) -> None:
    """A threshold for an unknown reconciliation is refused when the configuration loads."""
    from revbridge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"recon\.thresholds"):
        parse_config({"recon": {"thresholds": {"gl": {"absolute": "1"}}}}, None, tmp_path)
    with pytest.raises(ConfigError, match="nightly_schedule"):
        parse_config({"recon": {"nightly_schedule": "every night"}}, None, tmp_path)


def _delivery(ledger: Ledger, ref: str, state: str, *, event: int = 1) -> None:
    """An invoice event of ``ref`` with its delivery in ``state`` (real-time, tried once)."""
    with ledger.engine.begin() as conn:
        event_id = conn.execute(
            events.insert()
            .values(idempotency_key=f"t:{ref}:{event}", type="invoice.posted",
                    source="salesforce", source_id=ref, source_version=str(event),
                    occurred_at=T0, received_at=T0, subject_ref=f"invoice:{ref}",
                    payload_hash="x", payload="{}")
            .returning(events.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(
            deliveries.insert().values(event_id=event_id, target="erp", pattern="realtime",
                                       state=state, attempts=1, due_at=T0, updated_at=T0)
        )  # fmt: skip


@pytest.mark.parametrize("state", ["pending", "in_flight", "parked", "held"])
def test_a_document_the_hub_is_still_delivering_is_in_transit_not_a_case(
    sides: Sides, state: str
) -> None:
    """An invoice missing in the ERP whose delivery is on its way opens no case: the run
    reports it in transit with its hub state; another run of the same tick neither. A run
    a day later that still finds it undelivered opens the case. A dead letter is a case at
    once."""
    sides.erp = [e for e in sides.erp if e.ref not in ("a0X00003", "a0X00004")]
    _delivery(sides.ledger, "a0X00003", state)
    _delivery(sides.ledger, "a0X00004", "dead_letter")
    first = sides.run()
    assert (first.opened, first.open_cases) == (1, 1)
    [line] = [x for x in first.report.lines if x.ref == "a0X00003"]
    assert (line.hub_state, line.timing_difference, line.case_id) == (state, True, None)
    nightly = sides.run("nightly", (date(2026, 10, 5), date(2026, 10, 6)))
    assert (nightly.opened, nightly.open_cases) == (0, 1)
    later = sides.run(at=T0 + timedelta(days=1))
    assert (later.opened, later.open_cases) == (1, 2)
    cases = {c.ref: c.hub_state for c in list_cases(sides.ledger.engine, now=T0)}
    assert cases == {"a0X00003": state, "a0X00004": "dead_letter"}


def test_a_report_in_another_format_opens_no_case_for_a_document_in_transit(
    sides: Sides,
) -> None:
    """The close how-to writes the month's workbook, then its HTML page with --no-refresh
    a moment later. That second run read nothing new: the invoice the hub is still
    delivering stays in transit, no case. The next run that reads both sides opens it."""
    sides.erp = [e for e in sides.erp if e.ref != "a0X00003"]
    _delivery(sides.ledger, "a0X00003", "pending")
    first = sides.run()
    assert first.opened == 0
    page = run_recon(
        sides.ledger.engine, sides.reconcile, scope="monthly", start=OCT[0], end=OCT[1],
        actor="ana", now=T0 + timedelta(minutes=1), refresh=False,
    )  # fmt: skip
    assert (page.opened, page.open_cases) == (0, 0)
    [line] = [x for x in page.report.lines if x.ref == "a0X00003"]
    assert (line.hub_state, line.timing_difference, line.case_id) == ("pending", True, None)
    later = sides.run(at=T0 + timedelta(hours=1))
    assert (later.opened, later.open_cases) == (1, 1)


def test_a_document_delivered_after_its_first_sighting_never_becomes_a_case(sides: Sides) -> None:
    """Pending at the first run, delivered and in the ERP by the next: no case, ever."""
    _delivery(sides.ledger, "a0X00003", "pending")
    erp = sides.erp
    sides.erp = [e for e in erp if e.ref != "a0X00003"]
    assert sides.run().opened == 0
    with sides.ledger.engine.begin() as conn:
        conn.execute(deliveries.update().values(state="delivered"))
    sides.erp = erp
    assert sides.run(at=T0 + timedelta(days=1)).opened == 0
    with sides.ledger.engine.connect() as conn:
        assert conn.execute(select(recon_in_transit)).all() == []


NOV_1 = (date(2026, 11, 1), date(2026, 11, 2))


def _opened_reason(ledger: Ledger) -> list[str | None]:
    with ledger.engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_log.c.reason).where(audit_log.c.action == "recon.case.opened")
            ).scalars()
        )


def test_a_document_stuck_in_transit_is_a_case_at_the_next_nightly_run(sides: Sides) -> None:
    """The month-end run finds an October invoice pending (in transit, no case); no later run
    covers October. The next nightly run (of November 1st, 23 hours later) finds its delivery
    still pending and opens its case over October, saying since when and which run found it;
    a run within the grace does not, and a later one opens no second case."""
    sides.erp = [e for e in sides.erp if e.ref != "a0X00003"]
    _delivery(sides.ledger, "a0X00003", "pending")
    first = sides.run()
    assert (first.opened, first.open_cases) == (0, 0)
    soon = sides.run("nightly", NOV_1, at=T0 + timedelta(hours=1))
    assert (soon.opened, soon.open_cases) == (0, 0)
    nightly = sides.run("nightly", NOV_1, at=T0 + timedelta(hours=23))
    assert (nightly.opened, nightly.open_cases) == (1, 1)
    [case] = list_cases(sides.ledger.engine, now=T0)
    assert (case.ref, case.kind, case.hub_state) == ("a0X00003", "missing_in_erp", "pending")
    assert (case.period_start, case.period_end, Decimal(case.source_amount or "")) == (
        *OCT,
        Decimal(100),
    )
    [reason] = _opened_reason(sides.ledger)
    assert reason == (
        f"still in transit (pending) since 2026-11-01 03:00:00 UTC, first found by run "
        f"{first.run_id}; opened by run {nightly.run_id}"
    )
    with sides.ledger.engine.connect() as conn:
        assert conn.execute(select(recon_in_transit)).all() == []
    again = sides.run("nightly", (date(2026, 11, 2), date(2026, 11, 3)), at=T0 + timedelta(days=2))
    assert (again.opened, again.open_cases) == (0, 1)
    assert sides.run(at=T0 + timedelta(days=3)).opened == 0  # the month again: refreshed


def test_a_document_dead_lettered_after_its_sighting_is_a_case_at_any_run(sides: Sides) -> None:
    """Pending at the month-end run, dead-lettered an hour later: the next run, whatever its
    period, opens the case at once."""
    sides.erp = [e for e in sides.erp if e.ref != "a0X00003"]
    _delivery(sides.ledger, "a0X00003", "pending")
    first = sides.run()
    with sides.ledger.engine.begin() as conn:
        conn.execute(deliveries.update().values(state="dead_letter"))
    nightly = sides.run("nightly", NOV_1, at=T0 + timedelta(hours=1))
    assert (nightly.opened, nightly.open_cases) == (1, 1)
    [reason] = _opened_reason(sides.ledger)
    assert reason.startswith("dead-lettered; in transit since 2026-11-01 03:00:00 UTC")
    assert f"first found by run {first.run_id}" in reason


def test_a_document_delivered_since_its_sighting_is_left_to_a_covering_run(sides: Sides) -> None:
    """Delivered after the month-end run saw it pending: a nightly run of another day opens
    nothing and leaves the sighting; the next month run (the ERP has it) forgets it."""
    erp = sides.erp
    sides.erp = [e for e in erp if e.ref != "a0X00003"]
    _delivery(sides.ledger, "a0X00003", "pending")
    sides.run()
    with sides.ledger.engine.begin() as conn:
        conn.execute(deliveries.update().values(state="delivered"))
    assert sides.run("nightly", NOV_1, at=T0 + timedelta(days=1)).opened == 0
    with sides.ledger.engine.connect() as conn:
        assert len(conn.execute(select(recon_in_transit)).all()) == 1
    sides.erp = erp
    assert sides.run(at=T0 + timedelta(days=2)).opened == 0
    with sides.ledger.engine.connect() as conn:
        assert conn.execute(select(recon_in_transit)).all() == []


def test_a_run_that_read_nothing_is_no_new_point_of_the_trend(sides: Sides) -> None:
    """The close writes the workbook, then the HTML page and a JSON copy with --no-refresh:
    one reading of both sides, one point of the variance trend (the latest run of that
    reading, with its open cases), not three. The next run that reads is a new point."""
    readings = [T0]

    def reconcile(scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        if refresh:  # a refresh reads both sides again: a new read_at
            readings.append(readings[-1] + timedelta(hours=1))
        return dataclasses.replace(
            sides.reconcile(scope, start, end, refresh), read_at=readings[-1]
        )

    def run(at: datetime, *, refresh: bool = True):  # type: ignore[no-untyped-def]
        return run_recon(
            sides.ledger.engine, reconcile, scope="monthly", start=OCT[0], end=OCT[1],
            actor="ana", now=at, refresh=refresh,
        )  # fmt: skip

    sides.erp = sides.erp[1:]
    workbook = run(T0)
    run(T0 + timedelta(minutes=1), refresh=False)
    page = run(T0 + timedelta(minutes=2), refresh=False)
    assert [p.run_id for p in page.report.trend] == [page.run_id]
    assert page.report.trend[0].open_cases == 1
    later = run(T0 + timedelta(hours=2))
    assert [p.run_id for p in later.report.trend] == [page.run_id, later.run_id]
    assert workbook.run_id not in [p.run_id for p in later.report.trend]
    # `recon status` lists every run; the console's bar chart takes the new readings only.
    from revbridge.services.recon import recon_status

    listed = recon_status(sides.ledger.engine, now=T0 + timedelta(hours=3)).recent_runs
    assert [(r["id"], r["new_reading"]) for r in listed][::-1] == [
        (workbook.run_id, False),
        (workbook.run_id + 1, False),
        (page.run_id, True),
        (later.run_id, True),
    ]


def test_a_case_names_the_document_number_people_know(sides: Sides) -> None:
    """A controller looks for INV-... or CM-..., not for Salesforce's record id: a case on an
    invoice or a credit memo the hub received carries its number (list, show, and the
    transitions); one on a document never captured has none."""
    from revbridge.generate import generate_events

    made = list(generate_events(80, seed=3, end=T0))
    inv = next(e for e in made if e["type"] == "invoice.posted")
    memo = next(e for e in made if e["type"] == "credit_memo.issued")
    ingested = ingest_lines(
        sides.ledger, [json.dumps(e).encode() for e in (inv, memo)], policy=build_policy(),
        origin="t", clock=ManualClock(T0),
    )  # fmt: skip
    assert ingested.accepted == 2
    with sides.ledger.engine.begin() as conn:  # both delivered, then lost from the ERP
        conn.execute(deliveries.update().values(state="delivered"))
    inv_id, memo_id = inv["data"]["invoice_id"], memo["data"]["credit_memo_id"]
    sides.sf = [
        *sides.sf,
        dataclasses.replace(invoice(90), key="k90", ref=inv_id),
        dataclasses.replace(invoice(91), key="k91", ref=memo_id, doc_type="credit_memo"),
    ]
    sides.erp = sides.erp[1:]  # a0X00001, never captured, is missing too
    outcome = sides.run()
    assert outcome.opened == 3
    # The report's lines (every format) carry it too.
    assert {x.ref: x.number for x in outcome.report.lines} == {
        inv_id: inv["data"]["invoice_number"],
        memo_id: memo["data"]["credit_memo_number"],
        "a0X00001": None,
    }
    from revbridge.recon.report.render import render

    rows = list(csv.DictReader(io.StringIO(render(outcome.report, "csv").decode())))
    assert {r["ref"]: r["number"] for r in rows}[inv_id] == inv["data"]["invoice_number"]
    assert inv["data"]["invoice_number"] in render(outcome.report, "html").decode()
    numbers = {c.ref: c.number for c in list_cases(sides.ledger.engine, now=T0)}
    assert numbers == {
        inv_id: inv["data"]["invoice_number"],
        memo_id: memo["data"]["credit_memo_number"],
        "a0X00001": None,
    }
    case = next(c for c in list_cases(sides.ledger.engine, now=T0) if c.ref == inv_id)
    assert show_case(sides.ledger.engine, case.id, now=T0).case.number == numbers[inv_id]
    taken = investigate_case(sides.ledger.engine, case.id, actor="ana", now=T0)
    assert taken.number == numbers[inv_id]
