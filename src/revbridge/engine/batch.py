"""Batch delivery: collect due events of one class, write the target's own import file with a
manifest, submit it, and record the outcome per event.

The schedule is in the data: at ingest a batch-class delivery is due at its class's next cron
time, so "run the nightly batch" means "deliver the batch-class deliveries that are due".
``force`` runs a class now (``revbridge batch run --class C``).

Never twice: items are claimed with a lease like real-time deliveries; an item whose earlier
attempt's outcome is unknown (a batch submitted, no answer recorded) is looked up by its
reference first; the target's import is an upsert by reference; only items not confirmed are
put in a rerun.

Summarized posting (a ``SummaryPort`` target, e.g. NetSuite with ``revenue_posting =
"summarized"``): the claimed items are grouped by the summarized document they belong in
(revenue per period and currency); each document is posted from its complete set, the items
of earlier runs read back through the trace (``summary_lines``) plus the new ones, as an
upsert, one process at a time per document (``slots_for`` with a limit of 1). The trace is
written before the outcomes, so a crash in between re-posts the same set (a no-op), never a
set that misses a delivered item.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, select, text, update

from revbridge.codec import decode_payload
from revbridge.core.events import (
    SPECS,
    CustomerUpserted,
    EventData,
    EventType,
    GlPosted,
    ReportingRefreshed,
    RevenueRecognized,
)
from revbridge.engine.concurrency import slots_for
from revbridge.engine.dispatch import plan_for, record_kind
from revbridge.engine.ports import (
    BatchItem,
    BatchPort,
    BatchScreen,
    ErpPort,
    RecordKind,
    SummaryPort,
)
from revbridge.engine.queue import PICK_ONCE, Claimed, _ts
from revbridge.errors import DomainError, Held, TerminalError, TransientError
from revbridge.store.schema import batch_items, batches, deliveries, events
from revbridge.store.tables_engine import summary_lines

if TYPE_CHECKING:
    from revbridge.engine.worker import Target, Worker

# The picked ids are taken as the realtime claim takes them (``queue.PICK_ONCE``): an ``IN``
# over a ``LIMIT … SKIP LOCKED`` sub-query could lease more than the batch size.
_CLAIM_BATCH_SQL = """
UPDATE deliveries
SET state = 'in_flight', lease_expires_at = :lease, worker_id = :worker,
    attempts = attempts + 1, updated_at = :now
WHERE event_id {among} (
    SELECT d.event_id FROM deliveries d JOIN events e ON e.id = d.event_id
    WHERE d.target = :target AND d.pattern = 'batch' AND d.state = 'pending'
      AND e.type = :type AND (d.due_at <= :now OR :force)
    ORDER BY d.event_id
    LIMIT :limit {lock}
){end}
RETURNING event_id, attempts
"""
_CLAIM_BATCH = {
    "postgresql": _CLAIM_BATCH_SQL.format(
        lock="FOR UPDATE OF d SKIP LOCKED", **PICK_ONCE["postgresql"]
    ),
    "sqlite": _CLAIM_BATCH_SQL.format(lock="", **PICK_ONCE["sqlite"]),
}


# How a batch run's items went, as the operator reads them (`batch run`, its audit row):
# items = delivered + failed + retried + parked + held (for review) + superseded.
BATCH_COUNTS = ("items", "delivered", "failed", "retried", "parked", "held", "superseded")


@dataclass(slots=True)
class BatchReport:
    event_type: str
    target: str
    batch_id: int | None = None
    items: int = 0
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    parked: int = 0
    held: int = 0
    found_existing: int = 0
    file_path: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None  # why the class did not run (its target paused, down...)
    batch_ids: list[int] = field(default_factory=list)  # every import file of the run
    superseded: int = 0  # older versions of records already there in a newer one: not sent
    error: str | None = None  # why items failed or retry (the first reason of the run)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def add(self, other: BatchReport) -> None:
        """Count ``other`` (the next file of the same run) in this report; the file and
        manifest shown are the last one's."""
        counts = ("items", "delivered", "failed", "retried", "parked", "held", "found_existing")
        for k in (*counts, "superseded"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        if other.batch_id is not None:
            self.batch_id, self.file_path, self.manifest = (
                other.batch_id,
                other.file_path,
                other.manifest,
            )
            self.batch_ids.append(other.batch_id)
        self.error = self.error or other.error

    def detail(self) -> str:
        """One line for an operator under the class's counts: its import file, or why there
        is none (nothing due, skipped, or nothing left to send once older versions, waiting
        and held items are set aside)."""
        if self.skipped:
            return f"skipped: {self.skipped}"
        aside = [
            f"{n} {what}"
            for n, what in (
                (self.superseded, "superseded by newer versions"),
                (self.parked, "waiting for what they depend on"),
                (self.held, "held for review"),
            )
            if n
        ]
        note = f"; {', '.join(aside)}" if aside else ""
        if self.file_path:
            return f"file {self.file_path}{note}"
        if not self.items:
            return "nothing due"
        if self.items == self.superseded + self.parked + self.held:
            return f"nothing to send: {', '.join(aside)}"
        return f"sent record by record to {self.target} (no file){note}"

    def why(self, reason: object) -> None:
        """Keep the first reason an item failed or retries, for the operator."""
        if self.error is None:
            self.error = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"


def control_totals(items: Sequence[EventData]) -> dict[str, str]:
    """Per-currency control totals: what finance ticks off against the import log."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for data in items:
        match data:
            case RevenueRecognized() | GlPosted():
                for line in data.lines:
                    totals[line.currency] += line.debit
            case ReportingRefreshed():
                for b in data.balances:
                    totals[b.currency] += b.open_balance
            case CustomerUpserted():
                pass  # master data: the record count is the control
    return {c: str(v) for c, v in sorted(totals.items())}


def manifest_for(
    event_type: str, target: str, fmt: str, content: bytes, items: Sequence[EventData]
) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "target": target,
        "format": fmt,
        "record_count": len(items),
        "control_totals": control_totals(items),
        "sha256": hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
    }


class BatchRunner:
    """Runs batch classes through a worker's queue and targets; what becomes of each item is
    reported through the worker's ``OutcomeSink`` interface, like a real-time round."""

    def __init__(self, worker: Worker, batch_dir: Path, *, batch_size: int = 1000) -> None:
        self.worker = worker
        self.queue = worker.queue
        self.batch_dir = batch_dir
        self.batch_size = batch_size

    def due_classes(self, now: datetime) -> list[str]:
        with self.queue.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.type)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(
                    and_(
                        deliveries.c.pattern == "batch",
                        deliveries.c.state == "pending",
                        deliveries.c.due_at <= now,
                    )
                )
                .distinct()
            ).all()
        return sorted(r.type for r in rows)

    def _claim(
        self, target: str, event_type: str, now: datetime, force: bool, limit: int
    ) -> list[Claimed]:
        engine = self.queue.engine
        with engine.begin() as conn:
            rows = conn.execute(
                text(_CLAIM_BATCH[conn.dialect.name]),
                {
                    "lease": _ts(conn, now + self.worker.settings.lease),
                    "worker": self.worker.worker_id,
                    "now": _ts(conn, now),
                    "target": target,
                    "type": event_type,
                    "force": force,
                    "limit": limit,
                },
            ).all()
        if not rows:
            return []
        claimed: list[Claimed] = self.queue.claimed_rows(
            dict(rows),
            self.worker.worker_id,
            now,
            "batch",
            lease_until=now + self.worker.settings.lease,
        )
        return claimed

    async def run(
        self, event_type: str, *, now: datetime, force: bool = False, probe: bool = False
    ) -> BatchReport:
        """Run a batch class: as many import files as its due items need, each at most the
        target's declared ``batch_size`` (and this runner's), until none is left or one
        comes back with items to retry (the system is failing: the rest waits for the next
        run instead of hammering it). ``probe``: one file of one item, the circuit's
        half-open probe."""
        from revbridge.engine.worker import TARGET_OF

        et = EventType(event_type)
        target_name = TARGET_OF[SPECS[et].direction]
        size = min(self.batch_size, self.worker.targets[target_name].port.capabilities.batch_size)
        size = 1 if probe else size
        total = BatchReport(event_type=event_type, target=target_name)
        while True:
            report = await self._run_once(et, target_name, now, force, size)
            total.add(report)
            if probe or report.items < size or report.retried:
                return total

    async def _run_once(
        self, et: EventType, target_name: str, now: datetime, force: bool, size: int
    ) -> BatchReport:
        """One import file (or one round of records) of up to ``size`` items."""
        event_type = et.value
        target = self.worker.targets[target_name]
        report = BatchReport(event_type=event_type, target=target_name)
        claimed = self._claim(target_name, event_type, now, force, size)
        report.items = len(claimed)
        if not claimed:
            return report
        newer = self.queue.superseded(claimed, target_name)
        if newer:
            # Older versions of records a newer one of which is already there: not sent.
            for c in claimed:
                if c.event_id in newer:
                    self.worker.record_superseded(target, c, *newer[c.event_id])
            claimed = [c for c in claimed if c.event_id not in newer]
            report.superseded += len(newer)
            if not claimed:
                self.worker.flush_outcomes()
                return report
        port = target.port
        if isinstance(port, SummaryPort):
            claimed = await self._summarize(target, port, event_type, claimed, now, report)
            if not claimed:
                return report
        if (
            not isinstance(port, BatchPort)
            or not isinstance(port, ErpPort)
            or record_kind(SPECS[et].payload) not in port.capabilities.batch_kinds
        ):
            # No import file for this target, or none for this kind of record: deliver the
            # batch record by record, and write what became of each now (a one-off `batch
            # run` has no next claim to carry them).
            stats = self.worker.stats
            before = (stats.delivered, stats.dead_lettered, stats.retried, stats.parked)
            self.worker.flush_outcomes()  # the superseded ones above: a round starts afresh
            await self.worker.deliver_round(target, claimed)
            self.worker.write_outcomes(target_name)
            report.delivered += stats.delivered - before[0]
            report.failed += stats.dead_lettered - before[1]
            report.retried += stats.retried - before[2]
            report.parked += stats.parked - before[3]
            return report
        pending: list[tuple[Claimed, EventData, str, dict[str, str]]] = []
        in_batch: set[str] = {c.subject_ref for c in claimed}
        unanswered: TransientError | None = None  # a look-up failed: the system is not answering
        for c, data in self._decoded(et, claimed, report):
            plan = plan_for(data, c.idempotency_key)
            refs = self.queue.resolve(target_name, plan.needs)
            missing = [r for r in plan.needs if r not in refs and r not in in_batch]
            if missing:
                self.worker.record_parked(target, c, missing[0])
                report.parked += 1
                continue
            if c.outcome_unknown and plan.creates_document and plan.kind is not None:
                # (An upsert is sent again, not looked up: the record's earlier version
                # would be found and this one taken as landed.)
                if unanswered is not None:
                    # Not one look-up per item against a system that does not answer: the
                    # rest retry with the first, and only its call counts for the circuit.
                    not_asked = TransientError(
                        f"not looked up: the look-up before it failed ({unanswered})",
                        retry_after=unanswered.retry_after,
                    )
                    self.worker.record_transient(target, c, not_asked, call_failed=False)
                    report.retried += 1
                    continue
                self.worker.count_call(target, event_type, "batch")  # the look-up
                try:
                    found = await port.find(plan.kind, plan.external_ref)
                except Exception as exc:  # unanswered: the record may be there
                    # Whatever the error, the look-up did not say: never a dead letter (the
                    # earlier attempt may have landed), and never sent again unseen.
                    unanswered = (
                        exc
                        if isinstance(exc, TransientError)  # keeps a 429's Retry-After
                        else TransientError(f"look-up of {plan.external_ref} failed: {exc}")
                    )
                    self.worker.record_transient(target, c, unanswered)
                    report.why(unanswered)
                    report.retried += 1
                    continue
                if found is not None:
                    self.worker.record_delivered(target, c, found.erp_id)
                    report.found_existing += 1
                    report.delivered += 1
                    continue
            pending.append((c, data, plan.external_ref, refs))
        if not pending:
            self.worker.flush_outcomes()
            return report
        kind = plan_for(pending[0][1], pending[0][0].idempotency_key).kind
        assert kind is not None
        items = [
            BatchItem(external_ref=ref, data=data, refs=refs) for _, data, ref, refs in pending
        ]
        if isinstance(port, BatchScreen):
            pending, items = await self._screen(target, port, kind, pending, items, report)
            if not pending:
                self.worker.flush_outcomes()
                return report
        content = port.render_batch(kind, items)
        manifest = manifest_for(
            event_type, target_name, port.batch_format, content, [i.data for i in items]
        )
        batch_id, path = self._record_batch(
            target_name, event_type, content, manifest, pending, now
        )
        report.batch_id, report.file_path, report.manifest = batch_id, str(path), manifest
        self.worker.count_call(target, event_type, "batch")
        try:
            outcomes = {o.external_ref: o for o in await port.submit_batch(kind, content, manifest)}
        except (TerminalError, DomainError) as exc:  # the system refused the file as a whole
            # It answered (it is up), and the same file would be refused again: every item
            # goes to the dead-letter queue with why, to be replayed once the cause is fixed,
            # instead of retrying night after night until its attempts run out.
            target.breaker.record_success()
            error = f"batch {batch_id} refused as a whole: {exc}"
            for c, *_ in pending:
                self.worker.record_dead(c, error)
                self._item(batch_id, c.event_id, "failed", None, str(exc))
            report.failed += len(pending)
            report.why(error)
            self.worker.flush_outcomes()
            self._finish_batch(
                batch_id, "failed", now, {"error": str(exc), "dead_lettered": len(pending)}
            )
            return report
        except Exception as exc:  # the whole submission failed: every item retries
            # One failed call, one failure for the circuit, whatever the file's size: a
            # failed nightly file of 500 records is not 500 failures of the system.
            for i, (c, *_) in enumerate(pending):
                self.worker.record_transient(target, c, exc, call_failed=i == 0)
            report.retried = len(pending)
            report.why(exc)
            self.worker.flush_outcomes()
            self._finish_batch(batch_id, "failed", now, {"error": str(exc)})
            return report
        target.breaker.record_success()  # the system took the file and answered
        for c, _, ref, _ in pending:
            o = outcomes.get(ref)
            if o is not None and o.erp_id is not None:
                self.worker.record_delivered(target, c, o.erp_id)
                report.delivered += 1
                self._item(batch_id, c.event_id, "delivered", o.erp_id, None)
            elif o is not None and not o.transient:
                error = f"batch {batch_id}: {o.error}"
                self.worker.record_dead(c, error)
                report.why(error)
                report.failed += 1
                self._item(batch_id, c.event_id, "failed", None, o.error)
            else:
                reason = o.error if o is not None else "not in the import result"
                # The system is up (it answered): a record it asks to retry is not a
                # failed call, and does not count against the circuit.
                self.worker.record_transient(
                    target, c, RuntimeError(f"batch {batch_id}: {reason}"), call_failed=False
                )
                report.why(f"batch {batch_id}: {reason}")
                report.retried += 1
                self._item(batch_id, c.event_id, "retry", None, reason)
        self.worker.flush_outcomes()
        state = "completed" if report.failed == 0 and report.retried == 0 else "partial"
        self._finish_batch(batch_id, state, now, report.as_dict())
        return report

    def _decoded(
        self, et: EventType, claimed: Sequence[Claimed], report: BatchReport
    ) -> list[tuple[Claimed, EventData]]:
        """The claimed items with their payloads; one whose stored payload no longer decodes
        (accepted under older rules, or changed in the ledger by hand) is dead-lettered with
        why, as on the real-time route, and does not stop the file."""
        decoded: list[tuple[Claimed, EventData]] = []
        for c in claimed:
            try:
                decoded.append((c, decode_payload(et, c.payload)))
            except (ValueError, DomainError) as exc:  # pydantic's ValidationError included
                error = f"terminal: the stored payload no longer decodes: {exc}"
                self.worker.record_dead(c, error)
                report.why(error)
                report.failed += 1
        return decoded

    async def _screen(
        self,
        target: Target,
        port: BatchScreen,
        kind: RecordKind,
        pending: list[tuple[Claimed, EventData, str, dict[str, str]]],
        items: list[BatchItem],
        report: BatchReport,
    ) -> tuple[list[tuple[Claimed, EventData, str, dict[str, str]]], list[BatchItem]]:
        """The port's per-record checks: the records it lets through (as it changed them);
        the others are held, dead-lettered or retried, like their real-time twins."""
        kept: list[tuple[Claimed, EventData, str, dict[str, str]]] = []
        kept_items: list[BatchItem] = []
        self.worker.count_call(target, pending[0][0].type, "batch")  # the screening
        for (c, _, ref, refs), result in zip(
            pending, await port.screen_batch(kind, items), strict=True
        ):
            if isinstance(result, Held):
                self.worker.record_held(c, result.waits_for, str(result))
                report.held += 1
            elif isinstance(result, (TerminalError, DomainError)):
                self.worker.record_dead(c, f"terminal: {result}")
                report.why(result)
                report.failed += 1
            elif isinstance(result, Exception):
                self.worker.record_transient(target, c, result)
                report.why(result)
                report.retried += 1
            else:
                kept.append((c, result.data, ref, refs))
                kept_items.append(result)
        return kept, kept_items

    async def _summarize(
        self,
        target: Target,
        port: SummaryPort,
        event_type: str,
        claimed: list[Claimed],
        now: datetime,
        report: BatchReport,
    ) -> list[Claimed]:
        """Post the items that the target summarizes; returns the others."""
        et = EventType(event_type)
        rest: list[Claimed] = []
        groups: dict[str, list[tuple[Claimed, EventData, str]]] = defaultdict(list)
        kind: RecordKind | None = None
        for c, data in self._decoded(et, claimed, report):
            plan = plan_for(data, c.idempotency_key)
            kind = plan.kind
            try:
                ref = port.summary_ref(plan.kind, data) if plan.kind is not None else None
            except (TerminalError, DomainError) as exc:
                self.worker.record_dead(c, f"terminal: {exc}")
                report.why(exc)
                report.failed += 1
                continue
            if ref is None:
                rest.append(c)
            else:
                groups[ref].append((c, data, plan.external_ref))
        if not groups:
            return rest
        assert kind is not None
        for ref, members in sorted(groups.items()):
            # One process at a time per document: each posts the complete set it sees.
            lock = slots_for(self.queue.engine, limit=1, scope=f"summary:{target.name}:{ref}")
            try:
                async with lock.hold():
                    await self._post_summary(
                        target, port, kind, event_type, ref, members, now, report
                    )
            except Exception as exc:  # the lock was not had in time: nothing was posted
                for c, _, _ in members:  # (no call was made: nothing for the circuit)
                    self.worker.record_transient(target, c, exc, call_failed=False)
                report.retried += len(members)
                report.why(exc)
        self.worker.flush_outcomes()
        return rest

    async def _post_summary(
        self,
        target: Target,
        port: SummaryPort,
        kind: RecordKind,
        event_type: str,
        ref: str,
        members: list[tuple[Claimed, EventData, str]],
        now: datetime,
        report: BatchReport,
    ) -> None:
        et = EventType(event_type)
        new_ids = {c.event_id for c, _, _ in members}
        with self.queue.engine.connect() as conn:
            prior_ids = (
                set(
                    conn.execute(
                        select(summary_lines.c.event_id)
                        .where(
                            and_(
                                summary_lines.c.target == target.name,
                                summary_lines.c.summary_ref == ref,
                            )
                        )
                        .distinct()
                    ).scalars()
                )
                - new_ids
            )
            prior = conn.execute(
                select(events.c.id, events.c.idempotency_key, events.c.payload)
                .where(events.c.id.in_(sorted(prior_ids)))
                .order_by(events.c.id)
            ).all()
        event_of: dict[str, int] = {}
        payloads: list[str] = []
        items: list[BatchItem] = []
        for row in prior:
            data = decode_payload(et, row.payload)
            external_ref = plan_for(data, row.idempotency_key).external_ref
            event_of[external_ref] = row.id
            payloads.append(row.payload)
            items.append(BatchItem(external_ref=external_ref, data=data, refs={}))
        for c, data, external_ref in members:
            event_of[external_ref] = c.event_id
            payloads.append(c.payload)
            items.append(BatchItem(external_ref=external_ref, data=data, refs={}))
        content = "\n".join(payloads).encode()
        manifest = manifest_for(
            event_type, target.name, "summary-jsonl", content, [i.data for i in items]
        )
        manifest["summary_ref"] = ref
        pending: list[tuple[Claimed, EventData, str, dict[str, str]]] = [
            (c, data, external_ref, {}) for c, data, external_ref in members
        ]
        batch_id, path = self._record_batch(
            target.name, event_type, content, manifest, pending, now
        )
        report.batch_id, report.file_path, report.manifest = batch_id, str(path), manifest
        self.worker.count_call(target, event_type, "batch")
        try:
            lines = await port.post_summary(kind, ref, items)
        except (TerminalError, DomainError) as exc:
            target.breaker.record_success()  # the system answered: it is up
            for c, _, _ in members:
                self.worker.record_dead(c, f"summary {ref}: {exc}")
                self._item(batch_id, c.event_id, "failed", None, str(exc))
            report.failed += len(members)
            report.why(exc)
            self._finish_batch(batch_id, "failed", now, {"error": str(exc)})
            return
        except Exception as exc:  # transient: every new item retries, nothing recorded
            for i, (c, _, _) in enumerate(members):  # one failed call, one failure
                self.worker.record_transient(target, c, exc, call_failed=i == 0)
            report.retried += len(members)
            report.why(exc)
            self._finish_batch(batch_id, "failed", now, {"error": str(exc)})
            return
        target.breaker.record_success()
        erp_id = {line.external_ref: line.erp_id for line in lines}
        with self.queue.engine.begin() as conn:
            ids = sorted(event_of.values())
            conn.execute(
                delete(summary_lines).where(
                    and_(summary_lines.c.target == target.name, summary_lines.c.event_id.in_(ids))
                )
            )
            if lines:
                conn.execute(
                    summary_lines.insert(),
                    [
                        {
                            "target": target.name,
                            "event_id": event_of[line.external_ref],
                            "line_key": line.line_key,
                            "summary_ref": line.summary_ref,
                            "erp_id": line.erp_id,
                            "account": line.account,
                            "currency": line.currency,
                            "debit": str(line.debit),
                            "credit": str(line.credit),
                            "batch_id": batch_id,
                            "created_at": now,
                        }
                        for line in lines
                    ],
                )
        for c, _, external_ref in members:
            found = erp_id.get(external_ref)
            if found is None:
                reason = f"summary {ref}: the target returned no line for {external_ref}"
                self.worker.record_dead(c, reason)
                report.why(reason)
                self._item(batch_id, c.event_id, "failed", None, reason)
                report.failed += 1
                continue
            self.worker.record_delivered(target, c, found)
            self._item(batch_id, c.event_id, "delivered", found, None)
            report.delivered += 1
        self._finish_batch(batch_id, "completed", now, {"summary_ref": ref, "items": len(items)})

    def _record_batch(
        self,
        target: str,
        event_type: str,
        content: bytes,
        manifest: dict[str, Any],
        pending: Sequence[tuple[Claimed, EventData, str, dict[str, str]]],
        now: datetime,
    ) -> tuple[int, Path]:
        with self.queue.engine.begin() as conn:
            batch_id = conn.execute(
                batches.insert()
                .values(
                    target=target,
                    event_type=event_type,
                    state="submitted",
                    created_at=now,
                    file_format=manifest["format"],
                    checksum=manifest["sha256"],
                    record_count=manifest["record_count"],
                    control_totals=json.dumps(manifest["control_totals"]),
                )
                .returning(batches.c.id)
            ).scalar_one()
            conn.execute(
                batch_items.insert(),
                [
                    {"batch_id": batch_id, "event_id": c.event_id, "outcome": "submitted"}
                    for c, *_ in pending
                ],
            )
            folder = self.batch_dir / f"{now:%Y%m%d}" / f"{batch_id:06d}-{event_type}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"records.{manifest['format']}"
            path.write_bytes(content)
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
            conn.execute(
                update(batches).where(batches.c.id == batch_id).values(file_path=str(path))
            )
        return int(batch_id), path

    def _item(
        self, batch_id: int, event_id: int, outcome: str, ref: str | None, error: str | None
    ) -> None:
        with self.queue.engine.begin() as conn:
            conn.execute(
                update(batch_items)
                .where(and_(batch_items.c.batch_id == batch_id, batch_items.c.event_id == event_id))
                .values(outcome=outcome, external_ref=ref, error=error)
            )

    def _finish_batch(
        self, batch_id: int, state: str, now: datetime, summary: dict[str, Any]
    ) -> None:
        with self.queue.engine.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(state=state, finished_at=now, summary=json.dumps(summary, default=str))
            )
