"""Capture: what changed in Salesforce becomes canonical events in the ledger.

Two ways in, one way through (``Mapper`` then ``ingest_lines``):

* **poll**: per mapped object, SOQL ordered by ``SystemModstamp`` from a persisted watermark
  minus an overlap window (a record committed late with an earlier stamp is still read),
  following ``nextRecordsUrl`` page by page. Each page is ingested, and only then the
  watermark moves to the page's last ``SystemModstamp``: a crash re-reads, never skips.
* **stream**: Change Data Capture over the Streaming API's CometD (``streaming.py``) from a
  persisted replay id. The records named by the events are re-read by id (an UPDATE event
  carries only the changed fields; a CREATE of an object mapped without children or parent
  paths, such as an Account, is mapped from the event itself) and ingested; then the batch's
  latest replay id is persisted. A replay id outside retention (the subscription fails with
  ``400::The replayId {N} you provided was invalid``) is logged as an alert-worthy warning,
  the gap is backfilled by a poll, and the stream restarts from every retained event
  (``-2``): what it repeats is a duplicate in the ledger, not a double.

No echo: the hub's own writes must not come back as new events.

* change events whose changed fields are all hub-owned (ERP ids, credit status, roll-ups
  our payments move: ``CaptureSettings.echo_fields``) are dropped, and so are all events
  committed by the integration user when ``integration_user_id`` is set;
* payments carrying an ERP receipt number were written by the hub: the mapping skips them;
* a record re-read with unchanged business content maps to the same ``source_version``
  (a content hash), so the ledger sees a duplicate, whatever the poll re-reads.

Bad records are never dropped: the mapping's rejections go to the quarantine (once per
record version), with the object, the id, the code and the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from revbridge.clock import Clock, SystemClock
from revbridge.codec import encode_envelope
from revbridge.core import sfid
from revbridge.core.policy import RoutingPolicy
from revbridge.salesforce.client import SalesforceClient
from revbridge.salesforce.mapping import (
    BILLING,
    Mapped,
    Mapper,
    Profile,
    Rejection,
    child_fields,
    select_fields,
)
from revbridge.salesforce.streaming import (
    REPLAY_ALL,
    CometdSubscriber,
    InvalidReplayId,
    replay_id_of,
)
from revbridge.services.capture import load_watermark, save_watermark
from revbridge.services.ingest import ingest_events
from revbridge.store.ledger import Ledger, QuarantineRecord
from revbridge.store.schema import quarantine

log = logging.getLogger(__name__)

_CURRENT_MAX = 200_000
_IN_CHUNK = 200  # ids per ``IN (...)``: keeps the URI far below Salesforce's 16 KB
_READ_AHEAD = 3  # re-reads in flight while the capture maps and stores

# Fields only the hub writes (write-back), and the roll-ups its writes move.
DEFAULT_ECHO_FIELDS: frozenset[str] = frozenset(
    {
        "ERP_Customer_Number__c",
        "ERP_Id__c",
        "ERP_Document_Number__c",
        "ERP_Receipt_Number__c",
        "ERP_Application_Id__c",
        "ERP_Sync_Status__c",
        "ERP_Last_Sync__c",
        "Credit_Hold__c",
        "Credit_Limit__c",
        "Payment_Terms__c",
        "Tax_Registration__c",
        "AR_Open_Balance__c",
        "AR_Overdue_Balance__c",
        "AR_Days_Overdue__c",
        "AR_Last_Payment_Date__c",
        "AR_Last_Payment_Amount__c",
        "ERP_GL_Reference__c",
        "blng__Payments__c",
        "blng__Balance__c",
        "blng__PaymentStatus__c",
        "blng__Allocations__c",
        "blng__AllocatedtoInvoices__c",
        "blng__Unallocations__c",
        "NetPaymentsApplied",
        "Balance",
        "NetApplied",
        "TotalApplied",
    }
)
_ALWAYS_CHANGED = frozenset({"LastModifiedDate", "SystemModstamp", "LastModifiedById"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureSettings:
    """How one org is captured. ``name`` prefixes the watermarks (one org, one name)."""

    profile: Profile = BILLING
    name: str = "salesforce"
    overlap: timedelta = timedelta(minutes=5)
    batch_size: int | None = None
    integration_user_id: str | None = None
    echo_fields: frozenset[str] = DEFAULT_ECHO_FIELDS
    channel: str = "/data/ChangeEvents"
    stream_wait: timedelta = timedelta(0)


@dataclass(slots=True)
class CaptureReport:
    """What one capture round did; ``watermarks`` are the values persisted."""

    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    quarantined: int = 0
    skipped: int = 0
    echoes: int = 0
    already_current: int = 0
    backfilled: bool = False
    watermarks: dict[str, str] = field(default_factory=dict)

    def add(self, other: CaptureReport) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.quarantined += other.quarantined
        self.skipped += other.skipped
        self.echoes += other.echoes
        self.already_current += other.already_current
        self.watermarks.update(other.watermarks)


def _soql_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(value: object) -> datetime:
    text = str(value).replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text)


def _stamp_ms(value: object) -> int:
    return int(_parse_stamp(value).timestamp() * 1000)


def _quote_ids(ids: Iterable[str]) -> str:
    return ", ".join(f"'{i}'" for i in ids if sfid.is_valid(i))


def created_record(header: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record a CREATE change event describes, shaped as a SOQL row, or None for any other
    event. A CREATE carries every non-null field; compound address fields, nested in CDC
    (``BillingAddress: {"Street": ...}``), become their components (``BillingStreet``)."""
    ids = [str(i) for i in header.get("recordIds") or ()]
    if header.get("changeType") != "CREATE" or len(ids) != 1 or not sfid.is_valid(ids[0]):
        return None
    record: dict[str, Any] = {
        "attributes": {"type": str(header.get("entityName", ""))},
        "Id": sfid.to_18(ids[0]),
    }
    for name, value in payload.items():
        if name == "ChangeEventHeader":
            continue
        if isinstance(value, Mapping) and name.endswith("Address"):
            prefix = name.removesuffix("Address")
            record.update({f"{prefix}{part}": v for part, v in value.items()})
        else:
            record[name] = value
    return record


# Envelopes in, (envelopes kept, how many were echoes) out.
EnvelopeFilter = Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], int]]


class SalesforceCapture:
    """Polls and streams one org into the ledger."""

    def __init__(
        self,
        client: SalesforceClient,
        ledger: Ledger,
        policy: RoutingPolicy,
        settings: CaptureSettings | None = None,
        *,
        clock: Clock | None = None,
        envelope_filter: EnvelopeFilter | None = None,
    ) -> None:
        self.client = client
        # The customer master's echo check (``services.mdm_sync.filter_salesforce_capture``):
        # drops Account versions that only show what is already synced.
        self.envelope_filter = envelope_filter
        self.ledger = ledger
        self.policy = policy
        self.settings = settings or CaptureSettings()
        self.clock = clock or SystemClock()
        self.mapper = Mapper(self.settings.profile)
        # Objects whose CREATE event carries all the mapping needs (no child records, no parent
        # paths): mapped from the event, not re-read.
        profile = self.settings.profile
        self._from_payload = frozenset(
            sobject
            for sobject, kind in profile.objects().items()
            if child_fields(profile, kind) is None
            and not any("." in f for f in select_fields(profile, kind))
        )
        # Record id -> LastModifiedDate (epoch ms) of the version last stored in the ledger. A
        # change event describing that version or an older one is already reflected there:
        # re-reading would only find a duplicate. Bounded; forgetting costs a re-read, not a loss.
        self._current: OrderedDict[str, int] = OrderedDict()

    # ------------------------------------------------------------------ shared

    def watermark_name(self, sobject: str) -> str:
        return f"{self.settings.name}:poll:{sobject}"

    @property
    def replay_name(self) -> str:
        return f"{self.settings.name}:stream:{self.settings.channel}"

    async def _children(self, kind: str, parent_ids: Sequence[str]) -> dict[str, list[Any]]:
        spec = child_fields(self.settings.profile, kind)
        out: dict[str, list[Any]] = {}
        if spec is None or not parent_ids:
            return out
        sobject, parent_field, fields = spec
        for start in range(0, len(parent_ids), _IN_CHUNK):
            ids = _quote_ids(parent_ids[start : start + _IN_CHUNK])
            if not ids:
                continue
            soql = f"SELECT {', '.join(fields)} FROM {sobject} WHERE {parent_field} IN ({ids})"
            for child in await self.client.query(soql):
                parent = child.get(parent_field)
                if parent:
                    out.setdefault(sfid.to_18(str(parent)), []).append(child)
        return out

    async def _map_page(
        self, sobject: str, kind: str, records: list[Any]
    ) -> tuple[Mapped, list[Any]]:
        """The page mapped, and every record read for it (the page and its children)."""
        ids = [str(r["Id"]) for r in records if r.get("Id")]
        children = await self._children(kind, ids)
        read = [*records, *(c for kids in children.values() for c in kids)]
        return self.mapper.map_records(sobject, records, children), read

    def _remember(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Note the versions (``LastModifiedDate``) of ``records`` now in the ledger."""
        for record in records:
            record_id, stamp = record.get("Id"), record.get("LastModifiedDate")
            if not record_id or not stamp:
                continue
            key = sfid.to_18(str(record_id))
            self._current[key] = _stamp_ms(stamp)
            self._current.move_to_end(key)
        while len(self._current) > _CURRENT_MAX:
            self._current.popitem(last=False)

    def _already_current(self, ids: Iterable[str], payload: Mapping[str, Any]) -> bool:
        """True when the ledger holds, for every record the event names, the version the event
        describes or a later one. A change event carries the record's ``LastModifiedDate``
        (all fields on a create; on an update it is always among the changed fields), the same
        value the re-read returns for that version: no clock comparison is involved."""
        stamp = payload.get("LastModifiedDate")
        if not stamp:
            return False
        version = _stamp_ms(stamp)
        known = [self._current.get(sfid.to_18(i)) if sfid.is_valid(i) else None for i in ids]
        return bool(known) and all(k is not None and k >= version for k in known)

    def _store(self, page: tuple[Mapped, list[Any]], origin: str, report: CaptureReport) -> None:
        """Ingest the envelopes and quarantine the rejections (each record version once)."""
        mapped, read = page
        events = mapped.events
        if events and self.envelope_filter is not None:
            envelopes = [encode_envelope(e) for e in events]
            by_envelope = {id(env): event for env, event in zip(envelopes, events, strict=True)}
            kept, echoes = self.envelope_filter(envelopes)
            report.echoes += echoes
            events = [by_envelope[id(env)] for env in kept]
        if events:
            result = ingest_events(
                self.ledger,
                events,
                policy=self.policy,
                origin=origin,
                clock=self.clock,
                actor="capture:salesforce",
            )
            report.accepted += result.accepted
            report.duplicates += result.duplicates
            report.conflicts += result.conflicts
            report.quarantined += result.rejected
        report.skipped += mapped.skipped
        report.quarantined += self._quarantine(mapped.rejections, origin)
        self._remember(read)

    def _quarantine(self, rejections: Sequence[Rejection], origin: str) -> int:
        if not rejections:
            return 0
        keys = sorted({r.key for r in rejections})
        known: set[str] = set()
        with self.ledger.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                known.update(
                    conn.execute(
                        select(quarantine.c.idempotency_key).where(
                            quarantine.c.idempotency_key.in_(keys[start : start + 500])
                        )
                    ).scalars()
                )
        fresh = {r.key: r for r in rejections if r.key not in known}
        records = [
            QuarantineRecord(
                reason_code=r.code,
                reason=r.reason,
                raw=r.raw,
                origin=origin,
                event_type=r.event_type,
                idempotency_key=r.key,
            )
            for r in fresh.values()
        ]
        if records:
            self.ledger.append([], records, now=self.clock.now())
            for r in records:
                log.warning("salesforce record quarantined: %s: %s", r.reason_code, r.reason)
        return len(records)

    # ------------------------------------------------------------------ poll

    async def poll(self, objects: Sequence[str] | None = None) -> CaptureReport:
        """One poll round over every mapped object (or the named ones)."""
        report = CaptureReport()
        kinds = self.settings.profile.objects()
        for sobject in objects or list(kinds):
            report.add(await self._poll_object(sobject, kinds[sobject]))
        return report

    async def _poll_object(self, sobject: str, kind: str) -> CaptureReport:
        report = CaptureReport()
        name = self.watermark_name(sobject)
        mark = load_watermark(self.ledger.engine, name)
        fields = ", ".join(select_fields(self.settings.profile, kind))
        where = ""
        if mark:
            since = _parse_stamp(mark) - self.settings.overlap
            where = f" WHERE SystemModstamp >= {_soql_time(since)}"
        soql = f"SELECT {fields} FROM {sobject}{where} ORDER BY SystemModstamp ASC, Id ASC"
        origin = f"capture:{self.settings.name}:poll:{sobject}"
        async for page in self.client.query_pages(soql, batch_size=self.settings.batch_size):
            if not page:
                continue
            report.read += len(page)
            self._store(await self._map_page(sobject, kind, page), origin, report)
            newest = max(_parse_stamp(r["SystemModstamp"]) for r in page)
            if mark is None or newest > _parse_stamp(mark):
                mark = newest.isoformat()
                save_watermark(self.ledger.engine, name, mark, self.clock.now())
        if mark:
            report.watermarks[name] = mark
        return report

    # ------------------------------------------------------------------ stream

    async def stream(self, *, start_replay_id: int = REPLAY_ALL) -> CaptureReport:
        """Read the change events from the stored replay id over CometD until none waits
        (or, with ``CaptureSettings.stream_wait``, until none came within that wait)."""
        report = CaptureReport()
        stored = load_watermark(self.ledger.engine, self.replay_name)
        subscriber = CometdSubscriber(
            self.client, self.settings.channel, wait=self.settings.stream_wait
        )
        subscriber.replay_id = int(stored) if stored is not None else start_replay_id
        # The next connect is asked for while a batch is applied (the org prepares it in the
        # meantime); a session re-established then resumes from the replay id persisted so
        # far, which at worst repeats the batch being applied: duplicates, never a gap.
        upcoming = asyncio.create_task(subscriber.receive())
        try:
            while True:
                try:
                    events = await upcoming
                except InvalidReplayId:
                    log.warning(
                        "ALERT salesforce change events lost: replay id %s is outside retention; "
                        "backfilling by poll and replaying every retained event",
                        subscriber.replay_id,
                    )
                    report.add(await self.poll())
                    report.backfilled = True
                    await subscriber.subscribe(REPLAY_ALL)
                    upcoming = asyncio.create_task(subscriber.receive())
                    continue
                if not events:
                    break
                upcoming = asyncio.create_task(subscriber.receive())
                report.add(await self._apply_events(events))
                latest = max(replay_id_of(e) for e in events)
                if latest > subscriber.replay_id:
                    save_watermark(
                        self.ledger.engine, self.replay_name, str(latest), self.clock.now()
                    )
                    report.watermarks[self.replay_name] = str(latest)
                    subscriber.replay_id = latest
        finally:
            upcoming.cancel()
            await asyncio.gather(upcoming, return_exceptions=True)
            await subscriber.close()
        return report

    def _is_echo(self, header: Mapping[str, Any]) -> bool:
        user = self.settings.integration_user_id
        if user and str(header.get("commitUser", "")) in (user, user[:15]):
            return True
        changed = set(header.get("changedFields") or ()) - _ALWAYS_CHANGED
        return header.get("changeType") == "UPDATE" and changed <= self.settings.echo_fields

    async def _apply_events(self, events: Sequence[Mapping[str, Any]]) -> CaptureReport:
        """Re-read the records the events name, grouped by top-level object, and ingest them."""
        report = CaptureReport()
        profile = self.settings.profile
        kinds, children = profile.objects(), profile.child_objects()
        wanted: dict[str, set[str]] = {}
        created: dict[str, dict[str, dict[str, Any]]] = {}
        child_ids: dict[str, set[str]] = {}
        overflowed: set[str] = set()
        for message in events:
            payload = message.get("data", {}).get("payload", {})
            header = payload.get("ChangeEventHeader", {})
            entity = str(header.get("entityName", ""))
            report.read += 1
            if header.get("changeType") == "GAP_OVERFLOW":
                # Too many changes for one event each: only a poll of the object can say what.
                if entity in kinds:
                    overflowed.add(entity)
                continue
            if header.get("changeType") in ("DELETE", "GAP_DELETE"):
                report.skipped += 1  # canonical events have no delete: a reversal is a status
                continue
            if self._is_echo(header):
                report.echoes += 1
                continue
            ids = {str(i) for i in header.get("recordIds") or ()}
            if self._already_current(ids, payload):
                report.already_current += 1
                continue
            if entity in kinds:
                record = created_record(header, payload) if entity in self._from_payload else None
                if record is not None:
                    created.setdefault(entity, {})[sfid.to_18(str(record["Id"]))] = record
                else:
                    wanted.setdefault(entity, set()).update(ids)
            elif entity in children:
                child_ids.setdefault(entity, set()).update(ids)
            else:
                report.skipped += 1  # an object the profile does not map (finance periods...)
        for child_object, ids in child_ids.items():
            parent_kind, parent_field = children[child_object]
            parent_object = next(o for o, k in kinds.items() if k == parent_kind)
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = _quote_ids(sorted(ids)[start : start + _IN_CHUNK])
                if not chunk:
                    continue
                rows = await self.client.query(
                    f"SELECT {parent_field} FROM {child_object} WHERE Id IN ({chunk})"
                )
                wanted.setdefault(parent_object, set()).update(
                    str(r[parent_field]) for r in rows if r.get(parent_field)
                )
        for sobject, by_id in created.items():
            # A record created and changed again in this batch is re-read (its latest version).
            rereads = {sfid.to_18(i) for i in wanted.get(sobject, ()) if sfid.is_valid(i)}
            rows = [r for i, r in by_id.items() if i not in rereads]
            if rows:
                origin = f"capture:{self.settings.name}:stream:{sobject}"
                self._store((self.mapper.map_records(sobject, rows, {}), rows), origin, report)
        # Every chunk's re-read (records, then their children) is started at once, at most
        # _READ_AHEAD at a time: the org answers the next chunks while this process maps and
        # stores the previous one. Stored in order; each store is idempotent on its own.
        gate = asyncio.Semaphore(_READ_AHEAD)

        async def read(sobject: str, kind: str, soql: str) -> tuple[Mapped, list[Any]]:
            async with gate:
                records = await self.client.query(soql)
                return await self._map_page(sobject, kind, records)

        reads: list[tuple[str, asyncio.Task[tuple[Mapped, list[Any]]]]] = []
        for sobject, ids in wanted.items():
            kind = kinds[sobject]
            fields = ", ".join(select_fields(profile, kind))
            origin = f"capture:{self.settings.name}:stream:{sobject}"
            ordered = sorted(ids)
            for start in range(0, len(ordered), _IN_CHUNK):
                chunk = _quote_ids(ordered[start : start + _IN_CHUNK])
                if chunk:
                    soql = f"SELECT {fields} FROM {sobject} WHERE Id IN ({chunk})"
                    reads.append((origin, asyncio.create_task(read(sobject, kind, soql))))
        try:
            for origin, task in reads:
                self._store(await task, origin, report)
        finally:
            for _, task in reads:
                task.cancel()
            await asyncio.gather(*(t for _, t in reads), return_exceptions=True)
        if overflowed:
            log.warning("salesforce change events overflowed for %s: polling", sorted(overflowed))
            report.add(await self.poll(sorted(overflowed)))
        return report
