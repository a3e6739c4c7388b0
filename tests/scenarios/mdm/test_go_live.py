"""Go-live from CSV exports on the fake ERP: `revbridge mdm match --sf-csv --erp-csv` links an
Account to the customer the ERP already holds, under the name delivery looks links up by, so
the Account's first `customer.upserted` updates that customer instead of creating another."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from revbridge.cli.main import app
from revbridge.services import mdm
from revbridge.store.ledger import Ledger
from tests.scenarios.mdm.story import START, Hub, acc, customer


def _config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "revbridge.toml"
    path.write_text(f'[store]\nurl = "{store_url}"\n\n[erp]\nkind = "fake"\n', encoding="utf-8")
    return path


def test_an_account_matched_from_csv_updates_the_erp_customer_it_was_linked_to(
    ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    hub = Hub(ledger)
    erp_id = hub.erp.add_customer("E100", "Acme Incorporated", tax_id="US-100")
    _match_from_csv(tmp_path, store_url, 401, "E100", erp_name="Acme Incorporated")

    hub.send(customer(401, "Acme Inc", tax_id="US-100"))
    hub.run()
    assert hub.states("customer.upserted") == {f"{acc(401)}@v1": "delivered"}
    [row] = hub.erp.customers()  # no second customer
    assert (row["erp_id"], row["number"], row["external_ref"], row["name"]) == (
        erp_id,
        "E100",
        acc(401),
        "Acme Inc",
    )
    [link] = mdm.lookup(ledger.engine, acc(401))
    assert (link.erp_system, link.erp_customer_number, link.erp_internal_id) == (
        hub.erp_system,
        "E100",
        erp_id,
    )


def _match_from_csv(
    tmp_path: Path, store_url: str, account: int, number: str, erp_name: str = "Acme Inc"
) -> None:
    """`revbridge mdm match` links the Account to ERP number ``number`` from two CSV files."""
    (tmp_path / "accounts.csv").write_text(f"Id,name,tax_id\n{acc(account)},Acme Inc,US-100\n")
    (tmp_path / "customers.csv").write_text(f"number,name,tax_id\n{number},{erp_name},US 100\n")
    result = CliRunner().invoke(
        app,
        [
            "mdm",
            "match",
            "--sf-csv",
            str(tmp_path / "accounts.csv"),
            "--erp-csv",
            str(tmp_path / "customers.csv"),
            "--report",
            str(tmp_path / "r.csv"),
            "--config",
            str(_config(tmp_path, store_url)),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["linked"] == 1


def test_a_link_to_a_number_the_erp_does_not_hold_creates_no_second_customer(
    ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    """The customers CSV named E-100 (a typo: the ERP's customer is E-101). The Account's
    first upsert used to create a new customer beside it, while the crosswalk kept E-100:
    a duplicate in the ERP and a link naming a number no customer has. It is refused, named,
    and nothing is created."""
    hub = Hub(ledger)
    hub.erp.add_customer("E-101", "Acme Incorporated", tax_id="US-100")
    _match_from_csv(tmp_path, store_url, 402, "E-100")
    hub.send(customer(402, "Acme Inc", tax_id="US-100"))
    hub.run()
    assert hub.states("customer.upserted") == {f"{acc(402)}@v1": "dead_letter"}
    [error] = hub.errors()
    assert f"customer {acc(402)} is linked to {hub.erp_system} customer E-100" in error
    assert "no customer E-100" in error
    assert [c["number"] for c in hub.erp.customers()] == ["E-101"]
    [link] = mdm.lookup(ledger.engine, acc(402))
    assert (link.erp_customer_number, link.erp_internal_id) == ("E-100", None)


def test_the_nightly_batch_refuses_a_link_to_a_number_the_erp_does_not_hold(
    ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    hub = Hub(ledger, batch_dir=tmp_path / "batches")
    _match_from_csv(tmp_path, store_url, 403, "E-300")
    hub.send(customer(403, "Acme Inc", tax_id="US-100"), customer(404, "Initech"))
    hub.nightly()
    states = hub.states("customer.upserted")
    assert states == {f"{acc(403)}@v1": "dead_letter", f"{acc(404)}@v1": "delivered"}
    assert [c["external_ref"] for c in hub.erp.customers()] == [acc(404)]
    [link] = mdm.lookup(ledger.engine, acc(403))
    assert (link.erp_customer_number, link.erp_internal_id) == ("E-300", None)


def test_an_erp_answer_that_contradicts_the_link_is_audited_not_silent(ledger: Ledger) -> None:
    """An import named number E-11 with internal id X, but X is E-12 in the ERP. The upsert
    updates X, the ERP answers E-12, and the crosswalk keeps E-11 for its owner to decide:
    that contradiction was swallowed without a trace; it is now in the audit log."""
    hub = Hub(ledger)
    erp_id = hub.erp.add_customer("E-12", "Acme Inc")
    with ledger.engine.begin() as conn:
        mdm.link_customer(
            conn,
            sf_account_id=acc(405),
            erp_system=hub.erp_system,
            erp_entity="",
            erp_customer_number="E-11",
            erp_internal_id=erp_id,
            now=START,
            actor="t",
            reason="imported",
        )
    hub.send(customer(405, "Acme Inc"))
    hub.run()
    assert hub.states("customer.upserted") == {f"{acc(405)}@v1": "delivered"}
    [link] = mdm.lookup(ledger.engine, acc(405))
    assert link.erp_customer_number == "E-11"  # unchanged: a person decides
    reasons = hub.audited("mdm_link_contradicted")
    assert reasons == [
        f"the ERP answered the upsert of {acc(405)} with customer {erp_id} (E-12): Account "
        f"{acc(405)} ({link.canonical_id}) is linked to {hub.erp_system} erp_customer_number "
        "E-11, not E-12; the crosswalk is unchanged"
    ]
