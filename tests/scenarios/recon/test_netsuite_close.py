"""Month-end close against the NetSuite sandbox: the hub delivers October, the controller
reconciles it clean; an accountant then edits NetSuite, and the next run names each change.

NetSuite is read back incrementally over SuiteQL (``lastmodifieddate`` keyset pages); the
second run reads only the records the accountant touched.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from revbridge.config import parse_config
from revbridge.engine.ports import RecordKind
from revbridge.generate import generate_events
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.sandbox import RunningSandbox
from revbridge.recon.match import FindingKind
from revbridge.recon.period import reconcile_period
from revbridge.recon.readback import ReadbackStore, RefreshReport
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeSalesforce
from tests.contract.netsuite_adapter.conftest import GL_ACCOUNTS, Admin, connector_config, suiteql
from tests.scenarios.recon.story import NOW, deliver, findings

OCTOBER = {"start": date(2026, 10, 1), "end": date(2026, 11, 1)}


def test_netsuite_drift_after_close_is_named_exactly(
    sandbox: RunningSandbox, admin: Admin, ledger: Ledger, tmp_path: Path
) -> None:
    """A clean month reconciles with no finding; a revenue journal edited by hand in NetSuite
    comes back as exactly its findings, and only that journal is read again."""
    envs = [
        e
        for e in generate_events(90, seed=21, end=datetime(2026, 11, 1, tzinfo=UTC))
        if e["type"] != "erp.payment.received"  # cash from the ERP is the fake story's
    ]
    sf_state = tmp_path / "sf.json"
    erp = NetSuiteErp(connector_config(sandbox))
    deliver(ledger, erp, FakeSalesforce(state_file=sf_state), envs)
    reports: list[RefreshReport] = []

    async def refresh(store: ReadbackStore, at: datetime) -> None:
        erp = NetSuiteErp(connector_config(sandbox))
        try:
            reports.append(await store.refresh("erp", erp, now=at, page_size=25))
        finally:
            await erp.close()
        reports.append(
            await store.refresh("sf", FakeSalesforce(state_file=sf_state), now=at, page_size=25)
        )

    settings = parse_config({}, None, tmp_path)
    first = reconcile_period(
        settings, ledger.engine, scope="monthly", refresher=refresh, now=NOW, **OCTOBER
    )
    assert findings(first) == set()
    invoices = [e for e in envs if e["type"] == "invoice.posted"]
    assert first.of("ar").result.matched_count == len(invoices) + sum(
        1 for e in envs if e["type"] == "credit_memo.issued"
    )
    assert first.of("revenue").result.matched_count == sum(
        1 for e in envs if e["type"] == "revenue.recognized"
    )

    # The accountant doubles a revenue journal's amounts and keys an invoice by hand.
    changed = _edit_netsuite(admin, sandbox, envs)
    (customer_id,) = suiteql(sandbox, "SELECT id FROM customer ORDER BY id FETCH FIRST 1 ROWS ONLY")

    async def key_by_hand() -> None:
        erp = NetSuiteErp(connector_config(sandbox))
        await erp.http.read(
            "POST",
            "/record/v1/invoice",
            body={
                "entity": {"id": str(customer_id["id"])},
                "tranDate": "2026-10-15",
                "currency": {"id": "1"},
                "subsidiary": {"id": "1"},
                "item": {"items": [{"item": {"id": "1"}, "quantity": 1, "rate": 75}]},
            },
        )
        await erp.close()

    asyncio.run(key_by_hand())
    (manual,) = suiteql(
        sandbox, "SELECT id FROM transaction WHERE type = 'CustInvc' AND externalid IS NULL"
    )
    reports.clear()
    second = reconcile_period(
        settings, ledger.engine, scope="monthly", refresher=refresh, now=NOW, **OCTOBER
    )
    erp_read = next(r for r in reports if r.side == "erp")
    assert erp_read.documents == {"ar": 1, "payments": 0, "journals": 1}
    by_hand = f"erp:{manual['id']}"
    assert findings(second) == {*changed, ("ar", FindingKind.MISSING_IN_SOURCE, by_hand)}
    (finding,) = second.of("ar").findings
    assert finding.hub.state == "never captured"


def _edit_netsuite(
    admin: Admin, sandbox: RunningSandbox, envs: list[dict[str, Any]]
) -> set[tuple[str, FindingKind, str]]:
    """Change one journal's amounts through the REST API, as an accountant would."""
    entry = next(e for e in envs if e["type"] == "revenue.recognized")
    ref = entry["source_id"]
    erp = NetSuiteErp(connector_config(sandbox))

    async def edit() -> None:
        found = await erp.find(RecordKind.JOURNAL, ref)
        assert found is not None
        doubled = [
            {
                "account": {"id": _account_id(line["account"])},
                **(
                    {"debit": Decimal(line["debit"]) * 2}
                    if Decimal(line["debit"])
                    else {"credit": Decimal(line["credit"]) * 2}
                ),
            }
            for line in entry["data"]["lines"]
        ]
        await erp.http.read(
            "PATCH",
            f"/record/v1/journalEntry/{found.erp_id}",
            body={"line": {"items": doubled}},
            params={"replace": "line"},
        )
        await erp.close()

    asyncio.run(edit())
    currency = entry["data"]["lines"][0]["currency"]
    return {
        # The replaced lines carry no customer: a journal without one takes no position.
        ("revenue", FindingKind.AMOUNT, ref),
        ("revenue", FindingKind.CONTROL_TOTAL, f"2026-10|2400 Deferred Revenue|{currency}"),
        ("revenue", FindingKind.CONTROL_TOTAL, f"2026-10|4000 Subscription Revenue|{currency}"),
    }


def _account_id(account: str) -> str:
    return GL_ACCOUNTS[account.split(" ", 1)[0]]
