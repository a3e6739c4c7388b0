"""Account concurrency governance: more requests at once than the limit get 429."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from revbridge.netsuite.sandbox import RunningSandbox, SandboxConfig, parse_fault_spec
from tests.contract.netsuite.conftest import NetSuiteClient, error_codes


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(concurrency_limit=3, faults=parse_fault_spec("latency=400ms"))


def test_requests_over_the_concurrency_limit_get_429(sandbox: RunningSandbox) -> None:
    clients = [NetSuiteClient(sandbox) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []
    bodies: list[list[str]] = []
    lock = threading.Lock()

    def call(c: NetSuiteClient) -> None:
        barrier.wait()
        response = c.get("/record/v1/customer")
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 429:
                bodies.append(error_codes(response))

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(statuses)
    # All eight start together and each holds its slot for 400 ms: three fit, the rest are
    # refused (a very slow machine may let a late thread in after a slot frees).
    assert counts[200] + counts[429] == len(clients)
    assert counts[200] >= 3
    assert counts[429] >= 1
    assert all(codes == ["CONCURRENCY_LIMIT_EXCEEDED"] for codes in bodies)


def test_governance_limits_report_the_account_limit(client: NetSuiteClient) -> None:
    limits = client.get("/system/v1/governanceLimits").json()
    assert limits["accountConcurrencyLimit"] == 3
