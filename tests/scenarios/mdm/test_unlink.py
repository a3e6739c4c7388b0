"""Undoing a wrong link at go-live, on the real ledger (SQLite and PostgreSQL) and the fakes.

`mdm match` links two "Globex" by a tax id someone keyed wrongly in the ERP; the master-data
owner notices in the report before any document has gone. `mdm unlink` undoes it: the
Account is then created anew (or linked to the right customer with --relink), the pair is
never proposed again, and the audit log says who did it and why. A link the ERP has used is
refused, since the hub alone cannot take its documents back.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from revbridge.errors import DomainError, UsageError
from revbridge.mdm.match import Candidate
from revbridge.services import mdm
from revbridge.services.mdm_sync import run_match
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, external_refs
from tests.scenarios.mdm.story import START, Hub, acc, customer, invoice


def _go_live(hub: Hub, ledger: Ledger, *erp: tuple[str, str, str]) -> dict[str, str]:
    """The ERP's customers (number, name, tax id) and one Account, Globex Corp, whose tax id
    the first of them carries: `mdm match` links the two automatically."""
    ids = {number: hub.erp.add_customer(number, name, tax_id=tax) for number, name, tax in erp}
    report = run_match(
        ledger.engine,
        [Candidate.of(acc(5), "Globex Corp", tax_id="US-55")],
        [Candidate.of(number, name, tax_id=tax) for number, name, tax in erp],
        erp_system=hub.erp_system,
        erp_internal_ids=ids,
        now=START,
        actor="t",
    )
    assert report.counts()["accepted"] == 1
    return ids


def _unlink(ledger: Ledger, hub: Hub, **kw: str) -> dict:
    return mdm.unlink_customer(
        ledger.engine,
        sf_account_id=acc(5),
        erp_system=hub.erp_system,
        actor="mdo",
        now=START,
        **{"reason": "G-1 is Globex Logistics, another firm", **kw},
    )


def test_an_unlinked_account_is_created_anew_and_never_proposed_again(ledger: Ledger) -> None:
    hub = Hub(ledger)
    ids = _go_live(hub, ledger, ("G-1", "Globex Corporation", "US-55"))
    done = _unlink(ledger, hub)
    assert done["unlinked_from"] == {"erp_customer_number": "G-1", "erp_internal_id": ids["G-1"]}
    assert done["relinked_to"] is None
    assert [link.erp_system for link in mdm.lookup(ledger.engine, acc(5))] in ([], [None])
    with ledger.engine.connect() as conn:
        adopted = conn.execute(
            select(external_refs.c.external_id).where(
                external_refs.c.subject_ref == f"customer:{acc(5)}"
            )
        ).all()
        audited = conn.execute(
            select(audit_log.c.actor, audit_log.c.reason).where(audit_log.c.action == "mdm_unlink")
        ).all()
    assert adopted == []  # invoices no longer resolve to G-1
    assert [tuple(a) for a in audited] == [("mdo", "G-1 is Globex Logistics, another firm")]
    [rejected] = mdm.list_reviews(ledger.engine, state="rejected")
    assert (rejected["id"], rejected["erp_customer_number"]) == (done["review_id"], "G-1")

    # The same match again proposes nothing: a person said no.
    again = run_match(
        ledger.engine,
        [Candidate.of(acc(5), "Globex Corp", tax_id="US-55")],
        [Candidate.of("G-1", "Globex Corporation", tax_id="US-55")],
        erp_system=hub.erp_system,
        now=START,
        actor="t",
    )
    assert (again.counts()["accepted"], again.counts()["review"]) == (0, 0)

    # The Account and its invoice go to a new ERP customer: not held, not on G-1.
    hub.send(customer(5, "Globex Corp"), invoice(2, account=5))
    hub.run()
    assert hub.states("customer.upserted") == {f"{acc(5)}@v1": "delivered"}
    assert hub.errors() == []
    by_ref = {c["external_ref"]: c["erp_id"] for c in hub.erp.customers()}
    assert set(by_ref) == {acc(5), "erp-native:G-1"}
    [inv] = hub.erp.records("invoice")
    assert inv.customer == by_ref[acc(5)] != ids["G-1"]


def test_relink_moves_the_account_to_the_right_erp_customer(ledger: Ledger) -> None:
    """The right customer is G-2: --relink links it in the same step, and the Account's
    first upsert and invoice land on G-2, with no third customer made."""
    hub = Hub(ledger)
    ids = _go_live(hub, ledger, ("G-1", "Globex Corporation", "US-55"), ("G-2", "Globex", ""))
    done = _unlink(ledger, hub, relink_to="G-2")
    assert done["relinked_to"] == "G-2"
    [link] = mdm.lookup(ledger.engine, acc(5))
    assert (link.erp_customer_number, link.erp_internal_id) == ("G-2", None)

    hub.send(customer(5, "Globex Corp"), invoice(2, account=5))
    hub.run()
    assert hub.errors() == []
    assert len(hub.erp.customers()) == 2
    [inv] = hub.erp.records("invoice")
    assert inv.customer == ids["G-2"]
    [link] = mdm.lookup(ledger.engine, acc(5))
    assert link.erp_internal_id == ids["G-2"]


def test_a_relink_to_a_number_linked_elsewhere_changes_nothing(ledger: Ledger) -> None:
    hub = Hub(ledger)
    _go_live(hub, ledger, ("G-1", "Globex Corporation", "US-55"), ("G-2", "Globex", ""))
    with ledger.engine.begin() as conn:
        mdm.link_customer(
            conn,
            sf_account_id=acc(6),
            erp_system=hub.erp_system,
            erp_customer_number="G-2",
            erp_internal_id=None,
            now=START,
            actor="t",
            reason="import",
        )
    with pytest.raises(DomainError, match="already linked"):
        _unlink(ledger, hub, relink_to="G-2")
    [link] = mdm.lookup(ledger.engine, acc(5))  # all or nothing: still the old link
    assert link.erp_customer_number == "G-1"
    assert hub.audited("mdm_unlink") == []


def test_a_link_the_erp_has_used_is_refused_with_what_to_do(ledger: Ledger) -> None:
    hub = Hub(ledger)
    _go_live(hub, ledger, ("G-1", "Globex Corporation", "US-55"))
    hub.send(customer(5, "Globex Corp"), invoice(2, account=5))
    hub.run()
    with pytest.raises(DomainError, match=r"in use: 2 documents .* correct them in the ERP"):
        _unlink(ledger, hub)
    [link] = mdm.lookup(ledger.engine, acc(5))
    assert link.erp_customer_number == "G-1"
    assert hub.audited("mdm_unlink") == []


def test_an_unlink_needs_a_reason_and_a_link(ledger: Ledger) -> None:
    hub = Hub(ledger)
    with pytest.raises(UsageError, match="--reason"):
        _unlink(ledger, hub, reason=" ")
    with pytest.raises(mdm.NotFound, match="has no link in fake-erp"):
        _unlink(ledger, hub)
    _go_live(hub, ledger, ("G-1", "Globex Corporation", "US-55"))
    with pytest.raises(UsageError, match="linked to fake-erp customer G-1 already"):
        _unlink(ledger, hub, relink_to="G-1")
    assert hub.audited("mdm_unlink") == []
