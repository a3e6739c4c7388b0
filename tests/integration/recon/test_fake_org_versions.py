"""The fake org holds the latest version the ledger has of each Salesforce record.

A controller's walk on the default configuration (fakes): October is delivered and signed;
then Salesforce changes an invoice the ERP already holds. The ERP refuses the new version
(a posted document is never changed), so the delivery is a dead letter. The next run must
show the invoice's new total against the ERP's, with the dead letter beside it, not a clean
month: the org used to keep the first version it was given, and hid the change.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.ports import ArDocument, PaymentDocument, ReadbackKind
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines
from revbridge.services.recon_readback import fake_org_from_ledger
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeSalesforce

NOV_28 = datetime(2026, 11, 28, 4, tzinfo=UTC)


def _ingest(ledger: Ledger, *envelopes: dict[str, Any]) -> None:
    lines = [json.dumps(e).encode() for e in envelopes]
    result = ingest_lines(
        ledger, lines, policy=build_policy(), origin="t", clock=ManualClock(NOV_28)
    )
    assert result.accepted == len(envelopes)


def _invoice_and_its_payment() -> tuple[dict[str, Any], dict[str, Any]]:
    envs = list(generate_events(300, seed=11, end=datetime(2026, 11, 1, tzinfo=UTC)))
    payments = [e for e in envs if e["type"] == "payment.received"]
    invoices = {e["source_id"]: e for e in envs if e["type"] == "invoice.posted"}
    payment = next(p for p in payments if len(p["data"]["applications"]) == 1)
    invoice = invoices[payment["data"]["applications"][0]["invoice_id"]]
    return invoice, payment


def _revised(envelope: dict[str, Any], **data: Any) -> dict[str, Any]:
    new = copy.deepcopy(envelope)
    new["source_version"] = NOV_28.isoformat()
    new["data"].update(data)
    return new


def _one_more_unit(invoice: dict[str, Any]) -> tuple[dict[str, Any], Decimal]:
    """The invoice with one more unit on its first line, and its new total."""
    data = copy.deepcopy(invoice["data"])
    line = data["lines"][0]
    price = Decimal(line["unit_price"])
    line["quantity"] = str(Decimal(line["quantity"]) + 1)
    line["amount"] = str(Decimal(line["amount"]) + price)
    data["subtotal"] = str(Decimal(data["subtotal"]) + price)
    total = Decimal(data["total"]) + price
    data["total"] = str(total)
    return _revised(invoice, **data), total


def _ar(sf: FakeSalesforce, ref: str) -> ArDocument:
    doc = sf.get(ReadbackKind.AR, ref)
    assert isinstance(doc, ArDocument)
    return doc


def test_an_invoice_changed_in_salesforce_reaches_the_fake_org_with_its_payment_kept(
    ledger: Ledger,
) -> None:
    """A newer invoice version in the ledger revises the org's invoice: its new total, and
    what was paid on it still paid (balance and status follow)."""
    invoice, payment = _invoice_and_its_payment()
    ref, paid = invoice["source_id"], Decimal(payment["data"]["amount"])
    _ingest(ledger, invoice, payment)
    sf = FakeSalesforce()
    assert fake_org_from_ledger(ledger.engine, sf) == 2
    before = _ar(sf, ref)
    assert before.balance == before.amount - paid
    assert fake_org_from_ledger(ledger.engine, sf) == 0  # nothing new: nothing changes

    revised, total = _one_more_unit(invoice)
    _ingest(ledger, revised)
    assert fake_org_from_ledger(ledger.engine, sf) == 1
    after = _ar(sf, ref)
    assert (after.amount, after.balance) == (total, total - paid)
    assert after.status == "Partially Paid"
    assert after.doc_date == date.fromisoformat(invoice["data"]["invoice_date"])


def test_a_payment_changed_in_salesforce_moves_its_application(ledger: Ledger) -> None:
    """A payment's newer version takes its earlier application back from the invoice
    before applying the new one: the invoice is unpaid again when nothing applies to it."""
    invoice, payment = _invoice_and_its_payment()
    ref = invoice["source_id"]
    _ingest(ledger, invoice, payment)
    sf = FakeSalesforce()
    fake_org_from_ledger(ledger.engine, sf)
    _ingest(ledger, _revised(payment, applications=[]))
    assert fake_org_from_ledger(ledger.engine, sf) == 1
    moved = sf.get(ReadbackKind.PAYMENTS, payment["source_id"])
    assert isinstance(moved, PaymentDocument)
    assert moved.applications == ()
    unpaid = _ar(sf, ref)
    assert (unpaid.balance, unpaid.status) == (unpaid.amount, "Unpaid")


def test_an_org_state_file_from_before_keeps_its_first_versions_and_takes_the_latest(
    ledger: Ledger,
) -> None:
    """An org saved before it kept the ledger's event ids (the records it holds are each
    record's first version) still takes a newer version, once."""
    invoice, payment = _invoice_and_its_payment()
    _ingest(ledger, invoice, payment)
    sf = FakeSalesforce()
    fake_org_from_ledger(ledger.engine, sf)
    sf.from_ledger.clear()  # as an older state file: no ids kept
    revised, total = _one_more_unit(invoice)
    _ingest(ledger, revised)
    assert fake_org_from_ledger(ledger.engine, sf) == 1  # the invoice revised
    assert _ar(sf, invoice["source_id"]).amount == total
    assert fake_org_from_ledger(ledger.engine, sf) == 0


def _invoice_and_its_credit_memo() -> tuple[dict[str, Any], dict[str, Any]]:
    envs = list(generate_events(300, seed=11, end=datetime(2026, 11, 1, tzinfo=UTC)))
    memo = next(
        e for e in envs
        if e["type"] == "credit_memo.issued" and len(e["data"]["applications"]) == 1
    )  # fmt: skip
    invoice_id = memo["data"]["applications"][0]["invoice_id"]
    invoice = next(e for e in envs if e["source_id"] == invoice_id)
    return invoice, memo


def _memo_less(memo: dict[str, Any], less: Decimal) -> tuple[dict[str, Any], Decimal]:
    """The memo credited ``less`` lower (net), applied in full as before, and its new total."""
    data = copy.deepcopy(memo["data"])
    line = data["lines"][0]
    net = Decimal(line["amount"]) - less
    line.update(amount=str(net), unit_price=str(net))
    data["subtotal"] = str(net)
    total = Decimal(data["total"]) - less
    data["total"] = str(total)
    data["applications"][0]["amount"] = str(total)
    return _revised(memo, **data), total


def test_a_credit_memo_changed_in_salesforce_moves_its_application(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A credit memo revised to credit 10 less, still applied in full: the invoice's
    balance is 10 higher than under the first version (its first application taken back,
    the new one applied) and the memo is fully applied, not applied beyond its total. The
    org kept the first application and showed a balance of -10 on the memo, so a
    reconciliation against an ERP that took the revised memo saw a balance variance
    Salesforce did not have. The applications survive the org's state file."""
    invoice, memo = _invoice_and_its_credit_memo()
    ref, memo_ref = invoice["source_id"], memo["source_id"]
    _ingest(ledger, invoice, memo)
    sf = FakeSalesforce(state_file=tmp_path / "org.json")
    fake_org_from_ledger(ledger.engine, sf)
    sf.save()
    first = Decimal(memo["data"]["total"])
    assert _ar(sf, ref).balance == Decimal(invoice["data"]["total"]) - first

    revised, total = _memo_less(memo, Decimal(10))
    _ingest(ledger, revised)
    sf = FakeSalesforce(state_file=tmp_path / "org.json")  # read from its file again
    assert fake_org_from_ledger(ledger.engine, sf) == 1
    assert _ar(sf, ref).balance == Decimal(invoice["data"]["total"]) - total
    credited = _ar(sf, memo_ref)
    assert (credited.amount, credited.balance, credited.status) == (total, 0, "Paid")
