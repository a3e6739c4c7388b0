"""What the org holds, read back for reconciliation (``engine.ports.ReadbackPort``).

SOQL over the configured object model (``mapping.Profile``), incrementally: each object is
read in ``(SystemModstamp, Id)`` order after a keyset mark, ``LIMIT``-ed, so a page never
re-reads or skips a record, even when many share one stamp. The mark of a kind that spans
several objects (AR: invoices and credit notes) is a JSON object with one mark per object.

=============  ==========================================================================
kind           what is read
=============  ==========================================================================
AR             invoices (status: the payment status where the model has one, else the
               invoice status; balance) and credit notes/memos
payments       payments with their invoice allocations; a payment the hub wrote back from
               the ERP (its ERP receipt number set) has ``origin="erp"`` and that number
               as ``ref``
journals       revenue transactions (Billing) as two-line journals, deferred revenue to
               revenue, exactly as ``mapping`` makes ``revenue.recognized`` of them
=============  ==========================================================================
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from revbridge.core import sfid
from revbridge.engine.ports import (
    ArDocument,
    JournalDocument,
    JournalLineRow,
    PaymentDocument,
    ReadbackKind,
    ReadPage,
)
from revbridge.salesforce.client import SalesforceClient
from revbridge.salesforce.mapping import Profile, get

_ZERO = Decimal(0)
_IN_CHUNK = 200


def _soql_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _stamp(value: Any) -> datetime:
    text = str(value).replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"  # +0000 -> +00:00
    return datetime.fromisoformat(text)


def _money(record: Any, path: str) -> Decimal:
    value = get(record, path) if path else None
    return _ZERO if value is None else Decimal(str(value))


def _day(record: Any, path: str) -> date:
    value = get(record, path)
    return date.fromisoformat(str(value)[:10]) if value else date(1970, 1, 1)


def _ref(record: Any, path: str) -> str | None:
    value = get(record, path) if path else None
    return sfid.to_18(str(value)) if value else None


class SalesforceReadback:
    """The org's invoices, credit notes, payments and revenue, read by SOQL."""

    def __init__(self, client: SalesforceClient, profile: Profile) -> None:
        self.client = client
        self.profile = profile

    async def close(self) -> None:
        await self.client.aclose()

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
        marks: dict[str, str] = json.loads(after) if after else {}
        docs: list[ArDocument | PaymentDocument | JournalDocument] = []
        for sobject in self._objects(kind):
            if len(docs) >= limit:
                break
            records = await self._page(sobject, marks.get(sobject), limit - len(docs))
            if not records:
                continue
            last = records[-1]
            marks[sobject] = f"{_stamp(last['SystemModstamp']).isoformat()}|{last['Id']}"
            docs.extend(await self._documents(kind, sobject, records))
        return ReadPage(
            documents=tuple(docs), mark=json.dumps(marks, sort_keys=True) if marks else after
        )

    def _objects(self, kind: ReadbackKind) -> tuple[str, ...]:
        p = self.profile
        if kind == ReadbackKind.AR:
            return (p.invoice.object, p.credit.object)
        if kind == ReadbackKind.PAYMENTS:
            return (p.payment.object,)
        return (p.revenue.object,) if p.revenue is not None else ()

    def _fields(self, sobject: str) -> list[str]:
        p = self.profile
        fields = ["Id", "SystemModstamp", "CurrencyIsoCode"]
        if sobject == p.invoice.object:
            i = p.invoice
            fields += [i.account, i.invoice_date, i.status, i.total, *self._invoice_extra()]
        elif sobject == p.credit.object:
            c = p.credit
            fields += [c.account, c.issued_on, c.status, c.total]
        elif sobject == p.payment.object:
            y = p.payment
            fields += [y.account, y.amount, y.received_on, y.status, y.erp_origin]
        elif p.revenue is not None and sobject == p.revenue.object:
            r = p.revenue
            fields += [r.account, r.amount, r.status, r.period_start, r.period_end]
        return list(dict.fromkeys(f for f in fields if f))

    def _invoice_extra(self) -> tuple[str, ...]:
        # Billing keeps a payment status and a balance; Revenue Cloud a balance.
        if self.profile.name == "billing":
            return ("blng__PaymentStatus__c", "blng__Balance__c")
        return ("Balance",)

    async def _page(self, sobject: str, mark: str | None, limit: int) -> list[Any]:
        where = ""
        if mark:
            stamp, _, last_id = mark.partition("|")
            at = _soql_time(datetime.fromisoformat(stamp))
            where = (
                f" WHERE (SystemModstamp > {at} OR (SystemModstamp = {at} AND Id > '{last_id}'))"
            )
        soql = (
            f"SELECT {', '.join(self._fields(sobject))} FROM {sobject}{where} "
            f"ORDER BY SystemModstamp ASC, Id ASC LIMIT {int(limit)}"
        )
        return await self.client.query(soql)

    async def _documents(
        self, kind: ReadbackKind, sobject: str, records: Sequence[Any]
    ) -> list[ArDocument | PaymentDocument | JournalDocument]:
        p = self.profile
        currency = p.default_currency
        out: list[ArDocument | PaymentDocument | JournalDocument] = []
        if sobject == p.invoice.object:
            i = p.invoice
            for r in records:
                billing = p.name == "billing"
                status = get(r, "blng__PaymentStatus__c") if billing else None
                if get(r, i.status) not in i.posted_statuses or not status:
                    status = get(r, i.status)
                balance = get(r, "blng__Balance__c" if billing else "Balance")
                out.append(
                    ArDocument(
                        key=sfid.to_18(r["Id"]),
                        ref=sfid.to_18(r["Id"]),
                        doc_type="invoice",
                        customer_ref=_ref(r, i.account),
                        currency=r.get("CurrencyIsoCode") or currency,
                        amount=_money(r, i.total),
                        doc_date=_day(r, i.invoice_date),
                        status=str(status),
                        balance=None if balance is None else Decimal(str(balance)),
                    )
                )
        elif sobject == p.credit.object:
            c = p.credit
            for r in records:
                out.append(
                    ArDocument(
                        key=sfid.to_18(r["Id"]),
                        ref=sfid.to_18(r["Id"]),
                        doc_type="credit_memo",
                        customer_ref=_ref(r, c.account),
                        currency=r.get("CurrencyIsoCode") or currency,
                        amount=_money(r, c.total),
                        doc_date=_day(r, c.issued_on),
                        status=str(get(r, c.status)),
                    )
                )
        elif sobject == p.payment.object:
            apps = await self._allocations([sfid.to_18(r["Id"]) for r in records])
            y = p.payment
            for r in records:
                key = sfid.to_18(r["Id"])
                erp_number = get(r, y.erp_origin)
                out.append(
                    PaymentDocument(
                        key=key,
                        ref=str(erp_number) if erp_number else key,
                        origin="erp" if erp_number else "salesforce",
                        customer_ref=_ref(r, y.account),
                        currency=r.get("CurrencyIsoCode") or currency,
                        amount=_money(r, y.amount),
                        doc_date=_day(r, y.received_on),
                        status=str(get(r, y.status)),
                        applications=tuple(sorted(apps.get(key, {}).items())),
                    )
                )
        elif p.revenue is not None and kind == ReadbackKind.JOURNALS:
            out.extend(self._revenue(r) for r in records)
        return out

    async def _allocations(self, payment_ids: list[str]) -> dict[str, dict[str, Decimal]]:
        y = self.profile.payment
        out: dict[str, dict[str, Decimal]] = {}
        for start in range(0, len(payment_ids), _IN_CHUNK):
            ids = ", ".join(f"'{i}'" for i in payment_ids[start : start + _IN_CHUNK])
            soql = (
                f"SELECT {y.allocation_payment}, {y.allocation_invoice}, {y.allocation_amount}, "
                f"{y.allocation_type} FROM {y.allocation_object} "
                f"WHERE {y.allocation_payment} IN ({ids})"
            )
            for a in await self.client.query(soql):
                payment, invoice = _ref(a, y.allocation_payment), _ref(a, y.allocation_invoice)
                if payment is None or invoice is None:
                    continue
                amount = _money(a, y.allocation_amount)
                if get(a, y.allocation_type) in y.allocation_reversing_types:
                    amount = -amount
                per = out.setdefault(payment, {})
                per[invoice] = per.get(invoice, _ZERO) + amount
        return {p: {i: a for i, a in v.items() if a != 0} for p, v in out.items()}

    def _revenue(self, r: Any) -> JournalDocument:
        p = self.profile
        assert p.revenue is not None  # only called for a model with revenue
        rv = p.revenue
        amount = _money(r, rv.amount)
        start = _day(r, rv.period_start)
        end = _day(r, rv.period_end) if get(r, rv.period_end) else start
        debit, credit = (
            (p.deferred_revenue_account, p.revenue_account)
            if amount > 0
            else (p.revenue_account, p.deferred_revenue_account)
        )
        value = abs(amount)
        recognized = get(r, rv.status) in rv.recognized_statuses
        lines = (
            (
                JournalLineRow(account=debit, debit=value, credit=_ZERO),
                JournalLineRow(account=credit, debit=_ZERO, credit=value),
            )
            if recognized and value
            else ()
        )
        return JournalDocument(
            key=sfid.to_18(r["Id"]),
            ref=sfid.to_18(r["Id"]),
            doc_type="revenue",
            customer_ref=_ref(r, rv.account),
            currency=r.get("CurrencyIsoCode") or p.default_currency,
            period=start.strftime("%Y-%m"),
            doc_date=end,
            lines=lines,
        )
