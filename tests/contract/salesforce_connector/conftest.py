"""Fixtures: one sandbox org over real HTTP for the folder, reset per test, and clients for it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from revbridge.salesforce.client import JwtBearerAuth, PasswordAuth, SalesforceClient
from revbridge.salesforce.sandbox import RunningSandbox, SandboxClock, SandboxConfig, run_in_thread
from revbridge.salesforce.sandbox.tls import generate_jwt_keypair
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger

API = "/services/data/v62.0"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class Org:
    """The running sandbox, its configuration, the JWT key file and a plain admin client."""

    running: RunningSandbox
    config: SandboxConfig
    key_path: Path
    http: httpx.Client

    @property
    def base_url(self) -> str:
        return self.running.base_url

    def jwt_auth(self, **changes: Any) -> JwtBearerAuth:
        values: dict[str, Any] = {
            "login_url": self.base_url,
            "client_id": self.config.client_id,
            "username": self.config.username,
            "private_key_path": self.key_path,
        }
        values.update(changes)
        return JwtBearerAuth(**values)

    def password_auth(self) -> PasswordAuth:
        return PasswordAuth(
            login_url=self.base_url,
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            username=self.config.username,
            password=self.config.password,
        )

    def client(self) -> SalesforceClient:
        return SalesforceClient(self.jwt_auth())

    def create(self, sobject: str, body: dict[str, Any]) -> str:
        response = self.http.post(f"{API}/sobjects/{sobject}", json=body)
        assert response.status_code == 201, response.text
        record_id: str = response.json()["id"]
        return record_id

    def update(self, sobject: str, record_id: str, body: dict[str, Any]) -> None:
        response = self.http.patch(f"{API}/sobjects/{sobject}/{record_id}", json=body)
        assert response.status_code == 204, response.text

    def records(self, soql: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{API}/query", params={"q": soql})
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["records"]
        return records


@pytest.fixture(scope="session")
def _server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningSandbox, SandboxConfig, Path]]:
    key_path, cert_pem = generate_jwt_keypair(tmp_path_factory.mktemp("sfjwt"))
    config = SandboxConfig(
        jwt_certificate_pem=cert_pem,
        clock=SandboxClock(),
        event_poll_interval=timedelta(milliseconds=20),
    )
    with run_in_thread(config) as running:
        yield running, config, key_path


@pytest.fixture
def org(_server: tuple[RunningSandbox, SandboxConfig, Path]) -> Iterator[Org]:
    """An empty org, with an admin client logged in by the password flow."""
    running, config, key_path = _server
    running.sandbox.reset()
    with admin_http(running.base_url, config) as http:
        yield Org(running, config, key_path, http)


@contextmanager
def admin_http(base_url: str, config: SandboxConfig) -> Iterator[httpx.Client]:
    """A plain HTTP client for the org at ``base_url``, logged in by the password flow."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        token = http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "username": config.username,
                "password": config.password,
            },
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


@pytest.fixture
def sf_ledger(sqlite_url: str) -> Iterator[Ledger]:
    """A real, migrated SQLite ledger (the connector's tests need no PostgreSQL)."""
    engine = create_store_engine(sqlite_url)
    yield Ledger(engine)
    engine.dispose()
