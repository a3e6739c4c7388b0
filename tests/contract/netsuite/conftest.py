"""Fixtures: a sandbox on a free port and a TBA-signing client built from the standard
client side (``requests_oauthlib.OAuth1``, HMAC-SHA256, realm = account id)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests_oauthlib import OAuth1

from revbridge.netsuite.sandbox import RunningSandbox, SandboxConfig, running_sandbox


class NetSuiteClient:
    """What an integration does: sign each request with TBA and speak JSON."""

    def __init__(self, sandbox: RunningSandbox, **overrides: str) -> None:
        cfg = sandbox.config
        self.sandbox = sandbox
        self.rest = sandbox.rest_url
        self.auth = OAuth1(
            client_key=overrides.get("consumer_key", cfg.consumer_key),
            client_secret=overrides.get("consumer_secret", cfg.consumer_secret),
            resource_owner_key=overrides.get("token_id", cfg.token_id),
            resource_owner_secret=overrides.get("token_secret", cfg.token_secret),
            signature_method="HMAC-SHA256",
            realm=overrides.get("realm", cfg.account_id),
        )
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.rest + path, auth=self.auth, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=body, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create(self, record_type: str, body: dict[str, Any]) -> str:
        """Create a record and return its internal id, read from the Location header."""
        response = self.post(f"/record/v1/{record_type}", body)
        assert response.status_code == 204, response.text
        return response.headers["Location"].rsplit("/", 1)[1]

    def suiteql(self, q: str, **params: Any) -> dict[str, Any]:
        response = self.post(
            "/query/v1/suiteql", {"q": q}, params=params, headers={"Prefer": "transient"}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def admin(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.sandbox.admin_url + path, json=body, timeout=10)


def error_codes(response: requests.Response) -> list[str]:
    return [d["o:errorCode"] for d in response.json()["o:errorDetails"]]


def wait_for_job(client: NetSuiteClient, job_id: str, timeout_s: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/async/v1/job/{job_id}").json()
        if job["completed"] or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig()


@pytest.fixture
def sandbox(sandbox_config: SandboxConfig) -> Iterator[RunningSandbox]:
    with running_sandbox(sandbox_config) as running:
        yield running


@pytest.fixture
def client(sandbox: RunningSandbox) -> NetSuiteClient:
    return NetSuiteClient(sandbox)


@pytest.fixture
def customer_id(client: NetSuiteClient) -> str:
    return client.create(
        "customer", {"companyName": "Acme Ltd", "externalId": "SF-001", "terms": {"id": "3"}}
    )


def invoice_body(customer: str, amount: float = 200.0, **extra: Any) -> dict[str, Any]:
    return {
        "entity": {"id": customer},
        "item": {"items": [{"item": {"id": "1"}, "quantity": 1, "rate": amount}]},
        **extra,
    }
