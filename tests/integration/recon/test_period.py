"""A period's reconciliation from inside an event loop, on a real ledger (SQLite and
PostgreSQL): both sides read through the given refresher, findings with the hub's state."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from revbridge.config import parse_config
from revbridge.engine.ports import ArDocument
from revbridge.recon.hub_state import NEVER_CAPTURED
from revbridge.recon.match import FindingKind
from revbridge.recon.period import reconcile_period, reconcile_period_async
from revbridge.recon.readback import ReadbackStore
from revbridge.store.ledger import Ledger
from tests.unit.recon.sides import ListReader

NOW = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def _doc(ref: str, amount: str, day: int, status: str = "Unpaid") -> ArDocument:
    return ArDocument(
        key=ref,
        ref=ref,
        doc_type="invoice",
        customer_ref="001A",
        currency="EUR",
        amount=Decimal(amount),
        doc_date=date(2026, 10, day),
        status=status,
        balance=Decimal(amount),
    )


def test_a_night_in_an_event_loop_reads_both_sides_and_names_each_break(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The scheduler awaits the run: the day's invoices are read through the refresher, the
    one only in the ERP and the one with another amount are found; the next day's is not in
    this night's run."""
    sf = ListReader([_doc("a0X1", "10.00", 14), _doc("a0X2", "20.00", 14), _doc("a0X4", "5", 15)])
    erp = ListReader(
        [
            _doc("a0X1", "10.00", 14, "open"),
            _doc("a0X2", "20.01", 14, "open"),
            _doc("a0X3", "7", 14),
        ]
    )

    async def refresh(store: ReadbackStore, at: datetime) -> None:
        await store.refresh("sf", sf, now=at)
        await store.refresh("erp", erp, now=at)

    async def night() -> object:
        return await reconcile_period_async(
            parse_config({}, None, tmp_path),
            ledger.engine,
            scope="nightly",
            start=date(2026, 10, 14),
            end=date(2026, 10, 15),
            refresher=refresh,
            now=NOW,
        )

    run = asyncio.run(night())
    ar = run.of("ar")  # type: ignore[attr-defined]
    assert {(f.finding.kind, f.finding.ref) for f in ar.findings} == {
        (FindingKind.AMOUNT, "a0X2"),
        (FindingKind.MISSING_IN_SOURCE, "a0X3"),
    }
    assert {f.hub.state for f in ar.findings} == {NEVER_CAPTURED}
    assert ar.result.matched_count == 1
    assert run.read_at == NOW  # type: ignore[attr-defined]


def test_an_empty_or_unknown_period_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    """A period that ends where it starts, or a scope that is neither nightly nor monthly, is
    a mistake in the call, not an empty report."""
    settings = parse_config({}, None, tmp_path)
    day = date(2026, 10, 14)
    with pytest.raises(ValueError, match="empty period"):
        reconcile_period(settings, ledger.engine, scope="nightly", start=day, end=day)
    with pytest.raises(ValueError, match="scope"):
        reconcile_period(settings, ledger.engine, scope="weekly", start=day, end=date(2026, 10, 21))
