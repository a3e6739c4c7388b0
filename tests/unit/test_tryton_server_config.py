"""``[erp.tryton]``: a Tryton server the user runs. Without ``url`` the managed instance stays
the default; with it, database and login are required, the password comes from the
environment, and the account codes become the adapter's ``AccountMap``."""

import asyncio
from pathlib import Path

import pytest

from revbridge.config import TrytonSection, parse_config
from revbridge.errors import ConfigError
from revbridge.services.tryton_target import account_map, tryton_erp
from revbridge.tryton.adapter import AccountMap

SERVER = {"url": "https://erp.example.com:8000", "database": "books", "login": "revbridge"}


def _settings(tmp_path: Path, tryton: dict[str, object], **erp: object):  # type: ignore[no-untyped-def]
    return parse_config({"erp": {"kind": "tryton", **erp, "tryton": tryton}}, None, tmp_path)


def test_without_url_the_managed_instance_and_its_accounts_stay_the_default(
    tmp_path: Path,
) -> None:
    """An existing config (kind tryton, maybe tryton_home) loads as before; the default codes
    are the adapter's own, so the managed instance's books do not change."""
    settings = _settings(tmp_path, {}, tryton_home="erp-home")
    assert settings.raw.erp.tryton.url is None
    assert settings.raw.erp.tryton_home == "erp-home"
    assert account_map(settings.raw.erp.tryton) == AccountMap()


@pytest.mark.parametrize(
    ("tryton", "key", "why"),
    [
        ({"url": "https://erp.example.com"}, "erp.tryton", "database and login are required"),
        ({**SERVER, "login": ""}, "erp.tryton", "database and login are required"),
        ({"database": "books"}, "erp.tryton", "set url too"),
        ({**SERVER, "url": "erp.example.com:8000"}, "erp.tryton.url", "http:// or https://"),
        ({**SERVER, "password": "secret"}, "erp.tryton.password", "unknown key"),
        ({**SERVER, "password_env": "TRYTON PASSWORD"}, "erp.tryton.password_env", "pattern"),
        ({**SERVER, "revenue_account": ""}, "erp.tryton.revenue_account", "at least 1"),
        ({**SERVER, "timeout_s": 0}, "erp.tryton.timeout_s", "greater than 0"),
    ],
)
def test_a_bad_server_setting_is_refused_at_load_naming_the_key(
    tmp_path: Path, tryton: dict[str, object], key: str, why: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, tryton)
    assert caught.value.key == key, caught.value
    assert why in caught.value.reason


def test_a_server_and_a_managed_folder_at_once_is_refused(tmp_path: Path) -> None:
    """tryton_home is the managed instance's; with url it would be silently unused."""
    with pytest.raises(ConfigError, match="keep one of them") as caught:
        _settings(tmp_path, SERVER, tryton_home=".revbridge/tryton")
    assert caught.value.key == "erp"


def test_the_account_codes_become_the_account_map(tmp_path: Path) -> None:
    """The user's chart: codes of their own, GL names merged over the defaults, no tax."""
    settings = _settings(
        tmp_path,
        {
            **SERVER,
            "revenue_account": "706000",
            "receivable_account": "411000",
            "cash_account": "512000",
            "tax_account": "445710",
            "tax_name": "",
            "gl_account_map": {"2400 Deferred Revenue": "487000"},
        },
    )
    accounts = account_map(settings.raw.erp.tryton)
    assert (accounts.revenue, accounts.receivable, accounts.cash, accounts.tax) == (
        "706000",
        "411000",
        "512000",
        "445710",
    )
    assert accounts.tax_name is None
    assert accounts.code_for("2400 Deferred Revenue") == "487000"
    assert accounts.code_for("4000 Subscription Revenue") == "4.1.2"  # a default kept


def test_the_defaults_here_are_the_adapter_s(tmp_path: Path) -> None:
    """The documented defaults of [erp.tryton] are AccountMap's: one set of codes."""
    section, accounts = TrytonSection(), AccountMap()
    assert section.revenue_account == accounts.revenue
    assert section.receivable_account == accounts.receivable
    assert section.cash_account == accounts.cash
    assert section.tax_account == accounts.tax
    assert section.tax_name == accounts.tax_name


def test_a_missing_password_variable_is_named_and_the_managed_folder_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FINANCE_TRYTON_PW", raising=False)
    settings = _settings(tmp_path, {**SERVER, "password_env": "FINANCE_TRYTON_PW"})
    with pytest.raises(ConfigError) as caught:
        tryton_erp(settings)
    assert (caught.value.path, caught.value.key) == ("environment", "FINANCE_TRYTON_PW")
    assert "'revbridge'" in caught.value.reason
    assert not (tmp_path / ".revbridge").exists()


def test_a_configured_server_is_what_the_adapter_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """URL, database, login, the password from the environment, the timeout and the
    concurrency: nothing of the managed instance (its folder is not created)."""
    monkeypatch.setenv("TRYTON_PASSWORD", "s3cret")
    settings = _settings(tmp_path, {**SERVER, "timeout_s": 15, "concurrency_limit": 4})
    erp = tryton_erp(settings)
    try:
        client = erp.client
        assert (client.url, client.database, client.login_name) == (
            "https://erp.example.com:8000/",
            "books",
            "revbridge",
        )
        assert client._password == "s3cret"  # what login would send
        assert erp.capabilities.request_timeout_s == 15
        assert erp.capabilities.concurrency_limit == 4
    finally:
        asyncio.run(erp.close())
    assert not (tmp_path / ".revbridge").exists()
