"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench NAME ...``."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench.engine import bench_drain, bench_latency, bench_scale_out, bench_worker_throughput
from bench.ingest import bench_ingest, bench_ingest_memory
from bench.mdm import bench_mdm_match
from bench.netsuite import bench_netsuite
from bench.recon import bench_recon, bench_recon_10m
from bench.salesforce import bench_salesforce_capture
from bench.serve import bench_webhook

BENCHMARKS: dict[str, Callable[[], None]] = {
    "ingest": bench_ingest,
    "ingest_memory": bench_ingest_memory,
    "worker": bench_worker_throughput,
    "scale_out": bench_scale_out,
    "drain": bench_drain,
    "latency": bench_latency,
    "netsuite": bench_netsuite,
    "recon": bench_recon,
    "recon_10m": bench_recon_10m,  # opt-in: by name only (see OPT_IN)
    "salesforce_capture": bench_salesforce_capture,
    "mdm_match": bench_mdm_match,
    "webhook": bench_webhook,
}


OPT_IN = frozenset({"recon_10m"})  # long or heavy: run only when named


def main(argv: list[str]) -> int:
    chosen = argv or [n for n in BENCHMARKS if n not in OPT_IN]
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}\n")
        return 2
    for name in chosen:
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
