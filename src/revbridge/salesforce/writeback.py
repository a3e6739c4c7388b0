"""Write-back: the ERP-to-Salesforce flows, as ``SalesforcePort`` over the REST API.

=================================  =========================================================
canonical event                    what changes in Salesforce
=================================  =========================================================
``erp.payment.received``           a payment record (``blng__Payment__c`` or ``Payment``,
                                   keyed by ``ERP_Receipt_Number__c``) and its allocations
                                   to the invoices; the invoice balance and payment status
                                   are Salesforce's roll-ups of those allocations
``customer.credit_status_changed`` Account credit hold, credit limit, payment terms, status
``gl.posted``                      the ERP journal number on the Salesforce record the
                                   journal came from, when ``gl_reference_fields`` names a
                                   field for that object
``reporting.refreshed``            Account AR fields (``open_balance_field``...) and the
                                   last sync time, 200 accounts per collections call
=================================  =========================================================

Idempotency: the payment's key is a hash of the event's idempotency key (``rb-`` + 24 hex,
within the 40 characters of the external id field). The payment is upserted by that key as
Draft, its missing allocations are written, then it is set Processed; ``find`` reports only
a Processed payment, so an attempt cut off half-way is finished by the next one, never
doubled. Account updates set values, never add to them: doing one twice leaves the same
state. Collections calls carry at most 200 records.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from revbridge.core import sfid
from revbridge.core.events import (
    CustomerCreditStatusChanged,
    ErpPaymentReceived,
    GlPosted,
    ReportingRefreshed,
)
from revbridge.engine.ports import Capabilities
from revbridge.errors import TerminalError
from revbridge.salesforce.client import (
    SalesforceClient,
    raise_for_results,
)

log = logging.getLogger(__name__)
_IN_CHUNK = 200

_BLNG_PAYMENT_TYPES = {
    "ach": "ACH",
    "bank_transfer": "Bank Transfer",
    "wire": "Bank Transfer",
    "cash": "Cash",
    "check": "Check",
    "cheque": "Check",
    "card": "Credit Card",
    "credit_card": "Credit Card",
}


# The documents the ERP posts journals for: each carries ``ERP_GL_Reference__c`` by default.
# Not the Revenue Cloud ``Payment``: it cannot be edited once Processed.
GL_REFERENCE_OBJECTS: tuple[str, ...] = (
    "blng__Invoice__c",
    "blng__Payment__c",
    "blng__CreditNote__c",
    "blng__RevenueTransaction__c",
    "Invoice",
    "CreditMemo",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteBackSettings:
    """Which object model receives payments, and which Account fields hold what."""

    model: Literal["billing", "revenue_cloud"] = "billing"
    account_erp_number_field: str = "ERP_Customer_Number__c"
    credit_hold_field: str = "Credit_Hold__c"
    credit_limit_field: str = "Credit_Limit__c"
    payment_terms_field: str = "Payment_Terms__c"
    credit_status_field: str | None = "ERP_Sync_Status__c"
    last_sync_field: str | None = "ERP_Last_Sync__c"
    open_balance_field: str | None = "AR_Open_Balance__c"
    overdue_balance_field: str | None = "AR_Overdue_Balance__c"
    days_overdue_field: str | None = "AR_Days_Overdue__c"
    last_payment_date_field: str | None = "AR_Last_Payment_Date__c"
    last_payment_amount_field: str | None = "AR_Last_Payment_Amount__c"
    # The ERP's tax registration, written when it changes there (the ERP owns it).
    tax_registration_field: str | None = "Tax_Registration__c"
    # The Account's web site, written back over an edit when the ERP owns it.
    website_field: str | None = "Website"
    # Object name -> field that receives the ERP journal number of a ``gl.posted``.
    gl_reference_fields: Mapping[str, str] = field(
        default_factory=lambda: dict.fromkeys(GL_REFERENCE_OBJECTS, "ERP_GL_Reference__c")
    )
    receipt_field: str = "ERP_Receipt_Number__c"
    concurrency_limit: int = 5


# Customer master attributes that are plain Account fields (``revert_account_fields``).
_ACCOUNT_MASTER_FIELDS = {
    "name": "Name",
    "industry": "Industry",
    "segment": "Type",
    "parent": "ParentId",
}


def payment_key(external_ref: str) -> str:
    """The external id a write-back payment carries: stable, short, free of URL trouble."""
    return "rb-" + hashlib.sha256(external_ref.encode()).hexdigest()[:24]


def _soql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_id(value: str, what: str) -> str:
    if not sfid.is_valid(value):
        raise TerminalError(f"{what}: {value!r} is not a Salesforce id")
    return sfid.to_18(value)


class SalesforceWriteBack:
    """``SalesforcePort`` for one org, through a ``SalesforceClient``."""

    def __init__(self, client: SalesforceClient, settings: WriteBackSettings | None = None) -> None:
        self.client = client
        self.settings = settings or WriteBackSettings()
        self._prefixes: dict[str, str] | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            name="salesforce",
            batch_size=200,
            concurrency_limit=self.settings.concurrency_limit,
            idempotency="external_id",
            request_timeout_s=self.client.timeout.total_seconds(),
        )

    async def close(self) -> None:
        await self.client.aclose()

    # ------------------------------------------------------------------ look-ups

    async def _account_ids(self, erp_numbers: Sequence[str]) -> dict[str, str]:
        field_name = self.settings.account_erp_number_field
        found: dict[str, str] = {}
        unique = sorted(set(erp_numbers))
        for start in range(0, len(unique), _IN_CHUNK):
            values = ", ".join(_soql_text(n) for n in unique[start : start + _IN_CHUNK])
            records = await self.client.query(
                f"SELECT Id, {field_name} FROM Account WHERE {field_name} IN ({values})"
            )
            for r in records:
                found[str(r[field_name])] = str(r["Id"])
        return found

    async def _account_id(self, customer_id: str | None, erp_number: str) -> str:
        if customer_id:
            return _check_id(customer_id, "customer_id")
        found = await self._account_ids([erp_number])
        if erp_number not in found:
            raise TerminalError(
                f"no Salesforce Account has {self.settings.account_erp_number_field} = "
                f"{erp_number!r}: the customer must be synced before its ERP records"
            )
        return found[erp_number]

    def _payment_object(self) -> str:
        return "blng__Payment__c" if self.settings.model == "billing" else "Payment"

    async def _payment_row(self, external_ref: str) -> dict[str, Any] | None:
        status = "blng__Status__c" if self.settings.model == "billing" else "Status"
        records = await self.client.query(
            f"SELECT Id, {status} FROM {self._payment_object()} WHERE "
            f"{self.settings.receipt_field} = {_soql_text(payment_key(external_ref))}"
        )
        if not records:
            return None
        return {"Id": str(records[0]["Id"]), "Status": records[0].get(status)}

    async def find(self, external_ref: str) -> str | None:
        """The payment written for ``external_ref``, only once it is complete (Processed).

        A payment cut off half-way is still Draft: reported absent, so the engine calls
        ``apply_erp_payment`` again, which finishes it. Account updates (credit status,
        reporting, GL references) set values and are safe to repeat, so for them ``None``
        only means "do it again".
        """
        row = await self._payment_row(external_ref)
        return row["Id"] if row is not None and row["Status"] == "Processed" else None

    # ------------------------------------------------------------------ payments

    async def apply_erp_payment(self, external_ref: str, payment: ErpPaymentReceived) -> str:
        """Record the ERP's cash against the Salesforce invoices it pays.

        Three steps, each safe to repeat: the payment is upserted as Draft by its key, the
        allocations it lacks are written, then it is set Processed. Only a Processed payment
        counts as landed, and the mapping never captures one carrying an ERP receipt number.
        """
        key = payment_key(external_ref)
        row = await self._payment_row(external_ref)
        if row is not None and row["Status"] == "Processed":
            return str(row["Id"])
        invoices = [
            (_check_id(a.invoice_id, "applications.invoice_id"), a.amount)
            for a in payment.applications
        ]
        sobject = self._payment_object()
        if row is None:
            account = await self._account_id(payment.customer_id, payment.erp_customer_number)
            body = (
                self._billing_payment(account, payment)
                if self.settings.model == "billing"
                else self._revenue_cloud_payment(account, payment)
            )
            answer = await self.client.send_json(
                "PATCH", f"/sobjects/{sobject}/{self.settings.receipt_field}/{key}", body
            )
            payment_id = str(answer["id"])
        else:
            payment_id = str(row["Id"])
        if invoices:
            if self.settings.model == "billing":
                await self._billing_allocations(payment_id, payment.currency, invoices)
            else:
                await self._revenue_cloud_applications(key, payment_id, payment.currency, invoices)
        status = "blng__Status__c" if self.settings.model == "billing" else "Status"
        results = await self.client.update_collection(
            [{"attributes": {"type": sobject}, "Id": payment_id, status: "Processed"}]
        )
        raise_for_results(results, f"payment {key}")
        return payment_id

    def _billing_payment(self, account: str, payment: ErpPaymentReceived) -> dict[str, Any]:
        method = _BLNG_PAYMENT_TYPES.get(payment.method.lower().replace(" ", "_"), "Bank Transfer")
        return {
            "blng__Account__c": account,
            "blng__Amount__c": payment.amount,
            "blng__PaymentDate__c": payment.received_on.isoformat(),
            "blng__PaymentType__c": method,
            "blng__PaymentMode__c": "External",
            "blng__Status__c": "Draft",
            "CurrencyIsoCode": payment.currency,
        }

    def _revenue_cloud_payment(self, account: str, payment: ErpPaymentReceived) -> dict[str, Any]:
        return {
            "AccountId": account,
            "Amount": payment.amount,
            "EffectiveDate": f"{payment.received_on.isoformat()}T00:00:00Z",
            "ProcessingMode": "External",
            "Type": "Sale",
            "Status": "Draft",
            "GatewayRefNumber": payment.reference or payment.erp_payment_id,
            "CurrencyIsoCode": payment.currency,
        }

    async def _billing_allocations(
        self, payment_id: str, currency: str, invoices: Sequence[tuple[str, Decimal]]
    ) -> None:
        """Allocations have no external id: write those the payment does not have yet."""
        existing = await self.client.query(
            "SELECT blng__Invoice__c FROM blng__PaymentAllocationInvoice__c "
            f"WHERE blng__Payment__c = '{payment_id}'"
        )
        done = {sfid.to_18(str(r["blng__Invoice__c"])) for r in existing}
        records = [
            {
                "attributes": {"type": "blng__PaymentAllocationInvoice__c"},
                "blng__Payment__c": payment_id,
                "blng__Invoice__c": invoice,
                "blng__Amount__c": amount,
                "blng__Type__c": "Allocation",
                "CurrencyIsoCode": currency,
            }
            for invoice, amount in invoices
            if invoice not in done
        ]
        if records:
            results = await self.client.create_collection(records)
            raise_for_results(results, f"allocations of payment {payment_id}")

    async def _revenue_cloud_applications(
        self, key: str, payment_id: str, currency: str, invoices: Sequence[tuple[str, Decimal]]
    ) -> None:
        records = [
            {
                "ERP_Application_Id__c": f"{key}-{i}",
                "PaymentId": payment_id,
                "InvoiceId": invoice,
                "Amount": amount,
                "Type": "Applied",
                "CurrencyIsoCode": currency,
            }
            for i, (invoice, amount) in enumerate(invoices)
        ]
        results = await self.client.upsert_collection(
            "PaymentLineInvoice", "ERP_Application_Id__c", records
        )
        raise_for_results(results, f"applications of payment {payment_id}")

    # ------------------------------------------------------------------ accounts

    async def update_credit_status(
        self, external_ref: str, status: CustomerCreditStatusChanged
    ) -> str:
        """Credit hold, limit and terms on the Account, as the ERP decided them."""
        s = self.settings
        account = await self._account_id(status.customer_id, status.erp_customer_number)
        record: dict[str, Any] = {
            "attributes": {"type": "Account"},
            "Id": account,
            s.credit_hold_field: status.credit_hold,
            s.credit_limit_field: status.credit_limit,
        }
        if status.payment_terms is not None:
            record[s.payment_terms_field] = status.payment_terms
        if s.credit_status_field:
            record[s.credit_status_field] = status.status
        if s.last_sync_field:
            record[s.last_sync_field] = status.changed_at.isoformat()
        results = await self.client.update_collection([record])
        raise_for_results(results, f"credit status of {status.erp_customer_number}")
        return account

    async def revert_account_fields(self, account_id: str, values: Mapping[str, Any]) -> None:
        """The customer master writes the owner's values back over a change Salesforce made to
        attributes it does not own (``[mdm] on_conflict = "revert"``). Attributes with no
        Account field here are left to the review queue. The customer master also writes the
        ERP's new values of what the ERP owns here (the tax registration)."""
        fields = dict(_ACCOUNT_MASTER_FIELDS)
        if self.settings.tax_registration_field:
            fields["tax_id"] = self.settings.tax_registration_field
        if self.settings.website_field:
            fields["website"] = self.settings.website_field
        record: dict[str, Any] = {
            "attributes": {"type": "Account"},
            "Id": _check_id(account_id, "account"),
        }
        record.update({fields[k]: v for k, v in values.items() if k in fields})
        if len(record) == 2:
            return
        results = await self.client.update_collection([record])
        raise_for_results(results, f"reverting {', '.join(sorted(values))} on {account_id}")

    async def refresh_reporting(self, external_ref: str, report: ReportingRefreshed) -> str:
        """AR position per Account, 200 Accounts per collections call."""
        s = self.settings
        lookup = [b.erp_customer_number for b in report.balances if not b.customer_id]
        by_number = await self._account_ids(lookup) if lookup else {}
        records: list[dict[str, Any]] = []
        missing: list[str] = []
        for b in report.balances:
            account = b.customer_id or by_number.get(b.erp_customer_number)
            if account is None:
                missing.append(b.erp_customer_number)
                continue
            record: dict[str, Any] = {
                "attributes": {"type": "Account"},
                "Id": _check_id(account, "customer_id"),
            }
            if s.open_balance_field:
                record[s.open_balance_field] = b.open_balance
            if s.overdue_balance_field:
                record[s.overdue_balance_field] = b.overdue_balance
            if s.days_overdue_field:
                record[s.days_overdue_field] = b.days_overdue
            if s.last_payment_date_field:
                paid_on = b.last_payment_on
                record[s.last_payment_date_field] = paid_on.isoformat() if paid_on else None
            if s.last_payment_amount_field:
                record[s.last_payment_amount_field] = b.last_payment_amount
            if s.last_sync_field:
                record[s.last_sync_field] = f"{report.as_of.isoformat()}T00:00:00Z"
            records.append(record)
        if missing:
            log.warning(
                "reporting refresh: %d ERP customers have no Salesforce Account", len(missing)
            )
        results = await self.client.update_collection(records, all_or_none=False)
        raise_for_results(results, f"reporting refresh of {report.as_of}")
        return f"reporting:{report.as_of.isoformat()}:{len(records)}"

    async def _object_of(self, record_id: str) -> str | None:
        """The object an id belongs to, from its key prefix (describe global, cached)."""
        if self._prefixes is None:
            described = await self.client.get_json("/sobjects")
            self._prefixes = {
                str(o["keyPrefix"]): str(o["name"])
                for o in described.get("sobjects", [])
                if o.get("keyPrefix")
            }
        return self._prefixes.get(record_id[:3])

    async def record_gl_posting(self, external_ref: str, journal: GlPosted) -> str:
        """The ERP journal number on the Salesforce record the journal came from."""
        reference = journal.journal_number or journal.erp_journal_id
        source = journal.source_ref
        if source and ":" in source:
            source = source.split(":", 1)[1]
        if not source or not sfid.is_valid(source):
            log.info("gl posting %s names no Salesforce record: nothing to write", reference)
            return f"gl:{journal.erp_journal_id}"
        record_id = sfid.to_18(source)
        sobject = await self._object_of(record_id)
        target = self.settings.gl_reference_fields.get(sobject or "")
        if sobject is None or target is None:
            log.info("gl posting %s: no reference field configured for %s", reference, sobject)
            return f"gl:{journal.erp_journal_id}"
        results = await self.client.update_collection(
            [{"attributes": {"type": sobject}, "Id": record_id, target: reference}]
        )
        raise_for_results(results, f"gl reference {reference}")
        return record_id
