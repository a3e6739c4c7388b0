"""Canonical events: one immutable record type per flow, nine in all.

Salesforce to ERP: ``customer.upserted``, ``invoice.posted``, ``payment.received``,
``credit_memo.issued``, ``revenue.recognized``. ERP to Salesforce: ``erp.payment.received``,
``customer.credit_status_changed``, ``gl.posted``, ``reporting.refreshed``.

Every payload checks its own business rules in ``__post_init__`` and raises a ``DomainError``
(an ``InvalidMoney``, ``UnbalancedJournal`` or ``InvalidEvent``) with the field and the reason.
Amounts are ``Decimal`` in the document's currency at exactly that currency's minor unit.
Dates (``date``) are business dates; timestamps (``datetime``) are always timezone-aware.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

from revbridge.core import sfid
from revbridge.core.money import check_amount, minor_unit
from revbridge.errors import InvalidEvent, InvalidMoney, UnbalancedJournal

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ZERO = Decimal(0)


class EventType(StrEnum):
    CUSTOMER_UPSERTED = "customer.upserted"
    INVOICE_POSTED = "invoice.posted"
    PAYMENT_RECEIVED = "payment.received"
    CREDIT_MEMO_ISSUED = "credit_memo.issued"
    REVENUE_RECOGNIZED = "revenue.recognized"
    ERP_PAYMENT_RECEIVED = "erp.payment.received"
    CUSTOMER_CREDIT_STATUS_CHANGED = "customer.credit_status_changed"
    GL_POSTED = "gl.posted"
    REPORTING_REFRESHED = "reporting.refreshed"


class Direction(StrEnum):
    TO_ERP = "to_erp"
    TO_SALESFORCE = "to_salesforce"


def _require(condition: bool, message: str, *args: object) -> None:
    """Raise ``InvalidEvent(message)`` unless ``condition``; ``args`` fill ``message``'s ``{}``
    only then (every stored event is checked again on delivery: formatting amounts into a
    message that is never raised was a good part of that cost)."""
    if not condition:
        raise InvalidEvent(message.format(*args) if args else message)


def _check_currency(currency: str) -> None:
    minor_unit(currency)


def _aware(value: datetime, what: str) -> None:
    _require(
        value.tzinfo is not None and value.utcoffset() is not None,
        "{}: {} has no timezone; timestamps must be timezone-aware",
        what,
        value,
    )


def _money(obj: object, names: Iterable[str], currency: str, prefix: str = "") -> None:
    """Normalize the named Decimal fields of a frozen record to the currency's scale."""
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            try:
                exact = check_amount(value, currency, what=name)
            except InvalidMoney as exc:
                raise InvalidMoney(f"{prefix}{exc}") from None
            object.__setattr__(obj, name, exact)


def plain_decimal(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and without an exponent: 1.50 -> 1.5, 100.0 -> 100."""
    if not value.is_finite():
        raise InvalidEvent(f"{value} is not a finite number")
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _positive(value: Decimal, what: str) -> None:
    _require(value > _ZERO, "{}: {} must be greater than zero", what, value)


# --------------------------------------------------------------------------- shared parts


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str | None = None
    country: str

    def __post_init__(self) -> None:
        _require(
            len(self.country) == 2 and self.country.isalpha() and self.country.isupper(),
            "country: {!r} is not an ISO 3166 alpha-2 code",
            self.country,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    name: str
    email: str | None = None
    phone: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentLine:
    """An invoice or credit memo line. ``amount`` is net of tax; ``tax_amount`` is its tax."""

    line_id: str
    description: str
    product_code: str | None = None
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    tax_amount: Decimal = _ZERO
    revenue_account: str | None = None

    def __post_init__(self) -> None:
        # Quantities and prices are not money: keep their value, drop trailing zeros, so that
        # "1.0" and "1" are the same payload for idempotency.
        for name in ("quantity", "unit_price"):
            object.__setattr__(self, name, plain_decimal(getattr(self, name)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Application:
    """Part of a payment or credit memo applied to one invoice (by its Salesforce id)."""

    invoice_id: str
    erp_invoice_id: str | None = None
    amount: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalLine:
    """One side of a journal entry: exactly one of ``debit`` and ``credit`` is non-zero."""

    account: str
    debit: Decimal = _ZERO
    credit: Decimal = _ZERO
    currency: str
    memo: str | None = None
    customer_id: str | None = None


def check_journal(lines: tuple[JournalLine, ...], what: str = "lines") -> tuple[JournalLine, ...]:
    """Normalize journal lines and prove that they balance in every currency."""
    _require(len(lines) >= 2, f"{what}: a journal entry needs at least two lines")
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [_ZERO, _ZERO])
    for i, line in enumerate(lines):
        where = f"{what}[{i}]."
        _money(line, ("debit", "credit"), line.currency, where)
        _require(
            line.debit >= _ZERO and line.credit >= _ZERO,
            "{}debit/credit: amounts are not negative; use the other side",
            where,
        )
        _require(
            (line.debit == _ZERO) != (line.credit == _ZERO),
            "{}debit/credit: exactly one of debit and credit must be non-zero",
            where,
        )
        totals[line.currency][0] += line.debit
        totals[line.currency][1] += line.credit
    unbalanced = {c: t for c, t in totals.items() if t[0] != t[1]}
    if unbalanced:
        detail = "; ".join(f"{c}: debits {d} != credits {k}" for c, (d, k) in unbalanced.items())
        raise UnbalancedJournal(f"{what}: journal entry does not balance ({detail})")
    return lines


class _Document(Protocol):
    @property
    def subtotal(self) -> Decimal: ...
    @property
    def tax_total(self) -> Decimal: ...
    @property
    def total(self) -> Decimal: ...


def _check_lines(doc: _Document, lines: tuple[DocumentLine, ...], currency: str) -> None:
    _require(len(lines) > 0, "lines: a document needs at least one line")
    ids = [line.line_id for line in lines]
    _require(len(set(ids)) == len(ids), "lines: line_id values must be unique")
    for i, line in enumerate(lines):
        _money(line, ("amount", "tax_amount"), currency, f"lines[{i}].")
    _money(doc, ("subtotal", "tax_total", "total"), currency)
    subtotal = sum((line.amount for line in lines), _ZERO)
    tax = sum((line.tax_amount for line in lines), _ZERO)
    _require(
        getattr(doc, "subtotal") == subtotal,  # noqa: B009 - shared by two record types
        "subtotal: {} is not the sum of the line amounts ({})",
        doc.subtotal,
        subtotal,
    )
    _require(
        getattr(doc, "tax_total") == tax,  # noqa: B009
        "tax_total: {} is not the sum of the line taxes ({})",
        doc.tax_total,
        tax,
    )
    _require(
        getattr(doc, "total") == subtotal + tax,  # noqa: B009
        "total: {} is not subtotal + tax_total ({})",
        doc.total,
        subtotal + tax,
    )


def _check_applications(
    applications: tuple[Application, ...], currency: str, limit: Decimal, what: str
) -> None:
    applied = _ZERO
    for i, app in enumerate(applications):
        try:
            amount = check_amount(app.amount, currency)
        except InvalidMoney as exc:
            raise InvalidMoney(f"applications[{i}].{exc}") from None
        object.__setattr__(app, "amount", amount)
        _require(amount > _ZERO, "applications[{}].amount: {} must be greater than zero", i, amount)
        applied += amount
    ids = {a.invoice_id for a in applications}
    _require(len(ids) == len(applications), "applications: an invoice may appear only once")
    _require(
        applied <= limit,
        "applications: {} {} applied is more than the {} of {}",
        applied,
        currency,
        what,
        limit,
    )


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerUpserted:
    """A Salesforce Account created or changed (customer master sync)."""

    customer_id: str
    name: str
    erp_customer_number: str | None = None
    parent_customer_id: str | None = None
    currency: str
    billing_address: Address | None = None
    shipping_address: Address | None = None
    tax_id: str | None = None
    website: str | None = None
    industry: str | None = None
    segment: str | None = None
    owner: str | None = None
    contacts: tuple[Contact, ...] = ()

    def __post_init__(self) -> None:
        _check_currency(self.currency)
        _require(bool(self.name.strip()), "name: a customer needs a name")
        _require(
            self.parent_customer_id != self.customer_id,
            "parent_customer_id: a customer cannot be its own parent",
        )

    def customer_ref(self) -> str | None:
        return f"customer:{self.customer_id}"

    def subject_ref(self) -> str:
        return f"customer:{self.customer_id}"

    def depends_on(self) -> tuple[str, ...]:
        return (f"customer:{self.parent_customer_id}",) if self.parent_customer_id else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoicePosted:
    """A posted Salesforce invoice that must become an ERP AR invoice."""

    invoice_id: str
    invoice_number: str
    customer_id: str
    currency: str
    invoice_date: date
    due_date: date
    payment_terms: str | None = None
    lines: tuple[DocumentLine, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal

    def __post_init__(self) -> None:
        _check_lines(self, self.lines, self.currency)
        _require(self.due_date >= self.invoice_date, "due_date: before invoice_date")

    def customer_ref(self) -> str | None:
        return f"customer:{self.customer_id}"

    def subject_ref(self) -> str:
        return f"invoice:{self.invoice_id}"

    def depends_on(self) -> tuple[str, ...]:
        return (f"customer:{self.customer_id}",)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentReceived:
    """Cash handled in Salesforce (e.g. a card payment through its gateway): an ERP cash receipt."""

    payment_id: str
    customer_id: str
    currency: str
    amount: Decimal
    received_on: date
    method: str
    reference: str | None = None
    applications: tuple[Application, ...] = ()

    def __post_init__(self) -> None:
        _money(self, ("amount",), self.currency)
        _positive(self.amount, "amount")
        _check_applications(self.applications, self.currency, self.amount, "payment amount")

    def customer_ref(self) -> str | None:
        return f"customer:{self.customer_id}"

    def subject_ref(self) -> str:
        return f"payment:{self.payment_id}"

    def depends_on(self) -> tuple[str, ...]:
        return (f"customer:{self.customer_id}", *_invoice_refs(self.applications))


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditMemoIssued:
    """A Salesforce credit memo that reduces AR, applied to the invoices it names."""

    credit_memo_id: str
    credit_memo_number: str
    customer_id: str
    currency: str
    issued_on: date
    reason: str | None = None
    lines: tuple[DocumentLine, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    applications: tuple[Application, ...] = ()

    def __post_init__(self) -> None:
        _check_lines(self, self.lines, self.currency)
        _positive(self.total, "total")
        _check_applications(self.applications, self.currency, self.total, "credit memo total")

    def customer_ref(self) -> str | None:
        return f"customer:{self.customer_id}"

    def subject_ref(self) -> str:
        return f"credit_memo:{self.credit_memo_id}"

    def depends_on(self) -> tuple[str, ...]:
        return (f"customer:{self.customer_id}", *_invoice_refs(self.applications))


@dataclass(frozen=True, slots=True, kw_only=True)
class RevenueRecognized:
    """A revenue schedule entry recognized in a period: it becomes a GL journal entry."""

    schedule_entry_id: str
    schedule_id: str
    customer_id: str | None = None
    invoice_id: str | None = None
    period: str
    entry_date: date
    memo: str | None = None
    lines: tuple[JournalLine, ...]

    def __post_init__(self) -> None:
        _require(bool(_PERIOD.match(self.period)), "period: {!r} is not YYYY-MM", self.period)
        check_journal(self.lines)

    def customer_ref(self) -> str | None:
        return f"customer:{self.customer_id}" if self.customer_id else None

    def subject_ref(self) -> str:
        return f"revenue:{self.schedule_entry_id}"

    def depends_on(self) -> tuple[str, ...]:
        return (f"customer:{self.customer_id}",) if self.customer_id else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ErpPaymentReceived:
    """Cash handled in the ERP (wire, lockbox): Salesforce invoices must show it."""

    erp_payment_id: str
    erp_customer_number: str
    customer_id: str | None = None
    currency: str
    amount: Decimal
    received_on: date
    method: str
    reference: str | None = None
    applications: tuple[Application, ...] = ()

    def __post_init__(self) -> None:
        _money(self, ("amount",), self.currency)
        _positive(self.amount, "amount")
        _check_applications(self.applications, self.currency, self.amount, "payment amount")

    def customer_ref(self) -> str | None:
        return f"erp_customer:{self.erp_customer_number}"

    def subject_ref(self) -> str:
        return f"erp_payment:{self.erp_payment_id}"

    def depends_on(self) -> tuple[str, ...]:
        return ()


CreditStatus = Literal["active", "on_hold", "inactive"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerCreditStatusChanged:
    """A credit hold, release, limit or terms change in the ERP: sales sees it before quoting."""

    erp_customer_number: str
    customer_id: str | None = None
    status: CreditStatus
    credit_hold: bool
    currency: str
    credit_limit: Decimal | None = None
    payment_terms: str | None = None
    reason: str | None = None
    changed_at: datetime

    def __post_init__(self) -> None:
        _money(self, ("credit_limit",), self.currency)
        _aware(self.changed_at, "changed_at")
        _require(
            self.credit_hold == (self.status == "on_hold"),
            "credit_hold: {} contradicts status {!r}",
            self.credit_hold,
            self.status,
        )
        if self.credit_limit is not None:
            _require(self.credit_limit >= _ZERO, "credit_limit: must not be negative")

    def customer_ref(self) -> str | None:
        return f"erp_customer:{self.erp_customer_number}"

    def subject_ref(self) -> str:
        return f"credit_status:{self.erp_customer_number}"

    def depends_on(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GlPosted:
    """A journal posted in the ERP's general ledger, for reconciliation on the Salesforce side."""

    erp_journal_id: str
    journal_number: str | None = None
    period: str
    posting_date: date
    source_ref: str | None = None
    memo: str | None = None
    lines: tuple[JournalLine, ...]

    def __post_init__(self) -> None:
        _require(bool(_PERIOD.match(self.period)), "period: {!r} is not YYYY-MM", self.period)
        check_journal(self.lines)

    def customer_ref(self) -> str | None:
        return None

    def subject_ref(self) -> str:
        return f"gl:{self.erp_journal_id}"

    def depends_on(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerBalance:
    erp_customer_number: str
    customer_id: str | None = None
    currency: str
    open_balance: Decimal
    overdue_balance: Decimal
    days_overdue: int
    last_payment_on: date | None = None
    last_payment_amount: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportingRefreshed:
    """The ERP's AR position per customer, refreshed for Salesforce reports."""

    as_of: date
    balances: tuple[CustomerBalance, ...]

    def __post_init__(self) -> None:
        _require(len(self.balances) > 0, "balances: a refresh carries at least one customer")
        for i, b in enumerate(self.balances):
            where = f"balances[{i}]."
            _money(b, ("open_balance", "overdue_balance", "last_payment_amount"), b.currency, where)
            _require(b.days_overdue >= 0, "{}days_overdue: must not be negative", where)

    def customer_ref(self) -> str | None:
        return None

    def subject_ref(self) -> str:
        return f"reporting:{self.as_of.isoformat()}"

    def depends_on(self) -> tuple[str, ...]:
        return ()


EventData = (
    CustomerUpserted
    | InvoicePosted
    | PaymentReceived
    | CreditMemoIssued
    | RevenueRecognized
    | ErpPaymentReceived
    | CustomerCreditStatusChanged
    | GlPosted
    | ReportingRefreshed
)


# --------------------------------------------------------------------------- the envelope


def derive_idempotency_key(source: str, type_: str, source_id: str, source_version: str) -> str:
    """The deterministic key of an event whose source gave none."""
    return f"{source}:{type_}:{source_id}:{source_version}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A canonical event with its provenance. ``received_at`` is set when the ledger stores it."""

    type: EventType
    source: str
    source_id: str
    source_version: str
    occurred_at: datetime
    idempotency_key: str = ""
    data: EventData
    received_at: datetime | None = None

    def __post_init__(self) -> None:
        _aware(self.occurred_at, "occurred_at")
        if self.received_at is not None:
            _aware(self.received_at, "received_at")
        expected = SPECS[self.type].payload
        _require(
            isinstance(self.data, expected),
            f"data: a {self.type} event carries {expected.__name__}, "
            f"not {type(self.data).__name__}",
        )
        for name in ("source", "source_id", "source_version"):
            _require(bool(getattr(self, name)), f"{name}: must not be empty")
        field = SPECS[self.type].record_id
        if field is not None:
            record_id = getattr(self.data, field)
            _require(
                _same_record(self.source_id, record_id),
                "source_id: {!r} is not data.{} {!r}, the record this {} carries; an "
                "envelope's source_id is its record's id",
                self.source_id,
                field,
                record_id,
                self.type,
            )
        if not self.idempotency_key:
            key = derive_idempotency_key(
                self.source, self.type, self.source_id, self.source_version
            )
            object.__setattr__(self, "idempotency_key", key)

    @property
    def direction(self) -> Direction:
        return SPECS[self.type].direction

    @property
    def customer_ref(self) -> str | None:
        """The customer whose events must keep their order, or None for company-wide events."""
        return self.data.customer_ref()

    @property
    def subject_ref(self) -> str:
        """The business record this event creates or changes, e.g. ``invoice:a0X...``."""
        return self.data.subject_ref()

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Subject refs that must be in the target system before this event can be delivered."""
        return self.data.depends_on()


def _same_record(source_id: str, record_id: str) -> bool:
    """The same id, or the same Salesforce record in its 15- and 18-character forms."""
    if source_id == record_id:
        return True
    try:
        return sfid.to_18(source_id) == sfid.to_18(record_id)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class EventSpec:
    """``record_id``: the payload field naming the record the envelope's ``source_id`` must
    name too, or None where the source keys its envelopes otherwise."""

    payload: type[EventData]
    direction: Direction
    summary: str
    record_id: str | None = None


def _invoice_refs(applications: tuple[Application, ...]) -> tuple[str, ...]:
    return tuple(f"invoice:{a.invoice_id}" for a in applications)


_TO_ERP, _TO_SF = Direction.TO_ERP, Direction.TO_SALESFORCE
# A Salesforce record's envelope names it (``source_id`` is its id); so does a GL journal's.
# The ERP's other captures key their envelopes by the ERP's own record, which is not the id
# in the payload: a credit status by the ERP's internal customer id (the customer master links
# by it) or ``credit:<number>``, a payment by ``payment:<internal id>`` on the fake ERP (its
# ``erp_payment_id`` is the receipt's reference); a reporting refresh carries many customers.
SPECS: dict[EventType, EventSpec] = {
    EventType.CUSTOMER_UPSERTED: EventSpec(
        CustomerUpserted,
        _TO_ERP,
        "A Salesforce Account created or changed: the ERP customer.",
        "customer_id",
    ),
    EventType.INVOICE_POSTED: EventSpec(
        InvoicePosted, _TO_ERP, "A posted Salesforce invoice: the ERP AR invoice.", "invoice_id"
    ),
    EventType.PAYMENT_RECEIVED: EventSpec(
        PaymentReceived,
        _TO_ERP,
        "Cash handled in Salesforce: the ERP cash receipt, applied.",
        "payment_id",
    ),
    EventType.CREDIT_MEMO_ISSUED: EventSpec(
        CreditMemoIssued,
        _TO_ERP,
        "A Salesforce credit memo: reduces AR in the ERP, applied.",
        "credit_memo_id",
    ),
    EventType.REVENUE_RECOGNIZED: EventSpec(
        RevenueRecognized,
        _TO_ERP,
        "A revenue schedule entry: a GL journal entry in the ERP.",
        "schedule_entry_id",
    ),
    EventType.ERP_PAYMENT_RECEIVED: EventSpec(
        ErpPaymentReceived, _TO_SF, "Cash handled in the ERP: Salesforce invoice balance, status."
    ),
    EventType.CUSTOMER_CREDIT_STATUS_CHANGED: EventSpec(
        CustomerCreditStatusChanged, _TO_SF, "Credit hold, limit or terms: the Salesforce Account."
    ),
    EventType.GL_POSTED: EventSpec(
        GlPosted,
        _TO_SF,
        "A GL journal posted in the ERP: recorded for reconciliation.",
        "erp_journal_id",
    ),
    EventType.REPORTING_REFRESHED: EventSpec(
        ReportingRefreshed, _TO_SF, "Open and overdue balance per customer: Salesforce reports."
    ),
}

# What happens in the ERP (its events go to Salesforce), never in the org.
FROM_ERP: frozenset[str] = frozenset(
    t.value for t, spec in SPECS.items() if spec.direction == Direction.TO_SALESFORCE
)
