"""Prometheus metrics: in-process counters for the HTTP edge, ledger gauges read at scrape.

The ledger is the truth shared by every process (the server and any ``revbridge worker``),
so delivery outcomes, backlog, API calls and circuit state are computed from it when
Prometheus scrapes (a custom collector), not counted in one process's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from revbridge.clock import SystemClock
from revbridge.services.serve import backlog
from revbridge.store.schema import (
    UTCDateTime,
    api_calls,
    attempts,
    capture_streams,
    deliveries,
    targets,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class LedgerCollector(Collector):
    """Delivery outcomes, latency, backlog, API calls, circuits and capture streams, from
    the ledger."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        now = SystemClock().now()
        outcomes = CounterMetricFamily(
            "revbridge_delivery_attempts",
            "Delivery attempts by target and outcome (delivered, transient, dead, ...).",
            labels=["target", "outcome"],
        )
        depth = GaugeMetricFamily(
            "revbridge_backlog_events",
            "Undelivered deliveries by target and state.",
            labels=["target", "state"],
        )
        age = GaugeMetricFamily(
            "revbridge_backlog_oldest_age_seconds",
            "Age of the oldest undelivered event per target and state.",
            labels=["target", "state"],
        )
        calls = GaugeMetricFamily(
            "revbridge_api_calls_today",
            "Calls made to each external system today (UTC), against its daily budget.",
            labels=["target"],
        )
        circuit = GaugeMetricFamily(
            "revbridge_circuit_state",
            "1 for the circuit breaker's current state of each target.",
            labels=["target", "state"],
        )
        paused = GaugeMetricFamily(
            "revbridge_target_paused", "1 when an operator paused the target.", labels=["target"]
        )
        capture_ok = GaugeMetricFamily(
            "revbridge_capture_last_success_timestamp_seconds",
            "Unix time of each capture stream's last successful round (absent: none yet).",
            labels=["stream"],
        )
        capture_failing = GaugeMetricFamily(
            "revbridge_capture_failing",
            "1 while every capture round of the stream fails (since its failing_since).",
            labels=["stream"],
        )
        capture_failing_since = GaugeMetricFamily(
            "revbridge_capture_failing_since_timestamp_seconds",
            "Unix time the stream's failing rounds began (only while it fails).",
            labels=["stream"],
        )
        latency = HistogramMetricFamily(
            "revbridge_delivery_latency_seconds",
            "Duration of delivery attempts finished in the last hour.",
            labels=["target"],
        )
        with self.engine.connect() as conn:
            for target, outcome, n in conn.execute(
                select(deliveries.c.target, attempts.c.outcome, func.count())
                .join(deliveries, deliveries.c.event_id == attempts.c.event_id)
                .where(attempts.c.outcome.is_not(None))
                .group_by(deliveries.c.target, attempts.c.outcome)
            ):
                outcomes.add_metric([target, outcome], float(n))
            for target, n in conn.execute(
                select(api_calls.c.target, func.sum(api_calls.c.calls))
                .where(api_calls.c.day == now.date().isoformat())
                .group_by(api_calls.c.target)
            ):
                calls.add_metric([target], float(n or 0))
            for row in conn.execute(select(targets)):
                for state in ("closed", "open", "half_open"):
                    circuit.add_metric([row.name, state], 1.0 if row.circuit == state else 0.0)
                paused.add_metric([row.name], 1.0 if row.paused else 0.0)
            for c in conn.execute(select(capture_streams)):
                ok, since = c.last_ok_at, c.failing_since  # aware: UTCDateTime columns
                if ok is not None:
                    capture_ok.add_metric([c.name], ok.timestamp())
                capture_failing.add_metric([c.name], 0.0 if since is None else 1.0)
                if since is not None:
                    capture_failing_since.add_metric([c.name], since.timestamp())
            per_target: dict[str, list[float]] = {}
            since = now - timedelta(hours=1)
            for target, started, finished in conn.execute(
                select(deliveries.c.target, attempts.c.started_at, attempts.c.finished_at)
                .join(deliveries, deliveries.c.event_id == attempts.c.event_id)
                .where(attempts.c.finished_at >= since)
                .limit(100_000)
            ):
                s = UTCDateTime().process_result_value(started, conn.dialect)
                f = UTCDateTime().process_result_value(finished, conn.dialect)
                if s and f:
                    per_target.setdefault(target, []).append((f - s).total_seconds())
        for target, values in per_target.items():
            cumulative = [
                (str(b), float(sum(1 for v in values if v <= b))) for b in LATENCY_BUCKETS
            ]
            cumulative.append(("+Inf", float(len(values))))
            latency.add_metric([target], cumulative, sum_value=sum(values))
        for target, state, n, oldest_s in backlog(self.engine, now):
            depth.add_metric([target, state], float(n))
            age.add_metric([target, state], oldest_s)
        yield from (outcomes, depth, age, calls, circuit, paused, latency)
        yield from (capture_ok, capture_failing, capture_failing_since)


class Metrics:
    """One registry per app (tests build many apps; the global registry would clash)."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(LedgerCollector(engine))
        self.requests = Counter(
            "revbridge_http_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "revbridge_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "revbridge_webhook_events",
            "Events received by webhook, by endpoint and outcome (accepted, duplicate, ...).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
