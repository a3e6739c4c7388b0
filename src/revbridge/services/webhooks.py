"""What the webhook endpoints store: envelopes, Salesforce Flow callouts, Outbound Messages.

Each function validates everything first and returns 4xx-worthy ``WebhookRejected`` errors
(what, where, why) before anything is written; then it ingests through the idempotent
ingest, so a redelivered request is a duplicate, never a second event. Salesforce records
are mapped to canonical events by ``salesforce.mapping``; a record that cannot be mapped
goes to the quarantine with its reason (it is not an HTTP error: the sender cannot fix it by
retrying, and the Outbound Message would otherwise be re-sent for 24 hours).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import defusedxml.ElementTree as DET

from revbridge.clock import Clock, SystemClock
from revbridge.codec import DecodeError, decode_line
from revbridge.config import Settings
from revbridge.errors import RevbridgeError
from revbridge.salesforce.mapping import PROFILES, Mapped, Mapper
from revbridge.services.ingest import ingest_events, ingest_lines
from revbridge.store.ledger import Ledger, QuarantineRecord

OM_NS = "http://soap.sforce.com/2005/09/outbound"
SF_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_ENVELOPES = 10_000

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body>"
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


class WebhookRejected(RevbridgeError):
    """The request is malformed or not allowed; nothing of it was stored."""

    def __init__(self, where: str, why: str, *, status: int = 400) -> None:
        self.where = where
        self.why = why
        self.status = status
        super().__init__(f"{where}: {why}")


@dataclass(slots=True)
class WebhookResult:
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    quarantined: int = 0
    skipped: int = 0
    event_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "quarantined": self.quarantined,
            "skipped": self.skipped,
        }


def _lines_of(body: bytes, content_type: str) -> list[bytes]:
    """One envelope per line: a JSON array, one JSON object, or JSON Lines."""
    text = body.strip()
    if not text:
        raise WebhookRejected("body", "empty: send one envelope, a JSON array, or JSON Lines")
    if text.startswith(b"["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WebhookRejected(
                f"body line {exc.lineno} column {exc.colno}", f"not JSON: {exc.msg}"
            ) from exc
        if not isinstance(items, list):
            raise WebhookRejected("body", "expected a JSON array of envelopes")
        lines = [json.dumps(item).encode() for item in items]
    elif "ndjson" in content_type or "jsonl" in content_type or b"\n" in text:
        lines = [ln for ln in text.splitlines() if ln.strip()]
    else:
        lines = [text]
    if len(lines) > MAX_ENVELOPES:
        raise WebhookRejected("body", f"{len(lines)} envelopes; at most {MAX_ENVELOPES} a request")
    return lines


def ingest_envelopes(
    ledger: Ledger,
    settings: Settings,
    body: bytes,
    *,
    content_type: str,
    origin: str,
    actor: str,
    clock: Clock | None = None,
) -> WebhookResult:
    """Canonical envelopes from a signed webhook, all or nothing.

    Every line is validated before anything is stored: one bad envelope rejects the request
    with its line number and reason (the sender fixes it and resends the whole request).
    """
    lines = _lines_of(body, content_type)
    for n, line in enumerate(lines, start=1):
        try:
            decode_line(line)
        except DecodeError as exc:
            rej = exc.rejection
            raise WebhookRejected(f"envelope {n}", f"{rej.code}: {rej.reason}", status=422) from exc
    result = ingest_lines(
        ledger, lines, policy=settings.policy, origin=origin, clock=clock, actor=actor
    )
    return WebhookResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        conflicts=result.conflicts,
        quarantined=result.rejected + result.conflicts,
    )


def mapper_for(settings: Settings) -> Mapper:
    return Mapper(PROFILES[settings.raw.salesforce.object_model])


def store_mapped(
    ledger: Ledger,
    settings: Settings,
    mapped: Mapped,
    *,
    origin: str,
    actor: str,
    clock: Clock | None = None,
) -> WebhookResult:
    """Ingest mapped events and quarantine rejections; durable when this returns."""
    clock = clock or SystemClock()
    out = WebhookResult(skipped=mapped.skipped)
    if mapped.events:
        result = ingest_events(
            ledger, mapped.events, policy=settings.policy, origin=origin, clock=clock, actor=actor
        )
        out.accepted, out.duplicates = result.accepted, result.duplicates
        out.conflicts = result.conflicts
        out.quarantined += result.rejected + result.conflicts
    if mapped.rejections:
        records = [
            QuarantineRecord(
                reason_code=r.code,
                reason=r.reason,
                raw=r.raw,
                origin=origin,
                event_type=r.event_type,
                idempotency_key=r.key,
            )
            for r in mapped.rejections
        ]
        ledger.append([], records, now=clock.now())
        out.quarantined += len(records)
    return out


def ingest_flow_callout(
    ledger: Ledger,
    settings: Settings,
    body: bytes,
    *,
    actor: str,
    clock: Clock | None = None,
) -> WebhookResult:
    """A Flow/Apex callout: ``{"sobject": "Account", "records": [{...}, ...]}``.

    The records are field maps as the REST API returns them; lines or allocations go in
    ``children``, keyed by parent id, when the object's mapping needs them.
    """
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise WebhookRejected(
            f"body line {exc.lineno} column {exc.colno}", f"not JSON: {exc.msg}"
        ) from exc
    if not isinstance(doc, dict):
        raise WebhookRejected("body", 'expected {"sobject": ..., "records": [...]}')
    sobject, records = doc.get("sobject"), doc.get("records")
    children = doc.get("children") or {}
    if not isinstance(sobject, str) or not sobject:
        raise WebhookRejected("sobject", "missing: the API name of the records' object")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise WebhookRejected("records", "expected a list of record objects")
    if not isinstance(children, dict):
        raise WebhookRejected("children", "expected an object keyed by parent record id")
    mapper = mapper_for(settings)
    if mapper.kind_of(sobject) is None:
        raise WebhookRejected(
            "sobject",
            f"{sobject!r} has no mapping in profile {mapper.profile.name!r}",
            status=422,
        )
    mapped = mapper.map_records(sobject, records, children)
    return store_mapped(
        ledger, settings, mapped, origin=f"salesforce-flow:{sobject}", actor=actor, clock=clock
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMessage:
    org_id: str
    notification_ids: tuple[str, ...]
    by_object: dict[str, list[dict[str, Any]]]


def _coerce(text: str | None) -> Any:
    if text is None:
        return None
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """Read a SOAP 1.1 Outbound Message (entities and DTDs refused by defusedxml)."""
    try:
        root = DET.fromstring(body)
    except Exception as exc:  # defusedxml raises ParseError or its own DTD/entity errors
        raise WebhookRejected("body", f"not a SOAP envelope: {exc}") from exc
    notes = root.find(f".//{{{OM_NS}}}notifications")
    if notes is None:
        raise WebhookRejected("Body", "no <notifications> element (is this an Outbound Message?)")
    org_id = (notes.findtext(f"{{{OM_NS}}}OrganizationId") or "").strip()
    if not org_id:
        raise WebhookRejected("notifications/OrganizationId", "missing")
    by_object: dict[str, list[dict[str, Any]]] = {}
    ids: list[str] = []
    for n, note in enumerate(notes.findall(f"{{{OM_NS}}}Notification"), start=1):
        sobj = note.find(f"{{{OM_NS}}}sObject")
        if sobj is None:
            raise WebhookRejected(f"Notification {n}", "no <sObject>")
        declared = sobj.get(XSI_TYPE) or ""
        sobject = declared.split(":", 1)[-1]
        if not sobject:
            raise WebhookRejected(f"Notification {n}/sObject", "no xsi:type naming the object")
        record: dict[str, Any] = {"attributes": {"type": sobject}}
        for child in sobj:
            name = child.tag.rsplit("}", 1)[-1]
            record[name] = _coerce(child.text)
        ids.append((note.findtext(f"{{{OM_NS}}}Id") or "").strip())
        by_object.setdefault(sobject, []).append(record)
    return OutboundMessage(org_id=org_id, notification_ids=tuple(ids), by_object=by_object)


def ingest_outbound_message(
    ledger: Ledger,
    settings: Settings,
    body: bytes,
    *,
    clock: Clock | None = None,
) -> WebhookResult:
    """Check the org id against the allow-list, map the sObjects, ingest; then Ack is safe."""
    message = parse_outbound_message(body)
    allowed = settings.raw.security.salesforce_org_ids
    if message.org_id not in allowed:
        raise WebhookRejected(
            "notifications/OrganizationId",
            f"org {message.org_id} is not in security.salesforce_org_ids",
            status=403,
        )
    mapper = mapper_for(settings)
    mapped = Mapped()
    for sobject, records in message.by_object.items():
        mapped.extend(mapper.map_records(sobject, records))
    return store_mapped(
        ledger,
        settings,
        mapped,
        origin=f"salesforce-outbound:{message.org_id}",
        actor=f"salesforce:{message.org_id}",
        clock=clock,
    )
