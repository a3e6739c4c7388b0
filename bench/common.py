"""Shared helpers for benchmarks: result lines, medians, scratch PostgreSQL databases."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

PG_URL = os.environ.get(
    "REVBRIDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def emit(
    bench: str,
    value: float,
    unit: str,
    baseline: str,
    baseline_value: float,
    target: str,
    met: bool,
    **extra: Any,
) -> None:
    line = {
        "bench": bench,
        "value": round(value, 3),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": round(baseline_value, 3),
        "target": target,
        "met": bool(met),
    } | extra
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def progress(msg: str) -> None:
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


def _admin() -> psycopg.Connection[Any]:
    url = make_url(PG_URL)
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        dbname=url.database or "postgres",
        password=url.password,
        autocommit=True,
    )


@contextmanager
def scratch_pg() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one measurement; its SQLAlchemy URL."""
    name = f"rb_bench_{uuid.uuid4().hex[:10]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
