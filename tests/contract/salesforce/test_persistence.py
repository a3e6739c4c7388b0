"""Persistence in a SQLite file, demo seed data, TLS and the CLI entry point."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt

from revbridge.salesforce.sandbox import SandboxConfig, run_in_thread

from .conftest import API, Org, OrgFactory


def test_records_survive_a_restart_with_a_data_file(make_org: OrgFactory, tmp_path: Path) -> None:
    """With a data file the org keeps its records, and new ids never collide with old ones."""
    data = tmp_path / "org.sqlite"
    with make_org(data_path=data) as first:
        kept = first.create("Account", {"Name": "Persisted", "ERP_Customer_Number__c": "C-1"})
    with make_org(data_path=data) as second:
        assert second.records("SELECT Id FROM Account WHERE Name = 'Persisted'")[0]["Id"] == kept
        newer = second.create("Account", {"Name": "Newer"})
        assert newer != kept


def test_seed_fills_both_object_models(make_org: OrgFactory, tmp_path: Path) -> None:
    """The seed creates an account hierarchy with billing documents in both models, once."""
    data = tmp_path / "seeded.sqlite"
    with make_org(seed=True, data_path=data) as org:
        counts = {
            name: org.query(f"SELECT COUNT() FROM {name}").json()["totalSize"]
            for name in (
                "Account",
                "blng__Invoice__c",
                "blng__InvoiceLine__c",
                "blng__Payment__c",
                "blng__PaymentAllocationInvoice__c",
                "blng__CreditNote__c",
                "blng__RevenueSchedule__c",
                "blng__RevenueTransaction__c",
                "Invoice",
                "InvoiceLine",
                "Payment",
                "PaymentLineInvoice",
                "CreditMemo",
                "CreditMemoLine",
            )
        }
        assert all(n > 0 for n in counts.values()), counts
        children = org.records("SELECT Name, Parent.Name FROM Account WHERE ParentId != null")
        assert len(children) >= 5
        assert all(c["Parent"]["Name"] for c in children)
        paid = org.records(
            "SELECT blng__Balance__c FROM blng__Invoice__c WHERE blng__PaymentStatus__c = 'Paid'"
        )
        assert all(r["blng__Balance__c"] <= 0 for r in paid)
    with make_org(seed=True, data_path=data) as again:
        assert again.query("SELECT COUNT() FROM Account").json()["totalSize"] == counts["Account"]


def test_plain_and_tls_modes(make_org: OrgFactory) -> None:
    """The same org serves plain HTTP or HTTPS with a generated certificate for 127.0.0.1."""
    with make_org() as plain:
        assert plain.base_url.startswith("http://")
    with make_org(tls=True) as secure:
        assert secure.base_url.startswith("https://")
        assert secure.running.ca_cert is not None
        context = ssl.create_default_context(cafile=str(secure.running.ca_cert))
        response = httpx.get(f"{secure.base_url}/services/data/", verify=context)
        assert response.status_code == 200


def test_in_process_runner_gives_each_org_its_own_state(org: Org) -> None:
    """A second in-memory sandbox starts empty, on another port."""
    org.create("Account", {"Name": "Only Here"})
    with run_in_thread(SandboxConfig()) as other:
        assert other.base_url != org.base_url
        assert (
            other.sandbox.org.records(other.sandbox.org.objects["Account"], include_deleted=True)
            == []
        )


def test_cli_prints_credentials_and_serves_jwt_logins(tmp_path: Path) -> None:
    """`salesforce_command` prints working demo credentials, including a JWT signing key."""
    port_probe = run_in_thread(SandboxConfig())
    with port_probe as probe:
        port = int(probe.base_url.rsplit(":", 1)[1])
    code = (
        "from revbridge.salesforce.sandbox.cli import salesforce_command; "
        f"salesforce_command(port={port}, tls=True, seed=True, data=None)"
    )
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].lstrip().startswith("admin"):
            line = process.stdout.readline()
            assert line, "the command exited before printing its credentials"
            lines.append(line)
        printed = dict(
            m.groups() for m in (re.match(r"\s+(.+?)\s{2,}(.+)", line) for line in lines) if m
        )
        assert printed["instance URL"] == f"https://127.0.0.1:{port}"
        key = Path(printed["JWT private key"]).read_bytes()
        context = ssl.create_default_context(cafile=printed["TLS certificate"])
        assertion = jwt.encode(
            {
                "iss": printed["client id"],
                "sub": printed["username"],
                "aud": "https://login.salesforce.com",
                "exp": int(time.time()) + 60,
            },
            key,
            algorithm="RS256",
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                token = httpx.post(
                    f"{printed['instance URL']}/services/oauth2/token",
                    data={
                        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                        "assertion": assertion,
                    },
                    verify=context,
                )
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert token.status_code == 200, token.text
        accounts = httpx.get(
            f"{printed['instance URL']}{API}/query",
            params={"q": "SELECT COUNT() FROM Account"},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            verify=context,
        )
        assert accounts.json()["totalSize"] > 0
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
