"""A conflict is audited once, when it is news: the same unresolved conflict reported again
(each later version of the Account draining after an ERP outage, each ERP capture round
before the write-back lands) updates its open review item and writes no new audit row; a new
conflicting value is news again."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from revbridge.services import mdm
from revbridge.services.drain import drain
from revbridge.services.mdm_sync import filter_erp_capture
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log
from tests.scenarios.mdm.story import START, Hub, acc, credit, customer


def _conflict_audit(ledger: Ledger) -> list[dict]:
    with ledger.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(audit_log.c.action, audit_log.c.details)
                .where(audit_log.c.action.like("mdm_conflict_%"))
                .order_by(audit_log.c.id)
            ).mappings()
        ]


def test_a_conflict_drained_after_an_outage_is_audited_once(ledger: Ledger) -> None:
    """Versions 2 to 4 of an Account all carry the tax id the ERP does not have; they wait out
    an ERP outage and are drained: one audit row, one open review item. A version with a new
    conflicting value is audited again."""
    hub = Hub(ledger)
    hub.send(customer(301, "Sabre", tax_id="US-92"))
    hub.run()
    hub.erp.faults.down = True
    later = (2, 3, 4)  # each changes the web site and keeps the conflicting tax id
    hub.send(*(customer(301, "Sabre", tax_id="US-00", version=v, website=f"{v}.io") for v in later))
    hub.run_once()
    hub.erp.faults.down = False
    asyncio.run(drain(hub.worker, ["erp"], rate=None, actor="kim", reason="erp back"))
    hub.run()
    assert hub.states("customer.upserted") == {
        f"{acc(301)}@v{v}": "delivered" for v in (1, 2, 3, 4)
    }
    [row] = _conflict_audit(ledger)
    assert row["action"] == "mdm_conflict_revert"
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert (item["attribute"], item["sf_value"], item["erp_value"]) == ("tax_id", "US-00", "US-92")

    hub.send(customer(301, "Sabre", tax_id="US-01", version=5))
    hub.run()
    audited = _conflict_audit(ledger)
    assert len(audited) == 2
    assert '"US-01"' in audited[1]["details"]
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert item["sf_value"] == "US-01"


def test_an_erp_rename_read_in_three_capture_rounds_is_audited_once(ledger: Ledger) -> None:
    """The ERP is down, so the write-back of Salesforce's name cannot land; each capture round
    reads the ERP's rename again: one audit row, one open review item."""
    hub = Hub(ledger)
    hub.send(customer(302, "Stamford Paper"))
    hub.run()
    [doc] = [d for d in hub.erp.docs if d.kind == "customer" and d.external_ref == acc(302)]
    doc.data["name"] = "Stamford Paper (old)"
    hub.erp.faults.down = True
    for n in range(3):
        env = credit(doc.data["number"], hold=False, limit="100.00", version=f"v-renamed-{n}")
        env["master"] = {"name": "Stamford Paper (old)"}
        filter_erp_capture(ledger.engine, hub.erp_system, [env], now=START)
        hub.run_once()
    [row] = _conflict_audit(ledger)
    assert row["action"] == "mdm_conflict_revert"
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert (item["attribute"], item["erp_value"]) == ("name", "Stamford Paper (old)")
