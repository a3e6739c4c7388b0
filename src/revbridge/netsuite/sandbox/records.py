"""Record types of the REST record service: their fields, and JSON in and out.

A ``RecordType`` lists its body fields (REST name, column, kind) and sublists. ``parse_body``
turns an untrusted JSON body into a ``Parsed`` record of Python values (Decimal money, dates,
``Ref`` references) or raises a NetSuite 400; ``render_value`` goes the other way. Which
fields a record has, and which are read-only, lives here and only here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from revbridge.netsuite.sandbox.errors import bad_request, invalid_value

JsonObject = dict[str, Any]
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")


class Kind(StrEnum):
    TEXT = "text"
    BOOL = "bool"
    MONEY = "money"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    REF = "ref"
    ENUM = "enum"
    INT = "int"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    column: str
    kind: Kind
    target: str | None = None
    writable: bool = True
    choices: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Sublist:
    """A sublist such as ``item`` or ``apply``; ``key`` matches lines when a PATCH merges them."""

    name: str
    fields: tuple[Field, ...]
    key: str

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True, slots=True)
class RecordType:
    name: str
    title: str
    table: str
    fields: tuple[Field, ...]
    tran_type: str | None = None
    tran_prefix: str = ""
    sublists: tuple[Sublist, ...] = ()
    writable: bool = True

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def sublist(self, name: str) -> Sublist | None:
        return next((s for s in self.sublists if s.name == name), None)


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference as a body gives it: ``{"id": "12"}`` or ``{"externalId": "SF-1"}``."""

    id: int | None = None
    external_id: str | None = None


@dataclass(slots=True)
class Parsed:
    """A record body as Python values; a key present with None clears the field."""

    header: dict[str, Any] = field(default_factory=dict)
    sublists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _ro(name: str, column: str, kind: Kind, target: str | None = None) -> Field:
    return Field(name, column, kind, target, writable=False)


_CREDIT_HOLD = (("AUTO", "Auto"), ("ON", "On"), ("OFF", "Off"))
_TRAN_COMMON = (
    Field("tranId", "tranid", Kind.TEXT),
    Field("tranDate", "trandate", Kind.DATE),
    Field("externalId", "externalid", Kind.TEXT),
    Field("currency", "currency", Kind.REF, "currency"),
    Field("exchangeRate", "exchangerate", Kind.NUMBER),
    Field("subsidiary", "subsidiary", Kind.REF, "subsidiary"),
    Field("postingPeriod", "postingperiod", Kind.REF, "accountingPeriod"),
    Field("memo", "memo", Kind.TEXT),
    _ro("createdDate", "createddate", Kind.DATETIME),
    _ro("lastModifiedDate", "lastmodifieddate", Kind.DATETIME),
)
_ITEM_SUBLIST = Sublist(
    "item",
    (
        Field("line", "line", Kind.INT),
        Field("item", "item", Kind.REF, "item"),
        Field("quantity", "quantity", Kind.NUMBER),
        Field("rate", "rate", Kind.NUMBER),
        Field("amount", "amount", Kind.MONEY),
        Field("description", "description", Kind.TEXT),
    ),
    key="line",
)
_APPLY_SUBLIST = Sublist(
    "apply",
    (
        Field("doc", "doc", Kind.REF, "invoice"),
        Field("line", "line", Kind.INT),
        Field("apply", "apply", Kind.BOOL),
        Field("amount", "amount", Kind.MONEY),
        _ro("refNum", "refnum", Kind.TEXT),
        _ro("total", "total", Kind.MONEY),
        _ro("due", "due", Kind.MONEY),
    ),
    key="doc",
)
_JOURNAL_LINE_SUBLIST = Sublist(
    "line",
    (
        Field("line", "line", Kind.INT),
        Field("account", "account", Kind.REF, "account"),
        Field("debit", "debit", Kind.MONEY),
        Field("credit", "credit", Kind.MONEY),
        Field("memo", "memo", Kind.TEXT),
        Field("entity", "entity", Kind.REF, "customer"),
    ),
    key="line",
)

RECORD_TYPES: dict[str, RecordType] = {
    rt.name: rt
    for rt in (
        RecordType(
            "customer",
            "Customer",
            "customer",
            (
                Field("entityId", "entityid", Kind.TEXT),
                Field("externalId", "externalid", Kind.TEXT),
                Field("companyName", "companyname", Kind.TEXT),
                Field("isPerson", "isperson", Kind.BOOL),
                Field("firstName", "firstname", Kind.TEXT),
                Field("lastName", "lastname", Kind.TEXT),
                Field("email", "email", Kind.TEXT),
                Field("phone", "phone", Kind.TEXT),
                Field("comments", "comments", Kind.TEXT),
                Field("subsidiary", "subsidiary", Kind.REF, "subsidiary"),
                Field("parent", "parent", Kind.REF, "customer"),
                Field("currency", "currency", Kind.REF, "currency"),
                Field("terms", "terms", Kind.REF, "term"),
                Field("creditLimit", "creditlimit", Kind.MONEY),
                Field("creditHoldOverride", "creditholdoverride", Kind.ENUM, choices=_CREDIT_HOLD),
                Field("isInactive", "isinactive", Kind.BOOL),
                _ro("balance", "balance", Kind.MONEY),
                _ro("overdueBalance", "overduebalance", Kind.MONEY),
                _ro("dateCreated", "datecreated", Kind.DATETIME),
                _ro("lastModifiedDate", "lastmodifieddate", Kind.DATETIME),
            ),
        ),
        RecordType(
            "invoice",
            "Invoice",
            "transaction",
            (
                Field("entity", "entity", Kind.REF, "customer"),
                Field("dueDate", "duedate", Kind.DATE),
                Field("terms", "terms", Kind.REF, "term"),
                Field("account", "account", Kind.REF, "account"),
                Field("otherRefNum", "otherrefnum", Kind.TEXT),
                *_TRAN_COMMON,
                _ro("total", "foreigntotal", Kind.MONEY),
                _ro("subtotal", "foreigntotal", Kind.MONEY),
                _ro("amountPaid", "foreignamountpaid", Kind.MONEY),
                _ro("amountRemaining", "foreignamountremaining", Kind.MONEY),
                _ro("status", "status", Kind.ENUM),
            ),
            tran_type="CustInvc",
            tran_prefix="INV",
            sublists=(_ITEM_SUBLIST,),
        ),
        RecordType(
            "customerPayment",
            "Customer Payment",
            "transaction",
            (
                Field("customer", "entity", Kind.REF, "customer"),
                Field("payment", "foreigntotal", Kind.MONEY),
                Field("account", "account", Kind.REF, "account"),
                *_TRAN_COMMON,
                _ro("total", "foreigntotal", Kind.MONEY),
                _ro("applied", "foreignpaymentamountused", Kind.MONEY),
                _ro("unapplied", "foreignpaymentamountunused", Kind.MONEY),
                _ro("status", "status", Kind.ENUM),
            ),
            tran_type="CustPymt",
            tran_prefix="PYMT",
            sublists=(_APPLY_SUBLIST,),
        ),
        RecordType(
            "creditMemo",
            "Credit Memo",
            "transaction",
            (
                Field("entity", "entity", Kind.REF, "customer"),
                Field("createdFrom", "createdfrom", Kind.REF, "invoice"),
                Field("account", "account", Kind.REF, "account"),
                Field("otherRefNum", "otherrefnum", Kind.TEXT),
                *_TRAN_COMMON,
                _ro("total", "foreigntotal", Kind.MONEY),
                _ro("applied", "foreignpaymentamountused", Kind.MONEY),
                _ro("unapplied", "foreignpaymentamountunused", Kind.MONEY),
                _ro("amountRemaining", "foreignamountremaining", Kind.MONEY),
                _ro("status", "status", Kind.ENUM),
            ),
            tran_type="CustCred",
            tran_prefix="CM",
            sublists=(_ITEM_SUBLIST, _APPLY_SUBLIST),
        ),
        RecordType(
            "journalEntry",
            "Journal Entry",
            "transaction",
            (*_TRAN_COMMON, _ro("status", "status", Kind.ENUM)),
            tran_type="Journal",
            tran_prefix="JE",
            sublists=(_JOURNAL_LINE_SUBLIST,),
        ),
        RecordType(
            "subsidiary",
            "Subsidiary",
            "subsidiary",
            (
                _ro("name", "name", Kind.TEXT),
                _ro("currency", "currency", Kind.REF, "currency"),
                _ro("country", "country", Kind.TEXT),
                _ro("isInactive", "isinactive", Kind.BOOL),
            ),
            writable=False,
        ),
        RecordType(
            "currency",
            "Currency",
            "currency",
            (
                _ro("name", "name", Kind.TEXT),
                _ro("symbol", "symbol", Kind.TEXT),
                _ro("displaySymbol", "displaysymbol", Kind.TEXT),
                _ro("currencyPrecision", "currencyprecision", Kind.INT),
                _ro("exchangeRate", "exchangerate", Kind.NUMBER),
                _ro("isBaseCurrency", "isbasecurrency", Kind.BOOL),
                _ro("isInactive", "isinactive", Kind.BOOL),
            ),
            writable=False,
        ),
        RecordType(
            "account",
            "Account",
            "account",
            (
                _ro("acctNumber", "acctnumber", Kind.TEXT),
                _ro("acctName", "fullname", Kind.TEXT),
                _ro("acctType", "accttype", Kind.TEXT),
                _ro("isInactive", "isinactive", Kind.BOOL),
            ),
            writable=False,
        ),
        RecordType(
            "term",
            "Term",
            "term",
            (
                _ro("name", "name", Kind.TEXT),
                _ro("daysUntilNetDue", "daysuntilnetdue", Kind.INT),
                _ro("isInactive", "isinactive", Kind.BOOL),
            ),
            writable=False,
        ),
        RecordType(
            "accountingPeriod",
            "Accounting Period",
            "accountingperiod",
            (
                _ro("periodName", "periodname", Kind.TEXT),
                _ro("startDate", "startdate", Kind.DATE),
                _ro("endDate", "enddate", Kind.DATE),
                _ro("closed", "closed", Kind.BOOL),
                _ro("isPosting", "isposting", Kind.BOOL),
            ),
            writable=False,
        ),
        RecordType(
            "serviceSaleItem",
            "Service Item",
            "item",
            (
                _ro("itemId", "itemid", Kind.TEXT),
                _ro("displayName", "displayname", Kind.TEXT),
                _ro("incomeAccount", "incomeaccount", Kind.REF, "account"),
                _ro("isInactive", "isinactive", Kind.BOOL),
            ),
            writable=False,
        ),
    )
}

# Where each reference target lives and how NetSuite names it in ``refName``.
REF_TARGETS: dict[str, tuple[str, str]] = {
    "customer": ("customer", "entityid || COALESCE(' ' || companyname, '')"),
    "subsidiary": ("subsidiary", "name"),
    "currency": ("currency", "symbol"),
    "account": ("account", "accountsearchdisplayname"),
    "term": ("term", "name"),
    "accountingPeriod": ("accountingperiod", "periodname"),
    "item": ("item", "itemid"),
    "invoice": ('"transaction"', "tranid"),
}
# The REST record type to link to for a reference target (items are service items here).
REF_LINK_TYPES = {"item": "serviceSaleItem"}

STATUS_LABELS: dict[str, dict[str, str]] = {
    "CustInvc": {"A": "Open", "B": "Paid In Full"},
    "CustPymt": {"B": "Not Deposited", "C": "Deposited"},
    "CustCred": {"A": "Open", "B": "Fully Applied"},
    "Journal": {"B": "Approved for Posting"},
}


def _parse_scalar(f: Field, value: Any, path: str) -> Any:
    """One JSON value as the Python value of field ``f``; None clears the field."""
    if value is None:
        return None
    kind = f.kind
    if kind == Kind.TEXT:
        if not isinstance(value, str):
            raise invalid_value(path)
        if f.name == "externalId" and not EXTERNAL_ID.match(value):
            raise bad_request(
                "INVALID_VALUE",
                "An external ID may contain only letters, digits, '_' and '-'.",
                path=path,
            )
        return value
    if kind == Kind.BOOL:
        if not isinstance(value, bool):
            raise invalid_value(path)
        return value
    if kind in (Kind.MONEY, Kind.NUMBER):
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise invalid_value(path)
        number = Decimal(value)
        if not number.is_finite():
            raise invalid_value(path)
        return number
    if kind == Kind.INT:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise invalid_value(path)
        if Decimal(value) != int(value):
            raise invalid_value(path)
        return int(value)
    if kind == Kind.DATE:
        if not isinstance(value, str):
            raise invalid_value(path)
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise invalid_value(path) from None
    if kind == Kind.ENUM:
        raw = value.get("id") if isinstance(value, dict) else value
        if isinstance(raw, str):
            for choice, _label in f.choices:
                if raw.upper() == choice:
                    return choice
        raise invalid_value(path)
    if kind == Kind.REF:
        return parse_ref(value, path)
    raise invalid_value(path)


def parse_ref(value: Any, path: str) -> Ref:
    if not isinstance(value, dict):
        raise invalid_value(path)
    raw_id, external = value.get("id"), value.get("externalId")
    if raw_id is not None:
        text = str(raw_id)
        if not text.isdigit():
            raise invalid_value(path)
        return Ref(id=int(text))
    if isinstance(external, str) and EXTERNAL_ID.match(external):
        return Ref(external_id=external)
    raise invalid_value(path)


_IGNORED = frozenset({"links", "refName"})


def parse_body(rt: RecordType, body: Any) -> Parsed:
    """Validate a request body against ``rt``: unknown fields, read-only fields, value types."""
    if not isinstance(body, dict):
        raise bad_request("INVALID_CONTENT", "The request body must be a JSON object.")
    parsed = Parsed()
    for name, value in body.items():
        if name in _IGNORED:
            continue
        sub = rt.sublist(name)
        if sub is not None:
            parsed.sublists[name] = _parse_sublist(sub, value)
            continue
        f = rt.field(name)
        if f is None or name == "id":
            raise bad_request(
                "NONEXISTENT_FIELD",
                f"The field '{name}' does not exist on the {rt.name} record.",
                path=name,
            )
        if not f.writable:
            raise bad_request(
                "INVALID_VALUE", f"The field '{name}' is read-only and cannot be set.", path=name
            )
        parsed.header[name] = _parse_scalar(f, value, name)
    return parsed


def _parse_sublist(sub: Sublist, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("items"), list):
        raise bad_request(
            "INVALID_CONTENT",
            f"The sublist '{sub.name}' must be an object with an 'items' array.",
            path=sub.name,
        )
    lines: list[dict[str, Any]] = []
    for index, item in enumerate(value["items"]):
        base = f"{sub.name}.items[{index}]"
        if not isinstance(item, dict):
            raise bad_request("INVALID_CONTENT", "A sublist line must be a JSON object.", path=base)
        line: dict[str, Any] = {}
        for name, raw in item.items():
            if name in _IGNORED:
                continue
            f = sub.field(name)
            if f is None:
                raise bad_request(
                    "NONEXISTENT_FIELD",
                    f"The field '{name}' does not exist on the sublist '{sub.name}'.",
                    path=f"{base}.{name}",
                )
            if f.writable:
                line[name] = _parse_scalar(f, raw, f"{base}.{name}")
        lines.append(line)
    return lines


def render_number(value: Decimal) -> float:
    """NetSuite JSON carries numbers, so money leaves as a float (exact for < 15 digits)."""
    return float(value)
