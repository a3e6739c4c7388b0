"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench NAME ...``."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench.engine import bench_drain, bench_latency, bench_scale_out, bench_worker_throughput
from bench.ingest import bench_ingest, bench_ingest_memory
from bench.netsuite import bench_netsuite
from bench.recon import bench_recon
from bench.salesforce import bench_salesforce_capture

BENCHMARKS: dict[str, Callable[[], None]] = {
    "ingest": bench_ingest,
    "ingest_memory": bench_ingest_memory,
    "worker": bench_worker_throughput,
    "scale_out": bench_scale_out,
    "drain": bench_drain,
    "latency": bench_latency,
    "netsuite": bench_netsuite,
    "recon": bench_recon,
    "salesforce_capture": bench_salesforce_capture,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}\n")
        return 2
    for name in chosen:
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
