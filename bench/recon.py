"""AR reconciliation of 1M Salesforce invoices against 1M ERP AR records, beside datacompy.

Both sides are generated in DuckDB (``range()``) and written to Parquet, with 1 % of the refs
carrying each variance kind (missing on either side, duplicated on either side, amount,
currency, date, customer, status). Each tool then runs in its own process, from the Parquet
files to its list of differences, so that ``ru_maxrss`` is its own peak memory:
``reconcile_ar`` against ``datacompy.PandasCompare`` (1.x's ``Compare``) on pandas frames of
the same files (Decimal amounts, exact: ``abs_tol=0``). Every planted variance must be found
and none invented.

``BENCH_RECON_ROWS`` chooses the size (default 1,000,000) for quick runs.

``recon_10m`` (opt-in: ``python -m bench recon_10m``; not part of ``make bench``, it takes a
minute and several GB) reconciles 10M against 10M the same way, ``reconcile_ar`` alone
(datacompy does not finish at that size on this machine): target under 60 s.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb

from bench.common import emit, progress

ROWS = int(os.environ.get("BENCH_RECON_ROWS", "1000000"))

# Planted kind by ref number: i % 100 picks it, so 1 % of the refs carry each kind.
PLANTED = {
    0: "missing_in_erp",
    1: "missing_in_source",
    2: "duplicate_in_erp",
    3: "duplicate_in_source",
    4: "amount",
    5: "currency",
    6: "date",
    7: "customer",
    8: "status",
}

_BASE = """
SELECT i, 'a0X' || lpad(CAST(i AS VARCHAR), 15, '0') AS ref,
  CASE WHEN i % 7 = 0 THEN 'credit_memo' ELSE 'invoice' END AS doc_type,
  '001' || lpad(CAST(i % 50000 AS VARCHAR), 15, '0') AS customer_ref,
  ['USD', 'EUR', 'GBP', 'JPY'][1 + (i // 100) % 4] AS currency,
  CAST((hash(i) % 10000000) / 100 AS DECIMAL(18,4)) AS amount,
  DATE '2026-01-01' + CAST(i % 300 AS INTEGER) AS doc_date,
  CASE WHEN i % 3 = 0 THEN 'paid' ELSE 'posted' END AS status
FROM range({rows}) t(i)
"""

_SOURCE = """
COPY (
  WITH b AS ({base})
  SELECT ref, doc_type, customer_ref, currency, amount, doc_date, status FROM b WHERE i % 100 <> 1
  UNION ALL
  SELECT ref, doc_type, customer_ref, currency, amount, doc_date, status FROM b WHERE i % 100 = 3
) TO '{path}' (FORMAT parquet)
"""

_ERP = """
COPY (
  WITH b AS ({base}), e AS (
    SELECT i, ref, doc_type,
      CASE WHEN i % 100 = 7 THEN customer_ref || 'X' ELSE customer_ref END AS customer_ref,
      CASE WHEN i % 100 = 5 THEN 'CHF' ELSE currency END AS currency,
      CASE WHEN i % 100 = 4 THEN amount + 0.01 ELSE amount END AS amount,
      CASE WHEN i % 100 = 6 THEN doc_date + 1 ELSE doc_date END AS doc_date,
      CASE WHEN i % 100 = 8 THEN 'void' ELSE status END AS status
    FROM b WHERE i % 100 <> 0
  )
  SELECT ref, doc_type, customer_ref, currency, amount, doc_date, status
  FROM (SELECT * FROM e UNION ALL SELECT * FROM e WHERE i % 100 = 2)
  ORDER BY hash(i)
) TO '{path}' (FORMAT parquet)
"""


def _generate(folder: Path, rows: int = ROWS) -> tuple[Path, Path]:
    source, erp = folder / "salesforce.parquet", folder / "erp.parquet"
    base = _BASE.format(rows=rows)
    with duckdb.connect() as con:
        con.execute(_SOURCE.format(base=base, path=source))
        con.execute(_ERP.format(base=base, path=erp))
    return source, erp


def _planted_kind(ref: str) -> str | None:
    return PLANTED.get(int(ref[3:]) % 100)


def _run_revbridge(source: str, erp: str) -> dict[str, Any]:
    from revbridge.recon.match import reconcile_ar

    start = time.perf_counter()
    result = reconcile_ar(source, erp)
    seconds = time.perf_counter() - start
    wrong = [(f.kind.value, f.ref) for f in result.findings if _planted_kind(f.ref) != f.kind.value]
    return {
        "seconds": seconds,
        "found": dict(Counter(f.kind.value for f in result.findings)),
        "invented": wrong[:10],
        "repeated": len(result.findings) - len({(f.kind, f.ref) for f in result.findings}),
        "matched": result.matched_count,
    }


def _run_datacompy(source: str, erp: str) -> dict[str, Any]:
    import datacompy
    import pandas as pd

    start = time.perf_counter()
    # Decimal objects keep the amounts exact, as reconcile_ar does.
    df1 = pd.read_parquet(source)
    df2 = pd.read_parquet(erp)
    compare = datacompy.PandasCompare(  # datacompy 1.x's name for Compare
        df1, df2, join_columns="ref", abs_tol=0, rel_tol=0, df1_name="sf", df2_name="erp"
    )
    only_sf = len(compare.df1_unq_rows)
    only_erp = len(compare.df2_unq_rows)
    mismatched = len(compare.all_mismatch())
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "found": {"only_sf": only_sf, "only_erp": only_erp, "mismatched_rows": mismatched},
    }


def _in_subprocess(tool: str, source: Path, erp: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.recon", tool, str(source), str(erp)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _expected(rows: int = ROWS) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for kind_no, kind in PLANTED.items():
        counts[kind] = len(range(kind_no, rows, 100))
    return dict(counts)


TEN_MILLION = 10_000_000


def bench_recon_10m() -> None:
    """Opt-in: 10M Salesforce invoices against 10M ERP AR records, reconcile_ar alone."""
    with tempfile.TemporaryDirectory() as tmp:
        progress(f"recon_10m: generating {TEN_MILLION} Salesforce and ERP AR records")
        source, erp = _generate(Path(tmp), TEN_MILLION)
        progress("recon_10m: reconcile_ar")
        ours = _in_subprocess("revbridge", source, erp)
    expected = _expected(TEN_MILLION)
    assert ours["invented"] == [], f"findings not planted: {ours['invented']}"
    assert ours["repeated"] == 0, f"{ours['repeated']} findings repeated"
    assert ours["found"] == expected, f"found {ours['found']}, planted {expected}"
    emit(
        "recon_10m_seconds",
        ours["seconds"],
        "s",
        "target",
        60.0,
        "< 60 s, every planted variance found, none invented",
        ours["seconds"] < 60,
        rows=TEN_MILLION,
        findings=sum(ours["found"].values()),
        peak_memory_mb=round(ours["maxrss_mb"]),
    )


def bench_recon() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        progress(f"recon: generating {ROWS} Salesforce and ERP AR records")
        source, erp = _generate(Path(tmp))
        progress("recon: reconcile_ar")
        ours = _in_subprocess("revbridge", source, erp)
        progress("recon: datacompy")
        theirs = _in_subprocess("datacompy", source, erp)

    expected = _expected()
    assert ours["invented"] == [], f"findings not planted: {ours['invented']}"
    assert ours["repeated"] == 0, f"{ours['repeated']} findings repeated"
    assert ours["found"] == expected, f"found {ours['found']}, planted {expected}"
    seconds, base = ours["seconds"], theirs["seconds"]
    mb, base_mb = ours["maxrss_mb"], theirs["maxrss_mb"]
    emit(
        "recon_1m_seconds",
        seconds,
        "s",
        "datacompy.PandasCompare (pandas, Decimal amounts)",
        base,
        "< 5 s and >= 3x faster than datacompy",
        seconds < 5 and base >= 3 * seconds,
        rows=ROWS,
        speedup=round(base / seconds, 2),
        findings=sum(ours["found"].values()),
        datacompy_found=theirs["found"],
    )
    emit(
        "recon_1m_peak_memory_mb",
        mb,
        "MB",
        "datacompy.PandasCompare peak RSS",
        base_mb,
        "< 2048 MB",
        mb < 2048,
        rows=ROWS,
    )


def _worker(argv: list[str]) -> int:
    tool, source, erp = argv
    run = {"revbridge": _run_revbridge, "datacompy": _run_datacompy}[tool]
    result = run(source, erp)
    # ru_maxrss is in kilobytes on Linux.
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
