"""ERP-side capture and read-back: what the accountant does in NetSuite reaches the hub."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.services.ingest import ingest_lines
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from tests.contract.netsuite_adapter.conftest import Admin, run
from tests.contract.netsuite_adapter.test_port import customer, invoice, revenue

D = Decimal


def _setup(erp: NetSuiteErp) -> dict[str, str]:
    async def go() -> dict[str, str]:
        cust = await erp.upsert_customer("001A", customer("001A"), None)
        inv = await erp.create_invoice("a0X1", invoice("a0X1", "001A"), cust.erp_id)
        await erp.post_journal("a0R1", revenue("a0R1", "001A"), cust.erp_id)
        return {"customer": cust.erp_id, "invoice": inv.erp_id}

    return run(go())


def _capture(erp: NetSuiteErp, mark: str | None) -> tuple[list[dict[str, Any]], str]:
    async def go() -> tuple[list[dict[str, Any]], str]:
        try:
            return await erp.capture_changes(mark)
        finally:
            await erp.close()

    return run(go())


def _of(envelopes: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in envelopes if e["type"] == kind]


def test_an_accountant_entered_payment_is_captured_and_the_hubs_own_is_not(
    erp: NetSuiteErp, admin: Admin
) -> None:
    ids = _setup(erp)
    _, mark = _capture(erp, None)
    admin(
        "POST",
        "/customerPayment",
        {
            "customer": {"id": ids["customer"]},
            "payment": 100,
            "tranDate": "2026-10-20",
            "account": {"id": "2"},
            "apply": {"items": [{"doc": {"id": ids["invoice"]}, "apply": True, "amount": 60}]},
        },
    )
    envelopes, mark = _capture(erp, mark)
    payments = _of(envelopes, "erp.payment.received")
    assert len(payments) == 1
    data = payments[0]["data"]
    assert data["customer_id"] == "001A"  # the Salesforce account behind the NetSuite customer
    assert (data["currency"], data["amount"], data["received_on"], data["method"]) == (
        "USD",
        "100.00",
        "2026-10-20",
        "bank",
    )
    assert data["applications"] == [
        {"invoice_id": "a0X1", "erp_invoice_id": ids["invoice"], "amount": "60.00"}
    ]
    # Nothing new since: the same mark gives nothing twice.
    again, _ = _capture(erp, mark)
    assert _of(again, "erp.payment.received") == []


def test_a_payment_the_hub_posted_is_never_echoed(erp: NetSuiteErp) -> None:
    from revbridge.core.events import Application, PaymentReceived

    ids = _setup(erp)

    async def pay() -> None:
        payment = PaymentReceived(
            payment_id="a0P1",
            customer_id="001A",
            currency="USD",
            amount=D("10.00"),
            received_on=date(2026, 10, 9),
            method="card",
            applications=(Application(invoice_id="a0X1", amount=D("10.00")),),
        )
        await erp.record_payment("a0P1", payment, ids["customer"], {"a0X1": ids["invoice"]})

    run(pay())
    envelopes, _ = _capture(erp, None)
    assert _of(envelopes, "erp.payment.received") == []
    assert len(_of(envelopes, "gl.posted")) == 3  # its GL impact is reported, as any posting


def test_a_credit_hold_set_by_the_accountant_is_captured(erp: NetSuiteErp, admin: Admin) -> None:
    ids = _setup(erp)
    first, mark = _capture(erp, None)
    assert _of(first, "customer.credit_status_changed") == []  # a new hub customer: nothing to say
    admin(
        "PUT",
        f"/customer/{ids['customer']}/credit",
        {"creditHoldOverride": "ON", "creditLimit": 5000},
    )
    envelopes, mark = _capture(erp, mark)
    [status] = _of(envelopes, "customer.credit_status_changed")
    data = status["data"]
    assert (data["customer_id"], data["status"], data["credit_hold"], data["credit_limit"]) == (
        "001A",
        "on_hold",
        True,
        "5000.00",
    )
    admin("PUT", f"/customer/{ids['customer']}/credit", {"creditHoldOverride": "AUTO"})
    envelopes, _ = _capture(erp, mark)
    [released] = _of(envelopes, "customer.credit_status_changed")
    assert (released["data"]["status"], released["data"]["credit_hold"]) == ("active", False)
    assert released["source_version"] != status["source_version"]


def test_gl_postings_are_captured_balanced_per_currency(erp: NetSuiteErp) -> None:
    _setup(erp)

    async def more() -> None:
        cust = await erp.upsert_customer("001E", customer("001E", "Euro GmbH", "EUR"), None)
        await erp.create_invoice(
            "a0X9", invoice("a0X9", "001E", "99.99", "20.00", "EUR"), cust.erp_id
        )

    run(more())
    envelopes, _ = _capture(erp, None)
    journals = _of(envelopes, "gl.posted")
    assert len(journals) == 3
    for journal in journals:
        totals: dict[str, list[Decimal]] = defaultdict(lambda: [D(0), D(0)])
        for line in journal["data"]["lines"]:
            totals[line["currency"]][0] += D(line["debit"])
            totals[line["currency"]][1] += D(line["credit"])
        assert all(debit == credit > 0 for debit, credit in totals.values()), journal
    by_source = {j["data"]["source_ref"]: j["data"] for j in journals}
    assert by_source["a0X9"]["lines"][0] == {  # EUR invoice in the base currency at 1.08
        "account": "1100 Accounts Receivable",
        "debit": "129.59",
        "credit": "0.00",
        "currency": "USD",
    }
    assert by_source["a0R1"]["period"] == "2026-10"


def test_captured_envelopes_are_valid_canonical_events(
    erp: NetSuiteErp, admin: Admin, sqlite_url: str
) -> None:
    ids = _setup(erp)
    admin("PUT", f"/customer/{ids['customer']}/credit", {"creditHoldOverride": "ON"})
    admin(
        "POST",
        "/customerPayment",
        {"customer": {"id": ids["customer"]}, "payment": 5, "tranDate": "2026-10-21"},
    )
    envelopes, _ = _capture(erp, None)
    assert {e["type"] for e in envelopes} == {
        "erp.payment.received",
        "customer.credit_status_changed",
        "gl.posted",
    }
    engine = create_store_engine(sqlite_url)
    try:
        clock = ManualClock(erp_now())
        lines = [json.dumps(e).encode() for e in envelopes + envelopes]
        result = ingest_lines(Ledger(engine), lines, policy=build_policy(), origin="t", clock=clock)
    finally:
        engine.dispose()
    assert result.rejected == 0
    assert result.accepted == len(envelopes)  # the repeat is recognised as the same events


def erp_now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 11, 2, tzinfo=UTC)


def test_capture_pages_through_more_rows_than_one_page(erp: NetSuiteErp, admin: Admin) -> None:
    ids = _setup(erp)
    for day in range(1, 8):
        admin(
            "POST",
            "/customerPayment",
            {"customer": {"id": ids["customer"]}, "payment": day, "tranDate": f"2026-10-{day:02d}"},
        )
    erp._capture.page_size = 3
    envelopes, mark = _capture(erp, None)
    assert [e["data"]["amount"] for e in _of(envelopes, "erp.payment.received")] == [
        f"{d}.00" for d in range(1, 8)
    ]
    assert json.loads(mark)["payments"] is not None


def test_read_back_gives_ar_payments_and_gl_for_a_period(erp: NetSuiteErp, admin: Admin) -> None:
    ids = _setup(erp)
    admin(
        "POST",
        "/customerPayment",
        {
            "customer": {"id": ids["customer"]},
            "payment": 16,
            "tranDate": "2026-10-25",
            "apply": {"items": [{"doc": {"id": ids["invoice"]}, "apply": True, "amount": 16}]},
        },
    )

    async def go() -> tuple[Any, ...]:
        out = (
            await erp.ar_by_invoice(),
            await erp.ar_by_customer(),
            await erp.payments_for_period("2026-10"),
            await erp.gl_lines_for_period("2026-10"),
            await erp.gl_lines_for_period("2026-09"),
        )
        await erp.close()
        return out

    invoices, customers, payments, gl, september = run(go())
    [inv] = invoices
    assert (inv.external_ref, inv.total, inv.amount_paid, inv.amount_remaining, inv.status) == (
        "a0X1",
        D("216.00"),
        D("16.00"),
        D("200.00"),
        "open",
    )
    [cust] = customers
    assert (cust.external_ref, cust.balance, cust.currency) == ("001A", D("200.00"), "USD")
    [payment] = payments
    assert (payment.external_ref, payment.amount, payment.applied) == (None, D("16.00"), D("16.00"))
    assert sum(line.debit for line in gl) == sum(line.credit for line in gl) == D("282.00")
    assert september == ()
