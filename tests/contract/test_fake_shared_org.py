"""Several processes share one fake org through its state file (``salesforce.shared``), as
they share the fake ERP: each sees the others' changes, and none overwrites them when it
stops (each used to keep its own copy, and the last to stop wrote it over the others')."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from revbridge.config import Settings, parse_config
from revbridge.core.events import FROM_ERP, ErpPaymentReceived
from revbridge.engine.ports import ReadbackKind, RecordKind
from revbridge.generate import generate_events
from revbridge.services.fake_org import post_to_fake_org
from revbridge.services.targets import fake_salesforce
from revbridge.testing import FakeErp, FakeSalesforce
from revbridge.testing.fakes import FakeSetupError

PER_PROCESS = 40


def _settings(base: Path, *, shared: bool = True) -> Settings:
    return parse_config(
        {"salesforce": {"kind": "fake", "state_file": "sf.json", "shared": shared}},
        base / "revbridge.toml",
        base,
    )


def _payment(ref: str) -> ErpPaymentReceived:
    return ErpPaymentReceived(
        erp_payment_id=ref,
        erp_customer_number="C1",
        customer_id="cust-1",
        currency="EUR",
        amount=Decimal("10.00"),
        received_on=date(2026, 3, 1),
        method="wire",
        applications=(),
    )


def _worker(base: str, n: int) -> None:
    """One worker process: its own fake org from the configuration, a write-back per
    delivery, closed when it stops."""

    async def run() -> None:
        org = fake_salesforce(_settings(Path(base)))
        for i in range(PER_PROCESS):
            await org.apply_erp_payment(f"w{n}-{i}", _payment(f"w{n}-{i}"))
        await org.close()

    asyncio.run(run())


def test_workers_in_several_processes_keep_every_write_back(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=spawn) as pool:
        list(pool.map(_worker, [str(tmp_path)] * 3, range(3)))
    org = fake_salesforce(_settings(tmp_path))
    assert len(org.writes) == 3 * PER_PROCESS
    payments = [k for k, _ in org.org if k is ReadbackKind.PAYMENTS]
    assert len(payments) == 3 * PER_PROCESS


def test_a_change_posted_beside_a_running_worker_is_kept(tmp_path: Path) -> None:
    """``generate --into-salesforce`` while a worker holds the org open: the worker's next
    write and its stop keep the posted changes, and the worker sees them."""
    settings = _settings(tmp_path)
    worker = fake_salesforce(settings)
    envelopes = [e for e in generate_events(20, seed=5) if e["type"] not in FROM_ERP]
    posted = post_to_fake_org(settings, envelopes)
    asyncio.run(worker.apply_erp_payment("p-1", _payment("p-1")))
    page, _ = asyncio.run(worker.changes(None))
    assert len(page) == posted.posted
    asyncio.run(worker.close())
    again = fake_salesforce(settings)
    assert len(asyncio.run(again.changes(None))[0]) == posted.posted
    assert "p-1" in again.writes


def test_shared_is_a_setting_off_by_default(tmp_path: Path) -> None:
    assert not fake_salesforce(_settings(tmp_path, shared=False)).shared
    assert fake_salesforce(_settings(tmp_path)).shared
    assert not parse_config({}, None, tmp_path).raw.salesforce.shared


def test_a_shared_org_is_not_saved_over_the_others(tmp_path: Path) -> None:
    org = FakeSalesforce(state_file=tmp_path / "sf.json", shared=True)
    with pytest.raises(FakeSetupError, match="changing"):
        org.save()


def test_a_go_live_link_in_a_shared_erp_is_seen_by_every_process(tmp_path: Path) -> None:
    """``adopt_customer`` changes the state file's ERP, not only this process's copy."""
    state = tmp_path / "erp.json"
    one = FakeErp(state_file=state, shared=True)

    async def link() -> str:
        async with one._txn():
            erp_id = one.add_customer("C100", "Dunder Mifflin")
        await one.adopt_customer("001ACCOUNT", erp_id)
        return erp_id

    erp_id = asyncio.run(link())
    found = asyncio.run(
        FakeErp(state_file=state, shared=True).find(RecordKind.CUSTOMER, "001ACCOUNT")
    )
    assert found is not None
    assert found.erp_id == erp_id


def test_the_erp_helpers_act_in_the_shared_erp_not_in_a_copy(tmp_path: Path) -> None:
    """What a test or the demo does "in the ERP" (a customer keyed, edited, cash entered)
    through one process's shared fake is seen by another, and survives its writes."""
    state = tmp_path / "erp.json"
    one = FakeErp(state_file=state, shared=True)
    two = FakeErp(state_file=state, shared=True)
    erp_id = one.add_customer("C100", "Dunder Mifflin")
    found = asyncio.run(two.find(RecordKind.CUSTOMER, "erp-native:C100"))
    assert found is not None
    assert found.erp_id == erp_id
    two.enter_payment(_payment("WIRE-1"))  # written by the other, on the file's content
    one.edit_customer(erp_id, name="Dunder Mifflin Paper", credit_hold=True)
    asyncio.run(two.adopt_customer("001ACCOUNT", erp_id))  # the other writes after it
    after = FakeErp(state_file=state, shared=True)
    assert [(c["external_ref"], c["name"]) for c in after.customers()] == [
        ("001ACCOUNT", "Dunder Mifflin Paper")
    ]
    assert after.credit_hold == {erp_id}
    assert [p.external_ref for p in after.records("payment")] == ["WIRE-1"]
