"""Batch classes: collected when due, written as the ERP's own import file, never posted twice."""

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.ports import BatchOutcome, RecordKind
from revbridge.engine.worker import Target, Worker
from revbridge.generate import generate_events
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import batches, deliveries, events
from revbridge.testing import FakeErp, FakeSalesforce
from tests.scenarios.test_delivery import _account

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, after the October close


def _setup(
    ledger: Ledger, tmp_path: Path, erp: FakeErp, n: int = 300, seed: int = 5
) -> tuple[Worker, list[dict], ManualClock]:
    clock = ManualClock(START)
    envs = list(generate_events(n, seed=seed))
    ingest_lines(
        ledger,
        [json.dumps(e).encode() for e in envs],
        policy=build_policy(),
        origin="t",
        clock=clock,
    )
    targets = {"erp": Target("erp", erp), "salesforce": Target("salesforce", FakeSalesforce())}
    return (
        Worker(ledger.engine, targets, clock=clock, seed=1, batch_dir=tmp_path / "batches"),
        envs,
        clock,
    )


def _pending_batch_types(ledger: Ledger) -> set[str]:
    with ledger.engine.connect() as conn:
        return {
            t
            for (t,) in conn.execute(
                select(events.c.type)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(deliveries.c.state == "pending")
            )
        }


def test_nightly_and_month_end_batches_run_at_their_cron_with_a_manifest(
    ledger: Ledger, tmp_path: Path
) -> None:
    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp)
    asyncio.run(worker.run_until_idle())
    assert {"revenue.recognized", "gl.posted"} <= _pending_batch_types(ledger)  # not yet due
    clock.advance(timedelta(days=30))  # past 02:00 nightly, the 1st of the month and a Monday
    asyncio.run(worker.run_until_idle())
    assert _pending_batch_types(ledger) == set()
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue)
    with ledger.engine.connect() as conn:
        rows = (
            conn.execute(select(batches).where(batches.c.event_type == "revenue.recognized"))
            .mappings()
            .all()
        )
    assert rows
    assert all(r["state"] == "completed" for r in rows)
    manifest = json.loads((Path(rows[0]["file_path"]).parent / "manifest.json").read_text())
    assert manifest["record_count"] == rows[0]["record_count"]
    assert manifest["sha256"] == rows[0]["checksum"]
    # Control totals per currency equal the debits of the journals in the file.
    expected: dict[str, float] = {}
    for line in Path(rows[0]["file_path"]).read_text().splitlines():
        for jl in json.loads(line)["data"]["lines"]:
            from decimal import Decimal

            expected[jl["currency"]] = expected.get(jl["currency"], Decimal(0)) + Decimal(
                jl["debit"]
            )
    assert manifest["control_totals"] == {c: str(v) for c, v in sorted(expected.items())}


def test_a_batch_whose_answer_was_lost_is_rerun_without_posting_twice(
    ledger: Ledger, tmp_path: Path
) -> None:
    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=200, seed=9)
    asyncio.run(worker.run_until_idle())
    erp.faults.lose_next_response = 1  # the import job applied the file; its answer is lost
    clock.advance(timedelta(days=30))
    for _ in range(6):
        asyncio.run(worker.run_until_idle())
        clock.advance(timedelta(hours=1))
    assert erp.duplicates() == {}
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue)
    assert _pending_batch_types(ledger) == set()


def test_a_rerun_whose_look_ups_fail_leaves_nothing_in_flight(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The rerun of a batch whose answer was lost looks each record up first. A look-up that
    fails (a 503, then a 400) is a retry of that item, not a crash of the run that leaves
    its claimed items in flight; and a record is still never posted twice."""
    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=200, seed=9)
    asyncio.run(worker.run_until_idle())
    erp.faults.lose_next_response = 10
    clock.advance(timedelta(days=30))
    asyncio.run(worker.run_until_idle())  # applied, their answers lost: outcomes unknown
    assert erp.calls["submit_batch"] == 10 - erp.faults.lose_next_response
    erp.faults.lose_next_response = 0
    # The next two calls fail: a look-up of a journal (a customer file is sent again: an
    # upsert is not looked up) with a 503, then one with a 400.
    erp.faults.fail_next, erp.faults.terminal_next = 1, 1
    for _ in range(6):
        clock.advance(timedelta(hours=1))
        asyncio.run(worker.run_until_idle())
        with ledger.engine.connect() as conn:
            in_flight = conn.execute(
                select(deliveries.c.event_id).where(deliveries.c.state == "in_flight")
            ).all()
        assert in_flight == []
    assert erp.calls["find"] >= 2
    assert erp.duplicates() == {}
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue)
    assert _pending_batch_types(ledger) == set()


def test_a_batch_backlog_alone_probes_the_circuit_through_a_long_outage(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Only batch items wait (the real-time ones are delivered) when the ERP goes down at
    the nightly run. Each failed file is one failed call: the circuit opens after the
    threshold's worth of them, not at the first file, whatever its size. With no real-time
    delivery to carry the half-open probe, one batch item carries it, every cooldown, for
    far more cycles than an item's attempts allow: nothing is dead-lettered. Once the ERP
    is back, the probe closes the circuit and the batch delivers everything, once."""
    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=200, seed=9)
    asyncio.run(worker.run_until_idle())
    erp.faults.down = True
    clock.advance(timedelta(days=30))
    asyncio.run(worker.run_until_idle())
    breaker = worker.targets["erp"].breaker
    files = erp.calls["submit_batch"]
    assert 0 < files < breaker.failure_threshold  # several files of many items each
    assert (breaker.state, breaker.consecutive_failures) == ("closed", files)
    for _ in range(20):  # the files are retried after their backoff, and fail again
        clock.advance(timedelta(minutes=30))
        asyncio.run(worker.run_until_idle())
        if breaker.state != "closed":
            break
    assert breaker.state != "closed"
    # Failed calls, one each: the files, then one look-up per rerun (its items' files may
    # have landed), not one per item.
    assert erp.calls["submit_batch"] + erp.calls["find"] == breaker.failure_threshold

    def calls() -> int:  # the probe: the item's look-up (its file may have landed), or its file
        return erp.calls["find"] + erp.calls["submit_batch"]

    before = calls()
    for _ in range(40):  # 40 cooldowns; an item's attempts are 12
        clock.advance(breaker.cooldown)
        asyncio.run(worker.run_until_idle())
    assert calls() == before + 40  # one probe a cooldown
    assert breaker.state == "open"
    erp.faults.down = False
    clock.advance(breaker.cooldown)
    asyncio.run(worker.run_until_idle())
    assert breaker.state == "closed"
    with ledger.engine.connect() as conn:
        left = conn.execute(
            select(deliveries.c.state).where(deliveries.c.state != "delivered")
        ).all()
    assert left == []  # nothing dead-lettered, nothing waiting
    assert erp.duplicates() == {}
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue)


class _AnswersWithoutSomeRows(FakeErp):
    """An ERP whose import job applies every row but leaves the first ``n`` out of its
    result (a real import's "see the log" rows): the system is up and answered."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left_out = n

    async def submit_batch(
        self, kind: RecordKind, content: bytes, manifest: Mapping[str, object]
    ) -> Sequence[BatchOutcome]:
        outcomes = list(await super().submit_batch(kind, content, manifest))
        cut = min(self.left_out, len(outcomes) - 1)  # the file answered: some rows are in
        self.left_out -= cut
        return outcomes[cut:]


def test_rows_an_answered_file_asks_to_retry_do_not_open_the_circuit(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The import job answered, with rows missing from its result: those rows retry (looked
    up first: they may be in), but the system is up, so the circuit stays closed and the
    real-time classes keep flowing; every record is in the ERP once."""
    erp = _AnswersWithoutSomeRows(n=20)
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=300, seed=5)
    asyncio.run(worker.run_until_idle())
    clock.advance(timedelta(days=30))
    asyncio.run(worker.run_until_idle())
    breaker = worker.targets["erp"].breaker
    assert erp.left_out == 0  # 20 rows retried, more than the circuit's threshold
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
    for _ in range(6):
        clock.advance(timedelta(hours=1))
        asyncio.run(worker.run_until_idle())
    assert breaker.state == "closed"
    assert _pending_batch_types(ledger) == set()
    assert erp.duplicates() == {}
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue)


def test_batch_run_now_for_one_class_with_a_bad_row(ledger: Ledger, tmp_path: Path) -> None:
    """A closed period refuses one class's rows: those are dead-lettered, the rest delivered."""
    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=200, seed=3)
    periods = sorted({e["data"]["period"] for e in envs if e["type"] == "revenue.recognized"})
    erp.closed_periods.add(periods[0])
    asyncio.run(worker.run_until_idle())  # real-time classes, and the customers they pulled ahead
    report = asyncio.run(worker.batch.run("revenue.recognized", now=clock.now(), force=True))  # type: ignore[union-attr]
    in_closed = [
        e for e in envs if e["type"] == "revenue.recognized" and e["data"]["period"] == periods[0]
    ]
    assert report.parked == 0
    assert report.failed == len(in_closed)
    assert report.delivered == report.items - report.failed - report.parked
    assert all(erp.count("journal", e["source_id"]) == 0 for e in in_closed)


def test_batch_outcomes_count_in_the_workers_totals_like_real_time_ones(
    ledger: Ledger, tmp_path: Path
) -> None:
    """`worker --until-idle` totals include what a batch delivered or dead-lettered, and the
    batch's one import call is counted in the API cost."""
    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=200, seed=3)
    periods = sorted({e["data"]["period"] for e in envs if e["type"] == "revenue.recognized"})
    erp.closed_periods.add(periods[0])
    asyncio.run(worker.run_until_idle())
    before = worker.stats.as_dict()
    report = asyncio.run(worker.batch.run("revenue.recognized", now=clock.now(), force=True))  # type: ignore[union-attr]
    customers = asyncio.run(worker.batch.run("customer.upserted", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert report.failed > 0
    assert customers.delivered > 0
    delivered = report.delivered + customers.delivered
    assert worker.stats.delivered - before["delivered"] == delivered
    assert worker.stats.dead_lettered - before["dead_lettered"] == report.failed
    assert worker.api_calls[("erp", "revenue.recognized", "batch")] == 1
    assert worker.api_calls[("erp", "customer.upserted", "batch")] == 1
    with ledger.engine.connect() as conn:
        states = {
            (t, s)
            for (t, s) in conn.execute(
                select(events.c.type, deliveries.c.state)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(events.c.type.in_(["revenue.recognized", "customer.upserted"]))
            )
        }
    # Flushed: nothing left in flight.
    assert states == {
        ("revenue.recognized", "dead_letter"),
        ("customer.upserted", "delivered"),
    }


def test_a_class_is_split_into_files_of_the_targets_declared_batch_size(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The ERP declares ten records per import file: a run writes as many files as the due
    items need, each of at most ten, and stops at the first file the ERP fails (the rest
    waits for the next run instead of hammering a failing system)."""
    from revbridge.engine.ports import Capabilities
    from revbridge.testing import Faults

    caps = Capabilities(
        name="small-imports",
        batch_size=10,
        batch_formats=("jsonl",),
        batch_kinds=frozenset({RecordKind.CUSTOMER, RecordKind.JOURNAL}),
    )
    erp = FakeErp(capabilities=caps)
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=300, seed=5)
    customers = [e for e in envs if e["type"] == "customer.upserted"]
    assert len(customers) > 20
    erp.faults = Faults(down=True)
    failing = asyncio.run(worker.batch.run("customer.upserted", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert (failing.items, failing.retried, len(failing.batch_ids)) == (10, 10, 1)
    erp.faults.down = False
    report = asyncio.run(worker.batch.run("customer.upserted", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert report.delivered == report.items == len(customers)
    with ledger.engine.connect() as conn:
        sizes = list(
            conn.execute(
                select(batches.c.record_count).where(batches.c.id.in_(report.batch_ids))
            ).scalars()
        )
    assert len(sizes) == -(-len(customers) // 10)
    assert max(sizes) == 10
    assert erp.duplicates() == {}


def test_a_shared_fake_erp_keeps_a_batch_import_for_every_process(tmp_path: Path) -> None:
    """Two worker processes share the fake ERP through its state file: what one imports in
    a batch file, the other finds (it used to live in the importer's memory only)."""
    import hashlib

    from revbridge.codec import decode_payload
    from revbridge.core.events import EventType
    from revbridge.engine.ports import BatchItem, RecordKind

    state = tmp_path / "erp.json"
    one, other = (FakeErp(state_file=state, shared=True) for _ in range(2))
    customer = next(e for e in generate_events(10, seed=1) if e["type"] == "customer.upserted")
    data = decode_payload(EventType.CUSTOMER_UPSERTED, json.dumps(customer["data"]))
    ref = customer["data"]["customer_id"]
    content = one.render_batch(
        RecordKind.CUSTOMER, [BatchItem(external_ref=ref, data=data, refs={})]
    )
    manifest = {"sha256": hashlib.sha256(content).hexdigest()}
    (outcome,) = asyncio.run(one.submit_batch(RecordKind.CUSTOMER, content, manifest))
    found = asyncio.run(other.find(RecordKind.CUSTOMER, ref))
    assert found is not None
    assert found.erp_id == outcome.erp_id


def test_a_customer_update_in_a_failed_nightly_file_reaches_the_erp(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A customer renamed in Salesforce, in a nightly file that failed: the rerun sends the
    new name. A look-up first (as for a document that must not post twice) would find the
    customer's earlier version and take the rename as landed."""
    erp = FakeErp()
    worker, _, clock = _setup(ledger, tmp_path, erp, n=0)

    def account(version: int, name: str) -> bytes:
        return json.dumps(_account(version, name)).encode()

    def nightly() -> None:
        clock.advance(timedelta(days=1))
        asyncio.run(worker.run_until_idle())

    ingest_lines(ledger, [account(1, "Old Name")], policy=build_policy(), origin="t", clock=clock)
    nightly()
    assert [c["name"] for c in erp.customers()] == ["Old Name"]
    ingest_lines(ledger, [account(2, "New Name")], policy=build_policy(), origin="t", clock=clock)
    erp.faults.fail_next = 1
    nightly()
    assert [c["name"] for c in erp.customers()] == ["Old Name"]  # the file failed
    nightly()
    assert [c["name"] for c in erp.customers()] == ["New Name"]
    assert _pending_batch_types(ledger) == set()


def test_a_class_the_import_files_do_not_take_is_delivered_record_by_record(
    ledger: Ledger, tmp_path: Path
) -> None:
    """An operator moves invoices to a nightly batch. The ERP's import files take customers
    and journals only (its capabilities say so): the invoices go at the batch's time, one
    call each, instead of a file the ERP refuses row by row."""
    from revbridge.core.events import EventType
    from revbridge.core.policy import NIGHTLY, EventPolicy, Pattern

    policy = build_policy(
        {
            EventType.INVOICE_POSTED: EventPolicy(
                type=EventType.INVOICE_POSTED,
                pattern=Pattern.BATCH,
                schedule=NIGHTLY,
                rationale="test: invoices nightly",
            )
        }
    )
    clock = ManualClock(START)
    envs = list(generate_events(200, seed=9))
    ingest_lines(
        ledger, [json.dumps(e).encode() for e in envs], policy=policy, origin="t", clock=clock
    )
    erp = FakeErp()
    targets = {"erp": Target("erp", erp), "salesforce": Target("salesforce", FakeSalesforce())}
    worker = Worker(ledger.engine, targets, clock=clock, seed=1, batch_dir=tmp_path / "b")
    clock.advance(timedelta(days=1))
    asyncio.run(worker.run_until_idle())
    invoices = [e for e in envs if e["type"] == "invoice.posted"]
    assert invoices
    assert all(erp.count("invoice", e["source_id"]) == 1 for e in invoices)
    assert worker.stats.dead_lettered == 0
    assert erp.calls["create_invoice"] == len(invoices)


def _states(ledger: Ledger, event_type: str) -> dict[str, tuple[str, str | None]]:
    with ledger.engine.connect() as conn:
        return {
            r.source_id: (r.state, r.last_error)
            for r in conn.execute(
                select(events.c.source_id, deliveries.c.state, deliveries.c.last_error)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(events.c.type == event_type)
            )
        }


def test_a_batch_item_whose_payload_no_longer_decodes_is_dead_lettered_and_the_file_goes(
    ledger: Ledger, tmp_path: Path
) -> None:
    """One stored payload that this version's rules refuse (changed in the ledger by hand):
    that item goes to the dead-letter queue with why, as on the real-time route, and the
    file carries the others. It used to crash the batch run with every item in flight."""
    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=200, seed=9)
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    bad = revenue[1]["source_id"]
    with ledger.engine.begin() as conn:
        (payload,) = conn.execute(select(events.c.payload).where(events.c.source_id == bad)).one()
        data = json.loads(payload)
        data["period"] = "last month"
        conn.execute(
            events.update().where(events.c.source_id == bad).values(payload=json.dumps(data))
        )
    asyncio.run(worker.run_until_idle())
    report = asyncio.run(worker.batch.run("revenue.recognized", now=clock.now(), force=True))  # type: ignore[union-attr]
    states = _states(ledger, "revenue.recognized")
    state, reason = states.pop(bad)
    assert state == "dead_letter"
    assert reason is not None
    assert "stored payload no longer decodes" in reason
    assert "period" in reason
    assert {s for s, _ in states.values()} == {"delivered"}
    assert (report.failed, report.delivered) == (1, len(revenue) - 1)
    assert report.error is not None
    assert "no longer decodes" in report.error
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue if e["source_id"] != bad)


def test_a_file_the_system_refuses_as_a_whole_is_dead_lettered_not_retried_nightly(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The ERP answers that it refuses the whole file (a terminal error, not an outage):
    the same file would be refused every night until the items' attempts ran out. Its items
    go to the dead-letter queue with why; the circuit stays closed (the system answered);
    the alert says what to do; a replay once the cause is fixed delivers each once."""
    from revbridge.engine.alerts import _batch_failed_body
    from revbridge.services.operations import replay

    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=200, seed=9)
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    asyncio.run(worker.run_until_idle())
    erp.faults.terminal_next = 1
    report = asyncio.run(worker.batch.run("revenue.recognized", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert (report.failed, report.retried, report.delivered) == (len(revenue), 0, 0)
    states = _states(ledger, "revenue.recognized")
    assert {s for s, _ in states.values()} == {"dead_letter"}
    assert all("refused as a whole" in (why or "") for _, why in states.values())
    breaker = worker.targets["erp"].breaker
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
    with ledger.engine.connect() as conn:
        row = conn.execute(select(batches).where(batches.c.id == report.batch_id)).one()
    assert row.state == "failed"
    body = _batch_failed_body("revenue.recognized", row.id, row.state, row.summary)
    assert f"{len(revenue)} items were dead-lettered" in body
    assert "dlq replay --all --type revenue.recognized" in body
    n = replay(
        ledger.engine,
        now=clock.now(),
        actor="t",
        reason="import mapping fixed",
        event_type="revenue.recognized",
    )
    assert n == len(revenue)
    asyncio.run(worker.batch.run("revenue.recognized", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue)
    assert erp.duplicates() == {}


def test_a_file_refused_for_the_integrations_credentials_keeps_every_item(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A 401 on the nightly file is the integration's access, not the file's content: no
    item is dead-lettered or charged an attempt, the circuit opens at once and says why,
    and once access is back the next run delivers each item once (decision 0038)."""
    erp = FakeErp()
    worker, envs, clock = _setup(ledger, tmp_path, erp, n=200, seed=9)
    revenue = [e for e in envs if e["type"] == "revenue.recognized"]
    asyncio.run(worker.run_until_idle())
    erp.faults.refuse_access = True
    report = asyncio.run(worker.batch.run("revenue.recognized", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert (report.failed, report.retried, report.delivered) == (0, len(revenue), 0)
    assert {s for s, _ in _states(ledger, "revenue.recognized").values()} == {"pending"}
    with ledger.engine.connect() as conn:
        attempts = {
            a
            for (a,) in conn.execute(
                select(deliveries.c.attempts)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(events.c.type == "revenue.recognized")
            )
        }
    assert max(attempts) <= 1
    target = worker.targets["erp"]
    assert target.breaker.state == "open"
    assert "refused the integration's access" in (target.last_error or "")
    erp.faults.refuse_access = False
    clock.advance(target.breaker.cooldown + timedelta(seconds=1))
    report = asyncio.run(worker.batch.run("revenue.recognized", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert (report.failed, report.delivered) == (0, len(revenue))
    assert target.breaker.state == "closed"
    assert all(erp.count("journal", e["source_id"]) == 1 for e in revenue)
    assert erp.duplicates() == {}


def test_a_superseded_customer_in_a_record_by_record_batch_is_written_at_once(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A nightly customer class on an ERP whose import files do not take customers goes
    record by record. An older version of a customer whose newer one is already there is
    marked superseded in the same run; it used to be dropped from the round's outcomes and
    stay in flight until its lease ran out."""
    from revbridge.engine.ports import Capabilities

    caps = Capabilities(
        name="fake-erp", concurrency_limit=8, batch_formats=("jsonl",), batch_kinds=frozenset()
    )
    erp = FakeErp(capabilities=caps)
    worker, _, clock = _setup(ledger, tmp_path, erp, n=0)

    def ingest(*accounts: dict) -> None:
        lines = [json.dumps(a).encode() for a in accounts]
        ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock)

    ingest(_account(2, "New Name"))
    asyncio.run(worker.batch.run("customer.upserted", now=clock.now(), force=True))  # type: ignore[union-attr]
    other = _account(1, "Another") | {"source_id": "001000000000043AAA"}
    other["data"] = other["data"] | {"customer_id": "001000000000043AAA"}
    ingest(_account(1, "Old Name"), other)  # the older version arrives late
    report = asyncio.run(worker.batch.run("customer.upserted", now=clock.now(), force=True))  # type: ignore[union-attr]
    assert (report.superseded, report.delivered) == (1, 1)
    assert report.detail() == (
        "sent record by record to erp (no file); 1 superseded by newer versions"
    )
    from revbridge.store.schema import attempts

    with ledger.engine.connect() as conn:
        states = sorted(
            r.state
            for r in conn.execute(select(deliveries.c.state).where(deliveries.c.target == "erp"))
        )
        outcomes = sorted(o for (o,) in conn.execute(select(attempts.c.outcome)))
    assert states == ["delivered"] * 3  # a superseded version is done: nothing in flight
    assert outcomes.count("superseded") == 1
    assert sorted(c["name"] for c in erp.customers()) == ["Another", "New Name"]
