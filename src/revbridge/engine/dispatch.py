"""Which port call delivers which event, and what it needs resolved first.

The reference carried into the target system is the *source record's* id (the Salesforce
invoice id, say), not the event's idempotency key: a later version of a posted invoice is a
different event, and it must never become a second invoice. See
docs/decisions/0003-external-reference-is-the-source-record.md.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from revbridge.engine.ports import ErpPort, RecordKind, SalesforcePort


@dataclass(frozen=True, slots=True)
class Plan:
    """What a delivery needs: the record kind and reference to look up, and its dependencies."""

    kind: RecordKind | None
    external_ref: str
    needs: tuple[str, ...]
    creates_document: bool


_KINDS = {
    CustomerUpserted: RecordKind.CUSTOMER,
    InvoicePosted: RecordKind.INVOICE,
    PaymentReceived: RecordKind.PAYMENT,
    CreditMemoIssued: RecordKind.CREDIT_MEMO,
    RevenueRecognized: RecordKind.JOURNAL,
}


def record_kind(data_type: type[EventData]) -> RecordKind | None:
    """The kind of ERP record an event of this payload type becomes (None: a write-back to
    Salesforce); ``plan_for``'s kind, without a payload."""
    return _KINDS.get(data_type)


def plan_for(data: EventData, idempotency_key: str) -> Plan:
    match data:
        case CustomerUpserted():
            return Plan(RecordKind.CUSTOMER, data.customer_id, data.depends_on(), False)
        case InvoicePosted():
            return Plan(RecordKind.INVOICE, data.invoice_id, data.depends_on(), True)
        case PaymentReceived():
            return Plan(RecordKind.PAYMENT, data.payment_id, data.depends_on(), True)
        case CreditMemoIssued():
            return Plan(RecordKind.CREDIT_MEMO, data.credit_memo_id, data.depends_on(), True)
        case RevenueRecognized():
            return Plan(RecordKind.JOURNAL, data.schedule_entry_id, data.depends_on(), True)
        case _:
            # ERP to Salesforce: upserts by external id, idempotent by construction.
            return Plan(None, idempotency_key, (), False)


async def call_erp(erp: ErpPort, data: EventData, ref: str, refs: dict[str, str]) -> str:
    """Make the one create/upsert call for ``data``; returns the record's id in the ERP."""
    match data:
        case CustomerUpserted():
            parent = refs.get(f"customer:{data.parent_customer_id}")
            return (await erp.upsert_customer(ref, data, parent)).erp_id
        case InvoicePosted():
            return (
                await erp.create_invoice(ref, data, refs[f"customer:{data.customer_id}"])
            ).erp_id
        case PaymentReceived():
            invoices = {a.invoice_id: refs[f"invoice:{a.invoice_id}"] for a in data.applications}
            customer = refs[f"customer:{data.customer_id}"]
            return (await erp.record_payment(ref, data, customer, invoices)).erp_id
        case CreditMemoIssued():
            invoices = {a.invoice_id: refs[f"invoice:{a.invoice_id}"] for a in data.applications}
            customer = refs[f"customer:{data.customer_id}"]
            return (await erp.create_credit_memo(ref, data, customer, invoices)).erp_id
        case RevenueRecognized():
            customer_id = refs.get(f"customer:{data.customer_id}") if data.customer_id else None
            return (await erp.post_journal(ref, data, customer_id)).erp_id
    raise TypeError(f"{type(data).__name__} is not delivered to the ERP")


async def call_salesforce(sf: SalesforcePort, data: EventData, ref: str) -> str:
    match data:
        case ErpPaymentReceived():
            return await sf.apply_erp_payment(ref, data)
        case CustomerCreditStatusChanged():
            return await sf.update_credit_status(ref, data)
        case GlPosted():
            return await sf.record_gl_posting(ref, data)
        case ReportingRefreshed():
            return await sf.refresh_reporting(ref, data)
    raise TypeError(f"{type(data).__name__} is not delivered to Salesforce")
