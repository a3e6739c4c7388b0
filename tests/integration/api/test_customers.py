"""The customer master through the ops API: the crosswalk by any id, and a customer held for
review released by an operator's decision (a viewer may look, not decide)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.sfid import make_id
from revbridge.engine.queue import DeliveryQueue, Outcomes
from revbridge.services import mdm
from revbridge.services.ingest import ingest_lines
from revbridge.store.schema import audit_log, deliveries
from tests.integration.mdm.test_held import POLICY, _customer

from .conftest import Hub

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def linked_by_number(hub: Hub, n: int) -> str:
    """Account ``n`` linked to the fake ERP's customer CUST-``n`` by number (an import's
    link, no internal id yet); returns the Account id."""
    account = make_id("001", n)
    with hub.ledger.engine.begin() as conn:
        mdm.link_customer(
            conn,
            sf_account_id=account,
            erp_system="fake-erp",
            erp_customer_number=f"CUST-{n}",
            erp_internal_id=None,
            now=NOW,
            actor="t",
            reason="import",
        )
    return account


def test_the_crosswalk_answers_by_any_of_a_customers_ids(hub: Hub) -> None:
    """The Account id in 15 characters, the ERP number and the internal id give one link."""
    account = make_id("001", 7)
    with hub.ledger.engine.begin() as conn:
        canonical = mdm.link_customer(
            conn,
            sf_account_id=account,
            erp_system="netsuite",
            erp_customer_number="CUST-7",
            erp_internal_id="907",
            now=NOW,
            actor="t",
            reason="test",
        )
    for key in (account[:15], "CUST-7", "907", canonical):
        got = hub.client.get(f"/api/v1/customers/{key}/links", headers=hub.auth("viewer"))
        assert got.status_code == 200, got.text
        [link] = got.json()["links"]
        assert (link["sf_account_id"], link["erp_internal_id"]) == (account, "907")
    missing = hub.client.get("/api/v1/customers/NOPE-1/links", headers=hub.auth("viewer"))
    assert missing.status_code == 404


def test_an_operator_releases_a_held_customer_through_the_api(hub: Hub) -> None:
    """A viewer cannot decide; the operator's rejection puts the held delivery back in line,
    audited under the operator's token."""
    ledger = hub.ledger
    ingest_lines(ledger, [_customer(5)], policy=POLICY, origin="t", clock=ManualClock(NOW))
    with ledger.engine.begin() as conn:
        item = mdm.open_review(
            conn,
            kind="held",
            sf_account_id=make_id("001", 5),
            erp_customer_number="N-5",
            erp_value={"erp_system": "fake-erp"},
            message="likely the existing ERP customer N-5",
            now=NOW,
        ).id
    queue = DeliveryQueue(ledger.engine)
    [claimed] = queue.claim(
        target="erp", worker_id="w", now=NOW, lease=timedelta(seconds=60), limit=10
    )
    out = Outcomes("w")
    out.held.append((claimed, f"review:{item}", "held for review"))
    queue.record(out, now=NOW)
    url = f"/api/v1/customers/reviews/{item}"
    body = {"approve": False, "note": "another company"}
    refused = hub.client.post(url, json=body, headers=hub.auth("viewer"))
    assert refused.status_code == 403
    decided = hub.client.post(url, json=body, headers=hub.auth("operator"))
    assert decided.status_code == 200, decided.text
    assert (decided.json()["state"], decided.json()["released"]) == ("rejected", 1)
    with ledger.engine.connect() as conn:
        state = conn.execute(
            select(deliveries.c.state).where(deliveries.c.event_id == claimed.event_id)
        ).scalar_one()
        actor = conn.execute(
            select(audit_log.c.actor).where(audit_log.c.action == "release")
        ).scalar_one()
    assert (state, actor) == ("pending", "token:operator-1")


def test_an_operator_unlinks_a_wrong_link_through_the_api(hub: Hub) -> None:
    """A viewer may not; the operator's unlink is audited under the token, and relinks; an
    Account without a link is a 404, a missing reason a 422."""
    account = linked_by_number(hub, 8)
    url = f"/api/v1/customers/{account[:15]}/unlink"
    body = {"reason": "another firm", "relink_to": "CUST-9"}
    assert hub.client.post(url, json=body, headers=hub.auth("viewer")).status_code == 403
    assert hub.client.post(url, json={}, headers=hub.auth("operator")).status_code == 422
    done = hub.client.post(url, json=body, headers=hub.auth("operator"))
    assert done.status_code == 200, done.text
    assert (done.json()["unlinked_from"]["erp_customer_number"], done.json()["relinked_to"]) == (
        "CUST-8",
        "CUST-9",
    )
    with hub.ledger.engine.connect() as conn:
        actor = conn.execute(
            select(audit_log.c.actor).where(audit_log.c.action == "mdm_unlink")
        ).scalar_one()
    assert actor == "token:operator-1"
    other = f"/api/v1/customers/{make_id('001', 99)}/unlink"
    assert hub.client.post(other, json=body, headers=hub.auth("operator")).status_code == 404
