"""Outbound Messages: SOAP 1.1 notifications POSTed to a listener until it acknowledges them.

A message carries up to 100 ``Notification`` elements of one object. Only an HTTP 200 whose body
holds ``<Ack>true</Ack>`` counts as delivered; anything else is retried with exponential backoff
(``outbound_retry_base`` doubling, capped at ``outbound_retry_max``) and dropped after
``outbound_give_up_after``, as Salesforce does (2 h cap, 24 h). Delivery is at least once.
"""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any
from xml.sax.saxutils import escape

import httpx

from revbridge.salesforce.sandbox.config import SandboxConfig
from revbridge.salesforce.sandbox.faults import FaultState
from revbridge.salesforce.sandbox.store import Store, StoredOutbound
from revbridge.salesforce.sandbox.values import format_datetime, parse_datetime

MAX_NOTIFICATIONS = 100
_ACTION_ID = "04k5e000000RvBrAAK"


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def soap_envelope(
    notifications: list[StoredOutbound], *, org_id: str, base_url: str, version: str = "62.0"
) -> str:
    """The Outbound Message envelope Salesforce sends for ``notifications`` (one object type)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        "<soapenv:Body>",
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">',
        f"<OrganizationId>{org_id}</OrganizationId>",
        f"<ActionId>{_ACTION_ID}</ActionId>",
        '<SessionId xsi:nil="true"/>',
        f"<EnterpriseUrl>{escape(base_url)}/services/Soap/c/{version}/{org_id}</EnterpriseUrl>",
        f"<PartnerUrl>{escape(base_url)}/services/Soap/u/{version}/{org_id}</PartnerUrl>",
    ]
    for note in notifications:
        fields: dict[str, Any] = json.loads(note.payload)
        parts.append("<Notification>")
        parts.append(f"<Id>{note.notification_id}</Id>")
        parts.append(
            f'<sObject xsi:type="sf:{note.sobject}"'
            ' xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        )
        for name, value in fields.items():
            if value is not None:
                parts.append(f"<sf:{name}>{_xml_value(value)}</sf:{name}>")
        parts.append("</sObject>")
        parts.append("</Notification>")
    parts += ["</notifications>", "</soapenv:Body>", "</soapenv:Envelope>"]
    return "".join(parts)


def is_ack(status_code: int, body: bytes) -> bool:
    """True only for HTTP 200 with ``<Ack>true</Ack>`` in the body, in any namespace."""
    if status_code != 200:
        return False
    try:
        root = ET.fromstring(body)  # noqa: S314 - the listener is configured by the operator
    except ET.ParseError:
        return False
    return any(
        element.tag.rsplit("}", 1)[-1] == "Ack" and (element.text or "").strip() == "true"
        for element in root.iter()
    )


class OutboundNotifier:
    """Delivers due notifications; :meth:`run` loops until cancelled."""

    def __init__(
        self, config: SandboxConfig, store: Store, faults: FaultState, base_url: str = ""
    ) -> None:
        self._config = config
        self._store = store
        self._faults = faults
        self.base_url = base_url

    def _backoff(self, attempts: int) -> float:
        base = self._config.outbound_retry_base.total_seconds()
        cap = self._config.outbound_retry_max.total_seconds()
        return float(min(base * (2 ** min(attempts, 40)), cap))

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Send every due notification once; return how many were acknowledged."""
        url = self._config.outbound_url
        if url is None:
            return 0
        now = self._config.clock.now()
        due = self._store.due_outbound(format_datetime(now), MAX_NOTIFICATIONS * 10)
        acknowledged = 0
        for _sobject, group in groupby(
            sorted(due, key=lambda n: n.sobject), key=lambda n: n.sobject
        ):
            batch = list(group)[:MAX_NOTIFICATIONS]
            sent = list(batch)
            if any(self._faults.roll(self._faults.spec.duplicate_events) for _ in batch):
                sent.append(batch[0])
            if len(sent) > 1 and self._faults.roll(self._faults.spec.out_of_order):
                sent.reverse()
            envelope = soap_envelope(sent, org_id=self._config.org_id, base_url=self.base_url)
            error: str | None = None
            try:
                response = await client.post(
                    url,
                    content=envelope.encode(),
                    headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
                    timeout=self._config.outbound_timeout.total_seconds(),
                )
                ok = is_ack(response.status_code, response.content)
                if not ok:
                    error = f"HTTP {response.status_code}: no <Ack>true</Ack>"
            except httpx.HTTPError as exc:
                ok = False
                error = f"{type(exc).__name__}: {exc}"
            self._record(batch, ok=ok, error=error, now=now)
            if ok:
                acknowledged += len(batch)
        return acknowledged

    def _record(
        self, batch: list[StoredOutbound], *, ok: bool, error: str | None, now: datetime
    ) -> None:
        for note in batch:
            if ok:
                state, next_at = "delivered", format_datetime(now)
            else:
                created = parse_datetime(note.created_at)
                delay = self._backoff(note.attempts)
                next_moment = now + timedelta(seconds=delay)
                if next_moment - created > self._config.outbound_give_up_after:
                    state, next_at = "dropped", format_datetime(now)
                else:
                    state, next_at = "pending", format_datetime(next_moment)
            self._store.record_outbound_attempt(
                note.notification_id, state=state, next_attempt_at=next_at, error=error
            )

    async def run(self) -> None:
        async with httpx.AsyncClient(verify=False) as client:  # noqa: S501 - sandbox listeners often self-sign
            while True:
                await self.deliver_due(client)
                await asyncio.sleep(self._config.outbound_poll_interval.total_seconds())
