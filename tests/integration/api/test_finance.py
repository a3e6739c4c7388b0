"""Reconciliation cases, sign-off and the customer review queue through the ops API."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from revbridge.clock import ManualClock, SystemClock
from revbridge.config import Settings
from revbridge.core.policy import build_policy
from revbridge.recon.period import PeriodRecon, reconcile_period
from revbridge.services import mdm
from revbridge.services.ingest import ingest_lines
from revbridge.services.recon import accept_case, list_cases, run_recon
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log
from tests.integration.recon.test_workflow import T0, invoice, revenue_entry
from tests.unit.recon.sides import store_of

from .conftest import Hub

OCT = (date(2026, 10, 1), date(2026, 11, 1))


def open_one_case(ledger: Ledger, settings: Settings) -> None:
    """A month-end run where one invoice is 5.00 higher in the ERP: one amount case."""
    sf = [invoice(n) for n in range(1, 4)]
    erp = [
        invoice(1, status="open"),
        invoice(2, "105.00", status="open"),
        invoice(3, status="open"),
    ]

    def reconcile(scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        store = store_of(sf, erp)
        try:
            return reconcile_period(
                settings, ledger.engine, scope=scope, start=start, end=end,
                refresh=False, store=store, now=SystemClock().now(),
            )  # fmt: skip
        finally:
            store.close()

    run_recon(
        ledger.engine, reconcile, scope="monthly", start=OCT[0], end=OCT[1], actor="ana",
        now=SystemClock().now(),
    )  # fmt: skip


def test_an_operator_resolves_a_reconciliation_case_and_it_is_audited(hub: Hub) -> None:
    """Viewers see the open case; only an operator resolves it, with a code and a note."""
    open_one_case(hub.ledger, hub.settings)
    cases = hub.client.get("/api/v1/recon/cases", headers=hub.auth("viewer")).json()
    assert [(c["kind"], c["ref"]) for c in cases] == [("amount", "a0X00002")]
    assert abs(Decimal(cases[0]["difference"])) == Decimal("5.00")
    case_id = cases[0]["id"]
    body = {"action": "resolve", "code": "corrected_in_erp", "note": "credit note in the ERP"}
    url = f"/api/v1/recon/cases/{case_id}"
    assert hub.client.post(url, json=body, headers=hub.auth("viewer")).status_code == 403
    done = hub.client.post(url, json=body, headers=hub.auth("operator"))
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "resolved"
    history = hub.client.get(url, headers=hub.auth("viewer")).json()["history"]
    assert history[-1]["actor"] == "token:operator-1"
    assert history[-1]["reason"] == "credit note in the ERP"
    bad = hub.client.post(url, json={"action": "accept", "note": "x"}, headers=hub.auth("operator"))
    assert bad.status_code == 400  # a resolved case is final: the service's reason is shown
    status = hub.client.get("/api/v1/recon/status", headers=hub.auth("viewer")).json()
    assert status["cases_by_state"]["resolved"] == 1


def test_a_signoff_with_revenue_in_transit_needs_a_reason(hub: Hub) -> None:
    """The API refuses a sign-off while revenue of the month is in transit (400, naming it);
    ``override_in_transit`` signs anyway, the reason in the audit log."""
    open_one_case(hub.ledger, hub.settings)
    engine, now = hub.ledger.engine, SystemClock().now()
    for case in list_cases(engine, now=now):
        accept_case(engine, case.id, actor="ana", note="known", now=now)
    lines = [revenue_entry("a0R1", date(2026, 10, 30), "USD", "250.00")]
    clock = ManualClock(T0)
    assert ingest_lines(hub.ledger, lines, policy=build_policy(), origin="t", clock=clock).accepted
    url, body = "/api/v1/recon/signoff", {"period": "2026-10", "role": "preparer"}
    refused = hub.client.post(url, json=body, headers=hub.auth("operator"))
    assert refused.status_code == 400
    assert "1 revenue entry (control totals USD 250.00); due" in refused.text
    body["override_in_transit"] = "posted by hand in the GL"
    done = hub.client.post(url, json=body, headers=hub.auth("operator"))
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "prepared"
    with engine.connect() as conn:
        reason = conn.execute(
            select(audit_log.c.reason).where(audit_log.c.action == "recon.signoff.prepared")
        ).scalar_one()
    assert reason == "posted by hand in the GL"


def test_a_review_item_is_decided_by_an_operator(hub: Hub) -> None:
    """A proposed customer match is listed, approved through the API, and audited."""
    now = SystemClock().now()
    with hub.ledger.engine.begin() as conn:
        item = mdm.open_review(
            conn,
            kind="match",
            sf_account_id="001000000000001AAA",
            erp_customer_number="CUST-7",
            erp_value={"erp_system": "netsuite", "erp_internal_id": "907"},
            message="name and address match at 0.93",
            now=now,
        ).id
    listed = hub.client.get("/api/v1/customers/reviews", headers=hub.auth("viewer")).json()
    assert [r["id"] for r in listed] == [item]
    url = f"/api/v1/customers/reviews/{item}"
    decided = hub.client.post(
        url, json={"approve": True, "note": "same company"}, headers=hub.auth("operator")
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "approved"
    with hub.ledger.engine.connect() as conn:
        actor = conn.execute(
            select(audit_log.c.actor).where(audit_log.c.action == "mdm_review_approved")
        ).scalar_one()
    assert actor == "token:operator-1"
    missing = hub.client.get("/api/v1/customers/reviews/999999", headers=hub.auth("viewer"))
    assert missing.status_code == 404
