"""The capture appends the mapper's events directly (``ingest_events``): the ledger ends up
exactly as if their envelopes had been ingested as JSON lines, on both stores."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from revbridge.codec import decode_line
from revbridge.core.policy import CashHandler, build_policy
from revbridge.salesforce.mapping import BILLING
from revbridge.services.ingest import ingest_events, ingest_lines
from revbridge.store.db import create_store_engine, upgrade
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, events, quarantine

from .test_mapping import map_all, recorded


def stored(ledger: Ledger) -> list[tuple[str, str, str, str]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.idempotency_key, events.c.type, events.c.payload_hash, events.c.payload)
        )
        return sorted(tuple(r) for r in rows)  # type: ignore[misc]


def audited(ledger: Ledger) -> list[dict[str, int]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.details)
            .where(audit_log.c.action == "ingest")
            .order_by(audit_log.c.id)
        )
        return [json.loads(details) for (details,) in rows]


def test_ingest_events_matches_ingest_lines(ledger: Ledger, tmp_path: Path) -> None:
    mapped = map_all(BILLING, recorded("billing"))
    assert len(mapped.events) >= 5
    policy = build_policy()
    result = ingest_events(ledger, mapped.events, policy=policy, origin="test")
    assert (result.accepted, result.duplicates, result.rejected) == (len(mapped.events), 0, 0)
    again = ingest_events(ledger, mapped.events, policy=policy, origin="test")
    assert (again.accepted, again.duplicates) == (0, len(mapped.events))

    engine = create_store_engine(f"sqlite:///{tmp_path / 'lines.db'}")
    upgrade(engine)
    by_lines = Ledger(engine)
    lines = [json.dumps(e).encode() for e in mapped.envelopes]
    ingest_lines(by_lines, lines, policy=policy, origin="test")
    ingest_lines(by_lines, lines, policy=policy, origin="test")
    assert stored(ledger) == stored(by_lines)
    assert audited(ledger) == audited(by_lines)
    assert audited(ledger)[0]["lines"] == len(mapped.events)
    engine.dispose()


def test_a_disabled_flow_is_quarantined_with_a_readable_envelope(ledger: Ledger) -> None:
    mapped = map_all(BILLING, recorded("billing"))
    policy = build_policy(cash_handled_in=CashHandler.ERP)  # Salesforce payments are off
    result = ingest_events(ledger, mapped.events, policy=policy, origin="test")
    payments = [e for e in mapped.events if e.type.value == "payment.received"]
    assert payments
    assert result.rejected == len(payments)
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(quarantine.c.reason_code, quarantine.c.raw)).all()
    assert {code for code, _ in rows} == {"flow_disabled"}
    assert sorted(decode_line(raw).idempotency_key for _, raw in rows) == sorted(
        p.idempotency_key for p in payments
    )
