"""Read both sides into the reconciliation's read-back store, from the configuration.

The recon package never builds adapters; this service does: the configured ERP (its
``read``, see ``engine.ports.ReadbackPort``) and the configured Salesforce side (the fake
org, or the real org through SOQL with the configured object model).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, select

from revbridge.config import Settings
from revbridge.core.events import EventType
from revbridge.engine.ports import ReadbackKind, ReadbackPort
from revbridge.engine.queue import DeliveryQueue
from revbridge.errors import ConfigError
from revbridge.recon.readback import DEFAULT_PAGE_SIZE, ReadbackStore, RefreshReport
from revbridge.services.targets import build_erp, fake_salesforce, salesforce_client
from revbridge.store.schema import events


def salesforce_reader(settings: Settings) -> Any:
    """The Salesforce side's reader: the fake org, or the org through its REST API."""
    sf = settings.raw.salesforce
    if sf.kind == "salesforce":
        from revbridge.salesforce.mapping import PROFILES
        from revbridge.salesforce.readback import SalesforceReadback

        return SalesforceReadback(salesforce_client(settings), PROFILES[sf.object_model])
    return fake_salesforce(settings)


async def refresh_from_config(
    settings: Settings,
    store: ReadbackStore,
    *,
    now: dt.datetime,
    page_size: int = DEFAULT_PAGE_SIZE,
    engine: Engine | None = None,
) -> tuple[RefreshReport, RefreshReport]:
    """Read what changed on the ERP and in Salesforce since the store's marks.

    With the ledger's ``engine``, a real org's write-back payments get their aliases: the
    write-back keys each by a hash of its event, which only the ledger can turn back into
    the ERP payment id.
    """
    erp = build_erp(settings)
    try:
        if engine is not None and settings.raw.erp.kind == "fake":
            await fake_erp_from_ledger(engine, erp)
        if not isinstance(erp, ReadbackPort):
            raise ConfigError(
                str(settings.path or "revbridge.toml"),
                "erp.kind",
                f"{settings.raw.erp.kind}: this ERP adapter cannot be read back yet",
            )
        erp_report = await store.refresh("erp", erp, now=now, page_size=page_size)
    finally:
        await erp.close()
    sf = salesforce_reader(settings)
    try:
        if engine is not None and settings.raw.salesforce.kind == "fake":
            fake_org_from_ledger(engine, sf)
        sf_report = await store.refresh("sf", sf, now=now, page_size=page_size)
    finally:
        await sf.close()
    if engine is not None and settings.raw.salesforce.kind == "salesforce":
        store.set_payment_aliases(write_back_aliases(engine))
    if engine is not None:  # each page read is a call against the systems' budgets
        DeliveryQueue(engine).add_api_calls(
            now,
            {
                ("erp", "reconciliation", "read-back"): erp_report.pages,
                ("salesforce", "reconciliation", "read-back"): sf_report.pages,
            },
        )
    return sf_report, erp_report


def write_back_aliases(engine: Engine) -> list[tuple[str, str]]:
    """``(receipt key, ERP payment id)`` of every ERP payment the hub wrote to Salesforce."""
    from revbridge.salesforce.writeback import payment_key

    query = select(events.c.idempotency_key, events.c.source_id).where(
        events.c.type == "erp.payment.received"
    )
    with engine.connect() as conn:
        return [(payment_key(key), ref) for key, ref in conn.execute(query)]


_SF_EVENT_KEYS = {
    "invoice.posted": (ReadbackKind.AR, "invoice_id"),
    "credit_memo.issued": (ReadbackKind.AR, "credit_memo_id"),
    "payment.received": (ReadbackKind.PAYMENTS, "payment_id"),
    "revenue.recognized": (ReadbackKind.JOURNALS, "schedule_entry_id"),
}


def fake_org_from_ledger(engine: Engine, sf: Any) -> int:
    """Give the fake org what Salesforce sent the hub (the demo's, the default config's).

    The fake org only holds what is put in it; with ``salesforce.kind = "fake"`` the
    Salesforce side is what the ledger received from Salesforce: each record as its latest
    version in the ledger (invoices first, so that the payments and credit memos find what
    they pay). A newer version than the one the org was given revises the record
    (``FakeSalesforce.revise``): an invoice changed in Salesforce after it was posted to the
    ERP is then a variance, as with a real org, not hidden behind its first version.
    Returns how many records were added or revised.
    """
    from revbridge.codec import decode_payload

    query = (
        select(events.c.id, events.c.type, events.c.payload)
        .where(events.c.type.in_(list(_SF_EVENT_KEYS)))
        .order_by(events.c.id)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    # Per record: the first event (the version an org given records before their ids were
    # kept holds) and the latest one.
    first: dict[str, int] = {}
    latest: dict[str, tuple[int, str, Any]] = {}
    for event_id, event_type, payload in rows:
        kind, id_field = _SF_EVENT_KEYS[event_type]
        data = decode_payload(EventType(event_type), payload)
        name = f"{kind.value}|{getattr(data, id_field)}"
        first.setdefault(name, event_id)
        latest[name] = (event_id, event_type, data)
    # Invoices first: a payment or credit memo recorded before its invoice would pay nothing.
    ordered = sorted(latest.items(), key=lambda item: item[1][1] != "invoice.posted")
    changed = 0
    for name, (event_id, event_type, data) in ordered:
        kind, id_field = _SF_EVENT_KEYS[event_type]
        if sf.get(kind, getattr(data, id_field)) is None:
            sf.record(data)
        elif event_id > sf.from_ledger.get(name, first[name]):
            sf.revise(data)
        else:
            continue
        sf.from_ledger[name] = event_id
        changed += 1
    return changed


async def fake_erp_from_ledger(engine: Engine, erp: Any) -> int:
    """Give the fake ERP the cash the ledger says was entered in it (``erp.payment.received``).

    The counterpart of ``fake_org_from_ledger``: with ``erp.kind = "fake"``, what the ERP
    side recorded by itself exists only as the events the hub captured from it.
    """
    from revbridge.codec import decode_payload

    query = (
        select(events.c.payload)
        .where(events.c.type == EventType.ERP_PAYMENT_RECEIVED.value)
        .order_by(events.c.id)
    )
    with engine.connect() as conn:
        payments = [
            decode_payload(EventType.ERP_PAYMENT_RECEIVED, payload)
            for (payload,) in conn.execute(query)
        ]
    entered: int = await erp.enter_payments(payments, captured=True)
    return entered
