"""Findings beside the hub's own state of each document, read from a real ledger."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import update

from revbridge.core.policy import build_policy
from revbridge.generate import generate_events
from revbridge.recon import hub_state
from revbridge.recon.hub_state import NEVER_CAPTURED, QUARANTINED, attach_hub_state
from revbridge.recon.match import Finding, FindingKind
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries, events


def _missing(ref: str) -> Finding:
    return Finding(
        kind=FindingKind.MISSING_IN_ERP,
        ref=ref,
        doc_type="invoice",
        currency="USD",
        source_amount=Decimal("10.0000"),
        erp_amount=None,
        difference=Decimal("-10.0000"),
        within_tolerance=False,
    )


def test_each_finding_gets_the_delivery_state_of_its_document(ledger: Ledger) -> None:
    """A missing invoice still pending or parked is a timing difference; a dead letter is not."""
    envelopes = list(generate_events(60, seed=7))
    invoices = [e for e in envelopes if e["type"] == "invoice.posted"]
    memos = [e for e in envelopes if e["type"] == "credit_memo.issued"]
    assert len(invoices) >= 3
    assert memos
    bad = dict(invoices[2], data=dict(invoices[2]["data"], source_id_typo=1, currency="XXX"))
    bad["source_id"] = "a0Xquarantined000001"
    lines = [json.dumps(e).encode() for e in [*envelopes, bad]]
    result = ingest_lines(ledger, lines, policy=build_policy(), origin="test")
    assert result.rejected == 1

    parked_ref, dead_ref, pending_ref = (inv["source_id"] for inv in invoices[:3])
    memo_ref = memos[0]["source_id"]
    with ledger.engine.begin() as conn:
        for ref, state, error in (
            (parked_ref, "parked", None),
            (dead_ref, "dead_letter", "400 customer inactive"),
        ):
            event_id = conn.execute(
                events.select()
                .with_only_columns(events.c.id)
                .where(events.c.subject_ref == f"invoice:{ref}")
            ).scalar_one()
            conn.execute(
                update(deliveries)
                .where(deliveries.c.event_id == event_id)
                .values(state=state, attempts=3, last_error=error)
            )

    refs = [parked_ref, dead_ref, pending_ref, memo_ref, "a0Xneverseen00000001", bad["source_id"]]
    attached = attach_hub_state([_missing(r) for r in refs], ledger.engine)

    assert [a.finding.ref for a in attached] == refs
    states = [a.hub.state for a in attached]
    assert states == ["parked", "dead_letter", "pending", "pending", NEVER_CAPTURED, QUARANTINED]
    assert [a.timing_difference for a in attached] == [True, False, True, True, False, False]
    assert attached[1].hub.last_error == "400 customer inactive"
    assert attached[1].hub.attempts == 3
    assert attached[3].hub.subject_ref == f"credit_memo:{memo_ref}"
    assert attached[5].hub.last_error  # the quarantine's reason


def test_no_findings_read_nothing(ledger: Ledger) -> None:
    """An empty list of findings comes back empty, without touching the ledger."""
    assert attach_hub_state([], ledger.engine) == ()


def test_many_findings_read_all_ar_events_in_one_query(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the IN-list limit the states come from one read of all AR events, the same."""
    envelopes = list(generate_events(40, seed=3))
    ingest_lines(
        ledger, [json.dumps(e).encode() for e in envelopes], policy=build_policy(), origin="t"
    )
    refs = [e["source_id"] for e in envelopes if e["type"] == "invoice.posted"][:3]
    findings = [_missing(r) for r in [*refs, "a0Xneverseen00000002"]]
    narrow = attach_hub_state(findings, ledger.engine)
    monkeypatch.setattr(hub_state, "_MAX_IN_LIST", 0)
    wide = attach_hub_state(findings, ledger.engine)
    assert wide == narrow
    assert [a.hub.state for a in wide] == ["pending"] * len(refs) + [NEVER_CAPTURED]
