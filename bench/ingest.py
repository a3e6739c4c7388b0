"""Durable ingest throughput on SQLite and PostgreSQL, beside the floor, and streaming memory.

The floor is what no validating ingest can beat on the same database: the same lines parsed
with ``json.loads`` and inserted with a bare ``executemany`` (no validation, no idempotency),
committed. revbridge's number is the full path: parse, validate, hash, idempotent insert of the
event and its delivery, committed before it is reported.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from bench.common import emit, median_of, progress, scratch_pg, timed
from revbridge.core.policy import build_policy
from revbridge.generate import write_events_file
from revbridge.services.ingest import ingest_path
from revbridge.store.db import create_store_engine, upgrade
from revbridge.store.ledger import Ledger

N = int(os.environ.get("BENCH_INGEST_EVENTS", "100000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WORKERS = int(os.environ.get("BENCH_INGEST_WORKERS", str(min(os.cpu_count() or 1, 2))))


def _revbridge_rate(url: str, path: Path) -> float:
    engine = create_store_engine(url)
    upgrade(engine)
    ledger = Ledger(engine)
    # As an operator ingests a big file: `revbridge ingest FILE --workers 2` on this 2-core box.
    seconds = timed(lambda: ingest_path(ledger, path, policy=build_policy(), workers=WORKERS))
    engine.dispose()
    return N / seconds


def _floor_sqlite(db: Path, path: Path) -> float:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, k TEXT, t TEXT, payload TEXT)")

    def run() -> None:
        conn.execute("BEGIN")
        batch = []
        with path.open("rb") as fh:
            for line in fh:
                obj = json.loads(line)
                batch.append((obj["source_id"], obj["type"], json.dumps(obj["data"])))
                if len(batch) == 2000:
                    conn.executemany("INSERT INTO raw (k, t, payload) VALUES (?, ?, ?)", batch)
                    batch.clear()
        conn.executemany("INSERT INTO raw (k, t, payload) VALUES (?, ?, ?)", batch)
        conn.execute("COMMIT")

    rate = N / timed(run)
    conn.close()
    return rate


def _floor_pg(url: str, path: Path) -> float:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, dbname=u.database, password=u.password
    ) as conn:
        conn.execute("CREATE TABLE raw (id bigserial PRIMARY KEY, k text, t text, payload text)")
        conn.commit()

        def run() -> None:
            batch = []
            with conn.cursor() as cur, path.open("rb") as fh:
                for line in fh:
                    obj = json.loads(line)
                    batch.append((obj["source_id"], obj["type"], json.dumps(obj["data"])))
                    if len(batch) == 2000:
                        cur.executemany(
                            "INSERT INTO raw (k, t, payload) VALUES (%s, %s, %s)", batch
                        )
                        batch.clear()
                cur.executemany("INSERT INTO raw (k, t, payload) VALUES (%s, %s, %s)", batch)
            conn.commit()

        return N / timed(run)


def bench_ingest() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        progress(f"generating {N} events")
        write_events_file(path, N, seed=1)

        def sqlite_rate() -> float:
            db = Path(tempfile.mkdtemp(dir=tmp)) / "ledger.db"
            return _revbridge_rate(f"sqlite:///{db}", path)

        def sqlite_floor() -> float:
            return _floor_sqlite(Path(tempfile.mkdtemp(dir=tmp)) / "floor.db", path)

        progress("SQLite: revbridge ingest and floor")
        rate = median_of(RUNS, sqlite_rate)
        floor = median_of(RUNS, sqlite_floor)
        emit(
            "ingest_sqlite_events_per_s",
            rate,
            "events/s",
            "json.loads+executemany floor",
            floor,
            ">= 20000 events/s and >= floor/5",
            rate >= 20_000 and rate >= floor / 5,
            floor_ratio=round(floor / rate, 2),
        )

        def pg_rate() -> float:
            with scratch_pg() as url:
                return _revbridge_rate(url, path)

        def pg_floor() -> float:
            with scratch_pg() as url:
                return _floor_pg(url, path)

        progress("PostgreSQL: revbridge ingest and floor")
        rate = median_of(RUNS, pg_rate)
        floor = median_of(RUNS, pg_floor)
        emit(
            "ingest_postgresql_events_per_s",
            rate,
            "events/s",
            "json.loads+executemany floor",
            floor,
            ">= 10000 events/s and >= floor/5",
            rate >= 10_000 and rate >= floor / 5,
            floor_ratio=round(floor / rate, 2),
        )


MEMORY_EVENTS = int(os.environ.get("BENCH_MEMORY_EVENTS", "1000000"))


_HWM_WRAPPER = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
finally:
    with open("/proc/self/status") as fh:
        hwm = next(line for line in fh if line.startswith("VmHWM:"))
    sys.stderr.write("HWM " + hwm.split()[1] + "\\n")
"""


def _peak_rss_mb(module: str, *args: str) -> float:
    """Peak resident memory of ``python -m module args`` as the kernel counts it for that
    program alone (VmHWM after exec; ru_maxrss would include the forking parent's pages)."""
    result = subprocess.run(
        [sys.executable, "-c", _HWM_WRAPPER, module, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("HWM "))
    return int(line.split()[1]) / 1024


def bench_ingest_memory() -> None:
    """Peak RSS of `revbridge ingest` on a 1M-event file: streaming, not loading the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        progress(f"generating {MEMORY_EVENTS} events for the memory benchmark")
        write_events_file(path, MEMORY_EVENTS, seed=2)
        config = Path(tmp) / "revbridge.toml"
        config.write_text('[store]\nurl = "sqlite:///ledger.db"\n')
        progress("ingesting them in a child process")
        peak_mb = _peak_rss_mb(
            "revbridge.cli", "ingest", str(path), "--json", "--config", str(config)
        )
        base_mb = _peak_rss_mb("revbridge.cli", "--help")
        emit(
            "ingest_1m_peak_rss_mb",
            peak_mb,
            "MB",
            "interpreter with revbridge imported",
            base_mb,
            "< 300 MB",
            peak_mb < 300,
            events=MEMORY_EVENTS,
            file_mb=round(path.stat().st_size / 2**20, 1),
        )
