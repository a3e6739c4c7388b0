"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench NAME ...``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

# name -> "module:function", imported only when run: the ingest benchmark's validation
# processes are spawned, and a spawned process imports this module again; importing every
# benchmark's libraries there (DuckDB, FastAPI...) cost each of them 0.7 s, which the
# benchmark would have counted as ingest time.
BENCHMARKS: dict[str, str] = {
    "ingest": "bench.ingest:bench_ingest",
    "ingest_memory": "bench.ingest:bench_ingest_memory",
    "worker": "bench.engine:bench_worker_throughput",
    "scale_out": "bench.engine:bench_scale_out",
    "drain": "bench.engine:bench_drain",
    "drain_postgresql": "bench.engine:bench_drain_postgresql",
    "latency": "bench.engine:bench_latency",
    "netsuite": "bench.netsuite:bench_netsuite",
    "recon": "bench.recon:bench_recon",
    "recon_10m": "bench.recon:bench_recon_10m",  # opt-in: by name only (see OPT_IN)
    "salesforce_capture": "bench.salesforce:bench_salesforce_capture",
    "mdm_match": "bench.mdm:bench_mdm_match",
    "webhook": "bench.serve:bench_webhook",
}


def _load(name: str) -> Callable[[], None]:
    module, function = BENCHMARKS[name].split(":")
    run: Callable[[], None] = getattr(importlib.import_module(module), function)
    return run


OPT_IN = frozenset({"recon_10m"})  # long or heavy: run only when named


def main(argv: list[str]) -> int:
    chosen = argv or [n for n in BENCHMARKS if n not in OPT_IN]
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}\n")
        return 2
    for name in chosen:
        _load(name)()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
