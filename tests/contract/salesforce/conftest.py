"""Fixtures: a sandbox org served over real HTTP on a background thread, and its credentials."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from revbridge.salesforce.sandbox import RunningSandbox, SandboxClock, SandboxConfig, run_in_thread
from revbridge.salesforce.sandbox.tls import generate_jwt_keypair

API = "/services/data/v62.0"


@dataclass(frozen=True)
class JwtKeys:
    private_key_pem: bytes
    certificate_pem: bytes


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> JwtKeys:
    key_path, cert_pem = generate_jwt_keypair(tmp_path_factory.mktemp("jwt"))
    return JwtKeys(private_key_pem=key_path.read_bytes(), certificate_pem=cert_pem)


@pytest.fixture
def base_config(jwt_keys: JwtKeys) -> SandboxConfig:
    return SandboxConfig(
        jwt_certificate_pem=jwt_keys.certificate_pem,
        clock=SandboxClock(),
        outbound_retry_base=timedelta(milliseconds=50),
        event_poll_interval=timedelta(milliseconds=20),
        bulk_poll_interval=timedelta(milliseconds=10),
        outbound_poll_interval=timedelta(milliseconds=20),
    )


class Org:
    """A running sandbox plus an authenticated httpx client."""

    def __init__(
        self, running: RunningSandbox, config: SandboxConfig, client: httpx.Client
    ) -> None:
        self.running = running
        self.config = config
        self.client = client
        self.base_url = running.base_url

    def password_token(self) -> str:
        response = self.client.post(
            "/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
                "username": self.config.username,
                "password": self.config.password,
            },
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def login(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {self.password_token()}"

    def create(self, sobject: str, body: dict[str, Any]) -> str:
        response = self.client.post(f"{API}/sobjects/{sobject}", json=body)
        assert response.status_code == 201, response.text
        record_id: str = response.json()["id"]
        return record_id

    def query(self, soql: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(f"{API}/query", params={"q": soql}, **kwargs)

    def records(self, soql: str) -> list[dict[str, Any]]:
        response = self.query(soql)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["done"] is True
        records: list[dict[str, Any]] = body["records"]
        return records

    def sign_assertion(self, keys: JwtKeys, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "iss": self.config.client_id,
            "sub": self.config.username,
            "aud": "https://login.salesforce.com",
            "exp": int(self.config.clock.now().timestamp()) + 120,
        }
        claims.update(overrides)
        return jwt.encode(claims, keys.private_key_pem, algorithm="RS256")


OrgFactory = Callable[..., AbstractContextManager[Org]]


@pytest.fixture
def make_org(base_config: SandboxConfig) -> OrgFactory:
    @contextmanager
    def factory(tls: bool = False, **changes: Any) -> Iterator[Org]:
        config = replace(base_config, **changes)
        with run_in_thread(config, tls=tls) as running:
            verify: Any = (
                ssl.create_default_context(cafile=str(running.ca_cert)) if running.ca_cert else True
            )
            with httpx.Client(base_url=running.base_url, verify=verify, timeout=10) as client:
                org = Org(running, config, client)
                org.login()
                yield org

    return factory


def _shared(jwt_keys: JwtKeys, tls: bool) -> Iterator[tuple[RunningSandbox, SandboxConfig]]:
    config = SandboxConfig(
        jwt_certificate_pem=jwt_keys.certificate_pem,
        clock=SandboxClock(),
        event_poll_interval=timedelta(milliseconds=20),
        bulk_poll_interval=timedelta(milliseconds=10),
    )
    with run_in_thread(config, tls=tls) as running:
        yield running, config


@pytest.fixture(scope="session")
def shared_plain(jwt_keys: JwtKeys) -> Iterator[tuple[RunningSandbox, SandboxConfig]]:
    """One plain-HTTP server for the whole session; each test resets it (a restart costs more)."""
    yield from _shared(jwt_keys, tls=False)


@pytest.fixture(scope="session")
def shared_tls(jwt_keys: JwtKeys) -> Iterator[tuple[RunningSandbox, SandboxConfig]]:
    yield from _shared(jwt_keys, tls=True)


@contextmanager
def _fresh(running: RunningSandbox, config: SandboxConfig) -> Iterator[Org]:
    running.sandbox.reset()
    verify: Any = (
        ssl.create_default_context(cafile=str(running.ca_cert)) if running.ca_cert else True
    )
    with httpx.Client(base_url=running.base_url, verify=verify, timeout=10) as client:
        org = Org(running, config, client)
        org.login()
        yield org


@pytest.fixture
def org(shared_plain: tuple[RunningSandbox, SandboxConfig]) -> Iterator[Org]:
    """An empty org over plain HTTP with a logged-in client."""
    with _fresh(*shared_plain) as fresh:
        yield fresh


@pytest.fixture
def tls_org(shared_tls: tuple[RunningSandbox, SandboxConfig]) -> Iterator[Org]:
    """An empty org over HTTPS with a logged-in client."""
    with _fresh(*shared_tls) as fresh:
        yield fresh


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


__all__ = ["API", "JwtKeys", "Org", "OrgFactory", "wait_for"]
