"""The claim walks the pending line in event order (ix_deliveries_pending_line) and stops at
its limit, instead of reading and sorting the whole due backlog each round (decision 0015).

SQLite plans without statistics (revbridge never runs ANALYZE), so its plan here is its plan
on any backlog: it picks the ``(state, due_at)`` index unless the claim writes ``+d.due_at``.
PostgreSQL plans with the statistics autovacuum gathers, so its claim is also checked after
``VACUUM ANALYZE``, on an outage's backlog and on a long history (decision 0018)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from revbridge.engine.queue import DeliveryQueue, Outcomes, claim_sql
from revbridge.store.db import create_store_engine
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


LIMIT = 200


def _libpq(url: str) -> str:
    """The test database's URL as psycopg takes it (without SQLAlchemy's driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _fill(
    conn: psycopg.Connection[Any], *, delivered: int, pending: int, analyze: bool = True
) -> None:
    """``delivered`` old deliveries, then ``pending`` due ones, over 2,000 customers (ten
    events each in the backlog), as an ingest would leave them; then what autovacuum does,
    unless ``analyze`` is false (a table without statistics yet)."""
    n = {"n": delivered + pending, "delivered": delivered}
    conn.execute(
        "INSERT INTO events (id, idempotency_key, type, source, source_id, source_version, "
        "occurred_at, received_at, customer_ref, subject_ref, payload_hash, payload) "
        "SELECT i, 'key-' || i, 'erp.payment.received', 'erp', 'P' || i, '1', now(), now(), "
        "'erp_customer:C' || (i %% 2000), 'payment:P' || i, 'h', '{}' "
        "FROM generate_series(1, %(n)s) AS i",
        n,
    )
    conn.execute(
        "INSERT INTO deliveries (event_id, target, pattern, state, attempts, due_at, "
        "updated_at, customer_ref) "
        "SELECT i, 'salesforce', 'realtime', "
        "CASE WHEN i <= %(delivered)s THEN 'delivered' ELSE 'pending' END, 0, "
        "now() - interval '1 hour' + i * interval '1 millisecond', now(), "
        "'erp_customer:C' || (i %% 2000) FROM generate_series(1, %(n)s) AS i",
        n,
    )
    if analyze:
        conn.execute("VACUUM ANALYZE")


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.parametrize(
    ("delivered", "pending"),
    [(0, 20_000), (50_000, 2_000)],
    ids=["outage-backlog", "long-history"],
)
def test_with_statistics_the_claim_still_walks_the_line_and_stops(
    pg_url: str, delivered: int, pending: int
) -> None:
    url = _libpq(pg_url)
    with psycopg.connect(url, autocommit=True) as conn:
        _fill(conn, delivered=delivered, pending=pending)
        sql = claim_sql("postgresql")
        for name in ("lease", "worker", "now", "target", "pattern", "limit"):
            sql = sql.replace(f":{name}", f"%({name})s")
        conn.execute("BEGIN")  # EXPLAIN ANALYZE runs the claim: undone below
        (plan,) = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + sql,
            {
                "lease": datetime.now(UTC) + timedelta(minutes=1),
                "worker": "w",
                "now": datetime.now(UTC),
                "target": "salesforce",
                "pattern": "realtime",
                "limit": LIMIT,
            },
        ).fetchone()[0]
        conn.execute("ROLLBACK")
    nodes = list(_nodes(plan["Plan"]))
    assert nodes[0]["Actual Rows"] == LIMIT
    scans = [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"]
    assert "deliveries" not in scans, scans
    # The head-of-line sub-query runs once per pending row walked, in event order: with
    # 2,000 heads first in line, the walk stops at its limit (with the planner's old choice
    # it ran once per pending row of the backlog: 20,000 times, 90 ms a claim).
    assert max(n.get("Actual Loops", 1) for n in nodes) <= LIMIT, [
        (n["Node Type"], n.get("Actual Loops")) for n in nodes
    ]


@pytest.mark.parametrize(
    ("statistics", "delivered", "pending"),
    [(True, 50_000, 2_000), (False, 0, 20_000)],
    ids=["long-history-statistics", "fresh-backlog-no-statistics"],
)
def test_a_round_is_marked_by_key(
    pg_url: str, statistics: bool, delivered: int, pending: int
) -> None:
    """The delivered mark finds each delivery by its key, whatever the planner knows. With
    statistics gathered before the claim (no row in flight then) it would rather walk the
    state index and match each in-flight row against every row of the round (9.7 ms for
    200, from 1.4); without statistics, and the state index out of its choice, it would scan
    the whole table."""
    url = _libpq(pg_url)
    with psycopg.connect(url, autocommit=True) as conn:
        _fill(conn, delivered=delivered, pending=pending, analyze=statistics)
    engine = create_store_engine(pg_url)
    queue = DeliveryQueue(engine)
    now = datetime.now(UTC)
    claimed = queue.claim(
        target="salesforce", worker_id="w", now=now, lease=timedelta(minutes=1), limit=LIMIT
    )
    assert len(claimed) == LIMIT
    plans: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _explain(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "SET state = 'delivered'" in statement:
            found = cursor.connection.execute("EXPLAIN " + statement, params).fetchall()
            plans.append("\n".join(row[0] for row in found))

    out = Outcomes("w")
    out.delivered = [(c, "salesforce", f"SF-{c.event_id}") for c in claimed]
    queue.record(out, now=now)
    engine.dispose()
    assert plans, "the delivered mark ran no statement"
    assert all("pk_deliveries" in plan for plan in plans), plans
    with psycopg.connect(url) as conn:
        (marked,) = conn.execute(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND external_ref LIKE 'SF-%'"
        ).fetchone()  # type: ignore[misc]
    assert marked == LIMIT


def test_deliveries_are_vacuumed_and_analyzed_as_a_queue(pg_url: str) -> None:
    """Two writes per delivery: autovacuum visits the table after 2 % of it changed, not the
    defaults' 10 % (analyze) and 20 % (vacuum), so a long drain keeps fresh plans."""
    url = _libpq(pg_url)
    with psycopg.connect(url) as conn:
        (options,) = conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'deliveries'"
        ).fetchone()  # type: ignore[misc]
    assert set(options) == {
        "autovacuum_vacuum_scale_factor=0.02",
        "autovacuum_analyze_scale_factor=0.02",
    }
