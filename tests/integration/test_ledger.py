"""The ledger on real SQLite and real PostgreSQL: idempotent ingest, quarantine, status."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import and_, func, select, text, update
from sqlalchemy.exc import DBAPIError

from revbridge.clock import ManualClock
from revbridge.core.policy import CashHandler, build_policy
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines, ingest_path
from revbridge.services.operations import dr_status
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries, events, metadata, quarantine

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _lines(envs: list[dict]) -> list[bytes]:
    return [json.dumps(e).encode() + b"\n" for e in envs]


def _count(ledger: Ledger, table) -> int:  # type: ignore[no-untyped-def]
    with ledger.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_migrations_give_exactly_the_schema_of_the_models(ledger: Ledger) -> None:
    """No drift between Alembic and the tables the code queries, on both databases."""
    with ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_the_audit_log_refuses_updates_and_deletes(ledger: Ledger) -> None:
    ledger.audit(actor="ops", action="test", entity_type="x", entity_id="1", now=NOW)
    for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), ledger.engine.begin() as conn:
            conn.execute(text(sql))
    assert _count(ledger, audit_log) == 1


def test_ingest_stores_each_event_once_and_reports_duplicates(ledger: Ledger) -> None:
    envs = list(generate_events(300, seed=11))
    clock = ManualClock(NOW)
    policy = build_policy()
    first = ingest_lines(
        ledger, _lines(envs), policy=policy, origin="a.jsonl", clock=clock, batch_size=64
    )
    assert first.as_dict() == {"accepted": 300, "duplicates": 0, "conflicts": 0, "rejected": 0}
    again = ingest_lines(ledger, _lines(envs), policy=policy, origin="a.jsonl", clock=clock)
    assert again.as_dict() == {"accepted": 0, "duplicates": 300, "conflicts": 0, "rejected": 0}
    assert _count(ledger, events) == 300
    assert _count(ledger, deliveries) == 300
    # A duplicate carries the id of the original event.
    with ledger.engine.connect() as conn:
        ids = dict(conn.execute(select(events.c.id, events.c.source_id)).all())
    line, original = again.duplicate_of[0]
    assert ids[original] == envs[line - 1]["source_id"]


def test_same_key_with_a_different_payload_is_quarantined_as_a_conflict(ledger: Ledger) -> None:
    env = next(e for e in generate_events(20, seed=2) if e["type"] == "invoice.posted")
    changed = json.loads(json.dumps(env))
    changed["data"]["invoice_number"] = "INV-TAMPERED"
    result = ingest_lines(
        ledger,
        _lines([env, changed, changed]),
        policy=build_policy(),
        origin="x",
        clock=ManualClock(NOW),
    )
    assert (result.accepted, result.conflicts) == (1, 2)
    with ledger.engine.connect() as conn:
        stored = conn.execute(select(events.c.payload)).scalar_one()
        rows = conn.execute(select(quarantine).order_by(quarantine.c.id)).mappings().all()
    assert "INV-TAMPERED" not in stored  # the original is never overwritten
    assert [r["reason_code"] for r in rows] == ["idempotency_conflict"] * 2
    assert rows[0]["line_no"] == 2
    assert rows[0]["original_event_id"] is not None
    assert "INV-TAMPERED" in rows[0]["raw"]


def test_an_envelope_naming_another_record_than_it_carries_is_quarantined(
    ledger: Ledger,
) -> None:
    """An invoice.posted whose source_id is not its invoice's id is refused at ingest like
    any bad line: quarantined with its line and reason; nothing of it is stored or queued."""
    envs = [e for e in generate_events(40, seed=6) if e["type"] != "invoice.posted"][:5]
    invoice = next(e for e in generate_events(40, seed=6) if e["type"] == "invoice.posted")
    wrong = json.loads(json.dumps(invoice))
    wrong["source_id"] = "a0X000000000999AAA"
    result = ingest_lines(
        ledger,
        _lines([*envs[:2], wrong, *envs[2:]]),
        policy=build_policy(),
        origin="mixed.jsonl",
        clock=ManualClock(NOW),
    )
    assert result.as_dict() == {"accepted": 5, "duplicates": 0, "conflicts": 0, "rejected": 1}
    [row] = ledger.list_quarantine()
    assert (row["origin"], row["line_no"], row["reason_code"]) == (
        "mixed.jsonl",
        3,
        "schema_violation",
    )
    assert row["reason"].startswith("source_id: 'a0X000000000999AAA' is not data.invoice_id")
    assert row["event_type"] == "invoice.posted"
    with ledger.engine.connect() as conn:
        stored = set(conn.execute(select(events.c.source_id)).scalars())
        subjects = set(conn.execute(select(events.c.subject_ref)).scalars())
    assert "a0X000000000999AAA" not in stored
    assert f"invoice:{invoice['data']['invoice_id']}" not in subjects
    assert _count(ledger, deliveries) == 5


def test_bad_lines_never_stop_the_file_and_land_in_quarantine(
    ledger: Ledger, tmp_path: Path
) -> None:
    envs = list(generate_events(10, seed=4))
    bad_money = json.loads(json.dumps(envs[5]))
    bad_money["data"]["currency"] = "QQQ"
    lines = [
        *_lines(envs[:3]),
        b"{not json\n",
        *_lines(envs[3:5]),
        *_lines([bad_money]),
        *_lines(envs[6:]),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(lines))
    result = ingest_path(ledger, path, policy=build_policy(), clock=ManualClock(NOW))
    assert result.as_dict() == {"accepted": 9, "duplicates": 0, "conflicts": 0, "rejected": 2}
    q = ledger.list_quarantine()
    assert [(r["line_no"], r["reason_code"]) for r in q] == [
        (4, "invalid_json"),
        (7, "invalid_money"),
    ]
    assert all(r["origin"] == str(path) for r in q)


def test_a_disabled_payment_flow_is_quarantined_with_the_reason(ledger: Ledger) -> None:
    env = next(e for e in generate_events(200, seed=5) if e["type"] == "payment.received")
    result = ingest_lines(
        ledger,
        _lines([env]),
        policy=build_policy(cash_handled_in=CashHandler.ERP),
        origin="x",
        clock=ManualClock(NOW),
    )
    assert result.rejected == 1
    (row,) = ledger.list_quarantine()
    assert row["reason_code"] == "flow_disabled"
    assert "cash is handled in erp" in row["reason"]


def test_status_reports_types_states_quarantine_and_oldest_age(ledger: Ledger) -> None:
    clock = ManualClock(NOW)
    envs = list(generate_events(120, seed=9))
    ingest_lines(ledger, [*_lines(envs), b"oops\n"], policy=build_policy(), origin="s", clock=clock)
    report = ledger.status(NOW + timedelta(minutes=5))
    assert report["events"]["total"] == 120
    assert sum(report["events"]["by_type"].values()) == 120
    by_state = report["events"]["by_state"]
    # Batch-class ones wait for their class's run: scheduled, not pending.
    assert by_state["pending"] + by_state["scheduled"] == 120
    assert by_state["scheduled"] == report["events"]["scheduled"] > 0
    assert report["quarantine"] == 1
    assert report["oldest_pending_age_s"] == pytest.approx(300.0)
    # Batch-class events are due at their cron time, real-time ones at once.
    with ledger.engine.connect() as conn:
        due = dict(
            conn.execute(
                select(deliveries.c.pattern, func.min(deliveries.c.due_at)).group_by(
                    deliveries.c.pattern
                )
            ).all()
        )
    assert due["realtime"] == NOW.replace(tzinfo=None) or due["realtime"].replace(tzinfo=UTC) == NOW
    assert due["batch"].replace(tzinfo=UTC) > NOW


def test_batch_deliveries_waiting_for_their_run_are_scheduled_not_backlog(
    ledger: Ledger,
) -> None:
    """Status and dr status count batch deliveries waiting for their class's run apart
    (``scheduled``) and leave them out of the oldest undelivered age; one retrying after a
    failed run is backlog again, and ages it."""
    envs = list(generate_events(120, seed=9))
    ingest_lines(ledger, _lines(envs), policy=build_policy(), origin="s", clock=ManualClock(NOW))
    with ledger.engine.begin() as conn:
        conn.execute(
            update(deliveries).where(deliveries.c.pattern == "realtime").values(state="delivered")
        )
        waiting = dict(
            conn.execute(
                select(deliveries.c.target, func.count())
                .where(deliveries.c.pattern == "batch")
                .group_by(deliveries.c.target)
            ).all()
        )
    assert waiting.get("erp")
    at = NOW + timedelta(minutes=5)  # before the nightly run: every batch item is on time
    report = ledger.status(at)
    assert report["events"]["scheduled"] == sum(waiting.values())
    assert report["oldest_pending_age_s"] is None
    _assert_status_and_dr_status_agree(ledger, at)
    assert report["events"]["by_state"]["pending"] == 0
    assert report["events"]["by_state"]["scheduled"] == sum(waiting.values())
    assert report["events"]["by_pattern"]["batch"] == {"scheduled": sum(waiting.values())}
    erp = dr_status(ledger.engine, at)["erp"]
    assert erp["backlog"] == {"pending": 0, "parked": 0, "in_flight": 0}
    assert erp["scheduled"] == waiting["erp"]
    assert erp["oldest_undelivered_age_s"] is None

    # A failed run: one item is retrying (tried once, due again in a minute). It is late.
    with ledger.engine.begin() as conn:
        retrying = conn.execute(
            select(func.min(deliveries.c.event_id)).where(
                and_(deliveries.c.pattern == "batch", deliveries.c.target == "erp")
            )
        ).scalar_one()
        conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id == retrying)
            .values(attempts=1, due_at=at + timedelta(minutes=1))
        )
    assert ledger.status(at)["oldest_pending_age_s"] == pytest.approx(300.0)
    _assert_status_and_dr_status_agree(ledger, at)
    assert ledger.status(at)["events"]["by_state"]["pending"] == 1
    erp = dr_status(ledger.engine, at)["erp"]
    assert erp["backlog"]["pending"] == 1
    assert erp["scheduled"] == waiting["erp"] - 1
    assert erp["oldest_undelivered_age_s"] == pytest.approx(300.0)


def _assert_status_and_dr_status_agree(ledger: Ledger, at: datetime) -> None:
    """`revbridge status` counts each waiting state as `dr status` does, summed over targets."""
    by_state = ledger.status(at)["events"]["by_state"]
    per_target = dr_status(ledger.engine, at).values()
    for state in ("pending", "parked", "in_flight"):
        assert by_state[state] == sum(t["backlog"][state] for t in per_target), state
    for state in ("scheduled", "held"):
        assert by_state[state] == sum(t[state] for t in per_target), state


def test_parallel_validation_gives_the_same_outcome_as_in_process(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Worker processes validate, this one writes in input order: same counts, same quarantine,
    the same stored rows (the events cross the process boundary in their compact form)."""
    envs = list(generate_events(900, seed=31))
    tampered = json.loads(json.dumps(next(e for e in envs if e["type"] == "invoice.posted")))
    tampered["data"]["invoice_number"] = "INV-TAMPERED"
    lines = [
        *_lines(envs[:400]),
        b"{broken\n",
        *_lines(envs[400:]),
        *_lines(envs[:50]),
        *_lines([tampered]),
    ]
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(lines))
    result = ingest_path(
        ledger, path, policy=build_policy(), clock=ManualClock(NOW), workers=2, batch_size=100
    )
    assert result.as_dict() == {"accepted": 900, "duplicates": 50, "conflicts": 1, "rejected": 1}
    broken, conflict = ledger.list_quarantine()
    assert (broken["line_no"], broken["reason_code"]) == (401, "invalid_json")
    assert (conflict["line_no"], conflict["reason_code"]) == (952, "idempotency_conflict")
    assert "INV-TAMPERED" in conflict["raw"]
    assert result.lines == 952

    in_process = Ledger(ledger.engine)
    with ledger.engine.begin() as conn:
        parallel_rows = conn.execute(select(events).order_by(events.c.id)).mappings().all()
        parallel_deliveries = conn.execute(select(deliveries)).mappings().all()
        conn.execute(deliveries.delete())
        conn.execute(quarantine.delete())
        conn.execute(events.delete())
    ingest_path(in_process, path, policy=build_policy(), clock=ManualClock(NOW), batch_size=100)
    with ledger.engine.connect() as conn:
        serial_rows = conn.execute(select(events).order_by(events.c.id)).mappings().all()
        serial_deliveries = conn.execute(select(deliveries)).mappings().all()
    drop = {"id"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in parallel_rows] == [
        {k: v for k, v in r.items() if k not in drop} for r in serial_rows
    ]
    assert len(parallel_deliveries) == len(serial_deliveries) == 900


def test_a_reader_reads_its_snapshot_beside_a_writer_on_sqlite(tmp_path: Path) -> None:
    """The worker's reads (references, target states) never queue for SQLite's write lock:
    a read taking the lock waited behind every writer (ingest, the other workers)."""
    import threading

    from revbridge.store.db import create_store_engine, reading, upgrade

    engine = create_store_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    seen: list[int] = []
    with engine.begin() as writer:  # holds the write lock (BEGIN IMMEDIATE)
        writer.execute(
            text(
                "INSERT INTO targets (name, paused, circuit, consecutive_failures, updated_at) "
                "VALUES ('x', 0, 'closed', 0, '2026-11-02 08:00:00.000000')"
            )
        )

        def read() -> None:
            with reading(engine) as conn:
                seen.append(int(conn.execute(text("SELECT count(*) FROM targets")).scalar_one()))

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "the read waited for the write lock"
    assert seen == [0]  # the snapshot before the write's commit
    engine.dispose()


def test_writers_of_one_process_take_turns_on_sqlite(tmp_path: Path) -> None:
    """Threads of one process that write one SQLite file queue for their turn: every
    transaction commits, none interleaves with another, and a turn is given back however
    its transaction ends (a rollback too)."""
    import threading

    from revbridge.store.db import create_store_engine, upgrade

    engine = create_store_engine(f"sqlite:///{tmp_path / 'w.db'}")
    upgrade(engine)
    inside: list[int] = []
    overlaps: list[int] = []

    def write(n: int) -> None:
        for i in range(25):
            with engine.begin() as conn:
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(n)
                conn.execute(
                    text(
                        "INSERT INTO targets (name, paused, circuit, consecutive_failures, "
                        "updated_at) VALUES (:name, 0, 'closed', 0, '2026-11-02 08:00:00.000000')"
                    ),
                    {"name": f"t{n}-{i}"},
                )
                inside.remove(n)
            with pytest.raises(RuntimeError), engine.begin():
                raise RuntimeError("rolled back: the turn is given back")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert overlaps == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM targets")).scalar_one() == 100
    engine.dispose()
