"""Edits in the ERP to a customer's master attributes, read by the ERP capture (fake ERP, real
ledger on SQLite and PostgreSQL).

Salesforce owns the billing address, web site and industry: an accountant's edit of them in
the ERP is reviewed with both values and written back (or only flagged), and reading the
written-back record again is no new conflict. The ERP owns the tax registration: its change
there reaches the Account, once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from revbridge.core.policy import build_policy
from revbridge.mdm.ownership import Ownership
from revbridge.services import mdm
from revbridge.services.capture import CaptureResult, capture_once
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log
from revbridge.testing import FakeErp
from tests.scenarios.mdm.story import START, Hub, acc, customer

ADDRESS = {
    "line1": "1725 Slough Avenue",
    "line2": "Suite 200",
    "city": "Scranton",
    "region": "PA",
    "postal_code": "18505",
    "country": "US",
}


class _FakeErpSource:
    """The fake ERP's capture, as ``capture_once`` reads a real ERP's."""

    def __init__(self, erp: FakeErp) -> None:
        self.erp = erp
        self.name = erp.capabilities.name
        self.side = "erp"

    async def changes(self, watermark: str | None) -> tuple[list[dict[str, Any]], str]:
        return await self.erp.capture_changes(watermark, with_master=True, at=START)


def _capture(hub: Hub, ownership: Ownership | None = None) -> CaptureResult:
    return asyncio.run(
        capture_once(
            _FakeErpSource(hub.erp),
            hub.ledger,
            build_policy(),
            clock=hub.clock,
            ownership=ownership,
        )
    )


def _row(hub: Hub, n: int) -> dict[str, Any]:
    [row] = [c for c in hub.erp.customers() if c["external_ref"] == acc(n)]
    return row


def _erp_id(hub: Hub, n: int) -> str:
    return str(_row(hub, n)["erp_id"])


def test_a_billing_address_edited_in_the_erp_is_reviewed_and_written_back(
    ledger: Ledger,
) -> None:
    """Salesforce owns the address: the accountant's new street is not propagated, the review
    shows both addresses with Salesforce the winner, and the Account's address goes back into
    the ERP; read again, the written-back record opens nothing new."""
    hub = Hub(ledger)
    hub.send(customer(201, "Dunder Mifflin", billing_address=ADDRESS))
    hub.run()
    _capture(hub)  # the customer as the hub wrote it: nothing to decide
    assert mdm.list_reviews(ledger.engine) == []
    moved = {**ADDRESS, "line1": "1 Paper Way", "line2": None}
    hub.erp.edit_customer(_erp_id(hub, 201), billing_address=moved)
    _capture(hub)
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert (item["attribute"], item["winner"]) == ("billing_address", "salesforce")
    assert item["sf_value"] == ADDRESS
    assert item["erp_value"] == {k: v for k, v in moved.items() if v}
    hub.run()
    assert _row(hub, 201)["billing_address"] == ADDRESS  # written back
    for _ in range(2):
        _capture(hub)
        hub.run()
    assert len(mdm.list_reviews(ledger.engine)) == 1
    assert hub.erp.calls["upsert_customer"] == 2  # the delivery and one write-back


def test_the_erp_keeping_an_address_or_site_in_its_own_form_is_no_edit(ledger: Ledger) -> None:
    """An ERP without a region field, with a street in capitals and a web site with its scheme
    holds Salesforce's values: no conflict, nothing written back."""
    hub = Hub(ledger)
    hub.send(customer(202, "Vance Refrigeration", billing_address=ADDRESS, website="vance.com"))
    hub.run()
    own_form = {
        "line1": "1725 SLOUGH AVENUE",
        "line2": "Suite  200",
        "city": "SCRANTON",
        "postal_code": "18505",
        "country": "US",
    }
    hub.erp.edit_customer(
        _erp_id(hub, 202), billing_address=own_form, website="https://www.vance.com/"
    )
    _capture(hub)
    hub.run()
    assert mdm.list_reviews(ledger.engine) == []
    assert hub.erp.calls["upsert_customer"] == 1


def test_an_industry_edited_in_the_erp_is_flagged_and_kept_there(ledger: Ledger) -> None:
    """With on_conflict = "flag", the ERP's new industry stays there, is reviewed with both
    values, and reaches neither the Account nor the synced value."""
    flag = Ownership(on_conflict="flag")
    hub = Hub(ledger, flag)
    hub.send(customer(203, "Bluth Company", industry="Construction", website="bluth.com"))
    hub.run()
    hub.erp.edit_customer(_erp_id(hub, 203), industry="Banking", website="bluthbanana.com")
    _capture(hub, flag)
    hub.run()
    items = {i["attribute"]: i for i in mdm.list_reviews(ledger.engine, kind="conflict")}
    assert set(items) == {"industry", "website"}
    assert (items["industry"]["sf_value"], items["industry"]["erp_value"]) == (
        "Construction",
        "Banking",
    )
    assert all("flagged" in i["message"] for i in items.values())
    assert _row(hub, 203)["industry"] == "Banking"
    assert hub.erp.calls["upsert_customer"] == 1
    with ledger.engine.connect() as conn:
        synced = mdm.synced_values(conn, mdm.lookup(ledger.engine, acc(203))[0].canonical_id)
    assert (synced["industry"], synced["website"]) == ("Construction", "bluth.com")


def test_a_tax_registration_changed_in_the_erp_reaches_the_account_once(
    ledger: Ledger,
) -> None:
    """The ERP owns the tax id: its new value is the synced one and is written on the Account
    with the customer's credit status (unchanged itself), with no review; read again, it is
    not written a second time."""
    hub = Hub(ledger)
    hub.send(customer(204, "Initech", tax_id="US-111"))
    hub.run()
    _capture(hub)
    hub.run()
    assert hub.sf.calls["revert_account_fields"] == 0  # the Account sent this tax id itself
    hub.erp.edit_customer(_erp_id(hub, 204), tax_id="US-222")
    result = _capture(hub)
    assert result.ingest.accepted == 1  # credit values unchanged: kept for the tax id
    hub.run()
    assert hub.sf.accounts[acc(204)]["tax_id"] == "US-222"
    assert mdm.list_reviews(ledger.engine) == []
    hub.erp.edit_customer(_erp_id(hub, 204), credit_hold=True)
    _capture(hub)
    hub.run()
    assert hub.sf.accounts[acc(204)]["credit_hold"] is True
    assert hub.sf.calls["revert_account_fields"] == 1
    # Salesforce's next version of the Account (no tax id) sends the ERP's value, unchanged.
    hub.send(customer(204, "Initech Inc", version=2))
    hub.run()
    assert (_row(hub, 204)["name"], _row(hub, 204)["tax_id"]) == ("Initech Inc", "US-222")


def test_a_tax_registration_first_keyed_in_the_erp_reaches_the_account(ledger: Ledger) -> None:
    """An Account sent without a tax id: the one the accountant keys in the ERP is written on
    the Account, and audited nowhere as a conflict."""
    hub = Hub(ledger)
    hub.send(customer(205, "Hooli"))
    hub.run()
    hub.erp.edit_customer(_erp_id(hub, 205), tax_id="US-555")
    _capture(hub)
    hub.run()
    assert hub.sf.accounts[acc(205)]["tax_id"] == "US-555"
    with ledger.engine.connect() as conn:
        actions = set(conn.execute(select(audit_log.c.action)).scalars())
    assert not any(a.startswith("mdm_conflict") for a in actions)
