"""Fixtures: a NetSuite sandbox on a free port and the connector configured for it.

The mappings below are the sandbox's seed data (its README, "Seed data"): what an
implementer would copy from their own account's setup lists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import requests
from requests_oauthlib import OAuth1

from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.config import NetSuiteConfig
from revbridge.netsuite.sandbox import RunningSandbox, SandboxConfig, running_sandbox

T = TypeVar("T")

CURRENCIES = {"USD": "1", "EUR": "2", "GBP": "3", "JPY": "4"}
GL_ACCOUNTS = {
    "1100": "1",
    "1000": "2",
    "1010": "3",
    "4000": "4",
    "4100": "5",
    "2400": "6",
    "2200": "7",
    "3000": "8",
    "6100": "9",
}
ITEMS = {
    "PLAT-SUB": "1",
    "SEAT-ADD": "2",
    "IMPL-SVC": "3",
    "TRAIN-01": "3",
    "SUPPORT-P": "5",
    "API-PACK": "5",
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def connector_config(sandbox: RunningSandbox, **overrides: Any) -> NetSuiteConfig:
    cfg = sandbox.config
    values: dict[str, Any] = {
        "account_id": cfg.account_id,
        "consumer_key": cfg.consumer_key,
        "consumer_secret": cfg.consumer_secret,
        "token_id": cfg.token_id,
        "token_secret": cfg.token_secret,
        "base_url": sandbox.base_url,
        "concurrency_limit": cfg.concurrency_limit,
        "currency_map": CURRENCIES,
        "gl_account_map": GL_ACCOUNTS,
        "item_map": ITEMS,
        "default_item_id": "1",
        "tax_item_id": "4",
        "read_retries": 4,
    }
    values.update(overrides)
    return NetSuiteConfig(**values)


class Admin:
    """The sandbox's back door: the accountant's actions and the fault switches."""

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.url = sandbox.admin_url

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.url + path, json=body, timeout=10)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def faults(self, spec: str | None) -> None:
        if spec is None:
            self("DELETE", "/faults")
        else:
            self("PUT", "/faults", {"spec": spec})


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig()


@pytest.fixture
def sandbox(sandbox_config: SandboxConfig) -> Iterator[RunningSandbox]:
    with running_sandbox(sandbox_config) as running:
        Admin(running)("POST", "/accountingPeriod/year", {"year": 2026})
        yield running


@pytest.fixture
def admin(sandbox: RunningSandbox) -> Admin:
    return Admin(sandbox)


@pytest.fixture
def erp(sandbox: RunningSandbox) -> NetSuiteErp:
    return NetSuiteErp(connector_config(sandbox))


def suiteql(sandbox: RunningSandbox, query: str) -> list[dict[str, Any]]:
    """Ask the sandbox what it holds, through an independent client (requests-oauthlib)."""
    cfg = sandbox.config
    auth = OAuth1(
        client_key=cfg.consumer_key,
        client_secret=cfg.consumer_secret,
        resource_owner_key=cfg.token_id,
        resource_owner_secret=cfg.token_secret,
        signature_method="HMAC-SHA256",
        realm=cfg.account_id,
    )
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = requests.post(
            sandbox.rest_url + "/query/v1/suiteql",
            json={"q": query},
            params={"limit": 1000, "offset": offset},
            headers={"Prefer": "transient"},
            auth=auth,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        rows.extend(page["items"])
        if not page["hasMore"]:
            return rows
        offset += len(page["items"])
