"""Ingest: JSON Lines envelopes into the ledger, idempotently, streaming.

A bad line never stops the file: it goes to the quarantine with its line number and a clear
reason. Lines are validated and appended in batches, each batch in one transaction, so a
crash loses at most an uncommitted batch and a rerun of the same file stores nothing twice.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO

from revbridge.clock import Clock, SystemClock
from revbridge.codec import DecodeError, encode_payload, envelope_head, payload_hash
from revbridge.codec import decode_line as _decode_line
from revbridge.core.events import Direction, Event
from revbridge.core.policy import Pattern, RoutingPolicy, next_run
from revbridge.store.ledger import Ledger, NewEvent, QuarantineRecord, event_params

TARGETS = {Direction.TO_ERP: "erp", Direction.TO_SALESFORCE: "salesforce"}


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    lines: int = 0
    duplicate_of: list[tuple[int, int]] = field(default_factory=list)  # (line, original id)

    def as_dict(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "rejected": self.rejected,
        }

    @property
    def ok(self) -> bool:
        return self.rejected == 0 and self.conflicts == 0


@lru_cache(maxsize=64)
def _next_run(schedule: str, now: datetime) -> datetime:
    # A batch of lines shares one clock reading, so this is computed once per batch.
    return next_run(schedule, now)


def prepare(
    event: Event,
    policy: RoutingPolicy,
    now: datetime,
    raw: str,
    origin: str | None = None,
    line_no: int | None = None,
    dialect: str | None = None,
    payload: str | None = None,
) -> NewEvent:
    """The ledger rows for a validated event: the event itself and its first delivery
    (``payload``: its ``encode_payload``, when the caller already has it)."""
    if payload is None:
        payload = encode_payload(event.type, event.data)
    rule = policy.for_type(event.type)
    due = now if rule.pattern is Pattern.REALTIME else _next_run(rule.schedule or "", now)
    row = {
        "idempotency_key": event.idempotency_key,
        "type": event.type.value,
        "source": event.source,
        "source_id": event.source_id,
        "source_version": event.source_version,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "customer_ref": event.customer_ref,
        "subject_ref": event.subject_ref,
        "payload_hash": payload_hash(event, payload),
        "payload": payload,
    }
    return NewEvent(
        row=row,
        target=TARGETS[event.direction],
        pattern=rule.pattern.value,
        due_at=due,
        raw=raw,
        origin=origin,
        line_no=line_no,
        params=event_params(row, dialect) if dialect else None,
        params_dialect=dialect,
    )


@dataclass(slots=True)
class Chunk:
    """A validated slice of the input: events ready to append, and rejected lines."""

    events: list[NewEvent]
    rejects: list[QuarantineRecord]


def validate_chunk(
    lines: list[tuple[int, bytes]],
    policy: RoutingPolicy,
    now: datetime,
    origin: str,
    dialect: str | None = None,
) -> Chunk:
    """Decode and check lines (pure CPU work: it runs in worker processes for big files)."""
    chunk = Chunk([], [])
    for line_no, raw_line in lines:
        raw = raw_line.decode("utf-8", errors="replace").rstrip("\r\n")
        try:
            event = _decode_line(raw_line)
        except DecodeError as exc:
            rej = exc.rejection
            chunk.rejects.append(
                QuarantineRecord(rej.code, rej.reason, raw, origin, line_no, rej.event_type)
            )
            continue
        _admit(chunk, event, policy, now, raw, origin, line_no, dialect)
    return chunk


def _admit(
    chunk: Chunk,
    event: Event,
    policy: RoutingPolicy,
    now: datetime,
    raw: str,
    origin: str,
    line_no: int | None,
    dialect: str | None,
    payload: str | None = None,
) -> None:
    """``event`` into the chunk: ready to append, or rejected when its flow is disabled."""
    disabled = policy.disabled_reason(event.type)
    if disabled:
        chunk.rejects.append(
            QuarantineRecord(
                "flow_disabled",
                disabled,
                raw,
                origin,
                line_no,
                event.type.value,
                event.idempotency_key,
            )
        )
        return
    chunk.events.append(prepare(event, policy, now, raw, origin, line_no, dialect, payload))


def _raw_envelope(event: Event, payload: str) -> str:
    """The JSON envelope of an event built in-process (what a line holding it would read)."""
    head = json.dumps(envelope_head(event))
    return f'{head[:-1]}, "data": {payload}}}'


def ingest_events(
    ledger: Ledger,
    events: Iterable[Event],
    *,
    policy: RoutingPolicy,
    origin: str,
    clock: Clock | None = None,
    actor: str = "ingest",
) -> IngestResult:
    """Append events already built and checked in-process (a connector's mapping constructs
    them through the domain types, so there is no JSON to parse and check again), in one
    transaction, with the same outcome and audit as ``ingest_lines`` on their envelopes."""
    clock = clock or SystemClock()
    now = clock.now()
    dialect = ledger.engine.dialect.name
    chunk = Chunk([], [])
    result = IngestResult()
    for event in events:
        payload = encode_payload(event.type, event.data)
        raw = _raw_envelope(event, payload)
        _admit(chunk, event, policy, now, raw, origin, None, dialect, payload)
        result.lines += 1
    _append(ledger, chunk, result, now)
    _audit(ledger, actor, origin, result, clock)
    return result


def _append(ledger: Ledger, chunk: Chunk, result: IngestResult, now: datetime) -> None:
    outcome, _conflicts = ledger.append(chunk.events, chunk.rejects, now=now)
    result.accepted += len(outcome.accepted)
    result.duplicates += len(outcome.duplicates)
    result.conflicts += len(outcome.conflicts)
    result.rejected += len(chunk.rejects)
    result.duplicate_of.extend(
        (chunk.events[p].line_no or 0, orig) for p, orig in outcome.duplicates.items()
    )


def _audit(ledger: Ledger, actor: str, origin: str, result: IngestResult, clock: Clock) -> None:
    ledger.audit(
        actor=actor,
        action="ingest",
        entity_type="source",
        entity_id=origin,
        now=clock.now(),
        details=result.as_dict() | {"lines": result.lines},
    )


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[tuple[list[tuple[int, bytes]], int]]:
    """Non-blank numbered lines in slices of ``size``, with the bytes consumed so far."""
    current: list[tuple[int, bytes]] = []
    consumed = 0
    for line_no, raw_line in enumerate(lines, start=1):
        consumed += len(raw_line)
        if raw_line.strip():
            current.append((line_no, raw_line))
        if len(current) >= size:
            yield current, consumed
            current = []
    yield current, consumed


def ingest_lines(
    ledger: Ledger,
    lines: Iterable[bytes],
    *,
    policy: RoutingPolicy,
    origin: str,
    batch_size: int = 2_000,
    clock: Clock | None = None,
    on_progress: Callable[[int], None] | None = None,
    actor: str = "ingest",
    workers: int = 0,
) -> IngestResult:
    """Validate and append envelopes; report accepted, duplicate, conflict and rejected counts.

    With ``workers`` > 1, validation runs in that many processes while this one writes; the
    slices are appended in input order, each in one transaction, so the outcome is the same.
    """
    clock = clock or SystemClock()
    result = IngestResult()
    dialect = ledger.engine.dialect.name

    def append(chunk: Chunk, consumed: int) -> None:
        _append(ledger, chunk, result, clock.now())
        if on_progress:
            on_progress(consumed)

    last_line = 0
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            in_flight: deque[tuple[Future[Chunk], int]] = deque()
            for lines_chunk, consumed in _chunks(lines, batch_size):
                if lines_chunk:
                    last_line = lines_chunk[-1][0]
                    in_flight.append(
                        (
                            pool.submit(
                                validate_chunk, lines_chunk, policy, clock.now(), origin, dialect
                            ),
                            consumed,
                        )
                    )
                while len(in_flight) > 2 * workers:  # bounded: memory stays flat on any file size
                    future, done = in_flight.popleft()
                    append(future.result(), done)
            while in_flight:
                future, done = in_flight.popleft()
                append(future.result(), done)
    else:
        for lines_chunk, consumed in _chunks(lines, batch_size):
            if lines_chunk:
                last_line = lines_chunk[-1][0]
                append(validate_chunk(lines_chunk, policy, clock.now(), origin, dialect), consumed)
    result.lines = last_line
    _audit(ledger, actor, origin, result, clock)
    return result


def iter_lines(stream: BinaryIO) -> Iterator[bytes]:
    yield from stream


def ingest_path(
    ledger: Ledger,
    path: str | Path,
    *,
    policy: RoutingPolicy,
    batch_size: int = 2_000,
    clock: Clock | None = None,
    on_progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> IngestResult:
    """Ingest a JSON Lines file, or standard input when ``path`` is ``-``.

    ``workers`` > 1 validates in that many processes while this one writes (worth it on a
    big file and idle cores); the default validates in-process.
    """
    if str(path) == "-":
        return ingest_lines(
            ledger,
            iter_lines(sys.stdin.buffer),
            policy=policy,
            origin="<stdin>",
            batch_size=batch_size,
            clock=clock,
            on_progress=on_progress,
            workers=workers or 0,
        )
    p = Path(path)
    with p.open("rb") as fh:
        return ingest_lines(
            ledger,
            iter_lines(fh),
            policy=policy,
            origin=str(p),
            batch_size=batch_size,
            clock=clock,
            on_progress=on_progress,
            workers=workers or 0,
        )
