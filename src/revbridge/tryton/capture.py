"""ERP-side capture: what accountants did in Tryton, as canonical envelopes for the hub.

Two readers, each taking a watermark (an aware datetime, Tryton's own clock) and returning
``(envelopes, new_watermark)``; the envelopes are dicts in the ingest shape (``type``,
``source``, ``source_id``, ``source_version``, ``occurred_at``, ``data``), ready for
``ingest_lines`` after ``json.dumps``:

* ``capture_erp_payments``: payments entered in Tryton (the pay wizard on a customer
  invoice: a posted move in a cash journal whose origin is the invoice) become
  ``erp.payment.received``. Payments the hub itself posted never echo back: a move created
  by the hub's own Tryton user is skipped, and so is one whose reference the caller says the
  hub delivered (``is_hub_payment``, e.g. "this Salesforce payment id is in the ledger").
* ``capture_credit_status``: parties with a credit limit or linked by the hub whose limit,
  record or receivable changed since the watermark become ``customer.credit_status_changed``:
  ``on_hold`` while what they owe exceeds the limit, ``active`` otherwise. Tryton itself
  blocks nothing on a limit (only ``sale_credit_limit`` would): the hold is the hub's reading
  of Tryton's numbers.

Watermarks are inclusive: records changed exactly at the watermark are read again on the
next call and produce the same envelope (same ``source_id`` and ``source_version``), which
the ledger's idempotent ingest counts as a duplicate. Nothing is lost to a commit in the
same microsecond, and nothing is stored twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from revbridge.core.money import minor_unit
from revbridge.mdm.erp_reading import reading_of_address
from revbridge.tryton.adapter import IDENTIFIER_PREFIX, TrytonErp, split_payment_reference

__all__ = ["SOURCE", "capture_credit_status", "capture_erp_payments"]

SOURCE = "tryton"
"""The ``source`` of every envelope captured here."""

Envelope = dict[str, Any]


async def capture_erp_payments(
    erp: TrytonErp,
    since: dt.datetime,
    *,
    is_hub_payment: Callable[[str], bool] | None = None,
) -> tuple[list[Envelope], dt.datetime]:
    """``erp.payment.received`` for invoice payments entered in Tryton since ``since``.

    One envelope per payment move: ``erp_payment_id`` is the move number, the amount is what
    the move credits to the customer's receivable, in the invoice's currency, applied to the
    invoice by its Salesforce id (its Tryton reference) when it has one.
    """
    client = erp.client
    await client.ensure_login()
    moves = await client.search_read(
        "account.move",
        [
            ("company", "=", client.company_id),
            ("journal.type", "=", "cash"),
            ("origin", "like", "account.invoice,%"),
            ("state", "=", "posted"),
            ["OR", ("write_date", ">=", since), ("create_date", ">=", since)],
        ],
        ["number", "description", "origin", "date", "create_date", "write_date", "create_uid"],
        order=[("id", "ASC")],
    )
    watermark = max((_changed_at(m) for m in moves), default=since)
    hub_user = client.user_id
    own = [
        m
        for m in moves
        if m["create_uid"] != hub_user
        and not (
            is_hub_payment is not None
            and is_hub_payment(split_payment_reference(m["description"] or "")[0])
        )
    ]
    if not own:
        return [], watermark
    lines = await client.search_read(
        "account.move.line",
        [("move", "in", [m["id"] for m in own]), ("account.type.receivable", "=", True)],
        ["move", "debit", "credit", "amount_second_currency", "party"],
    )
    by_move: dict[int, list[dict[str, Any]]] = {}
    for line in lines:
        by_move.setdefault(line["move"], []).append(line)
    invoice_ids = sorted({int(m["origin"].split(",", 1)[1]) for m in own})
    invoices = {
        row["id"]: row
        for row in await client.model(
            "account.invoice",
            "read",
            invoice_ids,
            ["reference", "number", "currency.code", "party"],
        )
    }
    parties = await _parties(erp, {inv["party"] for inv in invoices.values()})
    company_currency = await erp.company_currency()
    envelopes: list[Envelope] = []
    for move in own:
        invoice = invoices[int(move["origin"].split(",", 1)[1])]
        currency = invoice["currency."]["code"]
        move_lines = by_move.get(move["id"], [])
        if currency == company_currency:
            amount = sum((ln["credit"] - ln["debit"] for ln in move_lines), Decimal(0))
        else:
            amount = -sum((ln["amount_second_currency"] or 0 for ln in move_lines), Decimal(0))
        if amount <= 0:
            continue  # a refund or a reversal is not a payment received
        amount = amount.quantize(Decimal(1).scaleb(-minor_unit(currency)))
        code, customer_id = parties[invoice["party"]]
        changed_at = _changed_at(move)
        number = move["number"] or f"move-{move['id']}"
        applications = (
            [
                {
                    "invoice_id": invoice["reference"],
                    "erp_invoice_id": invoice["number"],
                    "amount": format(amount, "f"),
                }
            ]
            if invoice["reference"]
            else []
        )
        envelopes.append(
            {
                "type": "erp.payment.received",
                "source": SOURCE,
                "source_id": number,
                "source_version": changed_at.isoformat(),
                "occurred_at": changed_at.isoformat(),
                "data": {
                    "erp_payment_id": number,
                    "erp_customer_number": code,
                    "customer_id": customer_id,
                    "currency": currency,
                    "amount": format(amount, "f"),
                    "received_on": move["date"].isoformat(),
                    "method": "tryton-cash",
                    "reference": move["description"],
                    "applications": applications,
                },
            }
        )
    return envelopes, watermark


async def capture_credit_status(
    erp: TrytonErp, since: dt.datetime, *, with_master: bool = False
) -> tuple[list[Envelope], dt.datetime]:
    """``customer.credit_status_changed`` for parties whose credit position or record moved.

    ``with_master``: each envelope also carries ``master`` beside the event (not ingestable),
    for the customer master's ownership check: the party's name, its first address as the
    hub writes it (street, city, postal code, country), and its tax identifier (Tryton's
    ``tax_identifier``: the first identifier of a tax type), each only when Tryton holds one.

    The parties read are those with a credit limit and those the hub links (a Salesforce
    identifier: created by the hub or adopted at go-live), so a rename of a party without a
    limit is seen too. One is read when it was written (its limit, name, identifiers), its
    address or an identifier of it changed, or a receivable line of it was created or
    changed (an invoice posted, a payment entered) at or after ``since``. A party without a
    limit reports ``active`` with no limit.
    """
    client = erp.client
    await client.ensure_login()
    # The limit values themselves are not readable over RPC; setting one writes the party,
    # so the party's own write date says when its limit changed.
    limits = await client.search_read(
        "party.party",
        [("credit_limit_amounts.company", "=", client.company_id)],
        ["create_date", "write_date"],
    )
    linked = await client.search_read(
        "party.party",
        [("identifiers.code", "like", IDENTIFIER_PREFIX + "%")],
        ["create_date", "write_date"],
    )
    changed: dict[int, dt.datetime] = {}
    for row in [*limits, *linked]:
        at = _changed_at(row)
        if at >= since:
            changed[row["id"]] = at
    watched = sorted({row["id"] for row in [*limits, *linked]})
    if watched:
        recent = ["OR", ("write_date", ">=", since), ("create_date", ">=", since)]
        moved = await client.search_read(
            "account.move.line",
            [
                ("party", "in", watched),
                ("account.type.receivable", "=", True),
                ("move.state", "=", "posted"),
                recent,
            ],
            ["party", "create_date", "write_date"],
        )
        # An address or identifier edited in its own form does not write the party.
        for model in ("party.address", "party.identifier"):
            moved += await client.search_read(
                model,
                [("party", "in", watched), recent],
                ["party", "create_date", "write_date"],
            )
        for line in moved:
            at = _changed_at(line)
            changed[line["party"]] = max(at, changed.get(line["party"], at))
    if not changed:
        return [], since
    watermark = max(changed.values())
    rows = await client.model(
        "party.party",
        "read",
        sorted(changed),
        [
            "code",
            "name",
            "credit_amount",
            "credit_limit_amount",
            "customer_payment_term.name",
            "addresses",
            "tax_identifier.code",
        ],
    )
    parties = await _parties(erp, set(changed))
    addresses = await _first_addresses(erp, rows) if with_master else {}
    currency = await erp.company_currency()
    digits = Decimal(1).scaleb(-minor_unit(currency))
    envelopes: list[Envelope] = []
    for row in sorted(rows, key=lambda r: r["code"]):
        limit: Decimal | None = row["credit_limit_amount"]
        owed: Decimal = (row["credit_amount"] or Decimal(0)).quantize(digits)
        over = limit is not None and owed > limit
        code, customer_id = parties[row["id"]]
        at = changed[row["id"]]
        if limit is None:
            reason = "No credit limit in Tryton"
        elif over:
            reason = f"Owes {owed} {currency}, over the credit limit of {limit.quantize(digits)}"
        else:
            reason = f"Owes {owed} {currency}, within the credit limit of {limit.quantize(digits)}"
        term = row.get("customer_payment_term.") or {}
        envelope: Envelope = {
            "type": "customer.credit_status_changed",
            "source": SOURCE,
            "source_id": f"credit:{code}",
            "source_version": at.isoformat(),
            "occurred_at": at.isoformat(),
            "data": {
                "erp_customer_number": code,
                "customer_id": customer_id,
                "status": "on_hold" if over else "active",
                "credit_hold": over,
                "currency": currency,
                "credit_limit": (
                    format(limit.quantize(digits), "f") if limit is not None else None
                ),
                "payment_terms": term.get("name"),
                "reason": reason,
                "changed_at": at.isoformat(),
            },
        }
        if with_master:
            # Master attributes as Tryton holds them, for the customer master's ownership
            # check (``services.mdm_sync.filter_erp_capture``; not ingested).
            master = {
                "name": row.get("name"),
                "billing_address": addresses.get(row["id"]),
                "tax_id": (row.get("tax_identifier.") or {}).get("code"),
            }
            if any(master.values()):
                envelope["master"] = {k: v for k, v in master.items() if v}
        envelopes.append(envelope)
    return envelopes, watermark


async def _first_addresses(
    erp: TrytonErp, rows: list[dict[str, Any]]
) -> dict[int, dict[str, str] | None]:
    """Party id to its first address (the one the hub writes), as ``Address`` components."""
    first = {row["addresses"][0]: row["id"] for row in rows if row.get("addresses")}
    if not first:
        return {}
    read = await erp.client.model(
        "party.address",
        "read",
        sorted(first),
        ["street_unstructured", "city", "postal_code", "country.code"],
    )
    return {
        first[a["id"]]: reading_of_address(
            a.get("street_unstructured"),
            a.get("city"),
            a.get("postal_code"),
            (a.get("country.") or {}).get("code"),
        )
        for a in read
    }


async def _parties(erp: TrytonErp, ids: set[int]) -> dict[int, tuple[str, str | None]]:
    """Party id to (code, Salesforce Account id or None)."""
    if not ids:
        return {}
    rows = await erp.client.model("party.party", "read", sorted(ids), ["code", "identifiers"])
    identifier_ids = [i for row in rows for i in row["identifiers"]]
    codes: dict[int, str] = {}
    if identifier_ids:
        for ident in await erp.client.model(
            "party.identifier", "read", identifier_ids, ["code", "party"]
        ):
            if ident["code"].startswith(IDENTIFIER_PREFIX) and ident["party"] not in codes:
                codes[ident["party"]] = ident["code"][len(IDENTIFIER_PREFIX) :]
    return {row["id"]: (row["code"], codes.get(row["id"])) for row in rows}


def _changed_at(row: dict[str, Any]) -> dt.datetime:
    changed: dt.datetime = row["write_date"] or row["create_date"]
    return changed
