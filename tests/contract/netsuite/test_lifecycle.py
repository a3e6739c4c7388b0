"""Persistence, the CLI command and the accountant's changes seen through SuiteQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from revbridge.netsuite.sandbox import SandboxConfig, running_sandbox
from revbridge.netsuite.sandbox.cli import netsuite_command
from tests.contract.netsuite.conftest import NetSuiteClient, invoice_body


def test_data_in_a_file_survives_a_restart(tmp_path: Path) -> None:
    config = SandboxConfig(data_path=tmp_path / "netsuite.sqlite")
    with running_sandbox(config) as sandbox:
        client = NetSuiteClient(sandbox)
        customer = client.create("customer", {"companyName": "Durable", "externalId": "SF-D"})
        client.create("invoice", invoice_body(customer, 75))
        mark = client.suiteql("SELECT MAX(lastmodifieddate) AS m FROM transaction")["items"][0]["m"]
    with running_sandbox(config) as sandbox:
        client = NetSuiteClient(sandbox)
        assert client.get("/record/v1/customer/eid:SF-D").json()["balance"] == 75
        assert client.suiteql("SELECT COUNT(*) AS n FROM currency")["items"][0]["n"] == "4"
        second = client.create("customer", {"companyName": "After Restart"})
        assert int(second) > int(customer)
        client.create("invoice", invoice_body(second, 5))
        newer = client.suiteql(f"SELECT id FROM transaction WHERE lastmodifieddate > '{mark}'")[
            "items"
        ]
        assert len(newer) == 1


def test_credit_hold_set_by_the_accountant_shows_up_as_a_change(
    client: NetSuiteClient, customer_id: str
) -> None:
    mark = client.suiteql("SELECT MAX(lastmodifieddate) AS m FROM customer")["items"][0]["m"]
    client.admin(
        "PUT", f"/customer/{customer_id}/credit", {"creditHoldOverride": "ON", "creditLimit": 10}
    )
    rows = client.suiteql(
        "SELECT id, creditholdoverride, creditlimit FROM customer"
        f" WHERE lastmodifieddate > '{mark}'"
    )["items"]
    assert rows == [
        {"links": [], "id": customer_id, "creditholdoverride": "ON", "creditlimit": "10"}
    ]


def test_closing_a_period_shows_up_in_accountingperiod(client: NetSuiteClient) -> None:
    client.admin("POST", "/accountingPeriod/close", {"id": "1"})
    row = client.suiteql("SELECT periodname, closed FROM accountingperiod WHERE id = 1")["items"][0]
    assert row["closed"] == "T"
    assert client.get("/record/v1/accountingPeriod/1").json()["closed"] is True


def test_the_cli_refuses_a_bad_fault_spec_before_serving() -> None:
    with pytest.raises(typer.BadParameter, match="unknown fault"):
        netsuite_command(faults="earthquake=1")
