"""A worker's lease covers the longest call its targets can make (decision 0021)."""

from __future__ import annotations

from datetime import timedelta

from revbridge.engine.ports import Capabilities
from revbridge.engine.worker import Target, WorkerSettings
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.config import NetSuiteConfig
from revbridge.services.targets import covering_calls
from revbridge.testing import FakeErp, FakeSalesforce
from revbridge.tryton.adapter import TrytonErp


def _erp(timeout_s: float | None) -> Target:
    caps = Capabilities(name="erp", request_timeout_s=timeout_s)
    return Target("erp", FakeErp(capabilities=caps))


def test_a_lease_shorter_than_two_calls_is_raised_to_cover_one() -> None:
    """A call starts with at least half its lease left and must end before it does."""
    settings = WorkerSettings(lease=timedelta(seconds=60))
    targets = [_erp(45), Target("salesforce", FakeSalesforce())]
    assert covering_calls(settings, targets).lease == timedelta(seconds=90)


def test_a_lease_long_enough_or_no_declared_timeout_is_kept() -> None:
    settings = WorkerSettings(lease=timedelta(seconds=60))
    assert covering_calls(settings, [_erp(30)]) is settings
    assert covering_calls(settings, [_erp(None)]) is settings


def test_the_real_adapters_declare_their_request_timeout() -> None:
    netsuite = NetSuiteErp(
        NetSuiteConfig(
            account_id="1234567",
            consumer_key="k",
            consumer_secret="s",
            token_id="t",
            token_secret="ts",
            timeout=timedelta(seconds=75),
        )
    )
    assert netsuite.capabilities.request_timeout_s == 75
    tryton = TrytonErp.connect("http://127.0.0.1:1", "db", "admin", "x")
    assert tryton.capabilities.request_timeout_s == 60
