"""What Tryton holds, read back for reconciliation (``engine.ports.ReadbackPort``).

Tryton has no single modification stamp: a record has ``create_date`` and, once changed,
``write_date``. A read asks Tryton for every record created or written at or after the mark's
time, orders them by ``(write_date or create_date, id)`` and keeps, after the mark, the first
``limit``: the mark is ``"<iso time>|<id>"``. The changed set of a night is small; a first
read of a large company reads it whole once, then pages locally.

=============  ==========================================================================
kind           what is read
=============  ==========================================================================
AR             customer invoices and credit notes (``account.invoice`` of type ``out``,
               posted, paid or cancelled); ref: the invoice's ``reference``
payments       cash-journal moves paying invoices; the parts of one payment (``ref [i/n]``)
               are one document; a payment the hub did not create (another user) has the
               move number as ref and ``origin="erp"``
journals       MISC-journal moves (the revenue entries the hub posts, and any other); lines
               with their account's canonical name through the account map
=============  ==========================================================================

Amounts of payments and journal lines are in the company currency (Tryton's move lines).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from revbridge.engine.ports import (
    ArDocument,
    JournalDocument,
    JournalLineRow,
    PaymentDocument,
    ReadbackKind,
    ReadPage,
)
from revbridge.tryton.capture import _parties

if TYPE_CHECKING:
    from revbridge.tryton.adapter import TrytonErp

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _stamp(row: dict[str, Any]) -> dt.datetime:
    changed: dt.datetime = row.get("write_date") or row["create_date"]
    return changed if changed.tzinfo is not None else changed.replace(tzinfo=dt.UTC)


def _since(mark: str | None) -> tuple[dt.datetime, int]:
    if not mark:
        return _EPOCH, 0
    stamp, _, last_id = mark.partition("|")
    return dt.datetime.fromisoformat(stamp), int(last_id)


class TrytonReadback:
    """Incremental read-back of one Tryton company."""

    def __init__(self, erp: TrytonErp) -> None:
        self.erp = erp
        self.client = erp.client

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
        await self.client.ensure_login()
        since, last_id = _since(after)
        model, domain, fields = self._query(kind)
        rows = await self.client.search_read(
            model,
            [
                *domain,
                ("company", "=", self.client.company_id),
                ["OR", ("write_date", ">=", since), ("create_date", ">=", since)],
            ],
            [*fields, "create_date", "write_date"],
            order=[("id", "ASC")],
        )
        changed = sorted(
            (r for r in rows if (_stamp(r), r["id"]) > (since, last_id)),
            key=lambda r: (_stamp(r), r["id"]),
        )[:limit]
        if not changed:
            return ReadPage(documents=(), mark=after)
        mark = f"{_stamp(changed[-1]).isoformat()}|{changed[-1]['id']}"
        if kind == ReadbackKind.AR:
            parties = await _parties(self.erp, {r["party"] for r in changed})
            for r in changed:
                if r["total_amount"] < 0 and r["state"] == "posted":
                    # Credit already paying an invoice is not open (the adapter's rule).
                    r["amount_to_pay"] = await self.erp.ops.open_credit(int(r["id"]))
            ar = [self._ar(r, parties[r["party"]][1]) for r in changed]
            return ReadPage(documents=tuple(ar), mark=mark)
        if kind == ReadbackKind.PAYMENTS:
            return ReadPage(documents=tuple(await self._payments(changed)), mark=mark)
        return ReadPage(documents=tuple(await self._journals(changed)), mark=mark)

    def _query(self, kind: ReadbackKind) -> tuple[str, list[Any], list[str]]:
        if kind == ReadbackKind.AR:
            return (
                "account.invoice",
                [("type", "=", "out"), ("state", "in", ["posted", "paid", "cancelled"])],
                [
                    "reference",
                    "party",
                    "currency.code",
                    "state",
                    "invoice_date",
                    "total_amount",
                    "amount_to_pay",
                ],
            )
        if kind == ReadbackKind.PAYMENTS:
            return (
                "account.move",
                [("journal.type", "=", "cash"), ("state", "=", "posted")],
                ["description"],
            )
        return (
            "account.move",
            [("journal.code", "=", "MISC"), ("state", "=", "posted")],
            ["description"],
        )

    def _ar(self, r: dict[str, Any], customer: str | None) -> ArDocument:
        total: Decimal = r["total_amount"]
        credit_note = total < 0
        to_pay: Decimal = r["amount_to_pay"] or Decimal(0)
        status = r["state"]
        if credit_note and status == "posted" and to_pay == 0:
            # A credit note used up against invoices stays "posted" in Tryton: it is paid.
            status = "paid"
        return ArDocument(
            key=str(r["id"]),
            ref=r["reference"] or f"erp:{r['id']}",
            doc_type="credit_memo" if credit_note else "invoice",
            customer_ref=customer,
            currency=r["currency."]["code"],
            amount=abs(total),
            doc_date=r["invoice_date"],
            status=status,
            balance=None if credit_note else (Decimal(0) if r["state"] == "paid" else to_pay),
        )

    async def _payments(self, changed: list[dict[str, Any]]) -> list[PaymentDocument]:
        """Whole payments: every part of each payment a changed move belongs to."""
        from revbridge.tryton.adapter import split_payment_reference

        refs = {split_payment_reference(m["description"] or "")[0] for m in changed}
        domain: list[Any] = ["OR"]
        for ref in sorted(refs):
            domain += [("description", "=", ref), ("description", "like", f"{ref} [%]")]
        moves = await self.client.search_read(
            "account.move",
            [
                ("company", "=", self.client.company_id),
                ("journal.type", "=", "cash"),
                ("state", "=", "posted"),
                domain,
            ],
            ["description", "origin", "date", "create_uid", "number"],
            order=[("id", "ASC")],
        )
        lines = await self.client.search_read(
            "account.move.line",
            [("move", "in", [m["id"] for m in moves]), ("account.type.receivable", "=", True)],
            ["move", "debit", "credit", "party"],
        )
        amount: dict[int, Decimal] = defaultdict(Decimal)
        party: dict[int, int] = {}
        for line in lines:
            amount[line["move"]] += line["credit"] - line["debit"]
            if line["party"] is not None:
                party.setdefault(line["move"], line["party"])
        invoice_ids = sorted(
            {
                int(m["origin"].split(",", 1)[1])
                for m in moves
                if (m["origin"] or "").startswith("account.invoice,")
            }
        )
        invoices = (
            {
                row["id"]: row["reference"] or f"erp:{row['id']}"
                for row in await self.client.model(
                    "account.invoice", "read", invoice_ids, ["reference"]
                )
            }
            if invoice_ids
            else {}
        )
        parties = await _parties(self.erp, set(party.values()))
        currency = await self.erp.company_currency()
        hub_user = self.client.user_id
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in moves:
            grouped[split_payment_reference(m["description"] or "")[0]].append(m)
        out = []
        for ref, parts in grouped.items():
            if ref not in refs:
                continue
            first = parts[0]
            own = first["create_uid"] == hub_user
            applied: dict[str, Decimal] = defaultdict(Decimal)
            for m in parts:
                origin = m["origin"] or ""
                if origin.startswith("account.invoice,"):
                    applied[invoices[int(origin.split(",", 1)[1])]] += amount[m["id"]]
            customer = parties.get(party.get(first["id"], -1), ("", None))[1]
            out.append(
                PaymentDocument(
                    key=ref if own else str(first["id"]),
                    ref=ref if own else (first["number"] or f"move-{first['id']}"),
                    origin="salesforce" if own else "erp",
                    customer_ref=customer,
                    currency=currency,
                    amount=sum((amount[m["id"]] for m in parts), Decimal(0)),
                    doc_date=first["date"],
                    applications=tuple(sorted(applied.items())),
                )
            )
        return out

    async def _journals(self, changed: list[dict[str, Any]]) -> list[JournalDocument]:
        ids = [m["id"] for m in changed]
        moves = await self.client.model(
            "account.move", "read", ids, ["description", "date", "period.start_date"]
        )
        lines = await self.client.search_read(
            "account.move.line",
            [("move", "in", ids)],
            ["move", "debit", "credit", "party", "account.code"],
            order=[("move", "ASC"), ("id", "ASC")],
        )
        names: dict[str, str] = {}
        for name, code in self.erp.accounts.gl_accounts.items():
            names.setdefault(code, name)
        by_move: dict[int, list[JournalLineRow]] = defaultdict(list)
        party: dict[int, int] = {}
        for line in lines:
            code = line["account."]["code"]
            by_move[line["move"]].append(
                JournalLineRow(
                    account=names.get(code, code), debit=line["debit"], credit=line["credit"]
                )
            )
            if line["party"] is not None:
                party.setdefault(line["move"], line["party"])
        parties = await _parties(self.erp, set(party.values()))
        currency = await self.erp.company_currency()
        return [
            JournalDocument(
                key=str(m["id"]),
                ref=m["description"] or f"erp:{m['id']}",
                doc_type="journal",
                customer_ref=parties.get(party.get(m["id"], -1), ("", None))[1],
                currency=currency,
                period=m["period."]["start_date"].strftime("%Y-%m"),
                doc_date=m["date"],
                lines=tuple(by_move.get(m["id"], ())),
            )
            for m in moves
        ]
