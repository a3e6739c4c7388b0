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
from tests.scenarios.mdm.story import Hub, acc, customer


def _config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "revbridge.toml"
    path.write_text(f'[store]\nurl = "{store_url}"\n\n[erp]\nkind = "fake"\n', encoding="utf-8")
    return path


def test_an_account_matched_from_csv_updates_the_erp_customer_it_was_linked_to(
    ledger: Ledger, store_url: str, tmp_path: Path
) -> None:
    hub = Hub(ledger)
    erp_id = hub.erp.add_customer("E100", "Acme Incorporated", tax_id="US-100")
    (tmp_path / "accounts.csv").write_text(f"Id,name,tax_id\n{acc(401)},Acme Inc,US-100\n")
    (tmp_path / "customers.csv").write_text("number,name,tax_id\nE100,Acme Incorporated,US 100\n")
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
