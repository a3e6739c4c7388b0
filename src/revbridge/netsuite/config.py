"""How the NetSuite connector reaches one account, and how canonical data maps onto it.

``NetSuiteConfig`` is plain data: nothing reads the environment until ``from_env`` is called.
Mappings (currencies, GL accounts, items) are NetSuite internal ids as strings, because that
is what a record reference ``{"id": "12"}`` carries; a missing mapping is a ``TerminalError``
at delivery time, naming the key, never a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Literal

from revbridge.errors import ConfigError

RevenuePosting = Literal["per_entry", "summarized"]

_ENV = {
    "account_id": "NETSUITE_ACCOUNT_ID",
    "consumer_key": "NETSUITE_CONSUMER_KEY",
    "consumer_secret": "NETSUITE_CONSUMER_SECRET",
    "token_id": "NETSUITE_TOKEN_ID",
    "token_secret": "NETSUITE_TOKEN_SECRET",
}


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


def rest_host(account_id: str) -> str:
    """NetSuite's REST host for an account: lower case, ``_`` becomes ``-`` (facts 2.1)."""
    return f"https://{account_id.lower().replace('_', '-')}.suitetalk.api.netsuite.com"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetSuiteConfig:
    """One NetSuite account as the connector sees it.

    ``base_url`` overrides the host derived from ``account_id`` (the sandbox, a proxy); the
    REST root is ``base_url + "/services/rest"``. ``realm`` in the TBA header is always the
    account id in its original form (``1234567_SB1``).

    ``concurrency_limit`` is the share of the account concurrency limit this integration
    may use, across all its workers and processes (``revbridge.engine.concurrency``).

    ``currency_map``: ISO code -> currency internal id. ``gl_account_map``: the account
    string of a canonical journal line (``"4000 Subscription Revenue"``) or its number ->
    account internal id. ``item_map``: product code -> item internal id, with
    ``default_item_id`` for unmapped products and ``tax_item_id`` for the tax line (the
    connector posts tax as an item line; see the README). ``payment_account_id``: where
    cash receipts are deposited (None: NetSuite's default, Undeposited Funds).

    ``revenue_posting``: ``per_entry`` makes one journal entry per recognized schedule
    entry; ``summarized`` makes one journal per period and currency, with one line per
    account and side, through the engine's batch route (``NetSuiteErp.post_summary``).
    """

    account_id: str
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str
    base_url: str | None = None
    concurrency_limit: int = 5
    batch_size: int = 100
    subsidiary_id: str = "1"
    currency_map: Mapping[str, str] = field(default_factory=dict)
    gl_account_map: Mapping[str, str] = field(default_factory=dict)
    item_map: Mapping[str, str] = field(default_factory=dict)
    default_item_id: str | None = None
    tax_item_id: str | None = None
    payment_account_id: str | None = None
    revenue_posting: RevenuePosting = "per_entry"
    external_id_prefix: str = "SF-"
    timeout: timedelta = timedelta(seconds=60)
    slot_wait: timedelta = timedelta(seconds=120)
    read_retries: int = 2
    csv_poll_interval: timedelta = timedelta(milliseconds=200)
    csv_poll_timeout: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        for name in ("account_id", "consumer_key", "consumer_secret", "token_id", "token_secret"):
            if not getattr(self, name):
                raise ConfigError("netsuite", name, "must not be empty")
        if self.concurrency_limit < 1:
            raise ConfigError("netsuite", "concurrency_limit", "must be at least 1")
        if not 1 <= self.batch_size <= 1000:
            raise ConfigError("netsuite", "batch_size", "must be between 1 and 1000")
        if self.revenue_posting not in ("per_entry", "summarized"):
            raise ConfigError("netsuite", "revenue_posting", "must be per_entry or summarized")
        prefix = self.external_id_prefix
        if not prefix or any(not (c.isascii() and (c.isalnum() or c in "-")) for c in prefix):
            raise ConfigError(
                "netsuite", "external_id_prefix", "letters, digits and '-' only (not '_')"
            )
        for name in ("currency_map", "gl_account_map", "item_map"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def rest_url(self) -> str:
        return (self.base_url or rest_host(self.account_id)).rstrip("/") + "/services/rest"

    @property
    def root_url(self) -> str:
        return (self.base_url or rest_host(self.account_id)).rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> NetSuiteConfig:
        """TBA credentials and account from ``NETSUITE_*`` variables; ``overrides`` win.

        ``NETSUITE_BASE_URL`` (optional) points at a sandbox or proxy.
        """
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, var in _ENV.items():
            if name not in overrides:
                if not source.get(var):
                    raise ConfigError("environment", var, "is not set")
                values[name] = source[var]
        if "base_url" not in overrides and source.get("NETSUITE_BASE_URL"):
            values["base_url"] = source["NETSUITE_BASE_URL"]
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
