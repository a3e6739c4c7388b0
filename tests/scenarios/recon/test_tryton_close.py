"""A day's reconciliation against the real Tryton: what the hub delivered reconciles clean;
an invoice posted in Salesforce and not yet delivered is a timing difference until it lands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from revbridge.codec import decode_payload
from revbridge.config import parse_config
from revbridge.core.events import EventType
from revbridge.recon.match import FindingKind
from revbridge.recon.period import reconcile_period
from revbridge.recon.readback import ReadbackStore
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.tryton.adapter import TrytonErp
from revbridge.tryton.instance import InstanceInfo
from tests.scenarios.recon.story import SF_TYPES, findings
from tests.scenarios.tryton.conftest import (
    TODAY,
    Hub,
    Ids,
    credit_memo,
    customer,
    invoice,
    payment,
    revenue,
    run,
)


@pytest.fixture
def sqlite_ledger(sqlite_url: str) -> Iterator[Ledger]:
    engine = create_store_engine(sqlite_url)
    yield Ledger(engine)
    engine.dispose()


def test_a_tryton_day_reconciles_and_a_late_invoice_clears_itself(
    tryton: InstanceInfo, sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    """Invoices, a card payment, a credit memo and a revenue entry match Tryton's books;
    a late invoice is reported missing while pending, and not once delivered."""
    hub = Hub(sqlite_ledger, tryton)
    account = Ids.make("001")
    first, second = Ids.make("a0X"), Ids.make("a0X")
    envelopes = [
        customer(account, "Reconciled Corp"),
        invoice(first, account, "INV-R1", [("Platform", 1, "1200.00")]),
        invoice(second, account, "INV-R2", [("Seats", 4, "250.00")]),
        payment(Ids.make("a0P"), account, "1200.00", [(first, "1200.00")]),
        credit_memo(Ids.make("a0C"), account, "CM-R1", "100.00", second),
        revenue(Ids.make("a0R"), account, first, TODAY, "100.00"),
    ]

    def post(*batch: dict[str, object]) -> None:
        hub.ingest(*batch)
        for e in batch:
            if e["type"] in SF_TYPES:
                kind = EventType(str(e["type"]))
                hub.salesforce.record(decode_payload(kind, json.dumps(e["data"])))  # type: ignore[arg-type]

    post(*envelopes)
    run(hub.deliver())
    assert hub.dead_letters() == {}

    settings = parse_config({}, None, tmp_path)
    day = {"start": TODAY, "end": TODAY + timedelta(days=1)}

    async def refresh(store: ReadbackStore, at: datetime) -> None:
        erp = TrytonErp.connect(tryton.url, tryton.database, tryton.api_user, tryton.api_password)
        try:
            await store.refresh("erp", erp, now=at, page_size=3)
        finally:
            await erp.close()
        await store.refresh("sf", hub.salesforce, now=at, page_size=3)

    clean = reconcile_period(
        settings, sqlite_ledger.engine, scope="nightly", refresher=refresh, **day
    )
    assert findings(clean) == set()
    assert [r.result.matched_count for r in clean.reconciliations] == [3, 1, 1]

    late = Ids.make("a0X")
    post(invoice(late, account, "INV-R3", [("Support", 1, "90.00")]))
    pending = reconcile_period(
        settings, sqlite_ledger.engine, scope="nightly", refresher=refresh, **day
    )
    assert findings(pending) == {("ar", FindingKind.MISSING_IN_ERP, late)}
    (missing,) = pending.of("ar").findings
    assert missing.timing_difference

    run(hub.deliver())
    landed = reconcile_period(
        settings, sqlite_ledger.engine, scope="nightly", refresher=refresh, **day
    )
    assert findings(landed) == set()
    run(hub.close())
