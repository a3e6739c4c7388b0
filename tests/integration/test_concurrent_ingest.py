"""Idempotency under concurrency: four processes ingest the same file at the same moment."""

import json
import multiprocessing as mp
from pathlib import Path

from sqlalchemy import func, select

from revbridge.core.policy import build_policy
from revbridge.generate import write_events_file
from revbridge.services.ingest import ingest_path
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries, events, quarantine

PROCESSES = 4
EVENTS = 1500


def _worker(url: str, path: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    engine = create_store_engine(url)
    ledger = Ledger(engine)
    barrier.wait()  # start together, so the same keys race each other
    result = ingest_path(ledger, path, policy=build_policy(), batch_size=100)
    results.put(json.dumps(result.as_dict()))
    engine.dispose()


def test_four_processes_ingesting_one_file_store_each_event_exactly_once(
    store_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    write_events_file(path, EVENTS, seed=21)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(store_url, str(path), barrier, results))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes = [json.loads(results.get(timeout=240)) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(o["accepted"] for o in outcomes) == EVENTS
    assert sum(o["duplicates"] for o in outcomes) == EVENTS * (PROCESSES - 1)
    assert all(o["conflicts"] == 0 and o["rejected"] == 0 for o in outcomes)
    engine = create_store_engine(store_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == EVENTS
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar_one() == EVENTS
        assert conn.execute(select(func.count()).select_from(quarantine)).scalar_one() == 0
    engine.dispose()
