"""ERP-side capture (NetSuite to the hub) and read-back for reconciliation, over SuiteQL.

Capture reads three streams, each with its own ``lastmodifieddate`` mark, and turns rows into
canonical envelopes in the ingest shape (``type, source, source_id, source_version,
occurred_at, data``):

* ``erp.payment.received``: customer payments *not* written by the hub (their external id
  does not carry the hub's prefix), so the hub never echoes its own cash receipts back;
* ``customer.credit_status_changed``: customers whose record changed (credit hold override,
  credit limit, terms, inactive), with the status as it is now (and, asked ``with_master``,
  beside the event the customer's name as NetSuite holds it, so that an edit there to an
  attribute Salesforce owns is caught by the customer master);
* ``gl.posted``: the general-ledger impact of every posting (``transactionaccountingline``,
  base currency), keyed on the lines' own ``lastmodifieddate`` so that an invoice merely
  being paid does not re-send its unchanged GL.

Paging. Capture pages by *keyset*: each query asks for rows after the last mark seen
(``lastmodifieddate > :mark ORDER BY lastmodifieddate``) with ``limit`` and follows
``hasMore``; offset paging is not safe here, because a row modified while paging moves to
the end and shifts every offset after it. Read-back is of bounded sets (a period, the open
invoices) and pages with ``offset`` until ``hasMore`` is false.

The watermark is a small JSON text holding one mark per stream. Marks are the timestamps
as ``TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS.FF6')`` returns them.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from revbridge.core.events import JournalLine, check_journal
from revbridge.core.money import minor_unit
from revbridge.engine.ports import (
    ArDocument,
    JournalDocument,
    JournalLineRow,
    PaymentDocument,
    ReadbackKind,
    ReadPage,
)
from revbridge.errors import DomainError
from revbridge.netsuite.client import JsonObject, NetSuiteHttp
from revbridge.netsuite.config import NetSuiteConfig
from revbridge.netsuite.mapping import source_ref

log = logging.getLogger("revbridge.netsuite.capture")

SOURCE = "netsuite"
STAMP = "YYYY-MM-DD HH24:MI:SS.FF6"
_MARK = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_STREAMS = ("payments", "customers", "gl")
Envelope = dict[str, Any]


SUITEQL_MAX_PAGE = 1000
COMPANY_NAME_MAX = 83  # NetSuite's companyName length; the hub writes names cut to it


def _check_mark(mark: str) -> str:
    if not _MARK.match(mark):
        raise ValueError(f"not a NetSuite capture mark: {mark!r}")
    return mark


def _after(column: str, mark: str | None) -> str:
    if mark is None:
        return "1 = 1"
    return f"{column} > TO_TIMESTAMP('{_check_mark(mark)}', '{STAMP}')"


def _moment(mark: str) -> datetime:
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in mark else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(mark, fmt).replace(tzinfo=UTC)


def money(value: Any, currency: str) -> Decimal:
    """A SuiteQL amount (text) at exactly the currency's minor unit."""
    amount = Decimal(str(value)) if value is not None else Decimal(0)
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)))


def _ids(rows: Iterable[JsonObject]) -> str:
    ids = [str(int(r["id"])) for r in rows]
    return ", ".join(ids)


def _s(amount: Decimal) -> str:
    return format(amount, "f")


def parse_watermark(watermark: str | None) -> dict[str, str | None]:
    marks: dict[str, str | None] = dict.fromkeys(_STREAMS)
    if watermark:
        stored = json.loads(watermark)
        for stream in _STREAMS:
            value = stored.get(stream)
            marks[stream] = None if value is None else _check_mark(str(value))
    return marks


def dump_watermark(marks: dict[str, str | None]) -> str:
    return json.dumps({s: marks[s] for s in _STREAMS}, separators=(",", ":"), sort_keys=True)


def _envelope(kind: str, source_id: str, modified: str, data: dict[str, Any]) -> Envelope:
    return {
        "type": kind,
        "source": SOURCE,
        "source_id": source_id,
        "source_version": modified,
        "occurred_at": _moment(modified).isoformat(),
        "data": data,
    }


class Capture:
    """Change capture from one NetSuite account."""

    def __init__(self, http: NetSuiteHttp, config: NetSuiteConfig, page_size: int = 1000) -> None:
        self.http = http
        self.config = config
        self.page_size = page_size

    async def changes(
        self, watermark: str | None, *, max_rows: int = 10_000, with_master: bool = False
    ) -> tuple[list[Envelope], str]:
        """Envelopes for changes after ``watermark`` (None: from the beginning), new mark.

        At most about ``max_rows`` rows per stream are read in one call; the returned mark
        covers exactly what was returned, so the next call continues from there.
        ``with_master``: credit status envelopes also carry ``master`` (the customer's name as
        NetSuite holds it) beside the event, for the customer master; it is not ingestable.
        """
        marks = parse_watermark(watermark)
        envelopes: list[Envelope] = []
        readers: dict[
            str, Callable[[str | None], Awaitable[tuple[list[Envelope], str | None, bool]]]
        ] = {
            "payments": self._payments_page,
            "customers": self._customers_page,
            "gl": self._gl_page,
        }
        for stream, read_page in readers.items():
            seen = 0
            while True:
                page, mark, more = await read_page(marks[stream])
                envelopes.extend(page)
                if mark is not None:
                    marks[stream] = mark
                seen += self.page_size
                if not more or seen >= max_rows:
                    break
        if not with_master:
            envelopes = [{k: v for k, v in e.items() if k != "master"} for e in envelopes]
        return envelopes, dump_watermark(marks)

    async def _page(self, query: str) -> tuple[list[JsonObject], bool]:
        result = await self.http.suiteql(query, limit=self.page_size, offset=0)
        return list(result.get("items") or []), bool(result.get("hasMore"))

    # ------------------------------------------------------------------ payments

    async def _payments_page(self, mark: str | None) -> tuple[list[Envelope], str | None, bool]:
        prefix = self.config.external_id_prefix
        rows, more = await self._page(
            "SELECT t.id, t.tranid, t.externalid, TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate,"
            " t.foreigntotal, cur.symbol AS currency, e.entityid, e.externalid AS customereid,"
            " a.accttype, a.acctnumber,"
            f" TO_CHAR(t.lastmodifieddate, '{STAMP}') AS modified"
            " FROM transaction t"
            " JOIN currency cur ON cur.id = t.currency"
            " JOIN customer e ON e.id = t.entity"
            " LEFT JOIN account a ON a.id = t.account"
            " WHERE t.type = 'CustPymt'"
            f" AND {_after('t.lastmodifieddate', mark)}"
            f" AND (t.externalid IS NULL OR t.externalid NOT LIKE '{prefix}%')"
            " ORDER BY t.lastmodifieddate, t.id"
        )
        if not rows:
            return [], None, False
        applications: dict[str, list[dict[str, str | None]]] = defaultdict(list)
        for link in await self.http.suiteql_all(
            "SELECT l.nextdoc, l.previousdoc, l.foreignamount, i.externalid"
            " FROM nexttransactionlinelink l JOIN transaction i ON i.id = l.previousdoc"
            f" WHERE l.nextdoc IN ({_ids(rows)}) ORDER BY l.nextdoc, l.nextline"
        ):
            invoice = str(link["previousdoc"])
            applications[str(link["nextdoc"])].append(
                {
                    # An invoice the hub did not post has no Salesforce id: name it by
                    # NetSuite's internal id so that the payment still adds up.
                    "invoice_id": source_ref(prefix, link.get("externalid"))
                    or f"netsuite-invoice-{invoice}",
                    "erp_invoice_id": invoice,
                    "amount": str(link["foreignamount"]),
                }
            )
        out = []
        for r in rows:
            currency = str(r["currency"])
            apps = [
                {**a, "amount": _s(money(a["amount"], currency))} for a in applications[r["id"]]
            ]
            method = "bank" if r.get("accttype") == "Bank" else "undeposited_funds"
            data = {
                "erp_payment_id": str(r["id"]),
                "erp_customer_number": str(r["entityid"]),
                "customer_id": source_ref(prefix, r.get("customereid")),
                "currency": currency,
                "amount": _s(money(r["foreigntotal"], currency)),
                "received_on": r["trandate"],
                "method": method,
                "reference": r.get("tranid"),
                "applications": apps,
            }
            out.append(_envelope("erp.payment.received", str(r["id"]), r["modified"], data))
        return out, str(rows[-1]["modified"]), more

    # ------------------------------------------------------------------ credit status

    async def _customers_page(self, mark: str | None) -> tuple[list[Envelope], str | None, bool]:
        prefix = self.config.external_id_prefix
        rows, more = await self._page(
            "SELECT e.id, e.entityid, e.externalid, e.companyname, e.creditholdoverride,"
            " e.creditlimit, e.balance, e.isinactive, tm.name AS terms, bc.symbol AS basecurrency,"
            f" TO_CHAR(e.lastmodifieddate, '{STAMP}') AS modified,"
            f" TO_CHAR(e.datecreated, '{STAMP}') AS created"
            " FROM customer e"
            " JOIN subsidiary s ON s.id = e.subsidiary"
            " JOIN currency bc ON bc.id = s.currency"
            " LEFT JOIN term tm ON tm.id = e.terms"
            f" WHERE {_after('e.lastmodifieddate', mark)}"
            " ORDER BY e.lastmodifieddate, e.id"
        )
        if not rows:
            return [], None, False
        out = []
        for r in rows:
            override = str(r.get("creditholdoverride") or "AUTO").upper()
            currency = str(r["basecurrency"])
            limit = None if r.get("creditlimit") is None else money(r["creditlimit"], currency)
            hub_owned = source_ref(prefix, r.get("externalid")) is not None
            untouched = override == "AUTO" and limit is None and r["created"] == r["modified"]
            if hub_owned and untouched:
                continue  # the hub's own new customer: no credit decision to report
            balance = money(r.get("balance"), currency)
            held = override == "ON" or (
                override == "AUTO" and limit is not None and balance > limit
            )
            inactive = r.get("isinactive") == "T"
            status = "inactive" if inactive else ("on_hold" if held else "active")
            reason = {
                "ON": "credit hold set in NetSuite",
                "OFF": "credit hold overridden off in NetSuite",
            }.get(override, "over credit limit" if held else "credit limit review")
            data = {
                "erp_customer_number": str(r["entityid"]),
                "customer_id": source_ref(prefix, r.get("externalid")),
                "status": status,
                "credit_hold": status == "on_hold",
                "currency": currency,
                "credit_limit": None if limit is None else _s(limit),
                "payment_terms": r.get("terms"),
                "reason": reason,
                "changed_at": _moment(r["modified"]).isoformat(),
            }
            envelope = _envelope(
                "customer.credit_status_changed", str(r["id"]), r["modified"], data
            )
            name = str(r.get("companyname") or "")
            if name and len(name) < COMPANY_NAME_MAX:
                # Master attributes as NetSuite holds them, for the customer master's
                # ownership check (``services.mdm_sync.filter_erp_capture``; not ingested).
                # A name at the field's limit may be Salesforce's, cut by the hub's own
                # write (``mapping.customer_body``): not reported, it says nothing sure.
                envelope["master"] = {"name": name}
            out.append(envelope)
        return out, str(rows[-1]["modified"]), more

    # ------------------------------------------------------------------ GL

    async def _gl_page(self, mark: str | None) -> tuple[list[Envelope], str | None, bool]:
        prefix = self.config.external_id_prefix
        posted, more = await self._page(
            "SELECT tal.transaction AS id,"
            f" TO_CHAR(MAX(tal.lastmodifieddate), '{STAMP}') AS modified"
            " FROM transactionaccountingline tal"
            f" WHERE {_after('tal.lastmodifieddate', mark)} AND tal.posting = 'T'"
            " GROUP BY tal.transaction"
            " ORDER BY MAX(tal.lastmodifieddate), tal.transaction"
        )
        if not posted:
            return [], None, False
        ids = _ids(posted)
        headers = {
            str(h["id"]): h
            for h in await self.http.suiteql_all(
                "SELECT t.id, t.type, t.tranid, t.externalid, t.memo,"
                " TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate,"
                " TO_CHAR(p.startdate, 'YYYY-MM') AS period, bc.symbol AS basecurrency"
                " FROM transaction t"
                " JOIN accountingperiod p ON p.id = t.postingperiod"
                " JOIN subsidiary s ON s.id = t.subsidiary"
                " JOIN currency bc ON bc.id = s.currency"
                f" WHERE t.id IN ({ids}) ORDER BY t.id"
            )
        }
        lines: dict[str, list[JsonObject]] = defaultdict(list)
        for line in await self.http.suiteql_all(
            "SELECT tal.transaction AS id, tal.transactionline, a.acctnumber, a.fullname,"
            " tal.debit, tal.credit"
            " FROM transactionaccountingline tal JOIN account a ON a.id = tal.account"
            f" WHERE tal.transaction IN ({ids}) AND tal.posting = 'T'"
            " ORDER BY tal.transaction, tal.transactionline, a.acctnumber"
        ):
            lines[str(line["id"])].append(line)
        out = []
        for p in posted:
            tid = str(p["id"])
            header = headers.get(tid)
            if header is None:
                continue  # deleted between the two reads
            currency = str(header["basecurrency"])
            journal: list[JournalLine] = []
            for line in lines[tid]:
                debit, credit = (
                    money(line.get("debit"), currency),
                    money(line.get("credit"), currency),
                )
                if debit == credit == 0:
                    continue
                journal.append(
                    JournalLine(
                        account=f"{line['acctnumber']} {line['fullname']}",
                        debit=debit,
                        credit=credit,
                        currency=currency,
                    )
                )
            try:
                check_journal(tuple(journal))
            except DomainError as exc:
                log.warning("netsuite capture: GL of transaction %s skipped: %s", tid, exc)
                continue
            data = {
                "erp_journal_id": tid,
                "journal_number": header.get("tranid"),
                "period": header["period"],
                "posting_date": header["trandate"],
                "source_ref": source_ref(prefix, header.get("externalid"))
                or header.get("externalid"),
                "memo": header.get("memo") or f"NetSuite {header['type']}",
                "lines": [
                    {
                        "account": j.account,
                        "debit": _s(j.debit),
                        "credit": _s(j.credit),
                        "currency": j.currency,
                    }
                    for j in journal
                ],
            }
            out.append(_envelope("gl.posted", tid, str(p["modified"]), data))
        return out, str(posted[-1]["modified"]), more


# ---------------------------------------------------------------------------- read-back


@dataclass(frozen=True, slots=True, kw_only=True)
class ArInvoice:
    """An invoice's AR position in NetSuite, in the invoice's currency."""

    erp_id: str
    number: str
    external_ref: str | None
    customer_erp_id: str
    currency: str
    invoice_date: date
    due_date: date | None
    total: Decimal
    amount_paid: Decimal
    amount_remaining: Decimal
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ArCustomer:
    """A customer's open and overdue balance, in the base currency of its subsidiary."""

    erp_id: str
    number: str
    external_ref: str | None
    currency: str
    balance: Decimal
    overdue_balance: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    """A customer payment of a period, in its own currency."""

    erp_id: str
    number: str
    external_ref: str | None
    customer_erp_id: str
    currency: str
    received_on: date
    amount: Decimal
    applied: Decimal
    unapplied: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class GlLine:
    """One general-ledger line of a period, in the base currency."""

    transaction_id: str
    transaction_type: str
    number: str
    external_ref: str | None
    line: int
    account: str
    debit: Decimal
    credit: Decimal
    currency: str
    posting_date: date
    period: str


def _period(period: str) -> str:
    if not _PERIOD.match(period):
        raise ValueError(f"period {period!r} is not YYYY-MM")
    return period


class Readback:
    """What NetSuite holds, read for reconciliation. Every read pages to the end."""

    def __init__(self, http: NetSuiteHttp, config: NetSuiteConfig) -> None:
        self.http = http
        self.prefix = config.external_id_prefix

    def _ref(self, eid: Any) -> str | None:
        return source_ref(self.prefix, eid)

    async def ar_by_invoice(self, customer_erp_id: str | None = None) -> tuple[ArInvoice, ...]:
        where = "" if customer_erp_id is None else f" AND t.entity = {int(customer_erp_id)}"
        rows = await self.http.suiteql_all(
            "SELECT t.id, t.tranid, t.externalid, t.entity, cur.symbol AS currency,"
            " TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate,"
            " TO_CHAR(t.duedate, 'YYYY-MM-DD') AS duedate, t.foreigntotal,"
            " t.foreignamountpaid, t.foreignamountremaining, t.status"
            " FROM transaction t JOIN currency cur ON cur.id = t.currency"
            f" WHERE t.type = 'CustInvc'{where} ORDER BY t.id"
        )
        return tuple(
            ArInvoice(
                erp_id=str(r["id"]),
                number=str(r.get("tranid", "")),
                external_ref=self._ref(r.get("externalid")),
                customer_erp_id=str(r["entity"]),
                currency=str(r["currency"]),
                invoice_date=date.fromisoformat(r["trandate"]),
                due_date=date.fromisoformat(r["duedate"]) if r.get("duedate") else None,
                total=money(r.get("foreigntotal"), r["currency"]),
                amount_paid=money(r.get("foreignamountpaid"), r["currency"]),
                amount_remaining=money(r.get("foreignamountremaining"), r["currency"]),
                status={"A": "open", "B": "paid_in_full"}.get(str(r.get("status")), "other"),
            )
            for r in rows
        )

    async def ar_by_customer(self) -> tuple[ArCustomer, ...]:
        rows = await self.http.suiteql_all(
            "SELECT e.id, e.entityid, e.externalid, e.balance, e.overduebalance,"
            " bc.symbol AS currency"
            " FROM customer e JOIN subsidiary s ON s.id = e.subsidiary"
            " JOIN currency bc ON bc.id = s.currency ORDER BY e.id"
        )
        return tuple(
            ArCustomer(
                erp_id=str(r["id"]),
                number=str(r["entityid"]),
                external_ref=self._ref(r.get("externalid")),
                currency=str(r["currency"]),
                balance=money(r.get("balance"), r["currency"]),
                overdue_balance=money(r.get("overduebalance"), r["currency"]),
            )
            for r in rows
        )

    async def payments_for_period(self, period: str) -> tuple[Payment, ...]:
        rows = await self.http.suiteql_all(
            "SELECT t.id, t.tranid, t.externalid, t.entity, cur.symbol AS currency,"
            " TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, t.foreigntotal,"
            " t.foreignpaymentamountused, t.foreignpaymentamountunused"
            " FROM transaction t JOIN currency cur ON cur.id = t.currency"
            " JOIN accountingperiod p ON p.id = t.postingperiod"
            f" WHERE t.type = 'CustPymt' AND TO_CHAR(p.startdate, 'YYYY-MM') = '{_period(period)}'"
            " ORDER BY t.id"
        )
        return tuple(
            Payment(
                erp_id=str(r["id"]),
                number=str(r.get("tranid", "")),
                external_ref=self._ref(r.get("externalid")),
                customer_erp_id=str(r["entity"]),
                currency=str(r["currency"]),
                received_on=date.fromisoformat(r["trandate"]),
                amount=money(r.get("foreigntotal"), r["currency"]),
                applied=money(r.get("foreignpaymentamountused"), r["currency"]),
                unapplied=money(r.get("foreignpaymentamountunused"), r["currency"]),
            )
            for r in rows
        )

    async def gl_lines_for_period(self, period: str) -> tuple[GlLine, ...]:
        rows = await self.http.suiteql_all(
            "SELECT tal.transaction AS id, tal.transactionline, t.type, t.tranid, t.externalid,"
            " a.acctnumber, a.fullname, tal.debit, tal.credit, bc.symbol AS currency,"
            " TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate"
            " FROM transactionaccountingline tal"
            " JOIN transaction t ON t.id = tal.transaction"
            " JOIN account a ON a.id = tal.account"
            " JOIN accountingperiod p ON p.id = t.postingperiod"
            " JOIN subsidiary s ON s.id = t.subsidiary"
            " JOIN currency bc ON bc.id = s.currency"
            f" WHERE tal.posting = 'T' AND TO_CHAR(p.startdate, 'YYYY-MM') = '{_period(period)}'"
            " ORDER BY tal.transaction, tal.transactionline, a.acctnumber"
        )
        return tuple(
            GlLine(
                transaction_id=str(r["id"]),
                transaction_type=str(r["type"]),
                number=str(r.get("tranid", "")),
                external_ref=self._ref(r.get("externalid")),
                line=int(r["transactionline"]),
                account=f"{r['acctnumber']} {r['fullname']}",
                debit=money(r.get("debit"), r["currency"]),
                credit=money(r.get("credit"), r["currency"]),
                currency=str(r["currency"]),
                posting_date=date.fromisoformat(r["trandate"]),
                period=period,
            )
            for r in rows
        )


# ---------------------------------------------------------------------------- incremental read


def _since(column: str, mark: str | None) -> str:
    """Keyset after ``"<stamp>|<id>"``: later stamps, or the same stamp and a higher id."""
    if mark is None:
        return "1 = 1"
    stamp, _, last_id = mark.partition("|")
    at = f"TO_TIMESTAMP('{_check_mark(stamp)}', '{STAMP}')"
    return f"({column} > {at} OR ({column} = {at} AND t.id > {int(last_id)}))"


class IncrementalRead:
    """``ReadbackPort.read`` for NetSuite: what changed after a mark, by ``lastmodifieddate``.

    AR (invoices, credit memos), customer payments with their applications, and journal
    entries with their lines, each page keyset-ordered by ``(lastmodifieddate, id)``. A
    document the hub did not create has the ref ``erp:<internal id>``; a payment entered in
    NetSuite has its internal id as ref (the ``erp_payment_id`` capture gives it).
    """

    def __init__(self, http: NetSuiteHttp, config: NetSuiteConfig) -> None:
        self.http = http
        self.prefix = config.external_id_prefix

    def _ref(self, eid: Any, internal_id: Any) -> str:
        return source_ref(self.prefix, eid) or f"erp:{internal_id}"

    async def _changed(self, select: str, where: str, mark: str | None, limit: int) -> list[Any]:
        query = (
            f"SELECT {select}, TO_CHAR(t.lastmodifieddate, '{STAMP}') AS modified"
            " FROM transaction t JOIN currency cur ON cur.id = t.currency"
            " LEFT JOIN customer e ON e.id = t.entity"
            f" WHERE {where} AND {_since('t.lastmodifieddate', mark)}"
            " ORDER BY t.lastmodifieddate, t.id"
        )
        return list((await self.http.suiteql(query, limit=limit, offset=0)).get("items") or [])

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
        # SuiteQL answers at most 1,000 rows a page (a larger limit is INVALID_VALUE): a
        # caller's bigger page becomes several pages, each with its own mark.
        limit = min(limit, SUITEQL_MAX_PAGE)
        if kind == ReadbackKind.AR:
            rows = await self._changed(
                "t.id, t.type, t.externalid, e.externalid AS customereid, cur.symbol AS currency,"
                " TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, t.foreigntotal,"
                " t.foreignamountremaining, t.status",
                "t.type IN ('CustInvc', 'CustCred')",
                after,
                limit,
            )
            docs: list[ArDocument | PaymentDocument | JournalDocument] = [self._ar(r) for r in rows]
        elif kind == ReadbackKind.PAYMENTS:
            rows = await self._changed(
                "t.id, t.externalid, e.externalid AS customereid, cur.symbol AS currency,"
                " TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, t.foreigntotal",
                "t.type = 'CustPymt'",
                after,
                limit,
            )
            docs = list(await self._payments(rows))
        else:
            rows = await self._changed(
                "t.id, t.type, t.externalid, e.externalid AS customereid, cur.symbol AS currency,"
                " TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate,"
                " (SELECT TO_CHAR(p.startdate, 'YYYY-MM') FROM accountingperiod p"
                " WHERE p.id = t.postingperiod) AS period",
                "t.type = 'Journal'",
                after,
                limit,
            )
            docs = list(await self._journals(rows))
        mark = f"{rows[-1]['modified']}|{rows[-1]['id']}" if rows else after
        return ReadPage(documents=tuple(docs), mark=mark)

    def _ar(self, r: Any) -> ArDocument:
        currency = str(r["currency"])
        invoice = r["type"] == "CustInvc"
        return ArDocument(
            key=str(r["id"]),
            ref=self._ref(r.get("externalid"), r["id"]),
            doc_type="invoice" if invoice else "credit_memo",
            customer_ref=source_ref(self.prefix, r.get("customereid")),
            currency=currency,
            amount=abs(money(r.get("foreigntotal"), currency)),
            doc_date=date.fromisoformat(r["trandate"]),
            status={"A": "open", "B": "paid_in_full"}.get(str(r.get("status")), "other"),
            balance=money(r.get("foreignamountremaining"), currency) if invoice else None,
        )

    async def _payments(self, rows: list[Any]) -> list[PaymentDocument]:
        if not rows:
            return []
        applied: dict[str, list[tuple[str, Decimal]]] = defaultdict(list)
        for link in await self.http.suiteql_all(
            "SELECT l.nextdoc, l.previousdoc, l.foreignamount, i.externalid"
            " FROM nexttransactionlinelink l JOIN transaction i ON i.id = l.previousdoc"
            f" WHERE l.nextdoc IN ({_ids(rows)}) ORDER BY l.nextdoc, l.nextline"
        ):
            invoice = self._ref(link.get("externalid"), link["previousdoc"])
            applied[str(link["nextdoc"])].append((invoice, Decimal(str(link["foreignamount"]))))
        out = []
        for r in rows:
            currency = str(r["currency"])
            own = source_ref(self.prefix, r.get("externalid"))
            out.append(
                PaymentDocument(
                    key=str(r["id"]),
                    ref=own or str(r["id"]),
                    origin="salesforce" if own else "erp",
                    customer_ref=source_ref(self.prefix, r.get("customereid")),
                    currency=currency,
                    amount=money(r.get("foreigntotal"), currency),
                    doc_date=date.fromisoformat(r["trandate"]),
                    applications=tuple(
                        (i, money(a, currency)) for i, a in applied.get(str(r["id"]), ())
                    ),
                )
            )
        return out

    async def _journals(self, rows: list[Any]) -> list[JournalDocument]:
        if not rows:
            return []
        lines: dict[str, list[JournalLineRow]] = defaultdict(list)
        customers: dict[str, str | None] = {}
        for line in await self.http.suiteql_all(
            "SELECT tl.transaction AS id, tl.id AS line, a.acctnumber, a.fullname,"
            " tl.debitforeignamount, tl.creditforeignamount, c.externalid AS customereid"
            " FROM transactionline tl JOIN account a ON a.id = tl.account"
            " LEFT JOIN customer c ON c.id = tl.entity"
            f" WHERE tl.transaction IN ({_ids(rows)}) ORDER BY tl.transaction, tl.id"
        ):
            # A journal's customer is on its lines (the hub puts it on every line).
            customers.setdefault(str(line["id"]), source_ref(self.prefix, line.get("customereid")))
            lines[str(line["id"])].append(
                JournalLineRow(
                    account=f"{line['acctnumber']} {line['fullname']}",
                    debit=Decimal(str(line.get("debitforeignamount") or 0)),
                    credit=Decimal(str(line.get("creditforeignamount") or 0)),
                )
            )
        return [
            JournalDocument(
                key=str(r["id"]),
                ref=self._ref(r.get("externalid"), r["id"]),
                doc_type="journal",
                customer_ref=customers.get(str(r["id"]))
                or source_ref(self.prefix, r.get("customereid")),
                currency=str(r["currency"]),
                period=str(r.get("period") or str(r["trandate"])[:7]),
                doc_date=date.fromisoformat(r["trandate"]),
                lines=tuple(lines.get(str(r["id"]), ())),
            )
            for r in rows
        ]
