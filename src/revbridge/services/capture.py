"""Capture through a ``SourcePort``: what happened on one side becomes canonical events in
the ledger. On the ERP side: cash entered by an accountant, a credit hold, GL postings, for
delivery to Salesforce. On the Salesforce side: the fake org's change feed
(``revbridge.testing.FakeSalesforce``); the real org has its own capture
(``salesforce/capture.py``).

A watermark per stream says where the last read stopped. It advances only after what was
read is durably in the ledger, so a crash re-reads (the ledger's idempotency makes that a
duplicate, not a double) and never skips.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from revbridge.clock import Clock, SystemClock
from revbridge.core.policy import RoutingPolicy
from revbridge.engine.ports import ErpPort, SourcePort
from revbridge.engine.queue import DeliveryQueue
from revbridge.engine.targets_state import target_states
from revbridge.mdm.ownership import Ownership
from revbridge.services.ingest import IngestResult, ingest_lines
from revbridge.services.mdm_sync import filter_erp_capture, filter_salesforce_capture
from revbridge.store.ledger import Ledger
from revbridge.store.schema import capture_streams, watermarks


@dataclass
class ErpSource:
    """An ERP adapter's capture: what its ``capture_changes(watermark, with_master=...)``
    reads (NetSuite: payments, credit, GL postings; Tryton: payments and credit positions;
    the fake ERP as NetSuite), the customer's master attributes beside each credit status.
    ``name`` is the adapter's (``capabilities.name``), so the stream is ``erp:netsuite``."""

    erp: Any
    name: str
    side: str = "erp"

    async def changes(self, watermark: str | None) -> tuple[Sequence[dict[str, Any]], str]:
        envelopes, mark = await self.erp.capture_changes(watermark, with_master=True)
        return envelopes, mark


log = structlog.get_logger("revbridge.capture")


def source_for(erp: ErpPort) -> SourcePort | None:
    """The capture source of an ERP adapter, when it has one: an adapter that can be
    captured says so by having ``capture_changes`` (no list of systems here, so a new
    adapter needs no edit in this module)."""
    if not hasattr(erp, "capture_changes"):
        return None
    return ErpSource(erp, name=erp.capabilities.name)


def load_watermark(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(watermarks.c.value).where(watermarks.c.name == name)).scalar()


def save_watermark(engine: Engine, name: str, value: str, now: dt.datetime) -> None:
    with engine.begin() as conn:
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        stmt = dialect.insert(watermarks).values(name=name, value=value, updated_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"], set_={"value": value, "updated_at": now}
            )
        )


# The real org's capture (``salesforce.capture.SalesforceCapture``: a watermark per object, a
# replay id per channel) as one stream in ``capture_streams``.
ORG_STREAM = "salesforce:org"


def record_capture(
    engine: Engine, stream: str, now: dt.datetime, *, error: str | None = None
) -> None:
    """Note how a capture round of ``stream`` went: a success (``error`` None) clears its
    failure; a failure keeps the time the failing began and the last error (the alert
    ``capture_failing`` and ``revbridge status`` read them)."""
    with engine.begin() as conn:
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        if error is None:
            values: dict[str, Any] = {"last_ok_at": now, "failing_since": None, "last_error": None}
            update = values
        else:
            values = {"failing_since": now, "last_error": error}
            update = {
                "failing_since": func.coalesce(capture_streams.c.failing_since, now),
                "last_error": error,
            }
        stmt = dialect.insert(capture_streams).values(name=stream, updated_at=now, **values)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["name"], set_={**update, "updated_at": now})
        )


def record_capture_failure(
    engine: Engine, stream: str, now: dt.datetime, exc: BaseException
) -> None:
    """``record_capture`` of a failed round; a ledger that cannot take it (it may be why the
    round failed) leaves the round's own error to be raised."""
    try:
        record_capture(engine, stream, now, error=f"{type(exc).__name__}: {exc}")
    except Exception as store_error:
        log.warning("capture_health_not_recorded", stream=stream, error=str(store_error))


def capture_health(engine: Engine) -> list[dict[str, Any]]:
    """Each capture stream that has run: when its last round succeeded, since when every
    round has failed (None: it is not failing) and the last error."""
    with engine.connect() as conn:
        return [
            {
                "stream": r.name,
                "last_ok_at": r.last_ok_at,
                "failing_since": r.failing_since,
                "last_error": r.last_error,
            }
            for r in conn.execute(select(capture_streams).order_by(capture_streams.c.name))
        ]


@dataclass
class CaptureResult:
    stream: str
    read: int
    ingest: IngestResult
    watermark: str | None
    echoes: int = 0  # read, and dropped as the hub's own writes coming back
    skipped: str | None = None  # why nothing was read (the side's target is paused)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "read": self.read,
            "echoes": self.echoes,
            "watermark": self.watermark,
            **({"skipped": self.skipped} if self.skipped else {}),
        } | (self.ingest.as_dict())


def stream_of(source: SourcePort) -> str:
    """The capture stream ``source`` reads (its watermark's name): ``erp:netsuite``."""
    return f"{source.side}:{source.name}"


def capture_failure(source: SourcePort, exc: BaseException) -> str:
    """What a capture loop says when a round failed: which system, which stream, and why
    (``capture failed: connection refused`` alone left the reader to guess the system)."""
    return f"capture failed from {source.name} (stream {stream_of(source)}): {exc}"


async def capture_once(
    source: SourcePort,
    ledger: Ledger,
    policy: RoutingPolicy,
    *,
    clock: Clock | None = None,
    ownership: Ownership | None = None,
) -> CaptureResult:
    """Read one round of changes, ingest them, then (only then) advance the watermark.
    ``ownership``: the customer master's (``[mdm]``); the default owners when not given."""
    clock = clock or SystemClock()
    stream = stream_of(source)
    mark = load_watermark(ledger.engine, stream)
    state = target_states(ledger.engine).get(source.side)
    if state is not None and state.paused:
        # Paused by an operator (planned downtime): the system is not called at all.
        why = (
            f"{source.side} is paused: not called, nothing read "
            f"(`revbridge dr resume {source.side}` first)"
        )
        return CaptureResult(stream, 0, IngestResult(), mark, skipped=why)
    try:
        return await _capture_round(source, ledger, policy, stream, mark, clock, ownership)
    except Exception as exc:
        record_capture_failure(ledger.engine, stream, clock.now(), exc)
        raise


async def _capture_round(
    source: SourcePort,
    ledger: Ledger,
    policy: RoutingPolicy,
    stream: str,
    mark: str | None,
    clock: Clock,
    ownership: Ownership | None,
) -> CaptureResult:
    try:
        envelopes, new_mark = await source.changes(mark)
    finally:  # made, answered or not: it counts against the side's budget
        DeliveryQueue(ledger.engine).add_api_calls(
            clock.now(), {(source.side, "capture", "poll"): 1}
        )
    read = len(envelopes)
    if source.side == "erp":
        # The customer master links the customers the ERP names and drops its own echoes.
        envelopes, _echoes = filter_erp_capture(
            ledger.engine, source.name, envelopes, now=clock.now(), ownership=ownership
        )
    else:  # an Account version whose master attributes are as last synced is an echo
        envelopes, _echoes = filter_salesforce_capture(ledger.engine, envelopes, ownership)
    lines = [json.dumps(e, default=str).encode() for e in envelopes]
    result = ingest_lines(ledger, lines, policy=policy, origin=f"capture:{stream}", clock=clock)
    save_watermark(ledger.engine, stream, new_mark, clock.now())
    record_capture(ledger.engine, stream, clock.now())
    return CaptureResult(stream, read, result, new_mark, echoes=_echoes)


async def capture_until_current(
    source: SourcePort,
    ledger: Ledger,
    policy: RoutingPolicy,
    *,
    clock: Clock | None = None,
    ownership: Ownership | None = None,
    max_rounds: int = 10_000,
) -> list[CaptureResult]:
    """Capture round after round until a round reads nothing new (nothing read, or the
    watermark did not move: a source that re-reads its boundary), at most ``max_rounds``."""
    results: list[CaptureResult] = []
    for _ in range(max_rounds):
        before = load_watermark(ledger.engine, stream_of(source))
        result = await capture_once(source, ledger, policy, clock=clock, ownership=ownership)
        results.append(result)
        if result.skipped or not result.read or result.watermark == before:
            break
    return results
