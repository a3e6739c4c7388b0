"""Realistic, mixed, valid canonical events as JSON Lines: the data behind the demo and tests.

Deterministic for a seed; without one, every call draws a fresh seed. Every record id and
number (Salesforce ids, invoice, credit memo, payment, journal and customer numbers) carries
the seed, so two data sets of different seeds never share a record: a second data set
ingested into the same ledger is new records, not other versions of the first one's. The
same seed gives the same events again, ids included. Customers come before their invoices;
payments and credit memos apply to earlier invoices and never exceed what is open; journals
balance; several currencies (including JPY with no minor unit). Events are built as plain
JSON-ready dicts so that a million of them can be written quickly; ``tests`` prove every one
of them validates.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from revbridge.core.money import minor_unit
from revbridge.core.sfid import make_id

CURRENCIES = ("USD", "USD", "USD", "EUR", "EUR", "GBP", "JPY")
# Seeds are 0 .. MAX_SEED: a seed fills the top six base-62 digits of a Salesforce id's
# twelve, the sequence within a data set the other six.
_SEQ_SPAN = 62**6
MAX_SEED = _SEQ_SPAN - 1
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PRODUCTS = (
    ("PLAT-SUB", "Platform subscription", Decimal("1200")),
    ("SEAT-ADD", "Additional seats", Decimal("45")),
    ("SUPPORT-P", "Premium support", Decimal("300")),
    ("IMPL-SVC", "Implementation services", Decimal("950")),
    ("API-PACK", "API call pack", Decimal("75.5")),
    ("TRAIN-01", "Training day", Decimal("1500")),
)
_NAMES = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Wonka",
    "Aperture",
    "Massive Dynamic",
    "Oscorp",
    "Nakatomi",
)
_SUFFIXES = ("Ltd", "GmbH", "Inc", "SAS", "KK", "LLC", "plc", "BV")
_CITIES = (("London", "GB"), ("Berlin", "DE"), ("Paris", "FR"), ("Austin", "US"), ("Tokyo", "JP"))
_INDUSTRIES = ("Manufacturing", "Software", "Retail", "Healthcare", "Logistics")
_TAX_RATE = {
    "USD": Decimal("0.08"),
    "EUR": Decimal("0.20"),
    "GBP": Decimal("0.20"),
    "JPY": Decimal("0.10"),
}
_WEIGHTS = (
    ("customer.upserted", 8),
    ("invoice.posted", 34),
    ("payment.received", 16),
    ("credit_memo.issued", 4),
    ("revenue.recognized", 16),
    ("erp.payment.received", 10),
    ("customer.credit_status_changed", 4),
    ("gl.posted", 6),
    ("reporting.refreshed", 2),
)


def _q(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)))


def _s(amount: Decimal) -> str:
    return format(amount, "f")


@dataclass
class _Customer:
    sf_id: str
    number: str
    name: str
    currency: str
    version: int = 1


@dataclass
class _Invoice:
    sf_id: str
    customer: _Customer
    open: Decimal
    total: Decimal


def _tag(seed: int) -> str:
    """The seed as six base-62 digits: the part every id and number of its data set shares."""
    out = ""
    for _ in range(6):
        seed, r = divmod(seed, 62)
        out = _BASE62[r] + out
    return out


def new_seed() -> int:
    """A fresh seed: what a call without one uses, so that its records are new ones."""
    return secrets.randbelow(_SEQ_SPAN)


def check_seed(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed {seed}: from 0 to {MAX_SEED}")
    return seed


@dataclass
class _State:
    rng: random.Random
    start: datetime
    step: timedelta
    seed: int = 0
    seq: int = 0
    customers: list[_Customer] = field(default_factory=list)
    invoices: list[_Invoice] = field(default_factory=list)
    open_invoices: list[_Invoice] = field(default_factory=list)
    tag: str = field(init=False)

    def __post_init__(self) -> None:
        self.tag = _tag(self.seed)

    def next_id(self, prefix: str) -> str:
        self.seq += 1
        return make_id(prefix, self.seed * _SEQ_SPAN + self.seq)

    def number(self, prefix: str, n: int, width: int) -> str:
        """A document or customer number of this data set: ``INV-<seed tag>-0000001``."""
        return f"{prefix}-{self.tag}-{n:0{width}d}"

    def at(self, i: int) -> datetime:
        return self.start + self.step * i


def _envelope(
    kind: str, source: str, source_id: str, version: str, at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": kind,
        "source": source,
        "source_id": source_id,
        "source_version": version,
        "occurred_at": at.isoformat(),
        "data": data,
    }


def _address(rng: random.Random) -> dict[str, Any]:
    city, country = rng.choice(_CITIES)
    return {
        "line1": f"{rng.randint(1, 400)} {rng.choice(('High St', 'Main St', 'Ring Rd'))}",
        "city": city,
        "postal_code": str(rng.randint(10000, 99999)),
        "country": country,
    }


def _customer(st: _State, i: int) -> dict[str, Any]:
    rng = st.rng
    at = st.at(i)
    if st.customers and rng.random() < 0.3:  # a change to an existing Account
        c = rng.choice(st.customers)
        c.version += 1
    else:
        sf_id = st.next_id("001")
        name = f"{rng.choice(_NAMES)} {rng.choice(_SUFFIXES)} {len(st.customers) + 1}"
        c = _Customer(
            sf_id, st.number("C", len(st.customers) + 10001, 5), name, rng.choice(CURRENCIES)
        )
        st.customers.append(c)
    parent = None
    if len(st.customers) > 5 and rng.random() < 0.15:
        candidate = rng.choice(st.customers[: len(st.customers) // 2])
        parent = candidate.sf_id if candidate is not c else None
    data = {
        "customer_id": c.sf_id,
        "name": c.name,
        "parent_customer_id": parent,
        "currency": c.currency,
        "billing_address": _address(rng),
        "tax_id": f"TX{rng.randint(10**8, 10**9 - 1)}",
        "website": f"https://{c.name.split()[0].lower()}.example.com",
        "industry": rng.choice(_INDUSTRIES),
        "segment": rng.choice(("SMB", "Mid-Market", "Enterprise")),
        "owner": rng.choice(("ana@example.com", "li@example.com", "sam@example.com")),
        "contacts": [{"name": "Accounts Payable", "email": "ap@example.com", "role": "billing"}],
    }
    return _envelope(
        "customer.upserted", "salesforce", c.sf_id, f"{at.isoformat()}#{c.version}", at, data
    )


def _lines(
    rng: random.Random, currency: str, n: int
) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
    lines, subtotal, tax = [], Decimal(0), Decimal(0)
    for k in range(n):
        code, desc, price = rng.choice(_PRODUCTS)
        qty = Decimal(rng.randint(1, 12))
        unit = _q(price * (Decimal(150) if currency == "JPY" else Decimal(1)), currency)
        amount = _q(qty * unit, currency)
        line_tax = _q(amount * _TAX_RATE[currency], currency)
        lines.append(
            {
                "line_id": str(k + 1),
                "description": desc,
                "product_code": code,
                "quantity": _s(qty),
                "unit_price": _s(unit),
                "amount": _s(amount),
                "tax_amount": _s(line_tax),
            }
        )
        subtotal += amount
        tax += line_tax
    return lines, subtotal, tax


def _invoice(st: _State, i: int) -> dict[str, Any]:
    rng = st.rng
    at = st.at(i)
    c = rng.choice(st.customers)
    lines, subtotal, tax = _lines(rng, c.currency, rng.randint(1, 4))
    sf_id = st.next_id("a0X")
    inv = _Invoice(sf_id, c, subtotal + tax, subtotal + tax)
    st.invoices.append(inv)
    st.open_invoices.append(inv)
    day = at.date()
    data = {
        "invoice_id": sf_id,
        "invoice_number": st.number("INV", len(st.invoices), 7),
        "customer_id": c.sf_id,
        "currency": c.currency,
        "invoice_date": day.isoformat(),
        "due_date": (day + timedelta(days=30)).isoformat(),
        "payment_terms": "Net 30",
        "lines": lines,
        "subtotal": _s(subtotal),
        "tax_total": _s(tax),
        "total": _s(subtotal + tax),
    }
    return _envelope("invoice.posted", "salesforce", sf_id, at.isoformat(), at, data)


def _pick_open(st: _State) -> _Invoice | None:
    while st.open_invoices:
        idx = st.rng.randrange(len(st.open_invoices))
        inv = st.open_invoices[idx]
        if inv.open > 0:
            return inv
        st.open_invoices[idx] = st.open_invoices[-1]
        st.open_invoices.pop()
    return None


def _part(st: _State, inv: _Invoice) -> Decimal:
    full = st.rng.random() < 0.6
    amount = (
        inv.open
        if full
        else _q(inv.open * Decimal(st.rng.randint(20, 80)) / 100, inv.customer.currency)
    )
    amount = max(amount, Decimal(1).scaleb(-minor_unit(inv.customer.currency)))
    amount = min(amount, inv.open)
    inv.open -= amount
    return amount


def _payment(st: _State, i: int, erp: bool) -> dict[str, Any] | None:
    inv = _pick_open(st)
    if inv is None:
        return None
    at = st.at(i)
    amount = _part(st, inv)
    c = inv.customer
    if erp:
        pay_id = st.number("PMT", st.seq + 1, 8)
        st.seq += 1
        data = {
            "erp_payment_id": pay_id,
            "erp_customer_number": c.number,
            "customer_id": c.sf_id,
            "currency": c.currency,
            "amount": _s(amount),
            "received_on": at.date().isoformat(),
            "method": st.rng.choice(("wire", "lockbox", "ach")),
            "reference": st.number("BANK", st.seq, 9),
            "applications": [{"invoice_id": inv.sf_id, "amount": _s(amount)}],
        }
        return _envelope("erp.payment.received", "erp", pay_id, at.isoformat(), at, data)
    sf_id = st.next_id("a0P")
    data = {
        "payment_id": sf_id,
        "customer_id": c.sf_id,
        "currency": c.currency,
        "amount": _s(amount),
        "received_on": at.date().isoformat(),
        "method": "card",
        "reference": f"ch_{st.tag}{st.seq:012d}",
        "applications": [{"invoice_id": inv.sf_id, "amount": _s(amount)}],
    }
    return _envelope("payment.received", "salesforce", sf_id, at.isoformat(), at, data)


def _credit_memo(st: _State, i: int) -> dict[str, Any] | None:
    inv = _pick_open(st)
    if inv is None:
        return None
    at = st.at(i)
    c = inv.customer
    cur = c.currency
    gross = min(inv.open, _q(inv.total * Decimal(st.rng.randint(5, 30)) / 100, cur))
    net = _q(gross / (1 + _TAX_RATE[cur]), cur)
    tax = gross - net
    if net <= 0 or tax < 0:
        return None
    inv.open -= gross
    sf_id = st.next_id("a0C")
    data = {
        "credit_memo_id": sf_id,
        "credit_memo_number": st.number("CM", st.seq, 7),
        "customer_id": c.sf_id,
        "currency": cur,
        "issued_on": at.date().isoformat(),
        "reason": st.rng.choice(("Service credit", "Pricing correction", "Returned seats")),
        "lines": [
            {
                "line_id": "1",
                "description": "Credit",
                "quantity": "1",
                "unit_price": _s(net),
                "amount": _s(net),
                "tax_amount": _s(tax),
            }
        ],
        "subtotal": _s(net),
        "tax_total": _s(tax),
        "total": _s(gross),
        "applications": [{"invoice_id": inv.sf_id, "amount": _s(gross)}],
    }
    return _envelope("credit_memo.issued", "salesforce", sf_id, at.isoformat(), at, data)


def _journal(st: _State, currency: str, amount: Decimal, dr: str, cr: str) -> list[dict[str, Any]]:
    return [
        {"account": dr, "debit": _s(amount), "credit": "0", "currency": currency},
        {"account": cr, "debit": "0", "credit": _s(amount), "currency": currency},
    ]


def _revenue(st: _State, i: int) -> dict[str, Any] | None:
    if not st.invoices:
        return None
    inv = st.rng.choice(st.invoices)
    at = st.at(i)
    cur = inv.customer.currency
    amount = max(_q(inv.total / 12, cur), Decimal(1))
    sf_id = st.next_id("a0R")
    data = {
        "schedule_entry_id": sf_id,
        "schedule_id": f"RS-{inv.sf_id}",
        "customer_id": inv.customer.sf_id,
        "invoice_id": inv.sf_id,
        "period": at.strftime("%Y-%m"),
        "entry_date": at.date().isoformat(),
        "memo": "Monthly revenue recognition",
        "lines": _journal(st, cur, amount, "2400 Deferred Revenue", "4000 Subscription Revenue"),
    }
    return _envelope("revenue.recognized", "salesforce", sf_id, at.isoformat(), at, data)


def _credit_status(st: _State, i: int) -> dict[str, Any]:
    c = st.rng.choice(st.customers)
    at = st.at(i)
    hold = st.rng.random() < 0.4
    data = {
        "erp_customer_number": c.number,
        "customer_id": c.sf_id,
        "status": "on_hold" if hold else "active",
        "credit_hold": hold,
        "currency": c.currency,
        "credit_limit": _s(_q(Decimal(st.rng.choice((5000, 20000, 100000))), c.currency)),
        "payment_terms": st.rng.choice(("Net 30", "Net 45", "Net 60")),
        "reason": "Over credit limit" if hold else "Limit review",
        "changed_at": at.isoformat(),
    }
    return _envelope(
        "customer.credit_status_changed", "erp", f"CS-{c.number}", at.isoformat(), at, data
    )


def _gl(st: _State, i: int) -> dict[str, Any]:
    at = st.at(i)
    cur = st.rng.choice(CURRENCIES)
    amount = _q(Decimal(st.rng.randint(100, 50000)), cur)
    st.seq += 1
    journal_id = st.number("JE", st.seq, 8)
    data = {
        "erp_journal_id": journal_id,
        "journal_number": journal_id,
        "period": at.strftime("%Y-%m"),
        "posting_date": at.date().isoformat(),
        "memo": "AR invoice posting",
        "lines": _journal(st, cur, amount, "1200 Accounts Receivable", "4000 Subscription Revenue"),
    }
    return _envelope("gl.posted", "erp", journal_id, at.isoformat(), at, data)


def _reporting(st: _State, i: int) -> dict[str, Any]:
    at = st.at(i)
    sample = st.rng.sample(st.customers, min(len(st.customers), 5))
    balances = []
    for c in sample:
        open_bal = _q(Decimal(st.rng.randint(0, 90000)), c.currency)
        overdue = _q(open_bal * Decimal(st.rng.randint(0, 50)) / 100, c.currency)
        balances.append(
            {
                "erp_customer_number": c.number,
                "customer_id": c.sf_id,
                "currency": c.currency,
                "open_balance": _s(open_bal),
                "overdue_balance": _s(overdue),
                "days_overdue": st.rng.randint(0, 60) if overdue else 0,
                "last_payment_on": (at.date() - timedelta(days=st.rng.randint(1, 40))).isoformat(),
            }
        )
    st.seq += 1
    return _envelope(
        "reporting.refreshed",
        "erp",
        st.number("AR", st.seq, 8),
        at.isoformat(),
        at,
        {"as_of": at.date().isoformat(), "balances": balances},
    )


def generate_events(
    n: int, *, seed: int | None = None, days: int = 30, end: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` envelopes (JSON-ready dicts) spread over the ``days`` before ``end``.

    ``seed`` (0 .. ``MAX_SEED``): the same seed, the same events; none: a fresh one
    (``new_seed``), so the records are new ones."""
    seed = new_seed() if seed is None else check_seed(seed)
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    end = end or datetime(2026, 11, 1, tzinfo=UTC)
    start = end - timedelta(days=days)
    st = _State(rng=rng, start=start, step=timedelta(days=days) / max(n, 1), seed=seed)
    kinds = [k for k, _ in _WEIGHTS]
    weights = [w for _, w in _WEIGHTS]
    makers: dict[str, Callable[[_State, int], dict[str, Any] | None]] = {
        "customer.upserted": _customer,
        "invoice.posted": _invoice,
        "payment.received": lambda s, i: _payment(s, i, erp=False),
        "credit_memo.issued": _credit_memo,
        "revenue.recognized": _revenue,
        "erp.payment.received": lambda s, i: _payment(s, i, erp=True),
        "customer.credit_status_changed": _credit_status,
        "gl.posted": _gl,
        "reporting.refreshed": _reporting,
    }
    for i in range(n):
        kind = "customer.upserted" if len(st.customers) < 3 else rng.choices(kinds, weights)[0]
        event = makers[kind](st, i)
        if event is None:  # nothing open to pay or credit yet: post an invoice instead
            event = _invoice(st, i)
        yield event


def write_events(
    out: IO[str], n: int, *, seed: int | None = None, days: int = 30, end: datetime | None = None
) -> int:
    count = 0
    for event in generate_events(n, seed=seed, days=days, end=end):
        out.write(json.dumps(event, separators=(",", ":")))
        out.write("\n")
        count += 1
    return count


def write_events_file(path: Path, n: int, *, seed: int | None = None, days: int = 30) -> int:
    with path.open("w", encoding="utf-8") as fh:
        return write_events(fh, n, seed=seed, days=days)
