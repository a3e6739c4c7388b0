"""``NetSuiteErp``: the engine's ``ErpPort`` over SuiteTalk REST.

Data flow of one delivery::

    event payload --mapping.py--> record body --client.py (slot, TBA, httpx)--> NetSuite
                                                    errors translated once, there

Idempotency. Every record the hub writes carries ``externalId = <prefix><source id>``:

* customers are upserted: ``PUT /record/v1/customer/eid:SF-...`` creates or updates, so a
  retry can never make a second customer;
* documents (invoice, payment, credit memo, journal) are *created once*: ``POST`` with the
  external id, which NetSuite keeps unique per record type. When the create is refused the
  connector looks the external id up, and if the document is there (an earlier attempt
  landed, or a racing worker won) it returns it instead of failing. A PUT upsert is not
  used for documents because on an existing document it re-posts it (re-applies payments,
  and fails once its period is closed), and a posted document is never changed by the hub;
* ``find(kind, ref)`` is ``GET .../eid:...``, which the engine calls before creating again
  after an attempt whose outcome it does not know.

Concurrency. Requests pass an in-process semaphore and, when the hub's engine is given, the
engine's generic slots for the account's scope (``revbridge.engine.concurrency``: advisory
locks across processes on PostgreSQL). The worker holds the same slots around each delivery,
so a delivery's requests take none twice, and capture and read-back count too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import httpx
from sqlalchemy import Engine

from revbridge.core.events import (
    CreditMemoIssued,
    CustomerUpserted,
    EventData,
    InvoicePosted,
    PaymentReceived,
    RevenueRecognized,
)
from revbridge.engine.concurrency import Slots, slots_for
from revbridge.engine.ports import (
    BatchItem,
    BatchOutcome,
    Capabilities,
    ErpRecord,
    ReadbackKind,
    ReadPage,
    RecordKind,
    SummaryLine,
)
from revbridge.errors import TerminalError
from revbridge.netsuite import mapping
from revbridge.netsuite.capture import (
    ArCustomer,
    ArInvoice,
    Capture,
    GlLine,
    IncrementalRead,
    Payment,
    Readback,
)
from revbridge.netsuite.client import (
    JsonObject,
    NetSuiteHttp,
    NetSuiteRequestError,
    location_id,
)
from revbridge.netsuite.config import NetSuiteConfig

if TYPE_CHECKING:
    from revbridge.netsuite.csv_import import CsvFile

RECORD_TYPES: Mapping[RecordKind, str] = {
    RecordKind.CUSTOMER: "customer",
    RecordKind.INVOICE: "invoice",
    RecordKind.PAYMENT: "customerPayment",
    RecordKind.CREDIT_MEMO: "creditMemo",
    RecordKind.JOURNAL: "journalEntry",
}

# The ERP system the crosswalk records this adapter's links under (``Capabilities.name``).
SYSTEM_NAME = "netsuite"

_NUMBER_FIELD = {RecordKind.CUSTOMER: "entityId"}
# What the batch route imports as CSV files (csv_import.py); other kinds go record by record.
_CSV_RECORD_TYPES: Mapping[RecordKind, Literal["customer", "journalEntry"]] = {
    RecordKind.CUSTOMER: "customer",
    RecordKind.JOURNAL: "journalEntry",
}


class NetSuiteErp:
    """The NetSuite ERP adapter (``ErpPort``), plus capture, read-back and summary posting.

    ``engine``: the hub's SQLAlchemy engine. On PostgreSQL the account concurrency limit is
    then shared by every process through advisory locks; on anything else (SQLite is one
    process by construction) only the in-process limit applies. ``slots`` overrides both.
    """

    def __init__(
        self,
        config: NetSuiteConfig,
        *,
        engine: Engine | None = None,
        slots: Slots | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = SYSTEM_NAME,
    ) -> None:
        self.config = config
        if slots is None and engine is not None:
            # The engine's generic limit, in the scope of the account: the worker holds the
            # same slots around each delivery, and a request made inside one takes no second.
            slots = slots_for(
                engine,
                limit=config.concurrency_limit,
                scope=self.concurrency_scope(config),
                wait=config.slot_wait,
            )
        self.http = NetSuiteHttp(config, slots=slots, transport=transport)
        self.name = name
        self._capture = Capture(self.http, config)
        self._readback = Readback(self.http, config)
        self._incremental = IncrementalRead(self.http, config)
        # External id -> source record, for the answers of the batch files rendered here.
        self._batch_refs: dict[str, str] = {}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            name=self.name,
            batch_size=self.config.batch_size,
            concurrency_limit=self.config.concurrency_limit,
            concurrency_scope=self.concurrency_scope(self.config),
            idempotency="external_id",
            batch_formats=("netsuite-csv",),
            batch_kinds=frozenset(_CSV_RECORD_TYPES),
            can_close_periods=False,
            request_timeout_s=self.config.timeout.total_seconds(),
        )

    @staticmethod
    def concurrency_scope(config: NetSuiteConfig) -> str:
        """The account-wide limit is per NetSuite account, whoever in the hub calls it."""
        return f"netsuite:{config.account_id}"

    def external_id(self, external_ref: str) -> str:
        return mapping.external_id(self.config.external_id_prefix, external_ref)

    # ------------------------------------------------------------------ the port

    async def upsert_customer(
        self, external_ref: str, customer: CustomerUpserted, parent_erp_id: str | None
    ) -> ErpRecord:
        eid = self.external_id(external_ref)
        body = mapping.customer_body(self.config, customer, parent_erp_id)
        response = await self.http.request("PUT", f"/record/v1/customer/eid:{eid}", body=body)
        assert response is not None
        created = location_id(response)
        if created is not None:
            return ErpRecord(
                kind=RecordKind.CUSTOMER,
                external_ref=external_ref,
                erp_id=created,
                number=customer.erp_customer_number,
            )
        # Updated: NetSuite sends no Location, so read the id back.
        found = await self.find(RecordKind.CUSTOMER, external_ref)
        if found is None:
            raise TerminalError(f"customer {eid} was upserted but cannot be read back")
        return found

    async def create_invoice(
        self, external_ref: str, invoice: InvoicePosted, customer_erp_id: str
    ) -> ErpRecord:
        eid = self.external_id(external_ref)
        body = mapping.invoice_body(self.config, eid, invoice, customer_erp_id)
        return await self._create(RecordKind.INVOICE, external_ref, body, invoice.invoice_number)

    async def record_payment(
        self,
        external_ref: str,
        payment: PaymentReceived,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord:
        eid = self.external_id(external_ref)
        body = mapping.payment_body(self.config, eid, payment, customer_erp_id, invoice_erp_ids)
        return await self._create(RecordKind.PAYMENT, external_ref, body, None)

    async def create_credit_memo(
        self,
        external_ref: str,
        memo: CreditMemoIssued,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord:
        eid = self.external_id(external_ref)
        body = mapping.credit_memo_body(self.config, eid, memo, customer_erp_id, invoice_erp_ids)
        return await self._create(
            RecordKind.CREDIT_MEMO, external_ref, body, memo.credit_memo_number
        )

    async def post_journal(
        self, external_ref: str, entry: RevenueRecognized, customer_erp_id: str | None
    ) -> ErpRecord:
        if self.config.revenue_posting == "summarized":
            raise TerminalError(
                "revenue posting is 'summarized': recognized revenue is posted per period and "
                "account through NetSuiteErp.post_revenue_summary (the batch route), not per "
                "entry"
            )
        eid = self.external_id(external_ref)
        body = mapping.journal_body(self.config, eid, entry, customer_erp_id)
        return await self._create(RecordKind.JOURNAL, external_ref, body, None)

    async def find(self, kind: RecordKind, external_ref: str) -> ErpRecord | None:
        return await self._lookup(kind, external_ref, self.external_id(external_ref))

    async def close(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ customer master

    async def native_customers(self) -> list[JsonObject]:
        """Customers keyed in NetSuite, not created by the hub (no external id): what a new
        Account may already be (``revbridge.services.mdm_sync``)."""
        rows = await self.http.suiteql_all(
            "SELECT id, entityid, companyname, email FROM customer WHERE externalid IS NULL"
        )
        return [
            {
                "erp_id": str(r["id"]),
                "number": str(r.get("entityid") or r["id"]),
                "name": r.get("companyname") or r.get("entityid") or "",
                "email": r.get("email"),
            }
            for r in rows
        ]

    async def adopt_customer(self, external_ref: str, erp_id: str) -> None:
        """Give a customer linked at go-live the hub's external id, so the next upsert by
        external id updates it instead of creating a second customer."""
        await self.http.request(
            "PATCH",
            f"/record/v1/customer/{int(erp_id)}",
            body={"externalId": self.external_id(external_ref)},
        )

    # ------------------------------------------------------------------ helpers

    async def _lookup(self, kind: RecordKind, external_ref: str, eid: str) -> ErpRecord | None:
        number_field = _NUMBER_FIELD.get(kind, "tranId")
        response = await self.http.read(
            "GET",
            f"/record/v1/{RECORD_TYPES[kind]}/eid:{eid}",
            params={"fields": number_field},
            ok_404=True,
        )
        if response is None:
            return None
        data: JsonObject = response.json()
        return ErpRecord(
            kind=kind,
            external_ref=external_ref,
            erp_id=str(data["id"]),
            number=data.get(number_field),
        )

    async def _create(
        self, kind: RecordKind, external_ref: str, body: JsonObject, number: str | None
    ) -> ErpRecord:
        eid = str(body["externalId"])
        try:
            response = await self.http.request(
                "POST", f"/record/v1/{RECORD_TYPES[kind]}", body=body
            )
        except NetSuiteRequestError as exc:
            if exc.status != 400:
                raise
            # Refused: maybe because the document is already there under our external id.
            existing = await self._lookup(kind, external_ref, eid)
            if existing is not None:
                return existing
            raise
        assert response is not None
        erp_id = location_id(response)
        if erp_id is None:
            found = await self._lookup(kind, external_ref, eid)
            if found is None:
                raise TerminalError(f"{kind} {eid} was created but cannot be read back")
            return found
        return ErpRecord(kind=kind, external_ref=external_ref, erp_id=erp_id, number=number)

    # ------------------------------------------------------------------ summarized revenue

    async def post_revenue_summary(
        self, period: str, entries: Sequence[RevenueRecognized]
    ) -> list[ErpRecord]:
        """One journal entry per currency for ``period``: one line per account and side.

        ``entries`` is the period's *complete* set: the journal is upserted by the external
        id ``<prefix>REV-<period>-<currency>`` and its lines replaced, so posting the same
        set again changes nothing and posting a grown set corrects the totals.
        """
        by_currency: dict[str, list[RevenueRecognized]] = defaultdict(list)
        for entry in entries:
            if entry.period != period:
                raise TerminalError(
                    f"revenue entry {entry.schedule_entry_id} is in {entry.period}, not {period}"
                )
            currency = mapping.single_currency(entry.lines, entry.schedule_entry_id)
            by_currency[currency].append(entry)
        records = []
        for currency, group in sorted(by_currency.items()):
            record = await self._summary_journal(period, currency, group)
            if record is not None:
                records.append(record)
        return records

    # BatchPort and BatchScreen: the nightly classes as CSV import files (csv_import.py).

    @property
    def batch_format(self) -> str:
        return "netsuite-csv"

    def _csv(self, kind: RecordKind, items: Sequence[BatchItem]) -> CsvFile:
        from revbridge.netsuite.csv_import import customers_csv, journals_csv

        if kind is RecordKind.CUSTOMER:
            customers = [(i.external_ref, i.data) for i in items]
            if not all(isinstance(d, CustomerUpserted) for _, d in customers):
                raise TerminalError("a customer import file takes customers only")
            return customers_csv(self.config, customers)  # type: ignore[arg-type]
        if kind is RecordKind.JOURNAL:
            entries = [(i.external_ref, i.data) for i in items]
            if not all(isinstance(d, RevenueRecognized) for _, d in entries):
                raise TerminalError("a journal import file takes recognized revenue only")
            return journals_csv(self.config, entries)  # type: ignore[arg-type]
        raise TerminalError(f"NetSuite's CSV import route does not take {kind.value} records")

    async def screen_batch(
        self, kind: RecordKind, items: Sequence[BatchItem]
    ) -> list[BatchItem | Exception]:
        """Each record rendered alone first: one whose mapping is missing (a GL account, a
        currency) is refused with its reason, alone, instead of failing the whole file."""
        out: list[BatchItem | Exception] = []
        for item in items:
            try:
                self._csv(kind, [item])
            except TerminalError as exc:
                out.append(exc)
            else:
                out.append(item)
        return out

    def render_batch(self, kind: RecordKind, items: Sequence[BatchItem]) -> bytes:
        for item in items:  # the answer names external ids; the engine, source records
            self._batch_refs[self.external_id(item.external_ref)] = item.external_ref
        return self._csv(kind, items).text.encode()

    async def submit_batch(
        self, kind: RecordKind, content: bytes, manifest: Mapping[str, object]
    ) -> list[BatchOutcome]:
        """Import the file through the CSV import RESTlet and wait for its job: customers
        are upserted (a changed customer is updated), journals added once (rows NetSuite
        already holds are confirmed, not sent again)."""
        from revbridge.netsuite.csv_import import CsvFile, CsvImporter

        record_type = _CSV_RECORD_TYPES.get(kind)
        if record_type is None:
            raise TerminalError(f"NetSuite's CSV import route does not take {kind.value} records")
        file = CsvFile.parse(record_type, content.decode())
        result = await CsvImporter(self).run(
            file, mode="upsert" if kind is RecordKind.CUSTOMER else "add"
        )
        outcomes: list[BatchOutcome] = []
        for eid, row in result.outcomes.items():
            ref = self._batch_refs.pop(eid, None) or mapping.source_ref(
                self.config.external_id_prefix, eid
            )
            if ref is None:
                continue  # not a row of ours: the engine retries what is not answered
            if row.status == "error":
                why = "; ".join(f"{e.code}: {e.detail}" for e in row.errors) or "refused"
                where = ", ".join(str(n) for n in row.rows)
                error = f"NetSuite CSV import refused row {where} ({eid}): {why}"
                outcomes.append(BatchOutcome(external_ref=ref, error=error))
            else:
                outcomes.append(BatchOutcome(external_ref=ref, erp_id=row.erp_id))
        return outcomes

    # SummaryPort: the engine's batch route drives summarized revenue through these two.

    def summary_ref(self, kind: RecordKind, data: EventData) -> str | None:
        """``REV-<period>-<currency>`` for recognized revenue when it is posted summarized."""
        if (
            kind is not RecordKind.JOURNAL
            or self.config.revenue_posting != "summarized"
            or not isinstance(data, RevenueRecognized)
        ):
            return None
        currency = mapping.single_currency(data.lines, f"revenue entry {data.schedule_entry_id}")
        return f"REV-{data.period}-{currency}"

    async def post_summary(
        self, kind: RecordKind, summary_ref: str, items: Sequence[BatchItem]
    ) -> list[SummaryLine]:
        """Upsert the summary journal ``summary_ref`` from its complete set of entries and
        return each entry's share of each account line (the trace)."""
        entries = [i.data for i in items]
        if kind is not RecordKind.JOURNAL or not all(
            isinstance(e, RevenueRecognized) for e in entries
        ):
            raise TerminalError(f"{summary_ref}: only recognized revenue is posted summarized")
        revenue = [e for e in entries if isinstance(e, RevenueRecognized)]
        if any(self.summary_ref(kind, e) != summary_ref for e in revenue):
            raise TerminalError(f"{summary_ref}: an entry of another period or currency")
        period, currency = summary_ref.removeprefix("REV-").rsplit("-", 1)
        record = await self._summary_journal(period, currency, revenue)
        if record is None:
            raise TerminalError(
                f"{summary_ref}: the entries net to zero on every account; nothing to post"
            )
        lines: list[SummaryLine] = []
        for item, entry in zip(items, revenue, strict=True):
            share: dict[str, tuple[Decimal, Decimal]] = {}
            for line in entry.lines:
                debit, credit = share.get(line.account, (Decimal(0), Decimal(0)))
                share[line.account] = (debit + line.debit, credit + line.credit)
            lines += [
                SummaryLine(
                    external_ref=item.external_ref,
                    summary_ref=summary_ref,
                    erp_id=record.erp_id,
                    line_key=account,
                    account=account,
                    currency=currency,
                    debit=debit,
                    credit=credit,
                )
                for account, (debit, credit) in sorted(share.items())
            ]
        return lines

    async def _summary_journal(
        self, period: str, currency: str, entries: Sequence[RevenueRecognized]
    ) -> ErpRecord | None:
        """Upsert ``REV-<period>-<currency>``: one line per account, on the side of its net
        (None when every account nets to zero)."""
        per_account: dict[str, Decimal] = defaultdict(Decimal)
        last_day: date | None = None
        for entry in entries:
            for line in entry.lines:
                per_account[line.account] += line.debit - line.credit
            last_day = max(last_day or entry.entry_date, entry.entry_date)
        lines: list[dict[str, Any]] = []
        for account, net in sorted(per_account.items()):
            if net == 0:
                continue
            side = "debit" if net > 0 else "credit"
            lines.append(
                {
                    "account": mapping.account_ref(self.config, account),
                    side: abs(net),
                    "memo": f"Revenue {period}",
                }
            )
        if not lines or last_day is None:
            return None
        ref = f"REV-{period}-{currency}"
        eid = self.external_id(ref)
        body = {
            "tranDate": last_day.isoformat(),
            "currency": mapping.currency_ref(self.config, currency),
            "subsidiary": mapping.ref(self.config.subsidiary_id),
            "memo": f"Revenue recognition {period} ({len(entries)} entries)",
            "line": {"items": lines},
        }
        response = await self.http.request("PUT", f"/record/v1/journalEntry/eid:{eid}", body=body)
        assert response is not None
        erp_id = location_id(response)
        record = (
            ErpRecord(kind=RecordKind.JOURNAL, external_ref=ref, erp_id=erp_id)
            if erp_id
            else await self.find(RecordKind.JOURNAL, ref)
        )
        if record is None:
            raise TerminalError(f"summary journal {eid} was upserted but cannot be read back")
        return record

    # ------------------------------------------------------------------ capture, read-back

    async def capture_changes(
        self, watermark: str | None, *, max_rows: int = 10_000, with_master: bool = False
    ) -> tuple[list[dict[str, Any]], str]:
        """ERP-side changes since ``watermark`` as canonical envelopes, and the new mark.

        See ``capture.py``: accountant-entered payments (``erp.payment.received``, never the
        hub's own), credit hold and limit changes, GL postings (``gl.posted``);
        ``with_master`` adds the customer's name beside a credit status (for the master).
        """
        return await self._capture.changes(watermark, max_rows=max_rows, with_master=with_master)

    async def ar_by_invoice(self, customer_erp_id: str | None = None) -> tuple[ArInvoice, ...]:
        return await self._readback.ar_by_invoice(customer_erp_id)

    async def ar_by_customer(self) -> tuple[ArCustomer, ...]:
        return await self._readback.ar_by_customer()

    async def payments_for_period(self, period: str) -> tuple[Payment, ...]:
        return await self._readback.payments_for_period(period)

    async def gl_lines_for_period(self, period: str) -> tuple[GlLine, ...]:
        return await self._readback.gl_lines_for_period(period)

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
        """``ReadbackPort``: what changed after ``after``, for reconciliation."""
        return await self._incremental.read(kind, after, limit)
