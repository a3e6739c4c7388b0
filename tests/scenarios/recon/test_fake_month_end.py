"""Month-end close on the fake ERP: a month of business delivered, read back, reconciled.

A controller's story: October's invoices, credit memos, payments (both ways) and revenue are
delivered by the hub; the reconciliation of October finds nothing. Then things drift: an
invoice amount is edited in the ERP, a credit memo is cancelled in Salesforce, a cash receipt
is keyed wrong, a revenue journal is changed, a payment write-back is lost, and a new invoice
is posted in Salesforce the hub has not delivered yet. The next run finds exactly those, with
the hub's state beside each; once the hub delivers the new invoice, its finding is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from revbridge.clock import ManualClock
from revbridge.codec import decode_payload
from revbridge.config import Settings, parse_config
from revbridge.core.events import EventType
from revbridge.core.policy import build_policy
from revbridge.engine.ports import ArDocument, ReadbackKind
from revbridge.engine.worker import Target, Worker
from revbridge.generate import generate_events
from revbridge.recon.match import FindingKind
from revbridge.recon.period import reconcile_period
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeSalesforce
from revbridge.testing.fakes import FakeErp
from tests.scenarios.recon.story import NOW, SF_TYPES, deliver, findings

OCTOBER = (date(2026, 10, 1), date(2026, 11, 1))


def _fakes(folder: Path) -> Settings:
    """A configuration on the fake ERP and the fake org, their state files in ``folder``."""
    return parse_config(
        {
            "erp": {"kind": "fake", "state_file": "erp.json"},
            "salesforce": {"kind": "fake", "state_file": "sf.json"},
        },
        None,
        folder,
    )


@pytest.fixture
def month(ledger: Ledger, tmp_path: Path) -> tuple[Settings, list[dict[str, Any]]]:
    """October delivered in full by the hub: both fakes hold the same business."""
    settings = _fakes(tmp_path)
    envs = list(generate_events(400, seed=5, end=datetime(2026, 11, 1, tzinfo=UTC)))
    _deliver(ledger, settings, envs, record_in_salesforce=True)
    erp = FakeErp(state_file=settings.path_in_base("erp.json"))
    for e in envs:
        if e["type"] == "erp.payment.received":
            data = decode_payload(EventType.ERP_PAYMENT_RECEIVED, json.dumps(e["data"]))
            erp.enter_payment(data)  # type: ignore[arg-type]
    asyncio.run(erp.close())
    return settings, envs


def _deliver(
    ledger: Ledger,
    settings: Settings,
    envs: list[dict[str, Any]],
    *,
    record_in_salesforce: bool,
    run_worker: bool = True,
) -> None:
    erp = FakeErp(state_file=settings.path_in_base("erp.json"))
    sf = FakeSalesforce(state_file=settings.path_in_base("sf.json"))
    deliver(
        ledger,
        erp,
        sf,
        envs,
        record_in_salesforce=record_in_salesforce,
        run_worker=run_worker,
    )


def test_a_month_delivered_in_full_reconciles_clean(
    ledger: Ledger, month: tuple[Settings, list[dict[str, Any]]]
) -> None:
    """Every October document, payment and revenue entry matches; nothing is reported."""
    settings, envs = month
    run = reconcile_period(
        settings, ledger.engine, scope="monthly", start=OCTOBER[0], end=OCTOBER[1], now=NOW
    )
    assert findings(run) == set()
    counts = {r.name: r.result.matched_count for r in run.reconciliations}
    by_type = {t: sum(1 for e in envs if e["type"] == t) for t in SF_TYPES}
    assert counts["ar"] == by_type["invoice.posted"] + by_type["credit_memo.issued"]
    erp_payments = sum(1 for e in envs if e["type"] == "erp.payment.received")
    assert counts["payments"] == by_type["payment.received"] + erp_payments
    assert counts["revenue"] == by_type["revenue.recognized"]
    assert run.read_at == NOW
    assert settings.path_in_base("recon.duckdb").exists()


def test_drift_is_found_exactly_and_a_late_delivery_clears_itself(
    ledger: Ledger, month: tuple[Settings, list[dict[str, Any]]]
) -> None:
    """Six planted breaks are found, nothing else; the undelivered invoice is a timing
    difference, and once delivered it no longer shows."""
    settings, envs = month
    reconcile_period(  # the nightly read: the store now holds October
        settings, ledger.engine, scope="monthly", start=OCTOBER[0], end=OCTOBER[1], now=NOW
    )
    of = lambda t: [e for e in envs if e["type"] == t]  # noqa: E731
    erp = FakeErp(state_file=settings.path_in_base("erp.json"))
    sf = FakeSalesforce(state_file=settings.path_in_base("sf.json"))

    # The ERP: an invoice total edited, a cash receipt keyed wrong, a revenue journal changed.
    invoice_ref = of("invoice.posted")[3]["source_id"]
    doc = next(d for d in erp.records("invoice") if d.external_ref == invoice_ref)
    doc.total += Decimal("1.00")
    erp.touch(doc)
    payment_ref = of("payment.received")[0]["source_id"]
    receipt = next(d for d in erp.records("payment") if d.external_ref == payment_ref)
    receipt.total += Decimal("10.00")
    erp.touch(receipt)
    entry = of("revenue.recognized")[0]
    journal = next(d for d in erp.records("journal") if d.external_ref == entry["source_id"])
    journal.data["lines"] = [
        [a, str(Decimal(dr) * 2), str(Decimal(cr) * 2)] for a, dr, cr in journal.data["lines"]
    ]
    journal.total *= 2
    erp.touch(journal)
    # Salesforce: a credit memo cancelled; an ERP payment's write-back lost on one invoice.
    memo_ref = of("credit_memo.issued")[0]["source_id"]
    memo = sf.get(ReadbackKind.AR, memo_ref)
    assert isinstance(memo, ArDocument)
    sf.put(dataclasses.replace(memo, status="Cancelled"))
    paid_ref = of("erp.payment.received")[0]["data"]["applications"][0]["invoice_id"]
    paid = sf.get(ReadbackKind.AR, paid_ref)
    assert isinstance(paid, ArDocument)
    assert paid.balance is not None
    sf.put(dataclasses.replace(paid, balance=paid.balance + Decimal("5.00")))
    asyncio.run(erp.close())
    asyncio.run(sf.close())
    # A new invoice posted in Salesforce on the 31st; captured, not delivered yet.
    late = dict(of("invoice.posted")[0])
    late_ref = "a0Xlateinvoice00001"
    late["source_id"] = late_ref
    late["source_version"] = "late-1"
    late["data"] = dict(
        late["data"], invoice_id=late_ref, invoice_number="INV-LATE", invoice_date="2026-10-31"
    )
    _deliver(ledger, settings, [late], record_in_salesforce=True, run_worker=False)

    run = reconcile_period(
        settings, ledger.engine, scope="monthly", start=OCTOBER[0], end=OCTOBER[1], now=NOW
    )
    currency = entry["data"]["lines"][0]["currency"]
    assert findings(run) == {
        ("ar", FindingKind.AMOUNT, invoice_ref),
        ("ar", FindingKind.STATUS, memo_ref),
        ("ar", FindingKind.MISSING_IN_ERP, late_ref),
        ("payments", FindingKind.AMOUNT, payment_ref),
        ("payments", FindingKind.BALANCE, paid_ref),
        ("revenue", FindingKind.AMOUNT, entry["source_id"]),
        ("revenue", FindingKind.CONTROL_TOTAL, f"2026-10|2400 Deferred Revenue|{currency}"),
        ("revenue", FindingKind.CONTROL_TOTAL, f"2026-10|4000 Subscription Revenue|{currency}"),
    }
    states = {f.finding.ref: f for r in run.reconciliations for f in r.findings}
    assert states[late_ref].hub.state == "pending"
    assert states[late_ref].timing_difference
    assert states[invoice_ref].hub.state == "delivered"
    assert not states[invoice_ref].timing_difference
    assert states[payment_ref].hub.subject_ref == f"payment:{payment_ref}"
    assert states[entry["source_id"]].hub.subject_ref == f"revenue:{entry['source_id']}"
    assert states[f"2026-10|4000 Subscription Revenue|{currency}"].hub.state == "not a record"

    _deliver(ledger, settings, [], record_in_salesforce=False)  # the worker delivers it
    again = reconcile_period(
        settings, ledger.engine, scope="monthly", start=OCTOBER[0], end=OCTOBER[1], now=NOW
    )
    assert ("ar", FindingKind.MISSING_IN_ERP, late_ref) not in findings(again)
    assert len(findings(again)) == 7


def test_on_the_default_fakes_both_sides_are_what_the_hub_saw(
    ledger: Ledger, tmp_path: Path
) -> None:
    """With the fake ERP and the fake org (the demo's configuration), Salesforce holds what
    it sent the hub and the ERP the cash it entered itself: a delivered month reconciles."""
    settings = _fakes(tmp_path)
    envs = list(generate_events(200, seed=9, end=datetime(2026, 11, 1, tzinfo=UTC)))
    _deliver(ledger, settings, envs, record_in_salesforce=False)
    run = reconcile_period(
        settings, ledger.engine, scope="monthly", start=OCTOBER[0], end=OCTOBER[1], now=NOW
    )
    assert findings(run) == set()
    assert run.of("payments").result.matched_count == sum(
        1 for e in envs if e["type"] in ("payment.received", "erp.payment.received")
    )


def test_an_invoice_changed_in_salesforce_after_posting_is_a_case_with_its_dead_letter(
    ledger: Ledger, tmp_path: Path
) -> None:
    """On the default fakes, October is delivered; then Salesforce changes an invoice the
    ERP already holds. The ERP refuses it (a posted document is never changed): a dead
    letter. The next run shows the new total against the ERP's, with the dead letter, not
    a clean month (the fake org used to keep the invoice's first version)."""
    settings = _fakes(tmp_path)
    envs = list(generate_events(200, seed=9, end=datetime(2026, 11, 1, tzinfo=UTC)))
    _deliver(ledger, settings, envs, record_in_salesforce=False)
    reconcile_period(
        settings, ledger.engine, scope="monthly", start=OCTOBER[0], end=OCTOBER[1], now=NOW
    )
    invoice = next(e for e in envs if e["type"] == "invoice.posted")
    changed = json.loads(json.dumps(invoice))
    changed["source_version"] = "edited-after-posting"
    line = changed["data"]["lines"][0]
    price = Decimal(line["unit_price"])
    line["quantity"] = str(Decimal(line["quantity"]) + 1)
    line["amount"] = str(Decimal(line["amount"]) + price)
    changed["data"]["subtotal"] = str(Decimal(changed["data"]["subtotal"]) + price)
    changed["data"]["total"] = str(Decimal(changed["data"]["total"]) + price)
    clock = ManualClock(NOW)
    accepted = ingest_lines(
        ledger, [json.dumps(changed).encode()], policy=build_policy(), origin="t", clock=clock
    )
    assert accepted.accepted == 1
    erp = FakeErp(state_file=settings.path_in_base("erp.json"))

    async def work() -> int:
        worker = Worker(ledger.engine, {"erp": Target("erp", erp)}, clock=clock, seed=1)
        stats = await worker.run_until_idle()
        await erp.close()
        return stats.dead_lettered

    assert asyncio.run(work()) == 1

    run = reconcile_period(
        settings, ledger.engine, scope="monthly", start=OCTOBER[0], end=OCTOBER[1], now=NOW
    )
    ref = invoice["source_id"]
    assert ("ar", FindingKind.AMOUNT, ref) in findings(run)
    amount = next(f for f in run.of("ar").findings if f.finding.kind == FindingKind.AMOUNT)
    assert amount.finding.difference == -price
    assert amount.hub.state == "dead_letter"
    assert not amount.timing_difference
