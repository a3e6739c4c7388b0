"""The claim walks the pending line in event order (ix_deliveries_pending_line) and stops at
its limit, instead of reading and sorting the whole due backlog each round (decision 0015).

SQLite plans without statistics (revbridge never runs ANALYZE), so its plan here is its plan
on any backlog: it picks the ``(state, due_at)`` index unless the claim writes ``+d.due_at``.
PostgreSQL's plan here is the one without statistics; the engine benchmarks measure the claim
on large backlogs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from revbridge.engine.queue import claim_sql
from revbridge.store.ledger import Ledger
from revbridge.store.schema import timestamp_param

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_the_claim_walks_the_pending_line_index(ledger: Ledger) -> None:
    engine = ledger.engine
    dialect = engine.dialect.name
    ts = timestamp_param(dialect)
    explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        plan = "\n".join(
            str(row[-1])
            for row in conn.execute(
                text(explain + claim_sql(dialect)),
                {
                    "lease": ts(NOW + timedelta(minutes=1)),
                    "worker": "w",
                    "now": ts(NOW),
                    "target": "erp",
                    "pattern": "realtime",
                    "limit": 200,
                },
            )
        )
    assert "ix_deliveries_pending_line" in plan, plan
    assert "ORDER BY" not in plan, plan  # SQLite's sort of the due rows
    assert "Sort" not in plan, plan  # PostgreSQL's
