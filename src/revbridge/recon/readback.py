"""The read-back store: what each side holds, read incrementally into a local DuckDB file.

A nightly reconciliation must not re-read the world. Each side (``sf``: Salesforce, ``erp``:
the ERP) is read through its ``ReadbackPort`` page by page, from the mark where the last
refresh stopped; every page is upserted by the side's record id (``key``) and its mark saved
**in the same DuckDB transaction**, so a crash mid-refresh re-reads at most one page and never
skips one. The watermarks live in this store (table ``readback_marks``), not in the ledger:
the data and its mark cannot disagree, and deleting the file simply starts a full re-read.

Tables (amounts ``DECIMAL(18,4)``, dates ``DATE``):

==================  ======================================================================
``sf_ar``           Salesforce invoices and credit memos
``erp_ar``          the ERP's AR records (invoices, credit memos)
``sf_payments``     Salesforce payments (captured there, or written back from the ERP)
``erp_payments``    the ERP's cash receipts
``*_payment_apps``  per payment: the invoices it was applied to, with the amount
``sf_revenue``      Salesforce revenue schedule entries, one row per journal line
``erp_gl``          the ERP's GL journals, one row per line
``readback_marks``  per side and kind: the mark, when it was read, documents read
``payment_aliases`` the ref a Salesforce payment written back from the ERP is known by
                    there (its receipt key), and the ERP payment id it stands for
==================  ======================================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import duckdb

from revbridge.engine.ports import (
    ArDocument,
    JournalDocument,
    PaymentDocument,
    ReadbackKind,
    ReadbackPort,
)
from revbridge.errors import StoreError

Side = Literal["sf", "erp"]
SIDES: tuple[Side, ...] = ("sf", "erp")
DEFAULT_PAGE_SIZE = 2_000

_AR_COLUMNS = (
    "key VARCHAR PRIMARY KEY, ref VARCHAR, doc_type VARCHAR, customer_ref VARCHAR, "
    "currency VARCHAR, amount DECIMAL(18,4), doc_date DATE, status VARCHAR, "
    "balance DECIMAL(18,4)"
)
_PAYMENT_COLUMNS = (
    "key VARCHAR PRIMARY KEY, ref VARCHAR, origin VARCHAR, customer_ref VARCHAR, "
    "currency VARCHAR, amount DECIMAL(18,4), doc_date DATE, status VARCHAR"
)
_APP_COLUMNS = "key VARCHAR, invoice_ref VARCHAR, amount DECIMAL(18,4)"
_LINE_COLUMNS = (
    "key VARCHAR, ref VARCHAR, doc_type VARCHAR, customer_ref VARCHAR, currency VARCHAR, "
    "period VARCHAR, doc_date DATE, line INTEGER, account VARCHAR, "
    "debit DECIMAL(18,4), credit DECIMAL(18,4)"
)


def table_name(side: Side, kind: ReadbackKind) -> str:
    """The store table of one side's documents of ``kind``."""
    if kind == ReadbackKind.AR:
        return f"{side}_ar"
    if kind == ReadbackKind.PAYMENTS:
        return f"{side}_payments"
    return "sf_revenue" if side == "sf" else "erp_gl"


def _schema() -> list[str]:
    ddl = [
        "CREATE TABLE IF NOT EXISTS readback_marks (side VARCHAR, kind VARCHAR, mark VARCHAR, "
        "read_at TIMESTAMPTZ, documents BIGINT, PRIMARY KEY (side, kind))",
        "CREATE TABLE IF NOT EXISTS payment_aliases (alias VARCHAR PRIMARY KEY, ref VARCHAR)",
    ]
    for side in SIDES:
        ddl.append(f"CREATE TABLE IF NOT EXISTS {side}_ar ({_AR_COLUMNS})")
        ddl.append(f"CREATE TABLE IF NOT EXISTS {side}_payments ({_PAYMENT_COLUMNS})")
        ddl.append(f"CREATE TABLE IF NOT EXISTS {side}_payment_apps ({_APP_COLUMNS})")
        ddl.append(
            f"CREATE TABLE IF NOT EXISTS {table_name(side, ReadbackKind.JOURNALS)} "
            f"({_LINE_COLUMNS})"
        )
    return ddl


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshReport:
    """What one refresh of one side read: documents per kind, and the marks it reached."""

    side: Side
    documents: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    marks: dict[str, str | None] = field(default_factory=dict)


class ReadbackStore:
    """The local copy of both sides; ``path=None`` keeps it in memory (tests, benchmarks)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path) if self.path is not None else ":memory:")
        except duckdb.IOException as exc:
            # DuckDB lets one process write a file: another run holds the store.
            raise StoreError(
                f"the reconciliation store {self.path} is in use by another run ({exc})"
            ) from exc
        for statement in _schema():
            self.con.execute(statement)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ReadbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ marks

    def mark(self, side: Side, kind: ReadbackKind) -> str | None:
        row = self.con.execute(
            "SELECT mark FROM readback_marks WHERE side = ? AND kind = ?", [side, kind.value]
        ).fetchone()
        return None if row is None else row[0]

    def last_read(self, side: Side) -> dt.datetime | None:
        """When ``side`` was last read (the oldest of its kinds), or None if never."""
        row = self.con.execute(
            "SELECT min(read_at), count(*) FROM readback_marks WHERE side = ?", [side]
        ).fetchone()
        if row is None or row[1] < len(ReadbackKind):
            return None
        value: dt.datetime = row[0]
        return value

    # ------------------------------------------------------------------ aliases

    def set_payment_aliases(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Record ``(alias, ref)`` pairs: a Salesforce payment whose ref is ``alias`` is the
        ERP payment ``ref`` (the write-back keys its payments by a hash of the event)."""
        if not pairs:
            return
        self.con.execute(
            "INSERT OR REPLACE INTO payment_aliases SELECT unnest($a), unnest($r)",
            {"a": [a for a, _ in pairs], "r": [r for _, r in pairs]},
        )

    # ------------------------------------------------------------------ refresh

    async def refresh(
        self,
        side: Side,
        reader: ReadbackPort,
        *,
        now: dt.datetime,
        page_size: int = DEFAULT_PAGE_SIZE,
        kinds: Sequence[ReadbackKind] = tuple(ReadbackKind),
    ) -> RefreshReport:
        """Read what changed on ``side`` since its marks, page by page, into the store."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        report = RefreshReport(side=side)
        pages = 0
        for kind in kinds:
            mark = self.mark(side, kind)
            read = 0
            while True:
                page = await reader.read(kind, mark, page_size)
                pages += 1
                self._upsert_page(side, kind, page.documents, page.mark, now)
                read += len(page.documents)
                mark = page.mark
                if len(page.documents) < page_size:
                    break
            report.documents[kind.value] = read
            report.marks[kind.value] = mark
        return RefreshReport(side=side, documents=report.documents, pages=pages, marks=report.marks)

    def _upsert_page(
        self,
        side: Side,
        kind: ReadbackKind,
        documents: Sequence[ArDocument | PaymentDocument | JournalDocument],
        mark: str | None,
        now: dt.datetime,
    ) -> None:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if documents:
                keys = [d.key for d in documents]
                table = table_name(side, kind)
                con.execute(f"DELETE FROM {table} WHERE key IN (SELECT unnest($k))", {"k": keys})
                if kind == ReadbackKind.AR:
                    self._insert_ar(table, [d for d in documents if isinstance(d, ArDocument)])
                elif kind == ReadbackKind.PAYMENTS:
                    con.execute(
                        f"DELETE FROM {side}_payment_apps WHERE key IN (SELECT unnest($k))",
                        {"k": keys},
                    )
                    self._insert_payments(
                        side, [d for d in documents if isinstance(d, PaymentDocument)]
                    )
                else:
                    self._insert_lines(
                        table, [d for d in documents if isinstance(d, JournalDocument)]
                    )
            con.execute(
                "INSERT INTO readback_marks VALUES (?, ?, ?, ?, ?) ON CONFLICT (side, kind) "
                "DO UPDATE SET mark = excluded.mark, read_at = excluded.read_at, "
                "documents = readback_marks.documents + excluded.documents",
                [side, kind.value, mark, now, len(documents)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _insert(self, table: str, types: dict[str, str], rows: list[dict[str, Any]]) -> None:
        # Columns travel as lists (amounts as text, so nothing passes through a float) and
        # are cast to their exact types in SQL.
        columns = {c: [_wire(r[c]) for r in rows] for c in types}
        select = ", ".join(f"CAST(unnest(${c}) AS {t}) AS {c}" for c, t in types.items())
        self.con.execute(f"INSERT INTO {table} BY NAME SELECT {select}", columns)

    def _insert_ar(self, table: str, docs: list[ArDocument]) -> None:
        self._insert(table, _AR_TYPES, [_fields(d, _AR_TYPES) for d in docs])

    def _insert_payments(self, side: Side, docs: list[PaymentDocument]) -> None:
        self._insert(f"{side}_payments", _PAYMENT_TYPES, [_fields(d, _PAYMENT_TYPES) for d in docs])
        apps = [
            {"key": d.key, "invoice_ref": i, "amount": a} for d in docs for i, a in d.applications
        ]
        if apps:
            self._insert(f"{side}_payment_apps", _APP_TYPES, apps)

    def _insert_lines(self, table: str, docs: list[JournalDocument]) -> None:
        rows = [
            {**_fields(d, _LINE_TYPES), "line": n, **_fields(x, _LINE_TYPES)}
            for d in docs
            for n, x in enumerate(d.lines, start=1)
        ]
        if rows:
            self._insert(table, _LINE_TYPES, rows)


def _types(columns: str) -> dict[str, str]:
    """``"key VARCHAR PRIMARY KEY, amount DECIMAL(18,4)"`` -> ``{"key": "VARCHAR", ...}``."""
    out = {}
    for column in columns.split(", "):
        name, kind = column.split(" ")[:2]
        out[name] = kind
    return out


_AR_TYPES = _types(_AR_COLUMNS)
_PAYMENT_TYPES = _types(_PAYMENT_COLUMNS)
_APP_TYPES = _types(_APP_COLUMNS)
_LINE_TYPES = _types(_LINE_COLUMNS)


def _fields(record: object, types: dict[str, str]) -> dict[str, Any]:
    """The fields of ``record`` that are columns of the table."""
    return {c: getattr(record, c) for c in types if hasattr(record, c)}


def _wire(value: Any) -> Any:
    if isinstance(value, (Decimal, dt.date)):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    return value
