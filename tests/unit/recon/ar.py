"""Test helpers: AR documents as DuckDB relations."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

import duckdb


@dataclass(frozen=True)
class Doc:
    ref: str
    amount: Decimal
    doc_type: str = "invoice"
    customer_ref: str = "001A"
    currency: str = "USD"
    doc_date: date = date(2026, 11, 2)
    status: str = "posted"

    def but(self, **changes: object) -> Doc:
        return replace(self, **changes)  # type: ignore[arg-type]


def relation(con: duckdb.DuckDBPyConnection, name: str, docs: list[Doc]) -> duckdb.DuckDBPyRelation:
    con.execute(
        f"CREATE OR REPLACE TABLE {name} AS SELECT unnest($ref::VARCHAR[]) AS ref, "
        "unnest($doc_type::VARCHAR[]) AS doc_type, unnest($customer::VARCHAR[]) AS customer_ref, "
        "unnest($currency::VARCHAR[]) AS currency, "
        "CAST(unnest($amount::VARCHAR[]) AS DECIMAL(18,4)) AS amount, "
        "unnest($doc_date::DATE[]) AS doc_date, unnest($status::VARCHAR[]) AS status",
        {
            "ref": [d.ref for d in docs],
            "doc_type": [d.doc_type for d in docs],
            "customer": [d.customer_ref for d in docs],
            "currency": [d.currency for d in docs],
            "amount": [str(d.amount) for d in docs],
            "doc_date": [d.doc_date for d in docs],
            "status": [d.status for d in docs],
        },
    )
    return con.table(name)
