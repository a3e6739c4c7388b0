"""The Salesforce org as configured by a user: capture by poll from the CLI, write-back by the
worker, against the sandbox over real HTTP (password flow, secrets from the environment)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from revbridge.cli.main import app
from revbridge.salesforce.sandbox import SandboxConfig
from revbridge.salesforce.sandbox.server import run_in_thread
from tests.contract.salesforce_connector.conftest import admin_http
from tests.integration.conftest import run_json, runner


def _configure(folder: Path, base_url: str, config: SandboxConfig, more: str = "") -> None:
    """A revbridge.toml for the sandbox org (the secrets come from the environment)."""
    (folder / "revbridge.toml").write_text(
        f"""
[salesforce]
kind = "salesforce"
login_url = "{base_url}"
client_id = "{config.client_id}"
username = "{config.username}"
{more}"""
    )


ACCOUNTS = "/services/data/v62.0/sobjects/Account"


@contextmanager
def _realtime_org(
    folder: Path, monkeypatch: pytest.MonkeyPatch, more: str = ""
) -> Iterator[httpx.Client]:
    """The sandbox org configured in ``folder`` (customers delivered in real time, ``more``
    configuration beside), its secrets in the environment; yields an admin's HTTP client."""
    config = SandboxConfig()
    with run_in_thread(config) as sandbox, admin_http(sandbox.base_url, config) as http:
        monkeypatch.chdir(folder)
        monkeypatch.delenv("REVBRIDGE_CONFIG", raising=False)
        monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", config.client_secret)
        monkeypatch.setenv("SALESFORCE_PASSWORD", config.password)
        _configure(
            folder,
            sandbox.base_url,
            config,
            '[policy.events."customer.upserted"]\npattern = "realtime"\nrationale = "now"\n' + more,
        )
        yield http


def _delivered_account(http: httpx.Client, name: str) -> str:
    """A new Account, captured and delivered to the ERP; its id."""
    created = http.post(ACCOUNTS, json={"Name": name})
    assert created.status_code == 201, created.text
    assert run_json(["capture", "salesforce", "--json"])["accepted"] == 1
    assert run_json(["worker", "--until-idle", "--json"])["delivered"] == 1
    return str(created.json()["id"])


def test_capture_from_a_configured_org_and_quarantine_nothing_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SandboxConfig(seed=True)
    with run_in_thread(config) as sandbox:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("REVBRIDGE_CONFIG", raising=False)
        _configure(tmp_path, sandbox.base_url, config)
        missing = runner.invoke(app, ["capture", "salesforce", "--json"])
        assert missing.exit_code != 0  # no secrets in the environment: a clear error
        assert "SALESFORCE_CLIENT_SECRET" in str(missing.exception)
        monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", config.client_secret)
        monkeypatch.setenv("SALESFORCE_PASSWORD", config.password)
        first = run_json(["capture", "salesforce", "--mode", "poll", "--json"])
        assert first["read"] > 0
        assert first["accepted"] > 0
        again = run_json(["capture", "salesforce", "--mode", "poll", "--json"])
        assert again["accepted"] == 0  # the watermark (and the ledger's idempotency) hold
        status = run_json(["status", "--json"])
        assert status["events"]["total"] == first["accepted"]
        assert status["quarantine"] == first["quarantined"]
        # Each capture's API requests count against the org's daily limit.
        assert status["api"]["calls_today_by_type"]["salesforce"]["capture (poll)"] >= 2


def test_the_hubs_revert_is_not_captured_back_with_the_configured_owners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ERP owns the name and the addresses (``[mdm.owners]``); the Account has no
    address, the ERP has one. A Salesforce user renames the Account and sets its industry:
    the industry goes to the ERP, the name is written back. The Account version that
    write-back makes is the hub's own: the next capture drops it as an echo instead of
    sending the customer to the ERP again."""
    from revbridge.testing import FakeErp

    owners = '[mdm.owners]\nname = "erp"\naddresses = "erp"\n'
    with _realtime_org(tmp_path, monkeypatch, owners) as http:
        account = _delivered_account(http, "Owned By ERP Ltd")
        # An accountant enters the address in the ERP; the ERP capture syncs it.
        erp = FakeErp(state_file=tmp_path / "fake-erp.json")
        [customer] = erp.customers()
        erp.edit_customer(
            customer["erp_id"],
            billing_address={"line1": "1 Main St", "city": "Boston", "country": "US"},
        )
        asyncio.run(erp.close())  # written to its state file
        run_json(["capture", "erp", "--json"])
        renamed = http.patch(
            f"{ACCOUNTS}/{account}", json={"Name": "Renamed In SF", "Industry": "Retail"}
        )
        assert renamed.status_code == 204, renamed.text
        assert run_json(["capture", "salesforce", "--json"])["accepted"] == 1
        run_json(["worker", "--until-idle", "--json"])  # the upsert and the credit status
        # Written back:
        assert http.get(f"{ACCOUNTS}/{account}").json()["Name"] == "Owned By ERP Ltd"
        again = run_json(["capture", "salesforce", "--json"])
        assert (again["echoes"], again["accepted"]) == (1, 0)


def test_a_salesforce_edit_of_website_and_shipping_address_reaches_the_erp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Salesforce owns the web site and the addresses (the default owners): a user's edit of
    the Account's ``Website`` and shipping address is captured and lands in the ERP."""
    from revbridge.testing import FakeErp

    with _realtime_org(tmp_path, monkeypatch) as http:
        account = _delivered_account(http, "Ships Ltd")
        edited = http.patch(
            f"{ACCOUNTS}/{account}",
            json={
                "Website": "ships.example",
                "ShippingStreet": "4 Pier Road",
                "ShippingCity": "Dover",
                "ShippingPostalCode": "CT16 1JA",
                "ShippingCountryCode": "GB",
            },
        )
        assert edited.status_code == 204, edited.text
        assert run_json(["capture", "salesforce", "--json"])["accepted"] == 1
        run_json(["worker", "--until-idle", "--json"])
        [customer] = FakeErp(state_file=tmp_path / "fake-erp.json").customers()
        assert customer["website"] == "ships.example"
        assert customer["shipping_address"] == {
            "line1": "4 Pier Road",
            "line2": None,
            "city": "Dover",
            "region": None,
            "postal_code": "CT16 1JA",
            "country": "GB",
        }
