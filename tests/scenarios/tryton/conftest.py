"""The real Tryton server, a SQLite ledger and the worker, wired as in production.

The Tryton server is the one of ``tests/integration/tryton`` (one per run, same home);
each scenario module starts from the template's books. Scenarios speak in envelopes, the
way Salesforce's events arrive, and read the results back from Tryton.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.events import EventType
from revbridge.core.policy import EventPolicy, Pattern, build_policy
from revbridge.core.sfid import make_id
from revbridge.engine.worker import Target, Worker, WorkerStats
from revbridge.mdm.ownership import Ownership
from revbridge.services.ingest import IngestResult, ingest_lines
from revbridge.services.mdm_sync import MdmErp, MdmSalesforce
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries, events
from revbridge.testing import FakeSalesforce
from revbridge.tryton.adapter import TrytonErp
from revbridge.tryton.instance import InstanceInfo, TrytonInstance
from revbridge.tryton.operations import TrytonAccounting
from revbridge.tryton.rpc import TrytonClient
from tests.integration.tryton.conftest import tryton_instance

__all__ = ["tryton_instance"]

TODAY = datetime.now(UTC).date()

# Customers and revenue are batch classes by default (BatchRunner, at their cron time); the
# scenarios deliver them as they arrive so that one worker tells the whole story.
POLICY = build_policy(
    {
        t: EventPolicy(type=t, pattern=Pattern.REALTIME, schedule=None, rationale="scenario")
        for t in (EventType.CUSTOMER_UPSERTED, EventType.REVENUE_RECOGNIZED)
    }
)


@pytest.fixture(scope="module")
def tryton(tryton_instance: TrytonInstance) -> InstanceInfo:
    """The running instance with the template's books: each scenario module starts clean."""
    tryton_instance.reset()
    return tryton_instance.up()


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    engine = create_store_engine(sqlite_url)
    yield Ledger(engine)
    engine.dispose()


class Ids:
    """Salesforce-shaped ids, unique across the scenarios of a run."""

    _next = 1000

    @classmethod
    def make(cls, prefix: str) -> str:
        cls._next += 1
        return make_id(prefix, cls._next)


class Hub:
    """The hub as a finance reader pictures it: Salesforce in, Tryton and Salesforce out."""

    def __init__(self, ledger: Ledger, info: InstanceInfo) -> None:
        self.ledger = ledger
        self.info = info
        self.clock = ManualClock(datetime.now(UTC))
        self.erp = TrytonErp.connect(info.url, info.database, info.api_user, info.api_password)
        self.salesforce = FakeSalesforce()
        self.worker = Worker(
            ledger.engine,
            {
                "erp": Target("erp", self.erp),
                "salesforce": Target("salesforce", self.salesforce),
            },
            clock=self.clock,
            seed=7,
        )

    def ingest(self, *envelopes: dict[str, Any]) -> IngestResult:
        lines = [json.dumps(e).encode() for e in envelopes]
        return ingest_lines(self.ledger, lines, policy=POLICY, origin="scenario", clock=self.clock)

    async def deliver(self, rounds: int = 6) -> WorkerStats:
        """Run the worker until nothing is due, moving time on to pass retry backoffs."""
        for _ in range(rounds):
            await self.worker.run_until_idle()
            if not self.waiting():
                break
            self.clock.advance(timedelta(minutes=31))
        return self.worker.stats

    def states(self) -> Counter[str]:
        with self.ledger.engine.connect() as conn:
            return Counter(s for (s,) in conn.execute(select(deliveries.c.state)))

    def waiting(self) -> bool:
        states = self.states()
        return bool(states["pending"] + states["in_flight"])

    def dead_letters(self) -> dict[str, str]:
        """Source id to the reason, for every delivery parked for a person."""
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.source_id, deliveries.c.last_error)
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(deliveries.c.state == "dead_letter")
            ).all()
        return dict(rows)

    async def close(self) -> None:
        await self.erp.close()


def mastered_hub(ledger: Ledger, info: InstanceInfo, ownership: Ownership | None = None) -> Hub:
    """The scenario hub with the customer master in front of Tryton and Salesforce."""
    hub = Hub(ledger, info)
    own = ownership or Ownership()
    erp = MdmErp(hub.erp, ledger.engine, own, clock=hub.clock, salesforce=hub.salesforce)
    sf = MdmSalesforce(hub.salesforce, ledger.engine, own, erp_system="tryton", clock=hub.clock)
    hub.worker = Worker(
        ledger.engine,
        {"erp": Target("erp", erp), "salesforce": Target("salesforce", sf)},  # type: ignore[arg-type]
        clock=hub.clock,
        seed=7,
    )
    return hub


def accountant(info: InstanceInfo) -> tuple[TrytonClient, TrytonAccounting]:
    """Someone working in Tryton itself (the administrator), not through the hub."""
    client = TrytonClient(info.url, info.database, info.user, info.password)
    return client, TrytonAccounting(client)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# Envelopes, as Salesforce would send them ----------------------------------------------


def _envelope(kind: str, source_id: str, data: dict[str, Any], version: str = "1") -> dict:
    at = datetime.now(UTC).isoformat()
    return {
        "type": kind,
        "source": "salesforce",
        "source_id": source_id,
        "source_version": version,
        "occurred_at": at,
        "data": data,
    }


def customer(
    account_id: str,
    name: str,
    *,
    number: str | None = None,
    city: str = "Austin",
    street: str = "1 Main St",
    version: str = "1",
) -> dict:
    return _envelope(
        "customer.upserted",
        account_id,
        {
            "customer_id": account_id,
            "name": name,
            "erp_customer_number": number,
            "currency": "USD",
            "billing_address": {
                "line1": street,
                "city": city,
                "postal_code": "78701",
                "country": "US",
            },
        },
        version,
    )


def invoice(
    invoice_id: str,
    account_id: str,
    number: str,
    lines: list[tuple[str, int, str]],
    *,
    on: date = TODAY,
    due_in_days: int = 30,
) -> dict:
    rows = [
        {
            "line_id": str(i),
            "description": description,
            "quantity": str(quantity),
            "unit_price": price,
            "amount": str(quantity * Decimal(price)),
        }
        for i, (description, quantity, price) in enumerate(lines, start=1)
    ]
    total = str(sum(Decimal(r["amount"]) for r in rows))
    return _envelope(
        "invoice.posted",
        invoice_id,
        {
            "invoice_id": invoice_id,
            "invoice_number": number,
            "customer_id": account_id,
            "currency": "USD",
            "invoice_date": on.isoformat(),
            "due_date": (on + timedelta(days=due_in_days)).isoformat(),
            "lines": rows,
            "subtotal": total,
            "tax_total": "0",
            "total": total,
        },
    )


def payment(payment_id: str, account_id: str, amount: str, applied: list[tuple[str, str]]) -> dict:
    return _envelope(
        "payment.received",
        payment_id,
        {
            "payment_id": payment_id,
            "customer_id": account_id,
            "currency": "USD",
            "amount": amount,
            "received_on": TODAY.isoformat(),
            "method": "card",
            "applications": [{"invoice_id": i, "amount": a} for i, a in applied],
        },
    )


def credit_memo(memo_id: str, account_id: str, number: str, amount: str, invoice_id: str) -> dict:
    line = {
        "line_id": "1",
        "description": "Service credit",
        "quantity": "1",
        "unit_price": amount,
        "amount": amount,
    }
    return _envelope(
        "credit_memo.issued",
        memo_id,
        {
            "credit_memo_id": memo_id,
            "credit_memo_number": number,
            "customer_id": account_id,
            "currency": "USD",
            "issued_on": TODAY.isoformat(),
            "reason": "Outage credit",
            "lines": [line],
            "subtotal": amount,
            "tax_total": "0",
            "total": amount,
            "applications": [{"invoice_id": invoice_id, "amount": amount}],
        },
    )


def revenue(entry_id: str, account_id: str, invoice_id: str, on: date, amount: str) -> dict:
    return _envelope(
        "revenue.recognized",
        entry_id,
        {
            "schedule_entry_id": entry_id,
            "schedule_id": f"RS-{invoice_id}",
            "customer_id": account_id,
            "invoice_id": invoice_id,
            "period": on.strftime("%Y-%m"),
            "entry_date": on.isoformat(),
            "memo": "Monthly revenue recognition",
            "lines": [
                {"account": "2400 Deferred Revenue", "debit": amount, "currency": "USD"},
                {"account": "4000 Subscription Revenue", "credit": amount, "currency": "USD"},
            ],
        },
    )


def months_back(n: int) -> date:
    """The 15th of the month ``n`` months before this one (inside the template's years)."""
    year, month = TODAY.year, TODAY.month - n
    while month < 1:
        year, month = year - 1, month + 12
    return date(year, month, 15)
