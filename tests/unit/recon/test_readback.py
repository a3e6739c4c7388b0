"""The read-back store reads each side incrementally: only what changed, page by page, and
never loses its place."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from revbridge.engine.ports import ArDocument, ReadbackKind, ReadPage
from revbridge.errors import StoreError, TransientError
from revbridge.recon.readback import ReadbackStore
from tests.unit.recon.sides import NOW, ListReader


def _invoice(n: int, amount: str = "100.00") -> ArDocument:
    return ArDocument(
        key=f"k{n}",
        ref=f"a0X{n:05d}",
        doc_type="invoice",
        customer_ref="001A",
        currency="USD",
        amount=Decimal(amount),
        doc_date=date(2026, 10, 1),
        status="Unpaid",
        balance=Decimal(amount),
    )


def _rows(store: ReadbackStore) -> list[tuple[object, ...]]:
    return store.con.execute("SELECT key, amount FROM sf_ar ORDER BY key").fetchall()


def test_a_second_refresh_reads_only_what_changed(tmp_path: Path) -> None:
    """After a full read, a refresh reads the one changed and one new document, and the
    changed one replaces its old row instead of doubling it."""
    reader = ListReader([_invoice(n) for n in range(10)])
    path = tmp_path / "recon.duckdb"
    with ReadbackStore(path) as store:
        first = asyncio.run(store.refresh("sf", reader, now=NOW, page_size=4))
        assert first.documents["ar"] == 10
        assert first.pages == 3 + 1 + 1  # AR in three pages; payments and journals empty
    reader.add(dataclasses.replace(_invoice(3), amount=Decimal("120.00")), _invoice(10))
    with ReadbackStore(path) as store:  # the marks survive the process
        second = asyncio.run(store.refresh("sf", reader, now=NOW, page_size=4))
        assert second.documents["ar"] == 2
        rows = dict(_rows(store))
        assert len(rows) == 11
        assert rows["k3"] == Decimal("120.0000")
        assert store.last_read("sf") == NOW
        assert store.last_read("erp") is None


def test_a_failed_page_keeps_what_was_read_before_it() -> None:
    """A side failing mid-refresh keeps the pages already stored and their mark: the next
    refresh resumes after them."""

    class Flaky(ListReader):
        fail_at = 2

        async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
            if self.reads + 1 == self.fail_at:
                self.reads += 1
                raise TransientError("503 Service Unavailable")
            return await super().read(kind, after, limit)

    reader = Flaky([_invoice(n) for n in range(6)])
    with ReadbackStore() as store:
        with pytest.raises(TransientError):
            asyncio.run(store.refresh("sf", reader, now=NOW, page_size=3))
        assert len(_rows(store)) == 3
        assert store.mark("sf", ReadbackKind.AR) == "3"
        resumed = asyncio.run(store.refresh("sf", reader, now=NOW, page_size=3))
        assert resumed.documents["ar"] == 3
        assert len(_rows(store)) == 6


def test_a_naive_timestamp_is_refused() -> None:
    """The read time is an audit fact: a timestamp without a zone is refused."""
    with ReadbackStore() as store, pytest.raises(ValueError, match="timezone"):
        asyncio.run(store.refresh("sf", ListReader(), now=datetime(2026, 11, 2)))


def test_amounts_keep_every_digit() -> None:
    """An amount with four decimals and twelve digits lands in the store exactly."""
    with ReadbackStore() as store:
        asyncio.run(store.refresh("sf", ListReader([_invoice(1, "12345678901234.5678")]), now=NOW))
        assert _rows(store) == [("k1", Decimal("12345678901234.5678"))]


def test_a_store_in_use_by_another_run_is_a_store_error(tmp_path: Path) -> None:
    """Two runs at once on one store: the second is told the store is busy, in plain words."""
    path = tmp_path / "recon.duckdb"
    ReadbackStore(path).close()
    holder = subprocess.Popen(  # another process holding the file open
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('', flush=True);"
            " time.sleep(30)",
            str(path),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        with pytest.raises(StoreError, match="in use by another run"):
            ReadbackStore(path)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
