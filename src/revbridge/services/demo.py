"""The end-to-end demo a newcomer runs first: ``revbridge demo`` (``make demo``).

A B2B company's business days are simulated in the Salesforce org sandbox (through its REST
API, the way a user's org produces them) and in the NetSuite sandbox (through its admin back
door, the way an accountant works in the ERP). The hub does what it does in production:
captures both sides, ingests idempotently, delivers with the worker (real-time classes at
once, batch classes when their schedule comes), rides out an ERP outage, then runs the
reconciliations. The counts it ends with are read back from both sandboxes and compared.

Time: the hub runs on a ``ManualClock`` (business time), so retries, the circuit breaker's
cooldown, alert thresholds and the nightly and month-end batch schedules all happen in
simulated time, in seconds of real time. The sandboxes stamp their own records with the wall
clock (``CreatedDate``, ``lastmodifieddate``); the business dates on the documents (invoice,
payment, credit note dates) are the simulated ones.

Plain functions with a progress callback: the CLI (``cli/demo.py``) renders them with Rich;
the scenario test calls ``run_demo`` directly.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import importlib
import json
import os
import random
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal, cast

import httpx
from sqlalchemy import Engine, distinct, func, select

from revbridge.clock import ManualClock
from revbridge.config import Settings, load_settings
from revbridge.core.wording import counted
from revbridge.engine.ports import ErpPort
from revbridge.engine.worker import Worker
from revbridge.errors import RevbridgeError
from revbridge.store.schema import alerts, batches, deliveries, events, targets

Progress = Callable[[str], None]
ErpKind = Literal["netsuite", "tryton"]
ObjectModel = Literal["billing", "revenue_cloud"]

API = "/services/data/v62.0"
CENT = Decimal("0.01")
# The NetSuite sandbox's seed data (its README, "Seed data"): what an implementer copies from
# their own account's setup lists into revbridge.toml.
NS_CURRENCIES = {"USD": "1", "EUR": "2", "GBP": "3", "JPY": "4"}
NS_ACCOUNTS = {"1100": "1", "1000": "2", "1010": "3", "4000": "4", "4100": "5", "2400": "6"}
NS_ITEMS = {"PLAT-SUB": "1", "SEAT-ADD": "2", "IMPL-SVC": "3"}
COMPANIES = (
    "Northwind Traders",
    "Contoso Pharmaceuticals",
    "Fabrikam Industries",
    "Initech",
    "Globex Corporation",
    "Umbrella Logistics",
    "Stark Components",
    "Wayne Biotech",
    "Tyrell Analytics",
    "Cyberdyne Robotics",
    "Soylent Foods",
    "Hooli Cloud",
    "Vandelay Imports",
    "Acme Tooling",
    "Massive Dynamic",
    "Wonka Confectionery",
)
PRODUCTS = (("Platform subscription", 1200), ("Additional seats", 45), ("Implementation", 950))
PRODUCT_CODES = {
    "Platform subscription": "PLAT-SUB",
    "Additional seats": "SEAT-ADD",
    "Implementation": "IMPL-SVC",
}

FLOW_TYPES = (
    "customer.upserted",
    "invoice.posted",
    "payment.received",
    "credit_memo.issued",
    "revenue.recognized",
    "erp.payment.received",
    "customer.credit_status_changed",
    "gl.posted",
    "reporting.refreshed",
)


class DemoFailed(RevbridgeError):
    """The demo's story did not hold: a count disagrees, something was dead-lettered."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    """What the newcomer chose: where, which ERP, how many business days, which seed."""

    folder: Path = Path("demo-run")
    erp: ErpKind = "netsuite"
    days: int = 5
    seed: int = 42
    object_model: ObjectModel = "billing"
    capture_mode: Literal["stream", "poll"] = "stream"
    outage_day: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """One event type's totals in the ledger at the end of the run."""

    event_type: str
    direction: str
    pattern: str
    captured: int
    delivered: int
    batched: int
    dead_letters: int
    waiting: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """A count the hub reports beside the same count read back from a sandbox."""

    what: str
    system: str
    query: str
    hub: int
    sandbox: int

    @property
    def agrees(self) -> bool:
        return self.hub == self.sandbox


@dataclass(slots=True, kw_only=True)
class Outage:
    """The ERP outage as the hub lived it."""

    day: int = 0
    failed_attempts: int = 0
    waiting_at_peak: int = 0
    circuit_opened: bool = False
    alert_opened: str | None = None
    alert_resolved: bool = False
    drained: bool = False


@dataclass(slots=True, kw_only=True)
class DemoReport:
    config_path: Path
    store_url: str
    days: list[date] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    outage: Outage = field(default_factory=Outage)
    batch_runs: int = 0
    recon_reports: list[Path] = field(default_factory=list)
    recon_note: str = ""
    serve_command: str = ""
    still_running: str = ""  # a server the demo leaves running (Tryton), and how to stop it
    json_path: Path | None = None
    console_url: str = ""
    console_token: str = field(default="", repr=False)  # shown once, never written to a file

    @property
    def dead_letters(self) -> int:
        return sum(f.dead_letters for f in self.flows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": str(self.config_path),
            "store_url": self.store_url,
            "business_days": [d.isoformat() for d in self.days],
            "flows": [asdict(f) for f in self.flows],
            "checks": [asdict(c) | {"agrees": c.agrees} for c in self.checks],
            "outage": asdict(self.outage),
            "batch_runs": self.batch_runs,
            "dead_letters": self.dead_letters,
            "recon_reports": [str(p) for p in self.recon_reports],
            "recon_note": self.recon_note,
            "serve_command": self.serve_command,
            "still_running": self.still_running,
            "problems": self.problems,
        }

    @property
    def problems(self) -> list[str]:
        """What did not hold: the demo fails (exit 1) when this is not empty."""
        found = [
            f"{c.what}: the hub says {c.hub}, {c.system} says {c.sandbox}"
            for c in self.checks
            if not c.agrees
        ]
        if self.dead_letters:
            found.append(f"{counted(self.dead_letters, 'dead letter')}: see `revbridge dlq list`")
        waiting = sum(f.waiting for f in self.flows)
        if waiting:
            found.append(
                f"{counted(waiting, 'event')} still {'waits' if waiting == 1 else 'wait'} "
                "for delivery: see `revbridge status`"
            )
        o = self.outage
        if o.day and not (o.circuit_opened and o.alert_opened and o.alert_resolved and o.drained):
            found.append(
                "the outage did not go as designed: circuit opened "
                f"{o.circuit_opened}, alert {o.alert_opened!r} resolved {o.alert_resolved}, "
                f"drained {o.drained}"
            )
        return found


# --------------------------------------------------------------------------- the calendar


def business_days(start: date, n: int) -> list[date]:
    """``n`` weekdays from ``start`` (inclusive)."""
    days: list[date] = []
    d = start
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def first_business_day(today: date) -> date:
    """The first weekday of ``today``'s month: the demo's month starts there."""
    d = today.replace(day=1)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------- the Salesforce org


_INVOICE_FIELDS = {
    "billing": {
        "object": "blng__Invoice__c",
        "account": "blng__Account__c",
        "date": "blng__InvoiceDate__c",
        "due": "blng__DueDate__c",
        "subtotal": "blng__Subtotal__c",
        "tax": "blng__TaxAmount__c",
        "status": "blng__InvoiceStatus__c",
        "posted": "blng__InvoicePostedDate__c",
        "line": "blng__InvoiceLine__c",
        "parent": "blng__Invoice__c",
        "product": "blng__Product__c",
        "quantity": "blng__Quantity__c",
        "price": "blng__UnitPrice__c",
        "amount": "blng__Subtotal__c",
        "line_tax": "blng__TaxAmount__c",
    },
    "revenue_cloud": {
        "object": "Invoice",
        "account": "BillingAccountId",
        "date": "InvoiceDate",
        "due": "DueDate",
        "subtotal": "TotalAmount",
        "tax": "TotalTaxAmount",
        "status": "Status",
        "posted": "PostedDate",
        "line": "InvoiceLine",
        "parent": "InvoiceId",
        "product": "Product2Id",
        "quantity": "Quantity",
        "price": "UnitPrice",
        "amount": "ChargeAmount",
        "line_tax": "TaxAmount",
    },
}


class Org:
    """The company's Salesforce org: its users create records through the REST API."""

    def __init__(self, base_url: str, sandbox_config: Any, model: ObjectModel) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        token = self.http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": sandbox_config.client_id,
                "client_secret": sandbox_config.client_secret,
                "username": sandbox_config.username,
                "password": sandbox_config.password,
            },
        )
        token.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        self.model = model
        self.products = {
            name: self.create("Product2", {"Name": name, "ProductCode": code})
            for name, code in PRODUCT_CODES.items()
        }

    def close(self) -> None:
        self.http.close()

    def create(self, sobject: str, body: dict[str, Any]) -> str:
        r = self.http.post(f"{API}/sobjects/{sobject}", json=body)
        if r.status_code != 201:
            raise DemoFailed(f"Salesforce refused a new {sobject}: {r.text}")
        record_id: str = r.json()["id"]
        return record_id

    def update(self, sobject: str, record_id: str, body: dict[str, Any]) -> None:
        r = self.http.patch(f"{API}/sobjects/{sobject}/{record_id}", json=body)
        if r.status_code != 204:
            raise DemoFailed(f"Salesforce refused to update {sobject} {record_id}: {r.text}")

    def count(self, soql: str) -> int:
        r = self.http.get(f"{API}/query", params={"q": soql})
        if r.status_code != 200:
            raise DemoFailed(f"SOQL failed: {soql}: {r.text}")
        return int(r.json()["totalSize"])

    # The business objects, in whichever object model the org runs.

    def account(self, name: str, parent: str | None) -> str:
        body: dict[str, Any] = {"Name": name, "CurrencyIsoCode": "USD", "Type": "Customer"}
        if parent:
            body["ParentId"] = parent
        return self.create("Account", body)

    def invoice(
        self, account: str, day: date, lines: list[tuple[str, int, Decimal]], tax_rate: Decimal
    ) -> tuple[str, Decimal]:
        """A posted invoice with its lines; returns its id and total (tax included)."""
        amounts = [(name, qty, money(qty * price)) for name, qty, price in lines]
        subtotal = sum((a for _, _, a in amounts), Decimal(0))
        taxes = [money(a * tax_rate) for _, _, a in amounts]
        tax = sum(taxes, Decimal(0))
        due = day + timedelta(days=30)
        f = _INVOICE_FIELDS[self.model]
        inv = self.create(
            f["object"],
            {
                f["account"]: account,
                f["date"]: day.isoformat(),
                f["due"]: due.isoformat(),
                f["subtotal"]: float(subtotal),
                f["tax"]: float(tax),
            },
        )
        for (name, qty, amount), line_tax in zip(amounts, taxes, strict=True):
            line: dict[str, Any] = {
                f["parent"]: inv,
                f["product"]: self.products[name],
                f["quantity"]: qty,
                f["price"]: float(amount / qty),
                f["amount"]: float(amount),
                f["line_tax"]: float(line_tax),
            }
            if self.model == "revenue_cloud":  # service dates are required on these lines
                line["InvoiceLineStartDate"] = day.isoformat()
                line["InvoiceLineEndDate"] = (day + timedelta(days=364)).isoformat()
            self.create(f["line"], line)
        posted = day.isoformat() if self.model == "billing" else f"{day.isoformat()}T12:00:00Z"
        self.update(f["object"], inv, {f["status"]: "Posted", f["posted"]: posted})
        return inv, subtotal + tax

    def payment(self, account: str, invoice: str, amount: Decimal, day: date, ref: str) -> str:
        """A customer's payment, allocated to one invoice, then processed."""
        if self.model == "billing":
            pay = self.create(
                "blng__Payment__c",
                {
                    "blng__Account__c": account,
                    "blng__Amount__c": float(amount),
                    "blng__PaymentDate__c": day.isoformat(),
                    "blng__PaymentType__c": "ACH",
                    "blng__GatewayID__c": ref,
                    "blng__Status__c": "Draft",
                },
            )
            self.create(
                "blng__PaymentAllocationInvoice__c",
                {
                    "blng__Payment__c": pay,
                    "blng__Invoice__c": invoice,
                    "blng__Amount__c": float(amount),
                },
            )
            self.update("blng__Payment__c", pay, {"blng__Status__c": "Processed"})
        else:
            pay = self.create(
                "Payment",
                {
                    "AccountId": account,
                    "Amount": float(amount),
                    "EffectiveDate": f"{day.isoformat()}T12:00:00Z",
                    "Type": "Sale",
                    "GatewayRefNumber": ref,
                    "Status": "Draft",
                },
            )
            self.create(
                "PaymentLineInvoice",
                {"PaymentId": pay, "InvoiceId": invoice, "Amount": float(amount)},
            )
            self.update("Payment", pay, {"Status": "Processed"})
        return pay

    def credit(self, account: str, invoice: str, amount: Decimal, day: date) -> str:
        """A posted credit note (memo) against one invoice."""
        if self.model == "billing":
            note = self.create(
                "blng__CreditNote__c",
                {
                    "blng__Account__c": account,
                    "blng__RelatedInvoice__c": invoice,
                    "blng__CreditNoteDate__c": day.isoformat(),
                    "blng__TotalAmount__c": float(amount),
                    # Wholly allocated to the invoice it credits, as NetSuite applies it.
                    "blng__Allocations__c": float(amount),
                    "blng__Balance__c": 0,
                },
            )
            self.update("blng__CreditNote__c", note, {"blng__Status__c": "Posted"})
            return note
        memo = self.create(
            "CreditMemo",
            {
                "BillingAccountId": account,
                "ReferenceEntityId": invoice,
                "CreditDate": day.isoformat(),
                "TotalAmount": float(amount),
                "TotalAmountWithTax": float(amount),
                "Balance": 0,  # wholly applied to the invoice it credits, as NetSuite does
            },
        )
        self.create(
            "CreditMemoLine",
            {
                "CreditMemoId": memo,
                "Product2Id": self.products[PRODUCTS[2][0]],
                "ChargeAmount": float(amount),
                "TaxAmount": 0,
            },
        )
        self.update("CreditMemo", memo, {"Status": "Posted"})
        return memo

    def finance_period(self, month_start: date) -> str:
        last = month_start.replace(day=calendar.monthrange(month_start.year, month_start.month)[1])
        return self.create(
            "blng__FinancePeriod__c",
            {
                "Name": month_start.strftime("%Y-%m"),
                "blng__PeriodStartDate__c": month_start.isoformat(),
                "blng__PeriodEndDate__c": last.isoformat(),
            },
        )

    def revenue(
        self, account: str, invoice: str, annual: Decimal, period: str, recognized: Decimal
    ) -> str | None:
        """A revenue schedule for a subscription and this month's recognized transaction."""
        if self.model != "billing":
            return None  # Revenue Cloud recognizes revenue outside these objects (not mapped)
        schedule = self.create(
            "blng__RevenueSchedule__c",
            {"blng__Account__c": account, "blng__TotalRevenueAmount__c": float(annual)},
        )
        line = self.http.get(
            f"{API}/query",
            params={
                "q": f"SELECT Id FROM blng__InvoiceLine__c WHERE blng__Invoice__c = '{invoice}' "
                "LIMIT 1"
            },
        ).json()["records"][0]["Id"]
        return self.create(
            "blng__RevenueTransaction__c",
            {
                "blng__RevenueSchedule__c": schedule,
                "blng__RevenueFinancePeriod__c": period,
                "blng__RevenueAmount__c": float(recognized),
                "blng__InvoiceLine__c": line,
                "blng__Account__c": account,
                "blng__Status__c": "Recognized",
            },
        )


# --------------------------------------------------------------------------- the ERP side


class NetSuiteSide:
    """The NetSuite sandbox: the accountant's back door, faults, and SuiteQL read-back."""

    name = "NetSuite"

    def __init__(self, running: Any) -> None:
        self.running = running
        self.admin = httpx.Client(base_url=running.admin_url, timeout=30)

    def close(self) -> None:
        self.admin.close()

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        r = self.admin.request(method, path, json=body)
        if r.status_code >= 300:
            raise DemoFailed(f"NetSuite sandbox admin {method} {path}: {r.text}")
        return r.json() if r.content else None

    def set_up_year(self, year: int) -> None:
        with contextlib.suppress(DemoFailed):  # already set up (the current year is seeded)
            self._admin("POST", "/accountingPeriod/year", {"year": year})

    def outage(self, on: bool) -> None:
        if on:
            self._admin("PUT", "/faults", {"spec": "outage=on"})
        else:
            self._admin("DELETE", "/faults")

    async def suiteql(self, query: str) -> list[dict[str, Any]]:
        """Rows through SuiteQL, as the integration user (TBA), independently of the hub."""
        from revbridge.netsuite.client import NetSuiteHttp

        http = NetSuiteHttp(self.connector_config())
        try:
            return list(await http.suiteql_all(query))
        finally:
            await http.aclose()

    async def count(self, query: str) -> int:
        rows = await self.suiteql(query)
        return int(rows[0].get("n", 0)) if rows else 0

    def connector_config(self) -> Any:
        from revbridge.netsuite.config import NetSuiteConfig

        cfg = self.running.config
        return NetSuiteConfig(
            account_id=cfg.account_id,
            consumer_key=cfg.consumer_key,
            consumer_secret=cfg.consumer_secret,
            token_id=cfg.token_id,
            token_secret=cfg.token_secret,
            base_url=self.running.base_url,
        )

    async def internal_id(self, table: str, external_id: str) -> str | None:
        rows = await self.suiteql(f"SELECT id FROM {table} WHERE externalid = '{external_id}'")
        return str(rows[0]["id"]) if rows else None

    async def accountant_payment(
        self, sf_invoice: str, amount: Decimal, day: date, memo: str
    ) -> str | None:
        """The accountant enters a wire received against an invoice the hub delivered."""
        rows = await self.suiteql(
            "SELECT id, entity FROM transaction WHERE type = 'CustInvc' "
            f"AND externalid = 'SF-{sf_invoice}'"
        )
        if not rows:
            return None
        invoice_id, customer_id = str(rows[0]["id"]), str(rows[0]["entity"])
        created = self._admin(
            "POST",
            "/customerPayment",
            {
                "customer": {"id": customer_id},
                "payment": float(amount),
                "tranDate": day.isoformat(),
                "memo": memo,
                "apply": {
                    "items": [{"doc": {"id": invoice_id}, "apply": True, "amount": float(amount)}]
                },
            },
        )
        return str(created["id"])

    async def credit_hold(self, sf_account: str) -> bool:
        """The credit controller puts a customer on hold in the ERP."""
        customer = await self.internal_id("customer", f"SF-{sf_account}")
        if customer is None:
            return False
        self._admin("PUT", f"/customer/{customer}/credit", {"creditHoldOverride": "ON"})
        return True


class TrytonSide:
    """The managed local Tryton: a real ERP. Its outage is a real stop and start of the
    server; the accountant records a wire with Tryton's own pay wizard, as the
    administrator (not the hub's API user). The credit hold is not scripted for Tryton."""

    name = "Tryton"

    def __init__(self, instance: Any) -> None:
        self.instance = instance

    def close(self) -> None:
        """Tryton keeps running for the newcomer to look at (``revbridge erp tryton down``)."""

    def left_running(self, home: Path) -> str:
        """What the demo leaves running, and how to stop it: ``home`` as the user reaches
        it (``demo-run/.revbridge/tryton``)."""
        info = self.instance.info()
        return (
            f"Tryton keeps running at {info.url} for you to look at (log in as {info.user}; "
            f"`revbridge erp tryton up --home {home}` prints the password); stop it with "
            f"`revbridge erp tryton down --home {home}`"
        )

    def outage(self, on: bool) -> None:
        if on:
            self.instance.down()
        else:
            self.instance.up()

    async def accountant_payment(
        self, sf_invoice: str, amount: Decimal, day: date, memo: str
    ) -> str | None:
        from revbridge.tryton.operations import TrytonAccounting
        from revbridge.tryton.rpc import TrytonClient

        info = self.instance.info()
        client = TrytonClient(info.url, info.database, info.user, info.password)
        try:
            await client.login()
            books = TrytonAccounting(client)
            invoice = await books.find_invoice(sf_invoice)
            if invoice is None or invoice.amount_to_pay <= 0:
                return None
            paid = await books.record_payment(
                invoice.id,
                min(amount, invoice.amount_to_pay),
                reference=f"WIRE-{day:%m%d}",
                date=day,
            )
            return str(paid.move_id)
        finally:
            await client.aclose()

    async def credit_hold(self, sf_account: str) -> bool:
        return False

    async def found(self, references: list[str]) -> int:
        """How many of these Salesforce documents Tryton holds (by invoice reference)."""
        from revbridge.tryton.adapter import TrytonErp

        info = self.instance.info()
        erp = TrytonErp.connect(info.url, info.database, info.api_user, info.api_password)
        try:
            await erp.ops.client.ensure_login()
            n = 0
            for ref in references:
                if await erp.ops.find_invoices(ref):
                    n += 1
            return n
        finally:
            await erp.close()


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class ProgressNotifier:
    """An alert channel that prints into the demo's progress, as an operator's phone would."""

    progress: Progress

    def notify(self, title: str, body: str, severity: str) -> bool:
        self.progress(f"  alert ({severity}): {title}")
        return True


@dataclass(slots=True)
class Company:
    """What the story remembers about the org, to keep the books consistent."""

    accounts: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    open_invoices: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # id: (acct, left)
    held: set[str] = field(default_factory=set)
    delivered_erp_payments: int = 0


def write_config(
    folder: Path, *, sf: Any, sf_key: Path, ns: Any | None, options: DemoOptions
) -> Path:
    """revbridge.toml for the demo: the two sandboxes, a SQLite ledger, the LogNotifier."""
    if ns is not None:
        erp_section = (
            '[erp]\nkind = "netsuite"\ncapture_interval_s = 60\n\n[erp.netsuite]\n'
            f'base_url = "{ns.base_url}"\n'
            'default_item_id = "1"\n'
            'tax_item_id = "4"\n'
            f"currency_map = {_toml_table(NS_CURRENCIES)}\n"
            f"gl_account_map = {_toml_table(NS_ACCOUNTS)}\n"
            f"item_map = {_toml_table(NS_ITEMS)}\n"
        )
    else:
        erp_section = '[erp]\nkind = "tryton"\ntryton_home = ".revbridge/tryton"\n'
    text = (
        "# Written by `revbridge demo`: the hub pointed at the in-process sandboxes it started.\n"
        "# The sandboxes stop when the demo ends; the ledger stays for `revbridge serve`,\n"
        "# `status`, `dlq list`, `dr status`...\n\n"
        '[store]\nurl = "sqlite:///revbridge.db"\n\n'
        f"{erp_section}\n"
        '[salesforce]\nkind = "salesforce"\n'
        f'login_url = "{sf.base_url}"\n'
        f'client_id = "{sf.sandbox.config.client_id}"\n'
        f'username = "{sf.sandbox.config.username}"\n'
        f'private_key_file = "{sf_key.relative_to(folder).as_posix()}"\n'
        f'object_model = "{options.object_model}"\n\n'
        "[alerts]\n# The log notifier is always on; add apprise URLs here (mailto://, slack://...).\n"
        "urls = []\n"
    )
    path = folder / "revbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _toml_table(mapping: dict[str, str]) -> str:
    return "{ " + ", ".join(f'"{k}" = "{v}"' for k, v in mapping.items()) + " }"


@contextlib.contextmanager
def _netsuite_env(running: Any) -> Iterator[None]:
    """The TBA secrets come from the environment, never from the file (as in production)."""
    cfg = running.config
    values = {
        "NETSUITE_ACCOUNT_ID": cfg.account_id,
        "NETSUITE_CONSUMER_KEY": cfg.consumer_key,
        "NETSUITE_CONSUMER_SECRET": cfg.consumer_secret,
        "NETSUITE_TOKEN_ID": cfg.token_id,
        "NETSUITE_TOKEN_SECRET": cfg.token_secret,
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_demo(options: DemoOptions, progress: Progress = print) -> DemoReport:
    """Start the sandboxes, play the business days, and return what flowed and the checks."""
    from revbridge.netsuite.sandbox import SandboxConfig as NsConfig
    from revbridge.netsuite.sandbox import running_sandbox
    from revbridge.salesforce.sandbox import SandboxConfig as SfConfig
    from revbridge.salesforce.sandbox import run_in_thread
    from revbridge.salesforce.sandbox.tls import generate_jwt_keypair

    if options.days < 1:
        raise DemoFailed("--days must be at least 1")
    folder = options.folder
    folder.mkdir(parents=True, exist_ok=True)
    # Every run starts from a clean slate: the demo's own ledger, batches and reports only.
    stale_files = ("revbridge.db*", "recon-*.html", "recon.duckdb*", "demo-report.json")
    for stale in [f for pattern in stale_files for f in folder.glob(pattern)]:
        stale.unlink()
    for sub in ("batches", "jwt"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    key_path, cert = generate_jwt_keypair(folder)  # the connected app's certificate
    sf_config = SfConfig(jwt_certificate_pem=cert, event_poll_interval=timedelta(milliseconds=20))
    progress(
        "starting the Salesforce org sandbox"
        + (" and the NetSuite sandbox" if options.erp == "netsuite" else "")
        + " in-process"
    )
    with contextlib.ExitStack() as stack:
        sf = stack.enter_context(run_in_thread(sf_config))
        ns = stack.enter_context(running_sandbox(NsConfig())) if options.erp == "netsuite" else None
        if ns is not None:
            stack.enter_context(_netsuite_env(ns))
        config_path = write_config(folder, sf=sf, sf_key=key_path, ns=ns, options=options)
        settings = load_settings(config_path)
        progress(f"Salesforce org: {sf.base_url} (object model: {options.object_model})")
        if ns is not None:
            progress(f"NetSuite account {ns.config.account_id}: {ns.base_url}")
        progress(f"wrote {config_path} (SQLite ledger {settings.store_url})")
        erp: NetSuiteSide | TrytonSide | None = None
        if ns is not None:
            erp = NetSuiteSide(ns)
        else:
            from revbridge.tryton.instance import TrytonInstance

            progress("starting the managed Tryton (the first time builds its database: ~40 s)")
            instance = TrytonInstance(settings.path_in_base(settings.raw.erp.tryton_home))
            instance.up()
            instance.reset()
            instance.up()
            erp = TrytonSide(instance)
            progress(f"Tryton: {instance.info().url}")
        story = _Story(options, settings, sf, erp, progress, stack)
        asyncio.run(story.run())
        story.reconcile()
        report = asyncio.run(story.count(config_path))
        if isinstance(erp, TrytonSide):
            report.still_running = erp.left_running(
                config_path.parent / settings.raw.erp.tryton_home
            )
        return report
    raise AssertionError("unreachable")  # pragma: no cover - the with block returns


class _Story:
    """The business days, one method per moment of the day."""

    def __init__(
        self,
        options: DemoOptions,
        settings: Settings,
        sf: Any,
        erp: NetSuiteSide | TrytonSide | None,
        progress: Progress,
        stack: contextlib.ExitStack,
    ) -> None:
        from revbridge.services import open_ledger
        from revbridge.services.targets import build_worker

        self.options = options
        self.settings = settings
        self.progress = progress
        self.rng = random.Random(options.seed)  # noqa: S311 - a story, not security
        self.days = business_days(first_business_day(datetime.now(UTC).date()), options.days)
        self.clock = ManualClock(at(self.days[0], 8))
        self.org = Org(sf.base_url, sf.sandbox.config, options.object_model)
        stack.callback(self.org.close)
        self.erp = erp
        if self.erp is not None:
            stack.callback(self.erp.close)
        if isinstance(self.erp, NetSuiteSide):
            for year in {d.year for d in self.days} | {self.days[-1].year + 1}:
                self.erp.set_up_year(year)
        self.ledger = open_ledger(settings)
        self.worker: Worker = build_worker(
            settings, self.ledger.engine, clock=self.clock, worker_id="demo"
        )
        self.worker.alert_interval = timedelta(0)
        if self.worker.alerter is not None:  # beside the log notifier: the story shows alerts
            self.worker.alerter.notifiers.append(ProgressNotifier(progress))
        self.company = Company()
        self.period_id: str | None = None
        self.report = DemoReport(config_path=settings.path or Path(), store_url=settings.store_url)
        self.report.days = list(self.days)

    # ------------------------------------------------------------------ hub steps

    def jump(self, to: datetime) -> None:
        """Move business time forward to ``to`` (never back)."""
        if to > self.clock.now():
            self.clock.advance(to - self.clock.now())

    async def capture_salesforce(self) -> int:
        from revbridge.salesforce.capture import CaptureSettings, SalesforceCapture
        from revbridge.services.mdm_sync import salesforce_echo_filter
        from revbridge.services.targets import capture_profile, echo_fields, salesforce_client

        # The chart of accounts both demo ERPs share: revenue lands on 4000 Subscription
        # Revenue (NetSuite maps it by number, Tryton by name).
        profile = replace(
            capture_profile(self.settings), revenue_account="4000 Subscription Revenue"
        )

        client = salesforce_client(self.settings)
        try:
            capture = SalesforceCapture(
                client,
                self.ledger,
                self.settings.policy,
                CaptureSettings(profile=profile, echo_fields=echo_fields(self.settings)),
                clock=self.clock,
                # As `revbridge capture salesforce`: no echo of what the hub synced itself.
                envelope_filter=salesforce_echo_filter(self.settings, self.ledger.engine),
            )
            rep = await (
                capture.stream() if self.options.capture_mode == "stream" else capture.poll()
            )
        finally:
            await client.aclose()
        if rep.quarantined:
            raise DemoFailed(
                f"{counted(rep.quarantined, 'Salesforce record')} "
                f"{'was' if rep.quarantined == 1 else 'were'} quarantined"
            )
        return rep.accepted

    async def capture_erp(self) -> int:
        from revbridge.services.capture import capture_once, source_for

        port = self.worker.targets["erp"].port
        source = source_for(cast(ErpPort, port))
        if source is None:
            return 0

        result = await capture_once(source, self.ledger, self.settings.policy, clock=self.clock)
        return result.ingest.accepted

    async def deliver(self) -> dict[str, int]:
        before = self.worker.stats.as_dict()
        after = (await self.worker.run_until_idle()).as_dict()
        return {k: after[k] - before.get(k, 0) for k in after}

    async def _close_ports(self) -> None:
        for t in self.worker.targets.values():
            await t.port.close()

    # ------------------------------------------------------------------ the company's day

    def salesforce_activity(self, n: int, day: date) -> str:
        rng, org, co = self.rng, self.org, self.company
        new_accounts = 3 if n == 0 else rng.randint(1, 2)
        for _ in range(new_accounts):
            name = COMPANIES[len(co.accounts) % len(COMPANIES)]
            if len(co.accounts) >= len(COMPANIES):
                name = f"{name} {len(co.accounts) // len(COMPANIES) + 1}"
            parent = None
            if co.accounts and rng.random() < 0.4:
                parent_id, parent_name = rng.choice(co.accounts)
                region = rng.choice(["EMEA", "APAC", "Labs"])
                parent, name = parent_id, f"{parent_name.split(' ')[0]} {region}"
            co.accounts.append((org.account(name, parent), name))
        invoiceable = [a for a, _ in co.accounts if a not in co.held]
        invoices = 0
        revenue = 0
        new_invoices: list[str] = []
        for _ in range(rng.randint(3, 5)):
            account = rng.choice(invoiceable)
            lines = [
                (name, rng.randint(1, 12) if name == "Additional seats" else 1, Decimal(price))
                for name, price in rng.sample(PRODUCTS, rng.randint(1, 3))
            ]
            inv, total = org.invoice(account, day, lines, Decimal("0.08"))
            invoices += 1
            co.open_invoices[inv] = (account, total)
            new_invoices.append(inv)
            if self.period_id is not None and any(name == PRODUCTS[0][0] for name, _, _ in lines):
                annual = Decimal(PRODUCTS[0][1])
                if org.revenue(account, inv, annual, self.period_id, money(annual / 12)):
                    revenue += 1
        payments = credits = 0
        older = [i for i in co.open_invoices if i not in new_invoices]
        for inv in rng.sample(older, min(len(older), rng.randint(1, 3))):
            account, left = co.open_invoices[inv]
            amount = money(left * Decimal(rng.choice(["0.25", "0.5", "0.6"])))
            org.payment(account, inv, amount, day, f"ACH-{day:%m%d}-{payments + 1}")
            co.open_invoices[inv] = (account, left - amount)
            payments += 1
        if older:
            inv = rng.choice(older)
            account, left = co.open_invoices[inv]
            amount = money(left * Decimal("0.1"))
            org.credit(account, inv, amount, day)
            co.open_invoices[inv] = (account, left - amount)
            credits += 1
        return (
            f"{counted(new_accounts, 'new account')}, {counted(invoices, 'posted invoice')}, "
            f"{counted(payments, 'partial payment')}, {counted(credits, 'credit note')}, "
            f"{counted(revenue, 'revenue entry', 'revenue entries')}"
        )

    async def erp_activity(self, n: int, day: date) -> str:
        """The accountant's wire on day 2; the credit hold on the day after the outage."""
        if self.erp is None:
            return ""
        said: list[str] = []
        co = self.company
        if n == 1 or (n > 1 and n % 3 == 1):
            candidates = [i for i, (_, left) in co.open_invoices.items() if left > 0]
            if candidates:
                inv = candidates[0]
                account, left = co.open_invoices[inv]
                if await self.erp.accountant_payment(inv, left, day, "wire received"):
                    co.open_invoices[inv] = (account, Decimal(0))
                    said.append("the accountant enters a wire paying an invoice in full")
        if n == min(self.options.outage_day, len(self.days) - 1) and not co.held:
            # A customer whose invoices are all settled, so no delivery runs into the hold.
            busy = {a for a, left in co.open_invoices.values() if left > 0}
            free = [a for a, _ in co.accounts if a not in busy] or [co.accounts[-1][0]]
            if await self.erp.credit_hold(free[0]):
                co.held.add(free[0])
                said.append("the credit controller puts a customer on credit hold")
        return "; ".join(said)

    # ------------------------------------------------------------------ the days

    async def run(self) -> None:
        p = self.progress
        try:
            if self.options.object_model == "billing":
                self.period_id = self.org.finance_period(self.days[0].replace(day=1))
            for n, day in enumerate(self.days):
                self.jump(at(day, 8))
                p(f"[day {n + 1}] {day:%A %d %B %Y}")
                outage_today = self.erp is not None and n + 1 == self.options.outage_day
                if outage_today:
                    self.begin_outage(n + 1)
                said = self.salesforce_activity(n, day)
                p(f"  Salesforce: {said}")
                self.jump(at(day, 10))
                got = await self.capture_salesforce()
                stats = await self.deliver()
                p(
                    f"  hub: captured {counted(got, 'change')} from Salesforce; delivered "
                    f"{stats['delivered']}, {counted(stats['expedited'], 'customer')} pulled "
                    "ahead of their nightly batch"
                )
                if outage_today:
                    await self.ride_out_outage(day)
                self.jump(at(day, 15))
                said = await self.erp_activity(n, day)
                if said:
                    p(f"  ERP: {said}")
                got = await self.capture_erp()
                stats = await self.deliver()
                gl_note = (
                    " (GL postings wait for the nightly batch)"
                    if isinstance(self.erp, NetSuiteSide)
                    else ""
                )
                if got or stats["delivered"]:
                    p(
                        f"  hub: captured {counted(got, 'change')} from the ERP{gl_note}; "
                        "delivered "
                        f"{stats['delivered']} to Salesforce"
                    )
                self.jump(at(day + timedelta(days=1), 2, 5))
                stats = await self.deliver()
                p(f"  night: the batch window (02:00) delivered {stats['delivered']}")
            await self.month_end()
        finally:
            await self._close_ports()

    def begin_outage(self, day_no: int) -> None:
        assert self.erp is not None
        self.report.outage.day = day_no
        self.erp.outage(True)
        self.progress(
            "  ERP: NetSuite becomes unavailable (every call answers 503)"
            if isinstance(self.erp, NetSuiteSide)
            else "  ERP: the Tryton server stops"
        )

    async def ride_out_outage(self, day: date) -> None:
        assert self.erp is not None
        out = self.report.outage
        for hour in (11, 12, 13):
            self.jump(at(day, hour))
            await self.deliver()
            self._observe_outage()
        self.progress(
            f"  hub: {counted(out.failed_attempts, 'failed call')}; circuit "
            f"{'open' if out.circuit_opened else 'closed'}; "
            f"{counted(out.waiting_at_peak, 'event')} "
            f"{'waits' if out.waiting_at_peak == 1 else 'wait'} in the ledger; "
            f"alert: {out.alert_opened or 'none'}"
        )
        self.erp.outage(False)
        self.progress(f"  ERP: {self.erp.name} is back (13:30)")
        self.jump(at(day, 13, 30))
        for _ in range(12):  # the breaker probes after its cooldown, then the backlog drains
            await self.deliver()
            if self._waiting("erp") == 0:
                break
            self.clock.advance(timedelta(minutes=10))
        await self.deliver()
        out.drained = self._waiting("erp") == 0
        with self.ledger.engine.connect() as conn:
            row = conn.execute(
                select(alerts.c.resolved_at).where(alerts.c.key == "circuit_open:erp")
            ).first()
        out.alert_resolved = bool(row and row.resolved_at is not None)
        self.progress(
            f"  hub: backlog {'drained' if out.drained else 'NOT drained'}; alert "
            f"{'resolved' if out.alert_resolved else 'still open'}"
        )

    def _waiting(self, target: str) -> int:
        with self.ledger.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(deliveries)
                    .where(
                        deliveries.c.target == target,
                        deliveries.c.pattern == "realtime",
                        deliveries.c.state.in_(("pending", "parked", "in_flight")),
                    )
                ).scalar_one()
            )

    def _observe_outage(self) -> None:
        out = self.report.outage
        with self.ledger.engine.connect() as conn:
            circuit = conn.execute(
                select(targets.c.circuit).where(targets.c.name == "erp")
            ).scalar()
            key = conn.execute(
                select(alerts.c.title).where(
                    alerts.c.key == "circuit_open:erp", alerts.c.resolved_at.is_(None)
                )
            ).scalar()
        out.circuit_opened = out.circuit_opened or circuit == "open"
        out.alert_opened = out.alert_opened or key
        out.waiting_at_peak = max(out.waiting_at_peak, self._waiting("erp"))
        out.failed_attempts = self.worker.stats.as_dict().get("retried", 0)

    async def month_end(self) -> None:
        p = self.progress
        last = self.days[-1]
        nxt = (last.replace(day=1) + timedelta(days=32)).replace(day=1)
        self.jump(at(nxt, 3, 5))
        stats = await self.deliver()
        p(
            f"[month end] fast-forward to {nxt:%d %B} 03:05: the month-end batch window "
            f"delivered {stats['delivered']} (revenue journals)"
        )

    def reconciler(self) -> Callable[[str, date, date, bool], Any]:
        """``reconcile_period`` over both sandboxes, read back in pages NetSuite accepts
        (SuiteQL serves at most 1,000 rows a page)."""
        from revbridge.recon.period import reconcile_period
        from revbridge.services.recon_readback import refresh_from_config

        settings, engine = self.settings, self.ledger.engine

        def refresher(store: Any, now: datetime) -> Awaitable[object]:
            return refresh_from_config(settings, store, now=now, engine=engine, page_size=1000)

        def reconcile(scope: str, start: date, end: date, refresh: bool) -> Any:
            return reconcile_period(
                settings,
                engine,
                scope=scope,
                start=start,
                end=end,
                refresh=refresh,
                refresher=refresher,
                now=self.clock.now(),
            )

        return reconcile

    def reconcile(self) -> None:
        """The nightly (last business day) and month-end reconciliations, with HTML reports.

        Runs outside the story's event loop: the reconciliation reads both sandboxes back
        with its own clients. The reconciliation workflow is another part of the hub; when it
        is not in this build, the demo says so and goes on.
        """
        try:
            recon = importlib.import_module("revbridge.services.recon")
            render = importlib.import_module("revbridge.recon.report.render").render
        except ImportError:
            self.report.recon_note = (
                "the reconciliation workflow (revbridge.services.recon) is not in this build"
            )
            self.progress(f"[recon] skipped: {self.report.recon_note}")
            return
        last = self.days[-1]
        engine = self.ledger.engine
        for scope, period in (("nightly", last.isoformat()), ("monthly", f"{last:%Y-%m}")):
            start, end = recon.period_bounds(scope, period, today=last)
            try:
                outcome = recon.run_recon(
                    engine,
                    self.reconciler(),
                    scope=scope,
                    start=start,
                    end=end,
                    actor="demo",
                    now=self.clock.now(),
                )
            except RevbridgeError as exc:
                # Reported, not fatal: the flows and their checks stand on their own.
                self.report.recon_note = f"the {scope} reconciliation failed: {exc}"
                self.progress(f"[recon] {self.report.recon_note}")
                return
            r = outcome.report
            path = self.options.folder / f"recon-{scope}-{period}.html"
            path.write_bytes(render(r, "html"))
            self.report.recon_reports.append(path)
            self.progress(
                f"[recon] {scope} {period}: {r.matched_count} matched, "
                f"{counted(r.variance_count, 'variance')}, "
                f"{counted(outcome.open_cases, 'open case')} -> {path}"
            )

    # ------------------------------------------------------------------ the counts

    async def count(self, config_path: Path) -> DemoReport:
        from revbridge.services.access import Role, create_token

        engine = self.ledger.engine
        self.report.flows = ledger_flows(engine, self.settings)
        with engine.connect() as conn:
            self.report.batch_runs = int(
                conn.execute(select(func.count()).select_from(batches)).scalar_one()
            )
        self.report.checks = await self.sandbox_checks(engine)
        # The sandboxes stop with the demo: the console reads the ledger, no worker needed.
        self.report.serve_command = f"revbridge serve --config {config_path} --api-only"
        self.report.console_url = (
            f"http://{self.settings.raw.server.host}:{self.settings.raw.server.port}/"
        )
        self.report.console_token = create_token(
            engine,
            name="newcomer",
            role=Role.parse("operator"),
            now=datetime.now(UTC),
            actor="revbridge demo",
        )
        report_path = self.options.folder / "demo-report.json"
        report_path.write_text(json.dumps(self.report.as_dict(), indent=2), encoding="utf-8")
        self.report.json_path = report_path
        return self.report

    async def sandbox_checks(self, engine: Engine) -> list[Check]:
        billing = self.options.object_model == "billing"
        inv, pay, cred = (
            ("blng__Invoice__c", "blng__Payment__c", "blng__CreditNote__c")
            if billing
            else ("Invoice", "Payment", "CreditMemo")
        )
        inv_status = "blng__InvoiceStatus__c" if billing else "Status"
        pay_status = "blng__Status__c" if billing else "Status"
        sf_queries = [
            ("customer.upserted", "captured", "SELECT COUNT() FROM Account"),
            (
                "invoice.posted",
                "captured",
                f"SELECT COUNT() FROM {inv} WHERE {inv_status} = 'Posted'",
            ),
            (
                "payment.received",
                "captured",
                f"SELECT COUNT() FROM {pay} WHERE {pay_status} = 'Processed' "
                "AND ERP_Receipt_Number__c = null",
            ),
            (
                "credit_memo.issued",
                "captured",
                f"SELECT COUNT() FROM {cred} WHERE {'blng__Status__c' if billing else 'Status'} "
                "= 'Posted'",
            ),
            (
                "erp.payment.received",
                "delivered",
                f"SELECT COUNT() FROM {pay} WHERE ERP_Receipt_Number__c != null",
            ),
        ]
        if billing:
            sf_queries.append(
                (
                    "revenue.recognized",
                    "captured",
                    "SELECT COUNT() FROM blng__RevenueTransaction__c "
                    "WHERE blng__Status__c = 'Recognized'",
                )
            )
        checks: list[Check] = []
        for event_type, what, soql in sf_queries:
            hub = count_sources(engine, event_type, delivered=what == "delivered")
            checks.append(
                Check(
                    what=f"{event_type} {what}",
                    system="Salesforce",
                    query=soql,
                    hub=hub,
                    sandbox=self.org.count(soql),
                )
            )
        if isinstance(self.erp, TrytonSide):
            for event_type in ("invoice.posted", "credit_memo.issued"):
                refs = delivered_sources(engine, event_type)
                checks.append(
                    Check(
                        what=f"{event_type} delivered",
                        system="Tryton",
                        query="account.invoice (type out) with reference = the Salesforce id",
                        hub=len(refs),
                        sandbox=await self.erp.found(refs),
                    )
                )
        if isinstance(self.erp, NetSuiteSide):
            ns_queries = [
                (
                    "customer.upserted",
                    "SELECT COUNT(*) AS n FROM customer WHERE externalid LIKE 'SF-%'",
                ),
                (
                    "invoice.posted",
                    "SELECT COUNT(*) AS n FROM transaction WHERE type = 'CustInvc' "
                    "AND externalid LIKE 'SF-%'",
                ),
                (
                    "payment.received",
                    "SELECT COUNT(*) AS n FROM transaction WHERE type = 'CustPymt' "
                    "AND externalid LIKE 'SF-%'",
                ),
                (
                    "credit_memo.issued",
                    "SELECT COUNT(*) AS n FROM transaction WHERE type = 'CustCred' "
                    "AND externalid LIKE 'SF-%'",
                ),
            ]
            if billing:
                ns_queries.append(
                    (
                        "revenue.recognized",
                        "SELECT COUNT(*) AS n FROM transaction WHERE type = 'Journal' "
                        "AND externalid LIKE 'SF-%'",
                    )
                )
            for event_type, q in ns_queries:
                checks.append(
                    Check(
                        what=f"{event_type} delivered",
                        system="NetSuite",
                        query=q,
                        hub=count_sources(engine, event_type, delivered=True),
                        sandbox=await self.erp.count(q),
                    )
                )
            q = (
                "SELECT COUNT(*) AS n FROM transaction WHERE type = 'CustPymt' "
                "AND (externalid IS NULL OR externalid NOT LIKE 'SF-%')"
            )
            checks.append(
                Check(
                    what="erp.payment.received captured",
                    system="NetSuite",
                    query=q,
                    hub=count_sources(engine, "erp.payment.received", delivered=False),
                    sandbox=await self.erp.count(q),
                )
            )
            q = "SELECT COUNT(*) AS n FROM customer WHERE creditholdoverride = 'ON'"
            held_sf = "SELECT COUNT() FROM Account WHERE Credit_Hold__c = true"
            checks.append(
                Check(
                    what="customers on credit hold",
                    system="NetSuite vs Salesforce",
                    query=f"{q}  |  {held_sf}",
                    hub=self.org.count(held_sf),
                    sandbox=await self.erp.count(q),
                )
            )
        return checks


# --------------------------------------------------------------------------- ledger counts


def count_sources(engine: Engine, event_type: str, *, delivered: bool) -> int:
    """Distinct source records of a type in the ledger (delivered ones only, if asked)."""
    query = select(func.count(distinct(events.c.source_id))).where(events.c.type == event_type)
    if delivered:
        query = query.join(deliveries, deliveries.c.event_id == events.c.id).where(
            deliveries.c.state == "delivered"
        )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def delivered_sources(engine: Engine, event_type: str) -> list[str]:
    """The source ids of the delivered events of a type."""
    query = (
        select(events.c.source_id)
        .join(deliveries, deliveries.c.event_id == events.c.id)
        .where(events.c.type == event_type, deliveries.c.state == "delivered")
        .distinct()
    )
    with engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(query)]


def ledger_flows(engine: Engine, settings: Settings) -> list[Flow]:
    """Per event type: captured, delivered (of which in a batch), dead letters, still waiting."""
    from revbridge.core.events import EventType
    from revbridge.core.policy import policy_rows

    policy = {str(r["type"]): r for r in policy_rows(settings.policy)}
    with engine.connect() as conn:
        captured: dict[str, int] = dict(
            conn.execute(select(events.c.type, func.count()).group_by(events.c.type)).all()
        )
        states: dict[tuple[str, str], int] = {
            (t, s): n
            for t, s, n in conn.execute(
                select(events.c.type, deliveries.c.state, func.count())
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .group_by(events.c.type, deliveries.c.state)
            ).all()
        }
        batched: dict[str, int] = dict(
            conn.execute(
                select(events.c.type, func.count())
                .join(deliveries, deliveries.c.event_id == events.c.id)
                .where(deliveries.c.state == "delivered", deliveries.c.pattern == "batch")
                .group_by(events.c.type)
            ).all()
        )
    flows: list[Flow] = []
    for t in FLOW_TYPES:
        row = policy.get(t, {})
        flows.append(
            Flow(
                event_type=t,
                direction="ERP → Salesforce"
                if EventType(t).value.startswith(("erp.", "customer.credit", "gl.", "reporting."))
                else "Salesforce → ERP",
                pattern=str(row.get("pattern", "")),
                captured=int(captured.get(t, 0)),
                delivered=states.get((t, "delivered"), 0),
                batched=int(batched.get(t, 0)),
                dead_letters=states.get((t, "dead_letter"), 0),
                waiting=sum(states.get((t, s), 0) for s in ("pending", "parked", "in_flight")),
            )
        )
    return flows
