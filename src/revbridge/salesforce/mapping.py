"""Salesforce records to canonical envelopes, with the object model held as configuration.

A ``Profile`` names, for each canonical flow, the object and the fields that make each
canonical field. Two profiles are built in: ``BILLING`` (the Salesforce Billing managed
package, ``blng__*``) and ``REVENUE_CLOUD`` (the standard ``Invoice``, ``Payment``,
``CreditMemo``... objects). A deployment with other field names replaces fields with
``dataclasses.replace``; nothing else in the connector names a field.

==============================  ===========================  ================================
Salesforce                      when                         canonical event
==============================  ===========================  ================================
Account                         always                       ``customer.upserted``
invoice + lines                 status posted                ``invoice.posted``
invoice + lines                 cancelled/voided after post  ``credit_memo.issued`` (reversal)
payment + allocations           status processed, not ERP's  ``payment.received``
credit note/memo (+ lines)      status posted                ``credit_memo.issued``
revenue transaction             status recognized            ``revenue.recognized``
==============================  ===========================  ================================

Records that do not qualify (a draft invoice, a payment the hub itself wrote from the ERP) are
*skipped*: they are not events. Records that should be events but cannot be (an unknown
record type, a missing required field, a malformed id, a currency that differs between a
document and its lines, amounts that do not add up) are *rejected* with a code and a reason,
so the capture puts them in the quarantine: nothing is dropped silently.

Envelope provenance: ``source_id`` is the record id; ``source_version`` is a hash of the
canonical payload, and ``occurred_at`` the record's ``CreatedDate``, so re-reading a record
whose business content did not change (an overlap window, a duplicate change event, the
roll-up change our own write-back causes) yields the same event: a duplicate, never a second
delivery.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from revbridge.codec import encode_envelope, encode_payload
from revbridge.core import sfid
from revbridge.core.events import (
    Address,
    Application,
    CreditMemoIssued,
    CustomerUpserted,
    DocumentLine,
    Event,
    EventData,
    EventType,
    InvoicePosted,
    JournalLine,
    PaymentReceived,
    RevenueRecognized,
)
from revbridge.errors import DomainError

Record = Mapping[str, Any]
SOURCE = "salesforce"
_ZERO = Decimal(0)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountFields:
    object: str = "Account"
    name: str = "Name"
    parent: str = "ParentId"
    erp_customer_number: str = "ERP_Customer_Number__c"
    currency: str = "CurrencyIsoCode"
    industry: str = "Industry"
    segment: str = "Type"
    street: str = "BillingStreet"
    city: str = "BillingCity"
    region: str = "BillingStateCode"
    postal_code: str = "BillingPostalCode"
    country: str = "BillingCountryCode"
    shipping_street: str = "ShippingStreet"
    shipping_city: str = "ShippingCity"
    shipping_region: str = "ShippingStateCode"
    shipping_postal_code: str = "ShippingPostalCode"
    shipping_country: str = "ShippingCountryCode"
    website: str = "Website"


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceFields:
    object: str
    number: str
    account: str
    currency: str = "CurrencyIsoCode"
    invoice_date: str
    due_date: str
    posted_date: str
    status: str
    posted_statuses: tuple[str, ...]
    reversed_statuses: tuple[str, ...]
    subtotal: str
    tax: str
    total: str
    line_object: str
    line_parent: str
    line_description: str
    line_product: str
    line_quantity: str
    line_unit_price: str
    line_amount: str
    line_tax: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentFields:
    object: str
    account: str
    amount: str
    received_on: str
    method: str
    reference: str
    status: str
    processed_statuses: tuple[str, ...]
    # Set on payments the hub wrote from the ERP: those must not flow back (no echo).
    erp_origin: str = "ERP_Receipt_Number__c"
    currency: str = "CurrencyIsoCode"
    allocation_object: str
    allocation_payment: str
    allocation_invoice: str
    allocation_amount: str
    allocation_type: str
    allocation_reversing_types: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditFields:
    object: str
    number: str
    account: str
    currency: str = "CurrencyIsoCode"
    issued_on: str
    status: str
    posted_statuses: tuple[str, ...]
    subtotal: str
    total: str
    related_invoice: str
    reason: str
    # When the related record may be something else than an invoice: the invoice key prefix.
    related_prefix: str | None = None
    line_object: str | None = None
    line_parent: str = ""
    line_amount: str = ""
    line_tax: str = ""
    line_product: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RevenueFields:
    object: str = "blng__RevenueTransaction__c"
    schedule: str = "blng__RevenueSchedule__c"
    account: str = "blng__Account__c"
    invoice: str = "blng__InvoiceLine__r.blng__Invoice__c"
    amount: str = "blng__RevenueAmount__c"
    status: str = "blng__Status__c"
    recognized_statuses: tuple[str, ...] = ("Recognized",)
    period_start: str = "blng__RevenueFinancePeriod__r.blng__PeriodStartDate__c"
    period_end: str = "blng__RevenueFinancePeriod__r.blng__PeriodEndDate__c"
    currency: str = "CurrencyIsoCode"


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One org's object model: which objects and fields make which canonical fields."""

    name: str
    account: AccountFields = field(default_factory=AccountFields)
    invoice: InvoiceFields
    payment: PaymentFields
    credit: CreditFields
    revenue: RevenueFields | None = None
    default_currency: str = "USD"
    deferred_revenue_account: str = "2400 Deferred Revenue"
    revenue_account: str = "4000 Revenue"

    def objects(self) -> dict[str, str]:
        """Top-level object name -> flow kind (``account``, ``invoice``...)."""
        kinds = {
            self.account.object: "account",
            self.invoice.object: "invoice",
            self.payment.object: "payment",
            self.credit.object: "credit",
        }
        if self.revenue is not None:
            kinds[self.revenue.object] = "revenue"
        return kinds

    def child_objects(self) -> dict[str, tuple[str, str]]:
        """Child object name -> (parent kind, parent reference field)."""
        children = {
            self.invoice.line_object: ("invoice", self.invoice.line_parent),
            self.payment.allocation_object: ("payment", self.payment.allocation_payment),
        }
        if self.credit.line_object:
            children[self.credit.line_object] = ("credit", self.credit.line_parent)
        return children


BILLING = Profile(
    name="billing",
    invoice=InvoiceFields(
        object="blng__Invoice__c",
        number="Name",
        account="blng__Account__c",
        invoice_date="blng__InvoiceDate__c",
        due_date="blng__DueDate__c",
        posted_date="blng__InvoicePostedDate__c",
        status="blng__InvoiceStatus__c",
        posted_statuses=("Posted",),
        reversed_statuses=("Cancelled", "Rebilled"),
        subtotal="blng__Subtotal__c",
        tax="blng__TaxAmount__c",
        total="blng__TotalAmount__c",
        line_object="blng__InvoiceLine__c",
        line_parent="blng__Invoice__c",
        line_description="Name",
        line_product="blng__Product__r.ProductCode",
        line_quantity="blng__Quantity__c",
        line_unit_price="blng__UnitPrice__c",
        line_amount="blng__Subtotal__c",
        line_tax="blng__TaxAmount__c",
    ),
    payment=PaymentFields(
        object="blng__Payment__c",
        account="blng__Account__c",
        amount="blng__Amount__c",
        received_on="blng__PaymentDate__c",
        method="blng__PaymentType__c",
        reference="blng__GatewayID__c",
        status="blng__Status__c",
        processed_statuses=("Processed",),
        allocation_object="blng__PaymentAllocationInvoice__c",
        allocation_payment="blng__Payment__c",
        allocation_invoice="blng__Invoice__c",
        allocation_amount="blng__Amount__c",
        allocation_type="blng__Type__c",
        allocation_reversing_types=("Unallocation",),
    ),
    credit=CreditFields(
        object="blng__CreditNote__c",
        number="Name",
        account="blng__Account__c",
        issued_on="blng__CreditNoteDate__c",
        status="blng__Status__c",
        posted_statuses=("Posted",),
        subtotal="blng__TotalAmount__c",
        total="blng__TotalAmount__c",
        related_invoice="blng__RelatedInvoice__c",
        reason="blng__CreditNoteSourceAction__c",
    ),
    revenue=RevenueFields(),
)

REVENUE_CLOUD = Profile(
    name="revenue_cloud",
    invoice=InvoiceFields(
        object="Invoice",
        number="InvoiceNumber",
        account="BillingAccountId",
        invoice_date="InvoiceDate",
        due_date="DueDate",
        posted_date="PostedDate",
        status="Status",
        posted_statuses=("Posted",),
        reversed_statuses=("Canceled", "Voided"),
        subtotal="TotalAmount",
        tax="TotalTaxAmount",
        total="TotalAmountWithTax",
        line_object="InvoiceLine",
        line_parent="InvoiceId",
        line_description="Name",
        line_product="Product2.ProductCode",
        line_quantity="Quantity",
        line_unit_price="UnitPrice",
        line_amount="ChargeAmount",
        line_tax="TaxAmount",
    ),
    payment=PaymentFields(
        object="Payment",
        account="AccountId",
        amount="Amount",
        received_on="EffectiveDate",
        method="Type",
        reference="GatewayRefNumber",
        status="Status",
        processed_statuses=("Processed",),
        allocation_object="PaymentLineInvoice",
        allocation_payment="PaymentId",
        allocation_invoice="InvoiceId",
        allocation_amount="Amount",
        allocation_type="Type",
        allocation_reversing_types=("Unapplied",),
    ),
    credit=CreditFields(
        object="CreditMemo",
        number="CreditMemoNumber",
        account="BillingAccountId",
        issued_on="CreditDate",
        status="Status",
        posted_statuses=("Posted",),
        subtotal="TotalAmount",
        total="TotalAmountWithTax",
        related_invoice="ReferenceEntityId",
        reason="SourceAction",
        related_prefix="3tt",
        line_object="CreditMemoLine",
        line_parent="CreditMemoId",
        line_amount="ChargeAmount",
        line_tax="TaxAmount",
        line_product="Product2.ProductCode",
    ),
    revenue=None,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (BILLING, REVENUE_CLOUD)}

_SYSTEM = ("Id", "CreatedDate", "LastModifiedDate", "LastModifiedById", "SystemModstamp")


def _unique(names: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        if name:
            seen.setdefault(name, None)
    return list(seen)


def select_fields(profile: Profile, kind: str) -> list[str]:
    """The fields a capture must read for one flow kind (top-level object)."""
    a, i, p, c = profile.account, profile.invoice, profile.payment, profile.credit
    names: list[str]
    if kind == "account":
        names = [a.name, a.parent, a.erp_customer_number, a.currency, a.industry, a.segment]
        names += [a.street, a.city, a.region, a.postal_code, a.country, a.website]
        names += [a.shipping_street, a.shipping_city, a.shipping_region]
        names += [a.shipping_postal_code, a.shipping_country]
    elif kind == "invoice":
        names = [i.number, i.account, i.currency, i.invoice_date, i.due_date, i.posted_date]
        names += [i.status, i.subtotal, i.tax, i.total]
    elif kind == "payment":
        names = [p.account, p.amount, p.received_on, p.method, p.reference, p.status]
        names += [p.erp_origin, p.currency]
    elif kind == "credit":
        names = [c.number, c.account, c.currency, c.issued_on, c.status, c.subtotal, c.total]
        names += [c.related_invoice, c.reason]
    elif kind == "revenue" and profile.revenue is not None:
        r = profile.revenue
        names = [r.schedule, r.account, r.invoice, r.amount, r.status, r.period_start]
        names += [r.period_end, r.currency]
    else:
        raise ValueError(f"unknown flow kind {kind!r}")
    return _unique([*_SYSTEM, *names])


def child_fields(profile: Profile, kind: str) -> tuple[str, str, list[str]] | None:
    """(child object, parent field, fields) for a kind with children, else None."""
    i, p, c = profile.invoice, profile.payment, profile.credit
    if kind == "invoice":
        names = [i.line_parent, i.line_description, i.line_product, i.line_quantity]
        names += [i.line_unit_price, i.line_amount, i.line_tax, "CurrencyIsoCode"]
        return i.line_object, i.line_parent, _unique(["Id", "LastModifiedDate", *names])
    if kind == "payment":
        names = [p.allocation_payment, p.allocation_invoice, p.allocation_amount]
        names += [p.allocation_type, "CurrencyIsoCode"]
        return (
            p.allocation_object,
            p.allocation_payment,
            _unique(["Id", "LastModifiedDate", *names]),
        )
    if kind == "credit" and c.line_object:
        names = [c.line_parent, c.line_amount, c.line_tax, c.line_product, "CurrencyIsoCode"]
        return c.line_object, c.line_parent, _unique(["Id", "LastModifiedDate", *names])
    return None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A record that should have been an event and could not be: quarantine material."""

    code: str
    reason: str
    object: str
    record_id: str | None
    event_type: str | None
    raw: str

    @property
    def key(self) -> str:
        """Stable per record version: the same bad record read twice is quarantined once."""
        digest = hashlib.sha256(self.raw.encode()).hexdigest()[:16]
        return f"salesforce:reject:{self.object}:{self.record_id}:{digest}"


@dataclass(slots=True)
class Mapped:
    """Canonical events (built through the domain types, so already checked), rejections, and
    how many records were skipped by design (drafts, hub-written payments...)."""

    events: list[Event] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    skipped: int = 0

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        """The events as JSON envelopes, as ``ingest`` reads them."""
        return [encode_envelope(e) for e in self.events]

    def extend(self, other: Mapped) -> None:
        self.events.extend(other.events)
        self.rejections.extend(other.rejections)
        self.skipped += other.skipped


_Built = tuple[EventType, EventData] | None


class _Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


# --------------------------------------------------------------------------- field access


def get(record: Record, path: str) -> Any:
    """A field or a parent path (``Parent__r.Field``) of a SOQL record; None when absent."""
    if "." not in path:  # the common case, called for every field of every record
        return record.get(path)
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _required(record: Record, path: str) -> Any:
    value = get(record, path)
    if value is None or value == "":
        raise _Reject("missing_field", f"{path}: required field is missing")
    return value


def _text(record: Record, path: str) -> str | None:
    value = get(record, path)
    return None if value is None or value == "" else str(value)


def _id(record: Record, path: str, *, required: bool = True) -> str | None:
    value = _required(record, path) if required else get(record, path)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Reject("malformed_id", f"{path}: {value!r} is not a Salesforce id")
    try:
        return sfid.to_18(value)
    except ValueError:
        raise _Reject("malformed_id", f"{path}: {value!r} is not a Salesforce id") from None


def _decimal(record: Record, path: str, *, default: Decimal | None = None) -> Decimal:
    value = get(record, path)
    if value is None or value == "":
        if default is not None:
            return default
        raise _Reject("missing_field", f"{path}: required field is missing")
    if isinstance(value, bool):
        raise _Reject("schema_violation", f"{path}: {value!r} is not a number")
    try:
        return Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise _Reject("schema_violation", f"{path}: {value!r} is not a number") from exc


def _money(record: Record, path: str, *, default: Decimal | None = None) -> Decimal:
    """An amount as Salesforce returns it (``100.0``); the event checks its currency's scale."""
    return _decimal(record, path, default=default)


def _date(record: Record, path: str) -> date:
    value = _required(record, path)
    try:
        if len(str(value)) > 10:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise _Reject("schema_violation", f"{path}: {value!r} is not a date") from exc


def _timestamp(record: Record, path: str) -> datetime:
    value = _required(record, path)
    text = str(value).replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":  # +0000 -> +00:00
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _Reject("schema_violation", f"{path}: {value!r} is not a timestamp") from exc
    if parsed.tzinfo is None:
        raise _Reject("schema_violation", f"{path}: {value!r} has no timezone")
    return parsed


def _currency(profile: Profile, record: Record, path: str) -> str:
    return _text(record, path) or profile.default_currency


def _same_currency(profile: Profile, child: Record, currency: str, what: str) -> None:
    child_currency = _text(child, "CurrencyIsoCode")
    if child_currency is not None and child_currency != currency:
        raise _Reject(
            "currency_mismatch",
            f"{what} {child.get('Id')}: currency {child_currency} differs from the "
            f"document's {currency}",
        )


def _address(
    record: Record, street: str, city: str, region: str, postal_code: str, country: str
) -> Address | None:
    """An Account address from its components: street lines, city and country make one
    (region and postal code optional); without them the Account has no such address."""
    lines = (_text(record, street) or "").splitlines()
    town, code = _text(record, city), _text(record, country)
    if not (lines and town and code):
        return None
    return Address(
        line1=lines[0],
        line2=", ".join(lines[1:]) or None,
        city=town,
        region=_text(record, region),
        postal_code=_text(record, postal_code),
        country=code,
    )


def record_type(record: Record) -> str | None:
    attributes = record.get("attributes")
    if isinstance(attributes, Mapping) and attributes.get("type"):
        return str(attributes["type"])
    return None


# --------------------------------------------------------------------------- the mapper


def _raw(record: Record, children: Sequence[Record] = ()) -> str:
    body: dict[str, Any] = dict(record)
    if children:
        body["_children"] = list(children)
    return json.dumps(body, default=str, sort_keys=True)


class Mapper:
    """Maps the records of one org (one ``Profile``) to canonical envelopes."""

    def __init__(self, profile: Profile, *, source: str = SOURCE) -> None:
        self.profile = profile
        self.source = source
        self._kinds = profile.objects()

    def kind_of(self, sobject: str) -> str | None:
        return self._kinds.get(sobject)

    def map_records(
        self,
        sobject: str,
        records: Iterable[Record],
        children: Mapping[str, Sequence[Record]] | None = None,
    ) -> Mapped:
        """Map top-level records of ``sobject``; ``children`` by parent id (lines, allocations)."""
        children = children or {}
        mapped = Mapped()
        kind = self._kinds.get(sobject)
        for record in records:
            declared = record_type(record) or sobject
            record_id = record.get("Id")
            kids = children.get(str(record_id), ()) if record_id else ()
            if kind is None or declared != sobject:
                mapped.rejections.append(
                    Rejection(
                        code="unknown_record_type",
                        reason=f"{declared}: no mapping in profile {self.profile.name!r}",
                        object=declared,
                        record_id=str(record_id) if record_id else None,
                        event_type=None,
                        raw=_raw(record, kids),
                    )
                )
                continue
            mapped.extend(self._map_one(kind, sobject, record, kids))
        return mapped

    _EVENT_TYPES: dict[str, EventType] = {  # noqa: RUF012 - a constant table
        "account": EventType.CUSTOMER_UPSERTED,
        "invoice": EventType.INVOICE_POSTED,
        "payment": EventType.PAYMENT_RECEIVED,
        "credit": EventType.CREDIT_MEMO_ISSUED,
        "revenue": EventType.REVENUE_RECOGNIZED,
    }

    def _map_one(self, kind: str, sobject: str, record: Record, kids: Sequence[Record]) -> Mapped:
        out = Mapped()
        builders: dict[str, Callable[[Record, Sequence[Record]], _Built]] = {
            "account": self._account,
            "invoice": self._invoice,
            "payment": self._payment,
            "credit": self._credit,
            "revenue": self._revenue,
        }
        try:
            _id(record, "Id")
            built = builders[kind](record, kids)
            if built is None:
                out.skipped += 1
                return out
            event_type, data = built
            out.events.append(self._event(event_type, data, record))
        except _Reject as exc:
            out.rejections.append(
                self._rejection(exc.code, exc.reason, kind, sobject, record, kids)
            )
        except (DomainError, ValueError, TypeError) as exc:
            out.rejections.append(
                self._rejection("schema_violation", str(exc), kind, sobject, record, kids)
            )
        return out

    def _rejection(
        self,
        code: str,
        reason: str,
        kind: str,
        sobject: str,
        record: Record,
        kids: Sequence[Record],
    ) -> Rejection:
        record_id = record.get("Id")
        return Rejection(
            code=code,
            reason=f"{sobject} {record_id}: {reason}",
            object=sobject,
            record_id=str(record_id) if record_id else None,
            event_type=self._EVENT_TYPES[kind].value,
            raw=_raw(record, kids),
        )

    def _event(self, event_type: EventType, data: EventData, record: Record) -> Event:
        payload = encode_payload(event_type, data)
        version = "c" + hashlib.sha256(payload.encode()).hexdigest()[:24]
        source_id = sfid.to_18(str(record["Id"]))
        if event_type is EventType.CREDIT_MEMO_ISSUED and isinstance(data, CreditMemoIssued):
            source_id = data.credit_memo_id
        return Event(
            type=event_type,
            source=self.source,
            source_id=source_id,
            source_version=version,
            occurred_at=_timestamp(record, "CreatedDate"),
            data=data,
        )

    # ------------------------------------------------------------------ per kind

    def _account(self, record: Record, _kids: Sequence[Record]) -> _Built:
        a = self.profile.account
        data = CustomerUpserted(
            customer_id=_id(record, "Id") or "",
            name=str(_required(record, a.name)),
            erp_customer_number=_text(record, a.erp_customer_number),
            parent_customer_id=_id(record, a.parent, required=False),
            currency=_currency(self.profile, record, a.currency),
            billing_address=_address(record, a.street, a.city, a.region, a.postal_code, a.country),
            shipping_address=_address(
                record,
                a.shipping_street,
                a.shipping_city,
                a.shipping_region,
                a.shipping_postal_code,
                a.shipping_country,
            ),
            website=_text(record, a.website),
            industry=_text(record, a.industry),
            segment=_text(record, a.segment),
        )
        return EventType.CUSTOMER_UPSERTED, data

    def _lines(
        self, record: Record, kids: Sequence[Record], currency: str, what: str
    ) -> tuple[DocumentLine, ...]:
        i = self.profile.invoice
        lines = []
        for kid in sorted(kids, key=lambda k: str(k.get("Id"))):
            _same_currency(self.profile, kid, currency, what)
            amount = _money(kid, i.line_amount)
            quantity = _decimal(kid, i.line_quantity, default=Decimal(1))
            lines.append(
                DocumentLine(
                    line_id=_id(kid, "Id") or "",
                    description=_text(kid, i.line_description) or what,
                    product_code=_text(kid, i.line_product),
                    quantity=quantity,
                    unit_price=_decimal(kid, i.line_unit_price, default=amount),
                    amount=amount,
                    tax_amount=_money(kid, i.line_tax, default=_ZERO),
                )
            )
        if not lines:
            raise _Reject("missing_field", f"{what}: a posted document needs at least one line")
        return tuple(lines)

    def _invoice(
        self, record: Record, kids: Sequence[Record]
    ) -> tuple[EventType, EventData] | None:
        i = self.profile.invoice
        status = _text(record, i.status)
        was_posted = get(record, i.posted_date) not in (None, "")
        if status in i.reversed_statuses and was_posted:
            return self._reversal(record, kids, status or "")
        if status not in i.posted_statuses:
            return None
        currency = _currency(self.profile, record, i.currency)
        invoice_id = _id(record, "Id") or ""
        number = str(_required(record, i.number))
        lines = self._lines(record, kids, currency, f"invoice line of {number}")
        data = InvoicePosted(
            invoice_id=invoice_id,
            invoice_number=number,
            customer_id=_id(record, i.account) or "",
            currency=currency,
            invoice_date=_date(record, i.invoice_date),
            due_date=_date(record, i.due_date),
            lines=lines,
            subtotal=_money(record, i.subtotal),
            tax_total=_money(record, i.tax, default=_ZERO),
            total=_money(record, i.total),
        )
        return EventType.INVOICE_POSTED, data

    def _reversal(
        self, record: Record, kids: Sequence[Record], status: str
    ) -> tuple[EventType, EventData]:
        """A posted invoice cancelled or voided: a credit memo for all of it, applied to it."""
        i = self.profile.invoice
        currency = _currency(self.profile, record, i.currency)
        invoice_id = _id(record, "Id") or ""
        number = str(_required(record, i.number))
        lines = self._lines(record, kids, currency, f"invoice line of {number}")
        total = _money(record, i.total)
        data = CreditMemoIssued(
            credit_memo_id=f"reversal-{invoice_id}",
            credit_memo_number=f"REV-{number}",
            customer_id=_id(record, i.account) or "",
            currency=currency,
            issued_on=_timestamp(record, "LastModifiedDate").date(),
            reason=(
                f"invoice {number} was {status} in Salesforce after posting: "
                f"reversed in full ({total} {currency})"
            ),
            lines=tuple(
                DocumentLine(
                    line_id=f"reversal-{line.line_id}",
                    description=f"Reversal: {line.description}",
                    product_code=line.product_code,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    amount=line.amount,
                    tax_amount=line.tax_amount,
                )
                for line in lines
            ),
            subtotal=_money(record, i.subtotal),
            tax_total=_money(record, i.tax, default=_ZERO),
            total=total,
            applications=(Application(invoice_id=invoice_id, amount=total),),
        )
        return EventType.CREDIT_MEMO_ISSUED, data

    def _payment(
        self, record: Record, kids: Sequence[Record]
    ) -> tuple[EventType, EventData] | None:
        p = self.profile.payment
        if _text(record, p.status) not in p.processed_statuses:
            return None
        if _text(record, p.erp_origin):
            return None  # written by the hub from an ERP payment: not Salesforce's cash
        currency = _currency(self.profile, record, p.currency)
        applied: dict[str, Decimal] = {}
        for kid in kids:
            _same_currency(self.profile, kid, currency, "payment allocation")
            invoice = _id(kid, p.allocation_invoice) or ""
            amount = _money(kid, p.allocation_amount)
            if _text(kid, p.allocation_type) in p.allocation_reversing_types:
                amount = -amount
            applied[invoice] = applied.get(invoice, _ZERO) + amount
        data = PaymentReceived(
            payment_id=_id(record, "Id") or "",
            customer_id=_id(record, p.account) or "",
            currency=currency,
            amount=_money(record, p.amount),
            received_on=_date(record, p.received_on),
            method=(_text(record, p.method) or "other").lower().replace(" ", "_"),
            reference=_text(record, p.reference),
            applications=tuple(
                Application(invoice_id=k, amount=v) for k, v in sorted(applied.items()) if v
            ),
        )
        return EventType.PAYMENT_RECEIVED, data

    def _credit(self, record: Record, kids: Sequence[Record]) -> tuple[EventType, EventData] | None:
        c = self.profile.credit
        if _text(record, c.status) not in c.posted_statuses:
            return None
        currency = _currency(self.profile, record, c.currency)
        number = str(_required(record, c.number))
        total = _money(record, c.total)
        subtotal = _money(record, c.subtotal)
        lines: list[DocumentLine] = []
        for kid in sorted(kids, key=lambda k: str(k.get("Id"))):
            _same_currency(self.profile, kid, currency, "credit memo line")
            amount = _money(kid, c.line_amount)
            lines.append(
                DocumentLine(
                    line_id=_id(kid, "Id") or "",
                    description=f"Credit {number}",
                    product_code=_text(kid, c.line_product) if c.line_product else None,
                    quantity=Decimal(1),
                    unit_price=amount,
                    amount=amount,
                    tax_amount=_money(kid, c.line_tax, default=_ZERO),
                )
            )
        if not lines:
            lines.append(
                DocumentLine(
                    line_id=f"{_id(record, 'Id')}-total",
                    description=f"Credit {number}",
                    quantity=Decimal(1),
                    unit_price=subtotal,
                    amount=subtotal,
                    tax_amount=total - subtotal,
                )
            )
        related = _id(record, c.related_invoice, required=False)
        applications: tuple[Application, ...] = ()
        # Revenue Cloud's ReferenceEntityId may name an order: only an invoice is applied to.
        if related and (c.related_prefix is None or related.startswith(c.related_prefix)):
            applications = (Application(invoice_id=related, amount=total),)
        data = CreditMemoIssued(
            credit_memo_id=_id(record, "Id") or "",
            credit_memo_number=number,
            customer_id=_id(record, c.account) or "",
            currency=currency,
            issued_on=_date(record, c.issued_on),
            reason=_text(record, c.reason),
            lines=tuple(lines),
            subtotal=subtotal,
            tax_total=total - subtotal,
            total=total,
            applications=applications,
        )
        return EventType.CREDIT_MEMO_ISSUED, data

    def _revenue(
        self, record: Record, _kids: Sequence[Record]
    ) -> tuple[EventType, EventData] | None:
        r = self.profile.revenue
        if r is None or _text(record, r.status) not in r.recognized_statuses:
            return None
        amount = _money(record, r.amount)
        if amount == _ZERO:
            return None
        currency = _currency(self.profile, record, r.currency)
        start = _date(record, r.period_start)
        end = _date(record, r.period_end) if get(record, r.period_end) else start
        customer = _id(record, r.account, required=False)
        deferred, revenue = self.profile.deferred_revenue_account, self.profile.revenue_account
        # Recognition moves revenue out of deferral; a negative amount reverses that.
        debit_account, credit_account = (deferred, revenue) if amount > 0 else (revenue, deferred)
        value = abs(amount)
        entry_id = _id(record, "Id") or ""
        data = RevenueRecognized(
            schedule_entry_id=entry_id,
            schedule_id=_id(record, r.schedule) or "",
            customer_id=customer,
            invoice_id=_id(record, r.invoice, required=False),
            period=start.strftime("%Y-%m"),
            entry_date=end,
            memo=f"Revenue recognized: {entry_id}",
            lines=(
                JournalLine(
                    account=debit_account, debit=value, currency=currency, customer_id=customer
                ),
                JournalLine(
                    account=credit_account, credit=value, currency=currency, customer_id=customer
                ),
            ),
        )
        return EventType.REVENUE_RECOGNIZED, data
