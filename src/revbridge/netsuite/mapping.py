"""Canonical events to NetSuite record bodies, and NetSuite external ids to and from refs.

Pure functions: no I/O. A body is exactly what ``POST /record/v1/{type}`` takes. A mapping
that is missing (a currency, a GL account, an item) raises ``TerminalError`` naming the key:
it is a set-up problem, and retrying cannot fix it.

External ids. NetSuite accepts letters, digits, ``_`` and ``-`` only. The hub's external id
is ``<prefix><escaped source id>`` where the escape is deterministic and reversible: letters,
digits and ``-`` stay, ``_`` becomes ``__`` and any other character becomes ``_`` followed by
the two hex digits of each of its UTF-8 bytes. The prefix (default ``SF-``) marks a record as
the hub's own, which is how capture tells the hub's postings from the accountant's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from revbridge.core.events import (
    CreditMemoIssued,
    CustomerUpserted,
    DocumentLine,
    InvoicePosted,
    JournalLine,
    PaymentReceived,
    RevenueRecognized,
)
from revbridge.errors import TerminalError
from revbridge.netsuite.config import NetSuiteConfig

JsonObject = dict[str, Any]
MAX_EXTERNAL_ID = 255
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_HEX = frozenset("0123456789abcdef")


def _tokens(ref: str) -> list[str]:
    """The escaped form of ``ref``, one token per source character."""
    out: list[str] = []
    for ch in ref:
        if ch in _SAFE:
            out.append(ch)
        elif ch == "_":
            out.append("__")
        else:
            out.append("".join(f"_{b:02x}" for b in ch.encode()))
    return out


def external_id(prefix: str, ref: str) -> str:
    """The NetSuite external id for the source record ``ref`` (``SF-001Ax...``)."""
    if not ref:
        raise TerminalError("an empty source reference cannot become a NetSuite external id")
    tokens = _tokens(ref)
    eid = prefix + "".join(tokens)
    if len(eid) <= MAX_EXTERNAL_ID:
        return eid
    # Too long to keep whole: a readable head cut between whole escapes, then ``_h`` and a
    # digest of the full reference. ``_h`` is no valid escape, so ``source_ref`` refuses it.
    head = prefix
    for token in tokens:
        if len(head) + len(token) > MAX_EXTERNAL_ID - 34:
            break
        head += token
    return f"{head}_h{hashlib.sha256(ref.encode()).hexdigest()[:32]}"


def is_external_id(value: str) -> bool:
    """True when ``value`` is a valid NetSuite external id (letters, digits, ``_``, ``-``)."""
    return 0 < len(value) <= MAX_EXTERNAL_ID and all(c in _SAFE or c == "_" for c in value)


def source_ref(prefix: str, eid: str | None) -> str | None:
    """The source record id behind a hub-owned external id; None for anyone else's."""
    if not eid or not eid.startswith(prefix):
        return None
    body = eid[len(prefix) :]
    raw = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "_":
            raw.extend(ch.encode())
            i += 1
        elif body[i + 1 : i + 2] == "_":
            raw.extend(b"_")
            i += 2
        elif len(body) >= i + 3 and set(body[i + 1 : i + 3]) <= _HEX:
            raw.append(int(body[i + 1 : i + 3], 16))
            i += 3
        else:
            return None  # a digest-shortened id, or not written by the hub
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def ref(internal_id: str) -> JsonObject:
    return {"id": internal_id}


def currency_ref(config: NetSuiteConfig, currency: str) -> JsonObject:
    try:
        return ref(config.currency_map[currency])
    except KeyError:
        raise TerminalError(
            f"no NetSuite currency mapped for {currency} (netsuite.currency_map)"
        ) from None


def account_ref(config: NetSuiteConfig, account: str) -> JsonObject:
    """A canonical account (``"4000 Subscription Revenue"``, or its number) as a reference."""
    mapping = config.gl_account_map
    found = mapping.get(account) or mapping.get(account.split(" ", 1)[0])
    if found is None:
        raise TerminalError(
            f"no NetSuite GL account mapped for {account!r} (netsuite.gl_account_map)"
        )
    return ref(found)


def _item_id(config: NetSuiteConfig, product_code: str | None) -> str:
    found = config.item_map.get(product_code or "") or config.default_item_id
    if found is None:
        raise TerminalError(
            f"no NetSuite item mapped for product {product_code!r} "
            "(netsuite.item_map, netsuite.default_item_id)"
        )
    return found


def item_lines(
    config: NetSuiteConfig, lines: tuple[DocumentLine, ...], tax_total: Decimal
) -> JsonObject:
    """The ``item`` sublist: one line per document line, and one tax line when taxed.

    ``amount`` is sent with ``rate`` so NetSuite never recomputes (and re-rounds) it.
    """
    items: list[JsonObject] = [
        {
            "item": ref(_item_id(config, line.product_code)),
            "quantity": line.quantity,
            "rate": line.unit_price,
            "amount": line.amount,
            "description": line.description[:999],
        }
        for line in lines
    ]
    if tax_total:
        if config.tax_item_id is None:
            raise TerminalError(
                f"the document carries {tax_total} of tax but no tax item is configured "
                "(netsuite.tax_item_id)"
            )
        items.append(
            {
                "item": ref(config.tax_item_id),
                "quantity": Decimal(1),
                "rate": tax_total,
                "amount": tax_total,
                "description": "Tax",
            }
        )
    return {"items": items}


def customer_body(
    config: NetSuiteConfig, customer: CustomerUpserted, parent_erp_id: str | None
) -> JsonObject:
    body: JsonObject = {
        "companyName": customer.name[:83],
        "subsidiary": ref(config.subsidiary_id),
        "currency": currency_ref(config, customer.currency),
        "isInactive": False,
    }
    if customer.erp_customer_number:
        body["entityId"] = customer.erp_customer_number
    # Sent as null when absent so that a customer moved to the top of a hierarchy loses
    # its old parent on the upsert.
    body["parent"] = ref(parent_erp_id) if parent_erp_id else None
    email = next((c.email for c in customer.contacts if c.email), None)
    if email:
        body["email"] = email
    phone = next((c.phone for c in customer.contacts if c.phone), None)
    if phone:
        body["phone"] = phone
    return body


def invoice_body(
    config: NetSuiteConfig, eid: str, invoice: InvoicePosted, customer_erp_id: str
) -> JsonObject:
    return {
        "externalId": eid,
        "entity": ref(customer_erp_id),
        "tranId": invoice.invoice_number,
        "otherRefNum": invoice.invoice_number,
        "tranDate": invoice.invoice_date.isoformat(),
        "dueDate": invoice.due_date.isoformat(),
        "currency": currency_ref(config, invoice.currency),
        "subsidiary": ref(config.subsidiary_id),
        "memo": f"Salesforce invoice {invoice.invoice_number}",
        "item": item_lines(config, invoice.lines, invoice.tax_total),
    }


def _apply(applications: tuple[Any, ...], invoice_erp_ids: Mapping[str, str]) -> JsonObject:
    items = []
    for a in applications:
        doc = invoice_erp_ids.get(a.invoice_id) or a.erp_invoice_id
        if doc is None:
            raise TerminalError(
                f"invoice {a.invoice_id} has no NetSuite internal id to apply {a.amount} to"
            )
        items.append({"doc": ref(doc), "apply": True, "amount": a.amount})
    return {"items": items}


def payment_body(
    config: NetSuiteConfig,
    eid: str,
    payment: PaymentReceived,
    customer_erp_id: str,
    invoice_erp_ids: Mapping[str, str],
) -> JsonObject:
    body: JsonObject = {
        "externalId": eid,
        "customer": ref(customer_erp_id),
        "payment": payment.amount,
        "tranDate": payment.received_on.isoformat(),
        "currency": currency_ref(config, payment.currency),
        "subsidiary": ref(config.subsidiary_id),
        "memo": " ".join(p for p in (payment.method, payment.reference) if p)[:999],
        "apply": _apply(payment.applications, invoice_erp_ids),
    }
    if config.payment_account_id:
        body["account"] = ref(config.payment_account_id)
    return body


def credit_memo_body(
    config: NetSuiteConfig,
    eid: str,
    memo: CreditMemoIssued,
    customer_erp_id: str,
    invoice_erp_ids: Mapping[str, str],
) -> JsonObject:
    body: JsonObject = {
        "externalId": eid,
        "entity": ref(customer_erp_id),
        "tranId": memo.credit_memo_number,
        "otherRefNum": memo.credit_memo_number,
        "tranDate": memo.issued_on.isoformat(),
        "currency": currency_ref(config, memo.currency),
        "subsidiary": ref(config.subsidiary_id),
        "memo": (memo.reason or f"Salesforce credit memo {memo.credit_memo_number}")[:999],
        "item": item_lines(config, memo.lines, memo.tax_total),
        "apply": _apply(memo.applications, invoice_erp_ids),
    }
    if len(memo.applications) == 1:
        body["createdFrom"] = body["apply"]["items"][0]["doc"]
    return body


def journal_lines(
    config: NetSuiteConfig, lines: tuple[JournalLine, ...], customer_erp_id: str | None
) -> list[JsonObject]:
    out: list[JsonObject] = []
    for line in lines:
        item: JsonObject = {"account": account_ref(config, line.account)}
        if line.debit:
            item["debit"] = line.debit
        else:
            item["credit"] = line.credit
        if line.memo:
            item["memo"] = line.memo[:999]
        if customer_erp_id:
            item["entity"] = ref(customer_erp_id)
        out.append(item)
    return out


def single_currency(lines: tuple[JournalLine, ...], what: str) -> str:
    currencies = {line.currency for line in lines}
    if len(currencies) != 1:
        raise TerminalError(
            f"{what} has lines in {sorted(currencies)}: a NetSuite journal entry has one currency"
        )
    return currencies.pop()


def journal_body(
    config: NetSuiteConfig, eid: str, entry: RevenueRecognized, customer_erp_id: str | None
) -> JsonObject:
    currency = single_currency(entry.lines, f"revenue entry {entry.schedule_entry_id}")
    return {
        "externalId": eid,
        "tranDate": entry.entry_date.isoformat(),
        "currency": currency_ref(config, currency),
        "subsidiary": ref(config.subsidiary_id),
        "memo": (entry.memo or f"Revenue {entry.period} {entry.schedule_id}")[:999],
        "line": {"items": journal_lines(config, entry.lines, customer_erp_id)},
    }
