"""Customer master stories on the real ledger (SQLite and PostgreSQL), fake ERP and fake org.

A master-data owner's view: customers reach the ERP parents first and are linked as the ERP
answers; an invoice never finds its customer by name; a hierarchy cycle is refused with the
cycle named; an Account that looks like an existing ERP customer waits for a person instead
of becoming a second customer; Salesforce cannot change what the ERP owns; a credit hold
reaches the Account through the crosswalk, and does not come back as a change.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from revbridge.core.events import CustomerUpserted, EventType
from revbridge.core.policy import Pattern
from revbridge.core.sfid import make_id
from revbridge.errors import TransientError
from revbridge.mdm.match import Candidate
from revbridge.mdm.ownership import Ownership
from revbridge.services import mdm
from revbridge.services.mdm_sync import (
    filter_erp_capture,
    filter_salesforce_capture,
    run_match,
)
from revbridge.services.operations import dr_status
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries
from revbridge.store.tables_mdm import mdm_attribute_state
from revbridge.testing import FakeErp
from tests.scenarios.mdm.story import POLICY, START, Hub, acc, credit, customer, invoice


def test_children_sent_first_still_reach_the_erp_under_their_parents(ledger: Ledger) -> None:
    """A four-level hierarchy sent leaf first lands root first, each linked in the crosswalk."""
    hub = Hub(ledger)
    hub.send(
        customer(4, "Leaf Ltd", parent=3),
        customer(3, "Branch Ltd", parent=2),
        customer(2, "Region Ltd", parent=1),
        customer(1, "Holding Ltd"),
    )
    hub.run()
    by_ref = {c["external_ref"]: c for c in hub.erp.customers()}
    assert len(by_ref) == 4
    for child, parent in ((4, 3), (3, 2), (2, 1)):
        assert by_ref[acc(child)]["parent"] == by_ref[acc(parent)]["erp_id"]
    assert by_ref[acc(1)]["parent"] is None
    link = mdm.lookup(ledger.engine, acc(4)[:15])[0]
    assert link.erp_internal_id == by_ref[acc(4)]["erp_id"]
    assert mdm.hierarchy(ledger.engine)[acc(4)] == acc(3)


def test_reparenting_propagates_and_a_cycle_is_refused_by_name(ledger: Ledger) -> None:
    """Moving B under C reaches the ERP; then C under A (A under B) closes a cycle: refused."""
    hub = Hub(ledger)
    hub.send(customer(1, "A Corp"), customer(2, "B Corp"), customer(3, "C Corp"))
    hub.run()
    hub.send(customer(1, "A Corp", parent=2, version=2))
    hub.run()
    hub.send(customer(2, "B Corp", parent=3, version=2))
    hub.run()
    by_ref = {c["external_ref"]: c for c in hub.erp.customers()}
    assert by_ref[acc(2)]["parent"] == by_ref[acc(3)]["erp_id"]  # re-parenting propagated
    hub.send(customer(3, "C Corp", parent=1, version=2))
    hub.run()
    assert hub.states("customer.upserted")[f"{acc(3)}@v2"] == "dead_letter"
    [error] = hub.errors()
    assert f"cycle rejected: {acc(3)} -> {acc(1)} -> {acc(2)} -> {acc(3)}" in error
    [item] = mdm.list_reviews(ledger.engine, kind="cycle")
    assert acc(3) in item["message"]
    by_ref = {c["external_ref"]: c for c in hub.erp.customers()}
    assert by_ref[acc(3)]["parent"] is None  # the ERP never saw the cycle
    # The same cycle again (the next edit of C keeps its parent): refused again, in the same
    # review, and audited once; a different cycle is news.
    hub.send(customer(3, "C Corp.", parent=1, version=3))
    hub.run()
    assert hub.states("customer.upserted")[f"{acc(3)}@v3"] == "dead_letter"
    assert len(mdm.list_reviews(ledger.engine, kind="cycle")) == 1
    with ledger.engine.connect() as conn:
        audited = conn.execute(
            select(audit_log.c.reason).where(audit_log.c.action == "mdm_cycle_rejected")
        ).all()
    assert len(audited) == 1


def test_an_invoice_never_finds_its_customer_by_name(ledger: Ledger) -> None:
    """An ERP customer with the same name is not used: the invoice waits for the real link."""
    hub = Hub(ledger)
    hub.erp.add_customer("N-1", "Acme Inc")
    hub.send(invoice(1, account=9))
    hub.run()
    assert hub.states("invoice.posted")[f"{make_id('a0X', 1)}@v1"] == "parked"
    assert hub.erp.records("invoice") == []
    assert mdm.lookup(ledger.engine, "N-1") == []


def test_a_likely_match_holds_the_customer_instead_of_creating_a_second(ledger: Ledger) -> None:
    """Go-live: an Account resembling an ERP customer waits for review; approving it links
    the two, and the upsert and the invoice then go to that existing ERP customer."""
    hub = Hub(ledger)
    erp_id = hub.erp.add_customer("G-1", "Globex Corporation")
    report = run_match(
        ledger.engine,
        [Candidate.of(acc(5), "Globex Corp")],
        [Candidate.of("G-1", "Globex Corporation")],
        erp_system=hub.erp_system,
        erp_internal_ids={"G-1": erp_id},
        now=START,
        actor="t",
    )
    assert report.counts()["review"] == 1
    hub.send(customer(5, "Globex Corp"), invoice(2, account=5))
    hub.run()
    assert len(hub.erp.customers()) == 1
    # Held for a person, not failed: no dead letter, counted as held in `revbridge status`.
    assert hub.states("customer.upserted")[f"{acc(5)}@v1"] == "held"
    assert hub.errors() == []
    assert ledger.status(START)["events"]["by_state"]["held"] == 1
    # ... and in `revbridge dr status`, apart from the backlog: it waits for a person.
    erp = dr_status(ledger.engine, START)["erp"]
    assert erp["held"] == 1
    assert erp["backlog"]["parked"] == 1  # the invoice, behind its customer
    [item] = mdm.list_reviews(ledger.engine)
    assert hub.held_on() == {f"{acc(5)}@v1": f"review:{item['id']}"}
    decided = mdm.decide_review(ledger.engine, item["id"], approve=True, actor="mdo", now=START)
    assert decided["released"] == 1
    hub.run()
    assert hub.states("customer.upserted")[f"{acc(5)}@v1"] == "delivered"
    [only] = hub.erp.customers()
    assert (only["erp_id"], only["external_ref"], only["name"]) == (erp_id, acc(5), "Globex Corp")
    [inv] = hub.erp.records("invoice")
    assert inv.customer == erp_id
    with ledger.engine.connect() as conn:
        actions = set(conn.execute(select(audit_log.c.action)).scalars())
    assert {"held", "mdm_review_approved", "mdm_link", "release"} <= actions


def test_a_held_customer_does_not_age_the_backlog_in_status(ledger: Ledger) -> None:
    """A customer held for a person's review waits on the review queue, not on the ERP:
    `dr status` and the backlog alert leave it out of the oldest age, and so does `revbridge
    status` (it read "oldest undelivered (due or overdue): 2 days" for a review nobody owed)."""
    hub = Hub(ledger)
    hub.erp.add_customer("V-2", "Vandelay Industries Inc", tax_id="US-43")
    hub.send(customer(19, "Vandelay Industries", tax_id="US 43"))
    hub.run()
    later = START + timedelta(days=2)
    status = ledger.status(later)
    assert status["events"]["by_state"]["held"] == 1
    assert status["oldest_pending_age_s"] is None
    assert dr_status(ledger.engine, later)["erp"]["oldest_undelivered_age_s"] is None


def test_salesforce_cannot_change_the_tax_id_the_erp_owns(ledger: Ledger) -> None:
    """Salesforce's new tax id is not sent to the ERP, the ERP's is written back, and the
    review queue shows both values with the ERP as the winner."""
    hub = Hub(ledger)
    hub.send(customer(6, "Initech", tax_id="US-111"))
    hub.run()
    hub.send(customer(6, "Initech Labs", tax_id="US-999", version=2))
    hub.run()
    [row] = hub.erp.customers()
    assert (row["name"], row["tax_id"]) == ("Initech Labs", "US-111")  # name: SF owns it
    assert hub.sf.accounts[acc(6)]["tax_id"] == "US-111"  # reverted in Salesforce
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert (item["attribute"], item["sf_value"], item["erp_value"], item["winner"]) == (
        "tax_id",
        "US-999",
        "US-111",
        "erp",
    )


def test_the_account_a_revert_leaves_is_an_echo_by_what_the_hub_wrote(ledger: Ledger) -> None:
    """The hub remembers the whole Account as the capture will read it after a revert, so its
    change event is an echo even when the synced values no longer say so; a user's later
    edit is not."""
    hub = Hub(ledger, Ownership.from_config({"name": "erp"}))
    hub.send(customer(42, "Hooli", industry="Technology", tax_id="US-42"))
    hub.run()
    hub.send(customer(42, "Hooli XYZ", industry="Technology", tax_id="US-99", version=2))
    hub.run()
    assert hub.sf.accounts[acc(42)] == {"name": "Hooli", "tax_id": "US-42"}  # reverted
    with ledger.engine.begin() as conn:  # the synced state of name says nothing any more
        canonical = mdm.canonical_of_sf(conn, acc(42))
        conn.execute(
            delete(mdm_attribute_state).where(
                mdm_attribute_state.c.canonical_id == canonical,
                mdm_attribute_state.c.attribute == "name",
            )
        )
    # As captured: the capture reads no tax id.
    as_captured = customer(42, "Hooli", industry="Technology", version=3)
    assert filter_salesforce_capture(ledger.engine, [as_captured]) == ([], 1)
    edited = customer(42, "Hooli", industry="Media", version=4)
    renamed = customer(42, "Hooli Labs", industry="Technology", version=5)
    assert filter_salesforce_capture(ledger.engine, [edited, renamed]) == ([edited, renamed], 0)


def test_flag_mode_keeps_the_edit_in_salesforce_but_never_sends_it(ledger: Ledger) -> None:
    """With on_conflict = "flag" nothing is written back, and the ERP still keeps its value."""
    hub = Hub(ledger, Ownership(on_conflict="flag"))
    hub.send(customer(7, "Umbrella", tax_id="U-1"))
    hub.run()
    hub.send(customer(7, "Umbrella", tax_id="U-2", version=2))
    hub.run()
    assert hub.erp.customers()[0]["tax_id"] == "U-1"
    assert acc(7) not in hub.sf.accounts
    assert "flagged" in mdm.list_reviews(ledger.engine, kind="conflict")[0]["message"]


def test_a_credit_hold_reaches_the_account_and_does_not_echo_back(ledger: Ledger) -> None:
    """The ERP's hold lands on the Account found through the crosswalk (real time); the same
    values read again by the ERP capture are dropped, a new limit is not."""
    assert POLICY.for_type(EventType.CUSTOMER_CREDIT_STATUS_CHANGED).pattern is Pattern.REALTIME
    hub = Hub(ledger)
    hub.send(customer(8, "Hooli"))
    hub.run()
    number = mdm.lookup(ledger.engine, acc(8))[0].erp_customer_number
    assert number
    hub.send(credit(number, hold=True, limit="5000.00"))
    hub.run()
    assert hub.sf.accounts[acc(8)]["credit_hold"] is True
    assert hub.sf.accounts[acc(8)]["credit_limit"] == "5000.00"
    same = credit(number, hold=True, limit="5000.00", version="v2")
    changed = credit(number, hold=True, limit="9000.00", version="v3")
    kept, echoes = filter_erp_capture(ledger.engine, hub.erp_system, [same, changed], now=START)
    assert echoes == 1
    assert [e["source_version"] for e in kept] == ["v3"]


def test_the_erp_capture_links_a_customer_it_sees_with_the_hubs_id(ledger: Ledger) -> None:
    """A credit change for a customer carrying the hub's Account id creates the link."""
    env = credit("E-77", hold=False, limit="100.00")
    env["data"]["customer_id"] = acc(77)
    env["source_id"] = "4077"
    filter_erp_capture(ledger.engine, "netsuite", [env], now=START)
    [link] = mdm.lookup(ledger.engine, "E-77")
    assert (link.sf_account_id, link.erp_internal_id) == (acc(77), "4077")


def test_the_nightly_customer_batch_links_what_the_erp_created(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Customers on the default (batch) policy are linked when the ERP answers the batch."""
    hub = Hub(ledger, batch_dir=tmp_path / "batches")
    hub.send(*(customer(n, f"Batch Co {n}") for n in (31, 32)))
    hub.clock.advance(timedelta(days=2))  # past the nightly run
    hub.run_once()
    by_ref = {c["external_ref"]: c["erp_id"] for c in hub.erp.customers()}
    for n in (31, 32):
        assert mdm.lookup(ledger.engine, acc(n))[0].erp_internal_id == by_ref[acc(n)]


def test_without_a_match_run_a_lookalike_is_still_held_and_reject_creates_it(
    ledger: Ledger,
) -> None:
    """A new Account with the tax id of an ERP customer the hub never created waits for
    review; rejecting it (not the same company) lets the hub create it."""
    hub = Hub(ledger)
    hub.erp.add_customer("V-1", "Vandelay Industries Inc", tax_id="US-42")
    hub.send(customer(9, "Vandelay Industries", tax_id="US 42"))
    hub.run()
    assert len(hub.erp.customers()) == 1
    [item] = mdm.list_reviews(ledger.engine, kind="held")
    assert item["erp_customer_number"] == "V-1"
    assert "tax_id" in item["message"]
    assert hub.states("customer.upserted")[f"{acc(9)}@v1"] == "held"
    decided = mdm.decide_review(
        ledger.engine, item["id"], approve=False, actor="mdo", now=START, note="another firm"
    )
    assert decided["released"] == 1
    hub.run()
    assert sorted(c["external_ref"] for c in hub.erp.customers()) == [acc(9), "erp-native:V-1"]
    assert hub.states("customer.upserted")[f"{acc(9)}@v1"] == "delivered"
    assert hub.audited("release") == [
        f"review {item['id']} rejected: not the same customer, created as a new one (another firm)"
    ]


def test_an_account_read_without_the_erp_owned_fields_is_no_change(ledger: Ledger) -> None:
    """The Salesforce capture does not carry the tax id: an Account read back with it empty is
    an echo, and delivering it opens no conflict and keeps the ERP's tax id."""
    hub = Hub(ledger)
    hub.send(customer(40, "Pied Piper", tax_id="US-40"))
    hub.run()
    as_captured = customer(40, "Pied Piper", version=2)
    kept, echoes = filter_salesforce_capture(ledger.engine, [as_captured])
    assert (kept, echoes) == ([], 1)
    renamed = customer(40, "Pied Piper Inc", version=3)
    kept, echoes = filter_salesforce_capture(ledger.engine, [renamed])
    assert (len(kept), echoes) == (1, 0)
    hub.send(renamed)
    hub.run()
    assert mdm.list_reviews(ledger.engine) == []
    [row] = hub.erp.customers()
    assert (row["name"], row["tax_id"]) == ("Pied Piper Inc", "US-40")


def test_terms_owned_by_salesforce_are_not_overwritten_by_the_erp(ledger: Ledger) -> None:
    """With ``payment_terms = "salesforce"``, the ERP's new terms are flagged, not sent."""
    hub = Hub(ledger, Ownership.from_config({"payment_terms": "salesforce"}, "flag"))
    hub.send(customer(50, "Soylent"))
    hub.run()
    [link] = mdm.lookup(ledger.engine, acc(50))
    number = link.erp_customer_number
    assert number
    with ledger.engine.begin() as conn:  # Salesforce set the terms it owns
        mdm.apply_reported(
            conn,
            Ownership.from_config({"payment_terms": "salesforce"}, "flag"),
            canonical_id=link.canonical_id,
            side="salesforce",
            values={"payment_terms": "Net 60"},
            now=START,
            actor="t",
        )
    env = credit(number, hold=False, limit="100.00")
    hub.send(env)
    hub.run()
    assert hub.sf.accounts[acc(50)]["payment_terms"] == "Net 60"
    assert hub.sf.accounts[acc(50)]["credit_limit"] == "100.00"  # the ERP owns the limit
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert (item["attribute"], item["erp_value"], item["winner"]) == (
        "payment_terms",
        "Net 30",
        "salesforce",
    )


# ---------------------------------------------------------------------- the nightly batch


def test_the_nightly_batch_writes_parents_before_their_children(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A hierarchy that arrives leaf first in one nightly batch lands with every parent set."""
    hub = Hub(ledger, batch_dir=tmp_path)
    # Three separate ingests (ingest orders one file parents first; a day's files do not).
    hub.send(customer(63, "Leaf Ltd", parent=62))
    hub.send(customer(62, "Branch Ltd", parent=61))
    hub.send(customer(61, "Holding Ltd"))
    hub.nightly()
    by_ref = {c["external_ref"]: c for c in hub.erp.customers()}
    assert by_ref[acc(63)]["parent"] == by_ref[acc(62)]["erp_id"]
    assert by_ref[acc(62)]["parent"] == by_ref[acc(61)]["erp_id"]
    assert hub.erp.batches_received[-1]["record_count"] == 3


def test_the_nightly_batch_refuses_a_cycle_like_real_time(ledger: Ledger, tmp_path: Path) -> None:
    """A re-parenting that closes a cycle is refused by the batch too, the cycle named, and the
    rest of the batch goes through."""
    hub = Hub(ledger, batch_dir=tmp_path)
    hub.send(customer(71, "A Corp"), customer(72, "B Corp", parent=71))
    hub.nightly()
    hub.send(customer(71, "A Corp", parent=72, version=2), customer(73, "C Corp", version=1))
    hub.nightly()
    assert hub.states("customer.upserted")[f"{acc(71)}@v2"] == "dead_letter"
    [error] = hub.errors()
    assert f"cycle rejected: {acc(71)} -> {acc(72)} -> {acc(71)}" in error
    assert [i["kind"] for i in mdm.list_reviews(ledger.engine)] == ["cycle"]
    by_ref = {c["external_ref"]: c for c in hub.erp.customers()}
    assert by_ref[acc(71)]["parent"] is None  # the ERP never saw the cycle
    assert acc(73) in by_ref


def test_the_nightly_batch_holds_a_likely_duplicate_instead_of_creating_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A new Account that looks like an ERP customer keyed before go-live is held by the batch
    (not created, not dead-lettered); approving the review sends it to that customer."""
    hub = Hub(ledger, batch_dir=tmp_path)
    erp_id = hub.erp.add_customer("K-1", "Kramerica Industries", tax_id="US-77")
    hub.send(customer(81, "Kramerica Industries Inc", tax_id="US 77"), customer(82, "Other Co"))
    hub.nightly()
    assert hub.states("customer.upserted") == {
        f"{acc(81)}@v1": "held",
        f"{acc(82)}@v1": "delivered",
    }
    assert sorted(c["external_ref"] for c in hub.erp.customers()) == [acc(82), "erp-native:K-1"]
    assert hub.errors() == []
    [item] = mdm.list_reviews(ledger.engine, kind="held")
    assert hub.held_on() == {f"{acc(81)}@v1": f"review:{item['id']}"}
    mdm.decide_review(ledger.engine, item["id"], approve=True, actor="mdo", now=START)
    hub.run()  # released as due now: delivered with the next round, not a night later
    assert hub.states("customer.upserted")[f"{acc(81)}@v1"] == "delivered"
    by_ref = {c["external_ref"]: c["erp_id"] for c in hub.erp.customers()}
    assert by_ref == {acc(81): erp_id, acc(82): by_ref[acc(82)]}


def test_the_nightly_batch_never_sends_an_attribute_salesforce_does_not_own(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A tax id changed in Salesforce is not sent by the batch either: the ERP keeps its own,
    Salesforce gets it back, and the review queue has both values."""
    hub = Hub(ledger, batch_dir=tmp_path)
    hub.send(customer(91, "Vehement Capital", tax_id="US-91"))
    hub.nightly()
    hub.send(customer(91, "Vehement Capital Partners", tax_id="US-00", version=2))
    hub.nightly()
    [row] = hub.erp.customers()
    assert (row["name"], row["tax_id"]) == ("Vehement Capital Partners", "US-91")
    assert hub.sf.accounts[acc(91)]["tax_id"] == "US-91"
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert (item["sf_value"], item["erp_value"], item["winner"]) == ("US-00", "US-91", "erp")
    assert mdm.lookup(ledger.engine, acc(91))[0].erp_internal_id == row["erp_id"]


# ---------------------------------------------------------------------- edits in the ERP


def _renamed_in_erp(hub: Hub, n: int, name: str) -> dict:
    """The accountant renames the customer in the ERP; the ERP capture reads the customer (a
    credit status as it stands, and its name beside it)."""
    [doc] = [d for d in hub.erp.docs if d.kind == "customer" and d.external_ref == acc(n)]
    doc.data["name"] = name
    env = credit(doc.data["number"], hold=False, limit="100.00", version="v-renamed")
    env["master"] = {"name": name}
    return env


def test_a_name_changed_in_the_erp_is_written_back_from_salesforce(ledger: Ledger) -> None:
    """Salesforce owns the name: an ERP-side rename is not propagated, the Account's name is
    written back into the ERP, and the review queue shows both values, Salesforce the winner."""
    hub = Hub(ledger)
    hub.send(customer(101, "Dunder Mifflin"))
    hub.run()
    captured = _renamed_in_erp(hub, 101, "Dunder Mifflin Paper (old)")
    kept, _ = filter_erp_capture(ledger.engine, hub.erp_system, [captured], now=START)
    assert all("master" not in e for e in kept)  # beside the event, never ingested
    hub.run()
    [row] = hub.erp.customers()
    assert row["name"] == "Dunder Mifflin"  # reverted in the ERP
    assert hub.sf.accounts.get(acc(101), {}).get("name") != "Dunder Mifflin Paper (old)"
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert (item["attribute"], item["sf_value"], item["erp_value"], item["winner"]) == (
        "name",
        "Dunder Mifflin",
        "Dunder Mifflin Paper (old)",
        "salesforce",
    )
    with ledger.engine.connect() as conn:
        audit = {
            a.action: a.reason
            for a in conn.execute(
                select(audit_log.c.action, audit_log.c.reason).where(
                    audit_log.c.action.in_(("mdm_conflict_revert", "mdm_revert"))
                )
            )
        }
    assert audit["mdm_conflict_revert"] == "name: salesforce owns it and wins over erp"
    assert audit["mdm_revert"].startswith(f"name changed in {hub.erp_system}")
    # Read again after the write-back: the ERP holds the owner's value, nothing to decide.
    again = _renamed_in_erp(hub, 101, "Dunder Mifflin")
    filter_erp_capture(ledger.engine, hub.erp_system, [again], now=START)
    assert len(mdm.list_reviews(ledger.engine, kind="conflict")) == 1
    assert hub.states("customer.upserted") == {f"{acc(101)}@v1": "delivered"}


def test_flag_mode_leaves_an_erp_rename_in_place_and_reviews_it(ledger: Ledger) -> None:
    """With on_conflict = "flag" the ERP's rename stays, is not sent to Salesforce, and is
    reviewed; nothing is sent to the ERP again."""
    hub = Hub(ledger, Ownership(on_conflict="flag"))
    hub.send(customer(102, "Vance Refrigeration"))
    hub.run()
    calls = hub.erp.calls["upsert_customer"]
    captured = _renamed_in_erp(hub, 102, "Vance Refrigeration LLC")
    filter_erp_capture(
        ledger.engine,
        hub.erp_system,
        [captured],
        now=START,
        ownership=Ownership(on_conflict="flag"),
    )
    hub.run()
    assert hub.erp.customers()[0]["name"] == "Vance Refrigeration LLC"
    assert hub.erp.calls["upsert_customer"] == calls
    [item] = mdm.list_reviews(ledger.engine, kind="conflict")
    assert (item["attribute"], item["erp_value"], item["winner"]) == (
        "name",
        "Vance Refrigeration LLC",
        "salesforce",
    )
    assert "flagged" in item["message"]


class _ErpListingTimesOut(FakeErp):
    """An ERP whose customer list (read for the duplicate check) times out."""

    async def native_customers(self) -> list[dict[str, Any]]:
        raise TransientError("customer search timed out")


def test_a_batch_record_whose_check_cannot_run_is_retried_not_sent(
    ledger: Ledger, tmp_path: Path
) -> None:
    """When the duplicate check cannot read the ERP, the new customer is neither sent nor
    dead-lettered: it is retried later, and the rest of the run goes on."""
    erp = _ErpListingTimesOut()
    hub = Hub(ledger, batch_dir=tmp_path, erp=erp)
    hub.send(*(customer(n, f"Unchecked Co {n}") for n in (111, 112)))
    hub.clock.advance(timedelta(days=1))
    hub.run_once()
    assert erp.customers() == []
    assert erp.batches_received == []
    [report] = hub.worker.batch_reports
    assert (report["items"], report["retried"], report["failed"]) == (2, 2, 0)
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.state, deliveries.c.last_error)).all()
    assert [r.state for r in rows] == ["pending", "pending"]
    assert all("customer search timed out" in r.last_error for r in rows)


class _ErpThatShouts(FakeErp):
    """An ERP that stores customer names in capitals: it cannot hold Salesforce's name."""

    def _upsert_customer_row(
        self, external_ref: str, customer: CustomerUpserted, parent_erp_id: str | None
    ) -> Any:
        shouted = dataclasses.replace(customer, name=customer.name.upper())
        return super()._upsert_customer_row(external_ref, shouted, parent_erp_id)


def test_a_name_the_erp_keeps_in_its_own_case_is_no_edit(ledger: Ledger) -> None:
    """The ERP stores names in capitals: reading that form back is not a conflict and writes
    nothing back (no endless write-back); a real edit in the ERP still is, once."""
    hub = Hub(ledger, erp=_ErpThatShouts())
    hub.send(customer(120, "Prestige Worldwide"))
    hub.run()

    def capture_round() -> None:
        [doc] = [d for d in hub.erp.docs if d.kind == "customer"]
        env = credit(doc.data["number"], hold=False, limit="100.00", version="v1")
        env["master"] = {"name": doc.data["name"]}
        filter_erp_capture(ledger.engine, hub.erp_system, [env], now=START)
        hub.run()

    for _ in range(3):
        capture_round()
    assert hub.erp.calls["upsert_customer"] == 1  # the delivery only
    assert mdm.list_reviews(ledger.engine) == []
    [doc] = [d for d in hub.erp.docs if d.kind == "customer"]
    doc.data["name"] = "Prestige Worldwide (edited)"
    for _ in range(3):
        capture_round()
    assert hub.erp.calls["upsert_customer"] == 2  # written back once, then read as its own
    assert doc.data["name"] == "PRESTIGE WORLDWIDE"
    assert [i["erp_value"] for i in mdm.list_reviews(ledger.engine)] == [
        "Prestige Worldwide (edited)"
    ]
