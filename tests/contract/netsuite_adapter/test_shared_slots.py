"""Several hub processes share one account limit through PostgreSQL advisory-lock slots."""

from __future__ import annotations

import asyncio

import pytest

from revbridge.engine.ports import RecordKind
from revbridge.errors import RateLimited
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.sandbox import RunningSandbox
from revbridge.store.db import create_store_engine
from revbridge.store.slots import PgAdvisorySlots
from tests.contract.netsuite_adapter.conftest import Admin, connector_config, run

pytestmark = pytest.mark.pg


def _hammer(erps: list[NetSuiteErp]) -> list[object]:
    async def go() -> list[object]:
        calls = [erp.find(RecordKind.CUSTOMER, f"001{i}") for erp in erps for i in range(6)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        for erp in erps:
            await erp.close()
        return list(results)

    return run(go())


def test_two_processes_on_postgresql_stay_under_the_account_limit(
    sandbox: RunningSandbox, admin: Admin, pg_url: str
) -> None:
    admin("PUT", "/concurrencyLimit", {"limit": 2})
    admin.faults("latency=60ms")
    engines = [create_store_engine(pg_url), create_store_engine(pg_url)]  # one per "process"
    try:
        erps = [
            NetSuiteErp(connector_config(sandbox, concurrency_limit=2, read_retries=0), engine=e)
            for e in engines
        ]
        assert all(isinstance(erp.http.shared, PgAdvisorySlots) for erp in erps)
        results = _hammer(erps)
    finally:
        for e in engines:
            e.dispose()
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert admin("GET", "/status")["throttled"] == 0


def test_without_shared_slots_two_processes_overrun_the_limit(
    sandbox: RunningSandbox, admin: Admin
) -> None:
    """The control: each process alone keeps its own limit, together they break the account's."""
    admin("PUT", "/concurrencyLimit", {"limit": 2})
    admin.faults("latency=60ms")
    erps = [
        NetSuiteErp(connector_config(sandbox, concurrency_limit=2, read_retries=0))
        for _ in range(2)
    ]
    results = _hammer(erps)
    assert any(isinstance(r, RateLimited) for r in results)
