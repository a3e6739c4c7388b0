"""The engine's ports: what an ERP adapter and the Salesforce side must offer.

Adapters live in one folder per system (``netsuite/``, ``tryton/``, ``salesforce/``) and
translate their own errors into ``TransientError`` or ``TerminalError`` at the boundary.
Every create carries ``external_ref``, the source record's id (the Salesforce invoice,
payment or schedule line; docs/decisions/0003), into the system's own mechanism (an external
id, a reference field), and ``find`` looks a record up by it: that is how the engine proves,
after an attempt whose outcome is unknown, whether it landed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from revbridge.core.events import (
    CreditMemoIssued,
    CustomerCreditStatusChanged,
    CustomerUpserted,
    ErpPaymentReceived,
    EventData,
    GlPosted,
    InvoicePosted,
    PaymentReceived,
    ReportingRefreshed,
    RevenueRecognized,
)


class RecordKind(StrEnum):
    CUSTOMER = "customer"
    INVOICE = "invoice"
    PAYMENT = "payment"
    CREDIT_MEMO = "credit_memo"
    JOURNAL = "journal"


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a target system can take, declared as data so the engine can plan around it.

    ``concurrency_limit``: calls in flight at once. With ``concurrency_scope`` (the account
    the limit belongs to, e.g. ``netsuite:1234567``) it is shared by every hub process that
    talks to that scope (through PostgreSQL); without one it is per process.
    """

    name: str
    batch_size: int = 200
    concurrency_limit: int = 5
    concurrency_scope: str | None = None
    rate_limit_per_s: float | None = None
    daily_call_budget: int | None = None
    idempotency: str = "external_id"  # or "search_before_create", "reference_field"
    batch_formats: tuple[str, ...] = ()
    # The record kinds its import files take (a ``BatchPort``): a batch class of another
    # kind is delivered record by record, through the real-time calls.
    batch_kinds: frozenset[RecordKind] = frozenset()
    can_close_periods: bool = False
    # The longest one call may take (its request timeout). A call starts with at least half
    # its lease left, so a worker's lease is at least twice this (``services.targets``).
    request_timeout_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErpRecord:
    """A record found or created in the target system."""

    kind: RecordKind
    external_ref: str
    erp_id: str
    number: str | None = None


@runtime_checkable
class ErpPort(Protocol):
    """The ERP interface every ERP adapter implements."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def upsert_customer(
        self, external_ref: str, customer: CustomerUpserted, parent_erp_id: str | None
    ) -> ErpRecord: ...

    async def create_invoice(
        self, external_ref: str, invoice: InvoicePosted, customer_erp_id: str
    ) -> ErpRecord: ...

    async def record_payment(
        self,
        external_ref: str,
        payment: PaymentReceived,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord: ...

    async def create_credit_memo(
        self,
        external_ref: str,
        memo: CreditMemoIssued,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord: ...

    async def post_journal(
        self, external_ref: str, entry: RevenueRecognized, customer_erp_id: str | None
    ) -> ErpRecord: ...

    async def find(self, kind: RecordKind, external_ref: str) -> ErpRecord | None:
        """The record created for ``external_ref``, only if it fully landed.

        A multi-step create cut off half-way (a draft invoice not posted, a credit note not
        applied) must be reported as absent: the engine then calls the create again, and the
        adapter finishes the job instead of starting over.
        """
        ...

    async def close(self) -> None: ...


@runtime_checkable
class SalesforcePort(Protocol):
    """Write-back into Salesforce for the ERP-to-Salesforce flows; idempotent by external id."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def apply_erp_payment(self, external_ref: str, payment: ErpPaymentReceived) -> str: ...

    async def update_credit_status(
        self, external_ref: str, status: CustomerCreditStatusChanged
    ) -> str: ...

    async def record_gl_posting(self, external_ref: str, journal: GlPosted) -> str: ...

    async def refresh_reporting(self, external_ref: str, report: ReportingRefreshed) -> str: ...

    async def find(self, external_ref: str) -> str | None: ...

    async def close(self) -> None: ...


@runtime_checkable
class SourcePort(Protocol):
    """A side that says what changed since a watermark, as canonical event envelopes: the
    Salesforce side's change feed (``SalesforcePort`` is its write-back half) and an ERP's
    (cash entered by an accountant, a credit hold).

    ``side`` (``salesforce`` or ``erp``) and ``name`` name the capture stream, whose
    watermark the hub keeps. ``changes(watermark)`` returns what changed after
    ``watermark`` (``None``: from the beginning), oldest first, with the watermark to pass
    next time (``watermark`` itself when nothing changed). The caller stores the envelopes
    and only then the watermark, so a crash re-reads and never skips: the ledger turns a
    re-read into a duplicate, never a double. An envelope may be invalid (a mapping the
    source got wrong): the ingest quarantines it with its reason, nothing is dropped.

    ``salesforce/capture.py`` is the real Salesforce side's capture: it pages each object
    by its own watermark and follows Change Data Capture by replay id, so it drives its
    own rounds instead of this one-call shape.
    """

    @property
    def side(self) -> str: ...

    @property
    def name(self) -> str: ...

    async def changes(self, watermark: str | None) -> tuple[Sequence[dict[str, Any]], str]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchItem:
    """One record of a batch file: its reference, its payload and resolved dependencies."""

    external_ref: str
    data: EventData
    refs: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchOutcome:
    """What the system said about one record of a submitted batch file."""

    external_ref: str
    erp_id: str | None = None
    error: str | None = None
    transient: bool = False


@runtime_checkable
class BatchPort(Protocol):
    """A target that takes its own import files (NetSuite CSV import, FBDI, a JSONL feed)."""

    @property
    def batch_format(self) -> str: ...

    def render_batch(self, kind: RecordKind, items: Sequence[BatchItem]) -> bytes: ...

    async def submit_batch(
        self, kind: RecordKind, content: bytes, manifest: Mapping[str, object]
    ) -> Sequence[BatchOutcome]: ...


@runtime_checkable
class BatchScreen(Protocol):
    """A port that checks each record of a batch before the file is written (the customer
    master: a hierarchy cycle, a likely duplicate held for review, attributes the source does
    not own), so a record delivered by batch gets the same treatment as in real time.

    ``screen_batch`` returns one entry per item, in order: the item to send (possibly
    changed), or the exception that says why it is not sent: ``Held`` (held for a person's
    decision), ``DomainError``/``TerminalError`` (dead letter), any other (retried).
    """

    async def screen_batch(
        self, kind: RecordKind, items: Sequence[BatchItem]
    ) -> Sequence[BatchItem | Exception]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryLine:
    """One source record's share of one line of a summarized document.

    ``external_ref`` is the source record (a ``BatchItem``'s); ``summary_ref`` and ``erp_id``
    name the summarized document; ``line_key`` names its line (the GL account: one line per
    account). ``debit`` and ``credit`` are what this record put on that line, in ``currency``.
    """

    external_ref: str
    summary_ref: str
    erp_id: str
    line_key: str
    account: str
    currency: str
    debit: Decimal
    credit: Decimal


@runtime_checkable
class SummaryPort(Protocol):
    """A target that posts some records summarized (revenue per period and GL account into
    one journal entry) instead of one document per record. Driven by the batch route."""

    def summary_ref(self, kind: RecordKind, data: EventData) -> str | None:
        """The summarized document ``data`` belongs in; None: posted record by record.
        Raises ``TerminalError`` for a record that cannot be summarized."""
        ...

    async def post_summary(
        self, kind: RecordKind, summary_ref: str, items: Sequence[BatchItem]
    ) -> Sequence[SummaryLine]:
        """Post the summarized document from its *complete* set of records, as an upsert:
        posting the same set again changes nothing, a grown set corrects the totals.
        Returns every record's share of every line (the trace)."""
        ...


# ---------------------------------------------------------------------------- read-back
#
# What reconciliation reads from each side, incrementally: every reader pages by an opaque
# mark of its own (a modification stamp and an id, a sequence number) and returns whole
# documents, so a page never splits a document from its applications or journal lines.


@dataclass(frozen=True, slots=True, kw_only=True)
class ArDocument:
    """An invoice or credit memo as one side holds it, in the document's currency.

    ``key`` is the side's own record id; ``ref`` is the Salesforce record id (the ERP carries
    it as its external reference; an ERP document without one has ``erp:<key>``). ``status``
    is in the side's own vocabulary; the reconciliation maps it. ``balance`` is what is
    still open on it.
    """

    key: str
    ref: str
    doc_type: str  # "invoice" | "credit_memo"
    customer_ref: str | None
    currency: str
    amount: Decimal
    doc_date: date
    status: str
    balance: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentDocument:
    """A customer payment as one side holds it, with the invoices it was applied to.

    ``origin`` says where the cash was first recorded: ``salesforce`` (``payment.received``;
    ``ref`` is the Salesforce payment id) or ``erp`` (``erp.payment.received``; ``ref`` is the
    ERP payment id, which the Salesforce write-back keeps as its external id).
    ``applications`` are ``(invoice ref, amount)`` pairs.
    """

    key: str
    ref: str
    origin: str  # "salesforce" | "erp"
    customer_ref: str | None
    currency: str
    amount: Decimal
    doc_date: date
    status: str = "processed"
    applications: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalLineRow:
    account: str
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalDocument:
    """A revenue schedule entry (Salesforce) or a GL journal (the ERP), with its lines.

    ``ref`` is the schedule entry id the ERP journal carries as its external reference
    (``erp:<key>`` for a journal the hub did not post); ``doc_type`` is ``revenue`` on the
    Salesforce side and ``journal`` (or the ERP's transaction type) on the ERP side.
    """

    key: str
    ref: str
    doc_type: str
    customer_ref: str | None
    currency: str
    period: str  # YYYY-MM
    doc_date: date
    lines: tuple[JournalLineRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadPage:
    """One page of documents and the mark to read the next page after."""

    documents: tuple[ArDocument | PaymentDocument | JournalDocument, ...]
    mark: str | None


class ReadbackKind(StrEnum):
    AR = "ar"
    PAYMENTS = "payments"
    JOURNALS = "journals"


@runtime_checkable
class ReadbackPort(Protocol):
    """What a side (the ERP or Salesforce) holds, read incrementally for reconciliation.

    ``read(kind, after, limit)`` returns up to ``limit`` documents changed after the mark
    ``after`` (``None``: from the beginning), oldest change first, and the mark of the last
    one (``after`` itself when nothing changed). A document re-read is upserted, never
    doubled: the read-back store keys it by ``key``.
    """

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage: ...
