"""The fake org is a ``SourcePort``: its change feed reads in pages after a watermark, through
injected faults, refuses what happens in the ERP, keeps what it cannot read for the
quarantine, and its state file keeps the feed."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from revbridge.codec import decode_payload
from revbridge.config import parse_config
from revbridge.core.events import (
    FROM_ERP,
    Application,
    CustomerUpserted,
    ErpPaymentReceived,
    EventType,
    PaymentReceived,
)
from revbridge.engine.ports import ReadbackKind, SourcePort
from revbridge.errors import ConfigError, TerminalError, TransientError
from revbridge.generate import generate_events
from revbridge.services.capture import ErpSource
from revbridge.testing import FakeErp, FakeSalesforce, Faults
from revbridge.testing.fakes import FakeSetupError

SF_SIDE = [e for e in generate_events(60, seed=3) if e["type"] not in FROM_ERP]


def test_every_source_is_the_port() -> None:
    for source in (FakeSalesforce(), ErpSource(FakeErp(), name="fake-erp")):
        assert isinstance(source, SourcePort)
    assert (FakeSalesforce().side, ErpSource(FakeErp(), name="fake-erp").side) == (
        "salesforce",
        "erp",
    )


def test_the_feed_reads_in_pages_after_its_watermark() -> None:
    org = FakeSalesforce(page_size=7)
    for envelope in SF_SIDE:
        org.post(envelope)

    async def read_all() -> tuple[list[str], list[str]]:
        ids: list[str] = []
        marks: list[str] = []
        mark: str | None = None
        while True:
            page, mark = await org.changes(mark)
            marks.append(mark)
            if not page:
                return ids, marks
            assert len(page) <= 7
            ids += [(e["source_id"], e["source_version"]) for e in page]

    ids, marks = asyncio.run(read_all())
    assert ids == [(e["source_id"], e["source_version"]) for e in SF_SIDE]  # each once, in order
    assert marks[-1] == marks[-2]  # nothing new: the same watermark back
    assert asyncio.run(org.changes(None))[0][0] == SF_SIDE[0]
    assert asyncio.run(FakeSalesforce().changes(None)) == ([], "0")


def test_a_posted_invoice_is_also_the_orgs_record() -> None:
    org = FakeSalesforce()
    invoice = next(e for e in SF_SIDE if e["type"] == "invoice.posted")
    org.post(invoice)
    doc = org.get(ReadbackKind.AR, invoice["data"]["invoice_id"])
    assert doc is not None
    assert str(doc.amount) == invoice["data"]["total"]


def test_what_happens_in_the_erp_is_refused_and_a_bad_change_is_kept() -> None:
    org = FakeSalesforce()
    erp_side = next(e for e in generate_events(200, seed=3) if e["type"] == "gl.posted")
    with pytest.raises(ValueError, match=r"gl\.posted: happens in the ERP"):
        org.post(erp_side)
    bad = {**SF_SIDE[0], "data": {"customer_id": ""}}
    org.post(bad)  # the capture's ingest quarantines it, with its reason
    page, _ = asyncio.run(org.changes(None))
    assert page == [bad]


def test_a_fault_reads_nothing_and_the_next_read_gets_it_all() -> None:
    org = FakeSalesforce(faults=Faults(fail_next=1))
    org.post(SF_SIDE[0])
    with pytest.raises(TransientError):
        asyncio.run(org.changes(None))
    assert asyncio.run(org.changes(None))[0] == [SF_SIDE[0]]
    org.faults.down = True
    with pytest.raises(TransientError, match="down"):
        asyncio.run(org.changes(None))


def test_the_state_file_keeps_the_feed(tmp_path: Path) -> None:
    state = tmp_path / "org.json"
    org = FakeSalesforce(state_file=state)
    for envelope in SF_SIDE[:-1]:
        org.post(envelope)
    _, mark = asyncio.run(org.changes(None))
    org.save()
    reloaded = FakeSalesforce(state_file=state)
    reloaded.post(SF_SIDE[-1])
    page, _ = asyncio.run(reloaded.changes(mark))
    assert page == [SF_SIDE[-1]]
    invoice = next(e for e in SF_SIDE[:-1] if e["type"] == "invoice.posted")
    assert reloaded.get(ReadbackKind.AR, invoice["data"]["invoice_id"]) is not None


def test_the_fake_erp_captures_cash_entered_in_it_and_nothing_the_hub_holds() -> None:
    """A wire entered in the ERP is read as ``erp.payment.received``; the hub's own receipt
    and cash rebuilt from the ledger (``captured``) are not read back."""
    invoice = next(e for e in SF_SIDE if e["type"] == "invoice.posted")
    data = decode_payload(EventType.INVOICE_POSTED, json.dumps(invoice["data"]))
    applied = (Application(invoice_id=invoice["data"]["invoice_id"], amount=Decimal(1)),)

    def wire(ref: str) -> ErpPaymentReceived:
        return ErpPaymentReceived(
            erp_payment_id=ref,
            erp_customer_number="C-1",
            customer_id=data.customer_ref(),
            currency=invoice["data"]["currency"],
            amount=Decimal(1),
            received_on=date(2026, 11, 2),
            method="wire",
            applications=applied,
        )

    async def story() -> list[dict[str, object]]:
        erp = FakeErp()
        cust = await erp.upsert_customer(
            data.customer_ref() or "",
            CustomerUpserted(customer_id=data.customer_ref() or "", name="A", currency="USD"),
            None,
        )
        inv = await erp.create_invoice(invoice["data"]["invoice_id"], data, cust.erp_id)  # type: ignore[arg-type]
        await erp.record_payment(
            "a0P9",
            PaymentReceived(
                payment_id="a0P9",
                customer_id=data.customer_ref() or "",
                currency=invoice["data"]["currency"],
                amount=Decimal(1),
                received_on=date(2026, 11, 2),
                method="card",
                applications=applied,
            ),
            cust.erp_id,
            {invoice["data"]["invoice_id"]: inv.erp_id},
        )
        erp.enter_payment(wire("WIRE-1"))
        erp.enter_payment(wire("WIRE-2"), captured=True)
        envelopes, _ = await erp.capture_changes(None)
        return envelopes

    payments = [e for e in asyncio.run(story()) if e["type"] == "erp.payment.received"]
    assert [e["data"]["erp_payment_id"] for e in payments] == ["WIRE-1"]  # type: ignore[index]
    assert payments[0]["data"]["customer_id"] == data.customer_ref()  # type: ignore[index]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("bogus=1", "'bogus' is not a fault; known: "),
        ("down", "down needs a value"),
        ("throttle_next=abc", "throttle_next='abc': not a whole number"),
        ("error_rate=5", "error_rate=5.0: a rate is a share, from 0 to 1"),
        ("fail_next=-1", "fail_next=-1: cannot be negative"),
        ("down=maybe", "down='maybe': not 1/0, true/false"),
    ],
)
def test_a_fault_spec_the_fakes_cannot_use_says_why(spec: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(FakeSetupError, match=re.escape(says)):
        Faults.parse(spec)
    # ... and the configuration names the file and the key, when it is read.
    with pytest.raises(ConfigError, match=r"salesforce\.faults: " + re.escape(says)):
        parse_config({"salesforce": {"faults": spec}}, tmp_path / "revbridge.toml", tmp_path)


@pytest.mark.parametrize("content", ['{"writes": ', "[]", '{"foo": 1}'])
def test_a_state_file_the_fakes_cannot_read_is_named(content: str, tmp_path: Path) -> None:
    for make, what in ((FakeSalesforce, "the fake org"), (FakeErp, "the fake ERP")):
        state = tmp_path / f"{make.__name__}.json"
        state.write_text(content)
        with pytest.raises(
            FakeSetupError, match=f"{re.escape(str(state))}: not a state file of {what}"
        ):
            make(state_file=state)


def test_cash_for_an_invoice_the_erp_does_not_hold_is_refused() -> None:
    wire = ErpPaymentReceived(
        erp_payment_id="W-9",
        erp_customer_number="C-1",
        currency="USD",
        amount=Decimal(5),
        received_on=date(2026, 11, 2),
        method="wire",
        applications=(Application(invoice_id="INV9", amount=Decimal(5)),),
    )
    with pytest.raises(TerminalError, match="invoice INV9 is not in the ERP"):
        FakeErp().enter_payment(wire)
