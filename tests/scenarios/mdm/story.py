"""The hub with the customer master in front of the fakes, for the customer master stories:
Salesforce's Accounts and the ERP's credit statuses as envelopes, ingested and delivered."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.events import EventType
from revbridge.core.policy import build_policy
from revbridge.core.sfid import make_id
from revbridge.engine.worker import Target, Worker
from revbridge.mdm.ownership import Ownership
from revbridge.services.ingest import ingest_lines
from revbridge.services.mdm_sync import MdmErp, MdmSalesforce
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries, events
from revbridge.testing import FakeErp, FakeSalesforce
from revbridge.testing.policy import realtime_policy

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
POLICY = realtime_policy(EventType.CUSTOMER_UPSERTED)


def acc(n: int) -> str:
    return make_id("001", n)


def customer(n: int, name: str, parent: int | None = None, version: int = 1, **extra: Any) -> dict:
    return {
        "type": "customer.upserted",
        "source": "salesforce",
        "source_id": acc(n),
        "source_version": f"v{version}",
        "occurred_at": START.isoformat(),
        "data": {
            "customer_id": acc(n),
            "name": name,
            "parent_customer_id": acc(parent) if parent else None,
            "currency": "USD",
            **extra,
        },
    }


def invoice(n: int, account: int) -> dict:
    return {
        "type": "invoice.posted",
        "source": "salesforce",
        "source_id": make_id("a0X", n),
        "source_version": "v1",
        "occurred_at": START.isoformat(),
        "data": {
            "invoice_id": make_id("a0X", n),
            "invoice_number": f"INV-{n}",
            "customer_id": acc(account),
            "currency": "USD",
            "invoice_date": "2026-11-02",
            "due_date": "2026-12-02",
            "lines": [
                {
                    "line_id": "1",
                    "description": "Support",
                    "quantity": "1",
                    "unit_price": "100.00",
                    "amount": "100.00",
                    "tax_amount": "0.00",
                }
            ],
            "subtotal": "100.00",
            "tax_total": "0.00",
            "total": "100.00",
        },
    }


def credit(number: str, *, hold: bool, limit: str, version: str = "v1") -> dict:
    return {
        "type": "customer.credit_status_changed",
        "source": "erp",
        "source_id": f"CS-{number}",
        "source_version": version,
        "occurred_at": START.isoformat(),
        "data": {
            "erp_customer_number": number,
            "customer_id": None,
            "status": "on_hold" if hold else "active",
            "credit_hold": hold,
            "currency": "USD",
            "credit_limit": limit,
            "payment_terms": "Net 30",
            "changed_at": START.isoformat(),
        },
    }


class Hub:
    """The worker with the customer master in front of the fakes."""

    def __init__(
        self,
        ledger: Ledger,
        ownership: Ownership | None = None,
        *,
        batch_dir: Path | None = None,
        erp_name: str = "fake-erp",
        erp: FakeErp | None = None,
    ) -> None:
        self.ledger, self.clock = ledger, ManualClock(START)
        self.erp, self.sf = erp or FakeErp(name=erp_name), FakeSalesforce()
        own = ownership or Ownership()
        erp = MdmErp(self.erp, ledger.engine, own, clock=self.clock, salesforce=self.sf)
        sf = MdmSalesforce(self.sf, ledger.engine, own, erp_system=erp.erp_system, clock=self.clock)
        self.erp_system = erp.erp_system
        # With a batch directory, customers follow the default policy: the nightly batch.
        self.policy = POLICY if batch_dir is None else build_policy()
        self.worker = Worker(
            ledger.engine,
            {"erp": Target("erp", erp), "salesforce": Target("salesforce", sf)},  # type: ignore[arg-type]
            clock=self.clock,
            seed=1,
            batch_dir=batch_dir,
        )

    def send(self, *envs: dict) -> None:
        lines = [json.dumps(e).encode() for e in envs]
        result = ingest_lines(self.ledger, lines, policy=self.policy, origin="t", clock=self.clock)
        assert result.rejected == 0

    def run(self) -> None:
        for _ in range(6):  # parked deliveries are released as their dependencies land
            asyncio.run(self.worker.run_until_idle())

    def run_once(self) -> None:
        asyncio.run(self.worker.run_until_idle())

    def nightly(self) -> None:
        """The night passes: the batch classes run."""
        self.clock.advance(timedelta(days=1))
        self.run()

    def states(self, type_: str) -> dict[str, str]:
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.source_id, events.c.source_version, deliveries.c.state)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(events.c.type == type_)
            ).all()
        return {f"{r.source_id}@{r.source_version}": r.state for r in rows}

    def held_on(self) -> dict[str, str]:
        """Held deliveries and the review item each waits for."""
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.source_id, events.c.source_version, deliveries.c.parked_on)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(deliveries.c.state == "held")
            ).all()
        return {f"{r.source_id}@{r.source_version}": r.parked_on for r in rows}

    def audited(self, action: str) -> list[str]:
        """The reasons of the audit rows of ``action``, oldest first."""
        with self.ledger.engine.connect() as conn:
            query = select(audit_log.c.reason).where(audit_log.c.action == action)
            return list(conn.execute(query.order_by(audit_log.c.id)).scalars())

    def errors(self) -> list[str]:
        with self.ledger.engine.connect() as conn:
            return [
                e
                for (e,) in conn.execute(
                    select(deliveries.c.last_error).where(deliveries.c.state == "dead_letter")
                )
            ]
