"""A Tryton server the user already runs, configured in ``[erp.tryton]``: the session's
instance stands in for it, reached by URL, database, login and the password in the
environment, as a finance team's own trytond would be. The config's managed instance
(``erp.tryton_home``) is never created nor started."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from revbridge.cli.main import app
from revbridge.errors import ConfigError
from revbridge.tryton.instance import InstanceInfo, TrytonInstance

from .conftest import Ids, accountant, customer, invoice, run

runner = CliRunner()


def _configure(folder: Path, info: InstanceInfo, **tryton: str) -> Path:
    """A revbridge.toml pointing at ``info``'s server as a user's own; ``tryton`` overrides."""
    keys = {"url": info.url, "database": info.database, "login": info.api_user, **tryton}
    lines = "".join(f'{key} = "{value}"\n' for key, value in keys.items())
    path = folder / "revbridge.toml"
    path.write_text(
        '[erp]\nkind = "tryton"\n\n[erp.tryton]\n'
        + lines
        + '\n[policy.events."customer.upserted"]\npattern = "realtime"\n'
        'rationale = "The test delivers customers as they arrive."\n',
        encoding="utf-8",
    )
    return path


def _invoke(config: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--config", str(config)])


def _managed_home(folder: Path) -> Path:
    return folder / ".revbridge"


def test_a_customer_and_an_invoice_reach_the_user_s_own_server(
    tryton: InstanceInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRYTON_PASSWORD", tryton.api_password)
    config = _configure(tmp_path, tryton)

    checked = _invoke(config, "erp", "check")
    assert checked.exit_code == 0, checked.output
    assert f"Tryton at {tryton.url}" in checked.output
    assert "Revbridge Local ERP" in checked.output

    account, invoice_id = Ids.make("001"), Ids.make("a0J")
    envelopes = tmp_path / "events.jsonl"
    envelopes.write_text(
        "".join(
            json.dumps(e) + "\n"
            for e in (
                customer(account, "Own Server Ltd"),
                invoice(invoice_id, account, "INV-OWN-1", [("Subscription", 1, "1200.00")]),
            )
        ),
        encoding="utf-8",
    )
    ingested = _invoke(config, "ingest", str(envelopes), "--json")
    assert ingested.exit_code == 0, ingested.output
    worked = _invoke(config, "worker", "--until-idle", "--json")
    assert worked.exit_code == 0, worked.output

    async def books() -> tuple[Any, Any]:
        client, ops = accountant(tryton)
        try:
            await client.login()
            party = await ops.find_party_by_identifier(f"salesforce:{account}")
            return party, await ops.find_invoice(invoice_id)
        finally:
            await client.aclose()

    party, posted = run(books())
    assert party is not None
    assert party.name == "Own Server Ltd"
    assert posted is not None
    assert posted.state == "posted"
    assert posted.total_amount == 1200
    assert not _managed_home(tmp_path).exists()


@pytest.mark.parametrize(
    ("tryton_keys", "password", "key", "why"),
    [
        ({}, "not-the-password", "erp.tryton.login", "refused user"),
        ({"database": "not_there"}, None, "erp.tryton.database", "no database 'not_there'"),
        ({"revenue_account": "9.9.9"}, None, "erp.tryton.revenue_account", "no account"),
        ({"url": "http://127.0.0.1:9"}, None, "erp.tryton.url", "nothing answers"),
    ],
)
def test_a_wrong_setting_is_named_before_anything_is_delivered(
    tryton: InstanceInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tryton_keys: dict[str, str],
    password: str | None,
    key: str,
    why: str,
) -> None:
    monkeypatch.setenv("TRYTON_PASSWORD", password or tryton.api_password)
    config = _configure(tmp_path, tryton, **tryton_keys)
    checked = _invoke(config, "erp", "check")
    assert isinstance(checked.exception, ConfigError), checked.output
    assert checked.exception.key == key
    assert why in checked.exception.reason
    assert checked.exception.path == str(config)
    assert not _managed_home(tmp_path).exists()


def test_the_worker_refuses_a_bad_password_and_dead_letters_nothing(
    tryton: InstanceInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the check, every delivery would fail terminally on the login."""
    monkeypatch.setenv("TRYTON_PASSWORD", "not-the-password")
    config = _configure(tmp_path, tryton)
    account = Ids.make("001")
    envelopes = tmp_path / "events.jsonl"
    envelopes.write_text(json.dumps(customer(account, "Locked Out Ltd")) + "\n", encoding="utf-8")
    assert _invoke(config, "ingest", str(envelopes)).exit_code == 0
    worked = _invoke(config, "worker", "--until-idle")
    assert isinstance(worked.exception, ConfigError), worked.output
    assert worked.exception.key == "erp.tryton.login"
    status = _invoke(config, "status", "--json")
    assert status.exit_code == 0, status.output
    states = json.loads(status.stdout)["events"]["by_state"]
    assert states.get("dead_letter", 0) == 0
    assert states.get("pending") == 1


@pytest.mark.parametrize("command", [("worker", "--until-idle"), ("serve",), ("capture", "erp")])
def test_a_missing_password_variable_stops_what_would_deliver_or_capture(
    tryton: InstanceInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    monkeypatch.delenv("TRYTON_PASSWORD", raising=False)
    config = _configure(tmp_path, tryton)
    worked = _invoke(config, *command)
    assert isinstance(worked.exception, ConfigError), worked.output
    assert (worked.exception.path, worked.exception.key) == ("environment", "TRYTON_PASSWORD")
    assert not _managed_home(tmp_path).exists()


def test_without_url_the_managed_instance_stays_the_default(
    tryton: InstanceInfo, tryton_instance: TrytonInstance, tmp_path: Path
) -> None:
    """An existing config (kind and tryton_home only) reaches the managed instance, checked
    with the same account codes as before."""
    config = tmp_path / "revbridge.toml"
    config.write_text(
        f'[erp]\nkind = "tryton"\ntryton_home = "{tryton_instance.home}"\n', encoding="utf-8"
    )
    checked = _invoke(config, "erp", "check")
    assert checked.exit_code == 0, checked.output
    assert f"Tryton at {tryton.url}" in checked.output
    assert f"user {tryton.api_user}" in checked.output


READS_THE_ERP = [
    ("recon", "run", "--scope", "monthly", "--period", "2026-01"),
    ("mdm", "match", "--sf-csv", "accounts.csv", "--report", "match.csv"),
]


@pytest.mark.parametrize("command", READS_THE_ERP)
@pytest.mark.parametrize(
    ("tryton_keys", "password", "key"),
    [
        ({}, "not-the-password", "erp.tryton.login"),
        ({"url": "http://127.0.0.1:9"}, None, "erp.tryton.url"),
    ],
)
def test_what_reads_the_erp_stops_first_on_a_wrong_setting(
    tryton: InstanceInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    tryton_keys: dict[str, str],
    password: str | None,
    key: str,
) -> None:
    """A reconciliation or a go-live match with a wrong password or a server that does not
    answer stops before reading anything, naming the setting, as the worker does."""
    monkeypatch.setenv("TRYTON_PASSWORD", password or tryton.api_password)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "accounts.csv").write_text("Id,name\n0015e00000AbCdEAAV,Acme Ltd\n")
    config = _configure(tmp_path, tryton, **tryton_keys)
    result = _invoke(config, *command)
    assert isinstance(result.exception, ConfigError), result.output
    assert result.exception.key == key
    assert result.exception.path == str(config)
    assert not (tmp_path / "match.csv").exists()


def test_what_reads_nothing_from_the_erp_is_not_stopped_by_it(
    tryton: InstanceInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconciliation of what was already read (--no-refresh) runs with a wrong password:
    it reads nothing from the ERP, so there is nothing to check."""
    monkeypatch.setenv("TRYTON_PASSWORD", "not-the-password")
    monkeypatch.chdir(tmp_path)
    config = _configure(tmp_path, tryton)
    result = _invoke(config, "recon", "run", "--scope", "monthly", "--period", "2026-01",
                     "--no-refresh")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "matched=0" in result.output
