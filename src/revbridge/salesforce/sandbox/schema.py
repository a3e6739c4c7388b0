"""The sandbox org's object model: Account, the Salesforce Billing package and Revenue Cloud.

Field names and picklists follow the API fact sheet (section 1.3 to 1.5). Key prefixes of standard
objects are Salesforce's (001 Account, 003 Contact, 005 User, 801 Order, 01t Product2, 3tt Invoice);
the others are org-specific in a real org, so the sandbox picks its own and says so in the README.
Fields ending in ``__c`` on standard objects (``ERP_Customer_Number__c``...) are this org's custom
fields, as an integration would add them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal[
    "id",
    "string",
    "textarea",
    "picklist",
    "boolean",
    "currency",
    "double",
    "int",
    "percent",
    "date",
    "datetime",
    "reference",
    "email",
    "phone",
    "url",
]

NUMERIC_TYPES: frozenset[str] = frozenset({"currency", "double", "int", "percent"})
TEXT_TYPES: frozenset[str] = frozenset({"string", "textarea", "picklist", "email", "phone", "url"})


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldDef:
    """One field as ``describe`` reports it and as DML validates it."""

    name: str
    type: FieldType
    label: str = ""
    required: bool = False
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    id_lookup: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    master_detail: bool = False
    picklist: tuple[str, ...] = ()
    restricted_picklist: bool = False
    default: str | bool | None = None
    length: int = 255
    auto_number: str | None = None
    calculated: bool = False

    @property
    def nillable(self) -> bool:
        return not self.required and self.type not in ("boolean", "id")


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectDef:
    """One sObject: its name, key prefix and fields (system fields included)."""

    name: str
    label: str
    key_prefix: str
    custom: bool
    fields: tuple[FieldDef, ...]
    change_events: bool = False
    by_lower: Mapping[str, FieldDef] = field(default_factory=dict)
    relationships: Mapping[str, FieldDef] = field(default_factory=dict)

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name``, matched case-insensitively as Salesforce does."""
        return self.by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is ``name`` (``Account``, ``Parent``...)."""
        return self.relationships.get(name.lower())

    @property
    def change_event_name(self) -> str:
        """``AccountChangeEvent``, ``blng__Invoice__ChangeEvent``: the CDC entity name."""
        if self.name.endswith("__c"):
            return self.name[:-3] + "__ChangeEvent"
        return self.name + "ChangeEvent"

    @property
    def external_id_fields(self) -> tuple[FieldDef, ...]:
        return tuple(f for f in self.fields if f.external_id or f.id_lookup)


def _f(name: str, type_: FieldType, **kw: object) -> FieldDef:
    label = str(kw.pop("label", name.replace("blng__", "").replace("__c", "").replace("_", " ")))
    return FieldDef(name=name, type=type_, label=label, **kw)  # type: ignore[arg-type]


def _ref(
    name: str, target: str, *, required: bool = False, master: bool = False, rel: str | None = None
) -> FieldDef:
    if rel is None:
        rel = name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
    return FieldDef(
        name=name,
        type="reference",
        label=name,
        required=required or master,
        reference_to=(target,),
        relationship_name=rel,
        master_detail=master,
        length=18,
    )


def _pick(
    name: str, values: tuple[str, ...], *, default: str | None = None, restricted: bool = True
) -> FieldDef:
    return FieldDef(
        name=name,
        type="picklist",
        label=name,
        picklist=values,
        restricted_picklist=restricted,
        default=default,
    )


def _calc(name: str, type_: FieldType = "currency") -> FieldDef:
    return FieldDef(
        name=name, type=type_, label=name, createable=False, updateable=False, calculated=True
    )


def _rollup(name: str) -> FieldDef:
    # Roll-up summaries are maintained by the org from child records, never written directly.
    return FieldDef(name=name, type="currency", label=name, createable=False, updateable=False)


def _system_fields(*, owner: bool) -> tuple[FieldDef, ...]:
    ro = {"createable": False, "updateable": False}
    fields = [
        FieldDef(name="Id", type="id", label="Record ID", length=18, id_lookup=True, **ro),  # type: ignore[arg-type]
        FieldDef(name="IsDeleted", type="boolean", label="Deleted", **ro),  # type: ignore[arg-type]
        FieldDef(name="CreatedDate", type="datetime", label="Created Date", **ro),  # type: ignore[arg-type]
        FieldDef(
            name="CreatedById",
            type="reference",
            label="Created By ID",
            reference_to=("User",),
            relationship_name="CreatedBy",
            **ro,  # type: ignore[arg-type]
        ),
        FieldDef(name="LastModifiedDate", type="datetime", label="Last Modified Date", **ro),  # type: ignore[arg-type]
        FieldDef(
            name="LastModifiedById",
            type="reference",
            label="Last Modified By ID",
            reference_to=("User",),
            relationship_name="LastModifiedBy",
            **ro,  # type: ignore[arg-type]
        ),
        FieldDef(name="SystemModstamp", type="datetime", label="System Modstamp", **ro),  # type: ignore[arg-type]
    ]
    if owner:
        fields.append(_ref("OwnerId", "User"))
    return tuple(fields)


_CURRENCY = _pick(
    "CurrencyIsoCode", ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF"), default="USD"
)
_STATUS_BLNG_INVOICE = (
    "Draft",
    "Initiated",
    "Post In progress",
    "Posted",
    "Cancelled",
    "Rebilled",
    "Error",
)
# Where the hub writes the ERP journal number of a ``gl.posted`` (custom; on every document the
# ERP posts a journal for).
_GL_REFERENCE = _f("ERP_GL_Reference__c", "string", length=40, label="ERP GL Reference")


def _obj(
    name: str,
    label: str,
    prefix: str,
    fields: list[FieldDef],
    *,
    owner: bool = False,
    change_events: bool = False,
) -> ObjectDef:
    all_fields = _system_fields(owner=owner) + tuple(fields)
    by_lower = {f.name.lower(): f for f in all_fields}
    if len(by_lower) != len(all_fields):
        raise ValueError(f"duplicate field on {name}")
    relationships = {
        f.relationship_name.lower(): f for f in all_fields if f.relationship_name is not None
    }
    return ObjectDef(
        name=name,
        label=label,
        key_prefix=prefix,
        custom=name.endswith("__c"),
        fields=all_fields,
        change_events=change_events,
        by_lower=by_lower,
        relationships=relationships,
    )


def _name(required: bool = True, auto: str | None = None) -> FieldDef:
    if auto is not None:
        return FieldDef(
            name="Name",
            type="string",
            label="Name",
            auto_number=auto,
            createable=False,
            updateable=False,
        )
    return FieldDef(name="Name", type="string", label="Name", required=required, length=255)


def build_objects() -> dict[str, ObjectDef]:
    """Every sObject of the sandbox org, keyed by API name."""
    objects = [
        _obj(
            "User",
            "User",
            "005",
            [
                _f("Username", "string", required=True),
                _f("LastName", "string", required=True),
                _f("FirstName", "string"),
                _f("Email", "email", required=True),
                _f("IsActive", "boolean", default=True),
                FieldDef(
                    name="Name",
                    type="string",
                    label="Full Name",
                    createable=False,
                    updateable=False,
                ),
            ],
        ),
        _obj(
            "Account",
            "Account",
            "001",
            [
                _name(),
                _ref("ParentId", "Account", rel="Parent"),
                _f("AccountNumber", "string", length=40),
                _CURRENCY,
                _pick("Type", ("Customer", "Partner", "Prospect", "Other"), restricted=False),
                _f("Industry", "picklist", label="Industry"),
                _f("BillingStreet", "textarea"),
                _f("BillingCity", "string", length=40),
                _f("BillingState", "string", length=80),
                _f("BillingPostalCode", "string", length=20),
                _f("BillingCountry", "string", length=80),
                _f("BillingStateCode", "string", length=10),
                _f("BillingCountryCode", "string", length=10),
                _f("ShippingStreet", "textarea"),
                _f("ShippingCity", "string", length=40),
                _f("ShippingState", "string", length=80),
                _f("ShippingPostalCode", "string", length=20),
                _f("ShippingCountry", "string", length=80),
                _f("ShippingStateCode", "string", length=10),
                _f("ShippingCountryCode", "string", length=10),
                _f("Website", "url", length=255),
                _f("Phone", "phone", length=40),
                _f("ERP_Customer_Number__c", "string", external_id=True, unique=True, length=40),
                _f("ERP_Id__c", "string", external_id=True, length=40),
                _f("Credit_Hold__c", "boolean", default=False),
                _f("Credit_Limit__c", "currency"),
                _pick(
                    "Payment_Terms__c",
                    ("Due on Receipt", "Net 15", "Net 30", "Net 45", "Net 60", "Net 90"),
                    restricted=False,
                ),
                _f("ERP_Sync_Status__c", "string", length=40),
                _f("ERP_Last_Sync__c", "datetime"),
                _f("Tax_Registration__c", "string", length=40, label="Tax Registration"),
                # The ERP's AR position, written back by ``reporting.refreshed``.
                _f("AR_Open_Balance__c", "currency", label="AR Open Balance"),
                _f("AR_Overdue_Balance__c", "currency", label="AR Overdue Balance"),
                _f("AR_Days_Overdue__c", "int", label="AR Days Overdue"),
                _f("AR_Last_Payment_Date__c", "date", label="AR Last Payment Date"),
                _f("AR_Last_Payment_Amount__c", "currency", label="AR Last Payment Amount"),
            ],
            owner=True,
            change_events=True,
        ),
        _obj(
            "Contact",
            "Contact",
            "003",
            [
                _ref("AccountId", "Account"),
                _f("FirstName", "string", length=40),
                _f("LastName", "string", required=True, length=80),
                _f("Email", "email"),
                FieldDef(
                    name="Name",
                    type="string",
                    label="Full Name",
                    createable=False,
                    updateable=False,
                ),
            ],
            owner=True,
        ),
        _obj(
            "Product2",
            "Product",
            "01t",
            [_name(), _f("ProductCode", "string"), _f("IsActive", "boolean", default=True)],
            owner=False,
        ),
        _obj(
            "Order",
            "Order",
            "801",
            [
                _ref("AccountId", "Account", required=True),
                _f("EffectiveDate", "date", required=True),
                _pick("Status", ("Draft", "Activated"), default="Draft"),
                _f(
                    "OrderNumber",
                    "string",
                    auto_number="{00000000}",
                    createable=False,
                    updateable=False,
                ),
                _CURRENCY,
            ],
            owner=True,
        ),
        _obj(
            "PaymentTerm",
            "Payment Term",
            "9tP",
            [_name(), _f("IsActive", "boolean", default=True)],
        ),
        _obj(
            "blng__FinancePeriod__c",
            "Finance Period",
            "a0F",
            [
                _name(),
                _f("blng__PeriodStartDate__c", "date", required=True),
                _f("blng__PeriodEndDate__c", "date", required=True),
                _pick("blng__PeriodStatus__c", ("Open", "Closed"), default="Open"),
            ],
        ),
        # Object model A: the Salesforce Billing managed package.
        _obj(
            "blng__Invoice__c",
            "Invoice",
            "a0I",
            [
                _name(auto="INV-{0000000}"),
                _ref("blng__Account__c", "Account", master=True),
                _ref("blng__Order__c", "Order"),
                _ref("blng__BillToContact__c", "Contact"),
                _f("blng__InvoiceDate__c", "date"),
                _f("blng__DueDate__c", "date"),
                _f("blng__InvoicePostedDate__c", "date"),
                _f("blng__Subtotal__c", "currency"),
                _f("blng__TaxAmount__c", "currency"),
                _calc("blng__TotalAmount__c"),
                _calc("blng__Balance__c"),
                _rollup("blng__Payments__c"),
                _rollup("blng__Credits__c"),
                _rollup("blng__Debits__c"),
                _calc("blng__PaymentStatus__c", "string"),
                _pick("blng__ARStatus__c", ("Open", "Closed", "Disputed"), restricted=False),
                _pick("blng__Action__c", ("Post", "Cancel", "Rebill"), restricted=False),
                _f("blng__InvoiceLocked__c", "boolean", default=False),
                _pick("blng__TaxStatus__c", ("Queued", "Completed", "Error"), restricted=False),
                _pick("blng__InvoiceStatus__c", _STATUS_BLNG_INVOICE, default="Draft"),
                _f("blng__UniqueId__c", "string", unique=True, id_lookup=True, external_id=True),
                _CURRENCY,
                _f("blng__BaseCurrency__c", "string", length=3),
                _f("blng__BaseCurrencyAmount__c", "currency"),
                _f("blng__BaseCurrencyFXRate__c", "double"),
                _f("ERP_Document_Number__c", "string", external_id=True, length=40),
                _GL_REFERENCE,
            ],
            change_events=True,
        ),
        _obj(
            "blng__InvoiceLine__c",
            "Invoice Line",
            "a0J",
            [
                _name(auto="INVL-{0000000}"),
                _ref("blng__Invoice__c", "blng__Invoice__c", master=True),
                _ref("blng__Product__c", "Product2"),
                _f("blng__OrderProduct__c", "string", length=18),
                _f("blng__Quantity__c", "double"),
                _f("blng__UnitPrice__c", "currency"),
                _f("blng__Subtotal__c", "currency"),
                _f("blng__TaxAmount__c", "currency"),
                _calc("blng__TotalAmount__c"),
                _f("blng__Balance__c", "currency"),
                _f("blng__StartDate__c", "date"),
                _f("blng__EndDate__c", "date"),
                _pick("blng__ChargeType__c", ("One-Time", "Recurring", "Usage")),
                _f("blng__BillingGLRule__c", "string", length=18),
                _f("blng__BillingGLTreatment__c", "string", length=18),
                _f("blng__LegalEntity__c", "string", length=18),
                _pick("blng__RevenueScheduleStatus__c", ("Queued", "Complete", "Error")),
                _pick("blng__InvoiceLineStatus__c", _STATUS_BLNG_INVOICE, default="Draft"),
                _f("blng__UniqueId__c", "string", unique=True, id_lookup=True, external_id=True),
                _CURRENCY,
            ],
            change_events=True,
        ),
        _obj(
            "blng__Payment__c",
            "Payment",
            "a0P",
            [
                _name(auto="P-{0000000}"),
                _ref("blng__Account__c", "Account", master=True),
                _f("blng__Amount__c", "currency", required=True),
                _calc("blng__Balance__c"),
                _f("blng__PaymentDate__c", "date"),
                _pick(
                    "blng__PaymentType__c", ("ACH", "Bank Transfer", "Cash", "Check", "Credit Card")
                ),
                _pick("blng__PaymentMode__c", ("Electronic", "External")),
                _ref("blng__Invoice__c", "blng__Invoice__c"),
                _f("blng__GatewayID__c", "string", id_lookup=True, external_id=True),
                _rollup("blng__Allocations__c"),
                _rollup("blng__AllocatedtoInvoices__c"),
                _rollup("blng__Unallocations__c"),
                _pick(
                    "blng__Status__c",
                    ("Draft", "Processed", "Cancelled", "Failed"),
                    default="Draft",
                ),
                _CURRENCY,
                _f("ERP_Receipt_Number__c", "string", external_id=True, unique=True, length=40),
                _GL_REFERENCE,
            ],
            change_events=True,
        ),
        _obj(
            "blng__PaymentAllocationInvoice__c",
            "Payment Allocation Invoice",
            "a0Q",
            [
                _name(auto="PAI-{0000000}"),
                _ref("blng__Payment__c", "blng__Payment__c", master=True),
                _ref("blng__Invoice__c", "blng__Invoice__c", master=True),
                _f("blng__Amount__c", "currency", required=True),
                _pick("blng__Type__c", ("Allocation", "Unallocation"), default="Allocation"),
                _f("blng__Unallocated__c", "boolean", default=False),
                _f("blng__ImpactAmount__c", "currency"),
                _ref("blng__BillingFinancePeriod__c", "blng__FinancePeriod__c"),
                _CURRENCY,
            ],
            change_events=True,
        ),
        _obj(
            "blng__CreditNote__c",
            "Credit Note",
            "a0C",
            [
                _name(auto="CN-{0000000}"),
                _ref("blng__Account__c", "Account", master=True),
                _f("blng__CreditNoteDate__c", "date"),
                _f("blng__TotalAmount__c", "currency"),
                _f("blng__Balance__c", "currency"),
                _f("blng__Allocations__c", "currency"),
                _ref("blng__RelatedInvoice__c", "blng__Invoice__c"),
                _pick(
                    "blng__CreditNoteSourceAction__c",
                    (
                        "Manual",
                        "Credit",
                        "Cancel & Rebill",
                        "Invoice Line Credit",
                        "Negative Lines Conversion",
                    ),
                    default="Manual",
                ),
                _pick("blng__Status__c", ("Draft", "Posted", "Cancelled"), default="Draft"),
                _CURRENCY,
                _f("ERP_Document_Number__c", "string", external_id=True, unique=True, length=40),
                _GL_REFERENCE,
            ],
            change_events=True,
        ),
        _obj(
            "blng__RevenueSchedule__c",
            "Revenue Schedule",
            "a0R",
            [
                _name(auto="RS-{0000000}"),
                _ref("blng__Account__c", "Account"),
                _ref("blng__InvoiceLine__c", "blng__InvoiceLine__c"),
                _f("blng__OrderProduct__c", "string", length=18),
                _f("blng__TotalRevenueAmount__c", "currency", required=True),
                _f("blng__RevenueStartDate__c", "date"),
                _f("blng__RevenueEndDate__c", "date"),
                _f("blng__Deferred__c", "currency"),
                _f("blng__Unrecognized__c", "currency"),
                _f("blng__Available__c", "currency"),
                _f("blng__RevenueRecognitionRule__c", "string", length=18),
                _f("blng__RevenueRecognitionTreatment__c", "string", length=18),
                _f("blng__RevenueRecognitionGLRule__c", "string", length=18),
                _f("blng__RevenueRecognitionGLTreatment__c", "string", length=18),
                _pick("blng__RevenueTransactionStatus__c", ("Queued", "Complete", "Error")),
                _CURRENCY,
            ],
            change_events=True,
        ),
        _obj(
            "blng__RevenueTransaction__c",
            "Revenue Transaction",
            "a0T",
            [
                _name(auto="RT-{0000000}"),
                _ref("blng__RevenueSchedule__c", "blng__RevenueSchedule__c", master=True),
                _ref("blng__RevenueFinancePeriod__c", "blng__FinancePeriod__c", master=True),
                _f("blng__RevenueAmount__c", "currency"),
                _ref("blng__InvoiceLine__c", "blng__InvoiceLine__c"),
                _ref("blng__Account__c", "Account"),
                _pick(
                    "blng__Status__c", ("Deferred", "Recognized", "Canceled"), default="Deferred"
                ),
                _GL_REFERENCE,
                _CURRENCY,
            ],
            change_events=True,
        ),
        # Object model B: Revenue Cloud standard objects.
        _obj(
            "Invoice",
            "Invoice",
            "3tt",
            [
                _ref("BillingAccountId", "Account", required=True),
                FieldDef(
                    name="InvoiceNumber",
                    type="string",
                    label="Invoice Number",
                    auto_number="INV-{0000000000}",
                    createable=False,
                    updateable=False,
                ),
                _f("DocumentNumber", "string"),
                _f("InvoiceDate", "date"),
                _f("DueDate", "date"),
                _f("PostedDate", "datetime"),
                _f("TotalAmount", "currency"),
                _calc("TotalAmountWithTax"),
                _f("TotalTaxAmount", "currency"),
                _calc("Balance"),
                _rollup("NetPaymentsApplied"),
                _rollup("NetCreditsApplied"),
                _ref("PaymentTermId", "PaymentTerm"),
                _f("ReferenceEntityId", "string", length=18),
                _pick(
                    "Status",
                    (
                        "Draft",
                        "Draft In Progress",
                        "Pending",
                        "Posting In Progress",
                        "Posted",
                        "Error",
                        "Canceled",
                        "Void In Progress",
                        "Voided",
                    ),
                    default="Draft",
                ),
                _CURRENCY,
                _f("ERP_Document_Number__c", "string", external_id=True, unique=True, length=40),
                _GL_REFERENCE,
            ],
            change_events=True,
        ),
        _obj(
            "InvoiceLine",
            "Invoice Line",
            "5TV",
            [
                _name(required=False),
                _ref("InvoiceId", "Invoice", master=True),
                _pick("Type", ("Charge", "Adjustment", "Tax"), default="Charge"),
                _ref("Product2Id", "Product2"),
                _f("Quantity", "double"),
                _f("UnitPrice", "currency"),
                _f("ChargeAmount", "currency"),
                _f("TaxAmount", "currency"),
                _f("LineAmount", "currency"),
                _f("Balance", "currency"),
                _f("InvoiceLineStartDate", "date", required=True),
                _f("InvoiceLineEndDate", "date", required=True),
                _f("BillingScheduleId", "string", length=18),
                _f("LegalEntityId", "string", length=18),
                _pick("TaxProcessingStatus", ("Estimated", "Pending", "Posted")),
                _calc("InvoiceStatus", "string"),
                _CURRENCY,
            ],
            change_events=True,
        ),
        _obj(
            "CreditMemo",
            "Credit Memo",
            "50g",
            [
                _ref("BillingAccountId", "Account", required=True),
                FieldDef(
                    name="CreditMemoNumber",
                    type="string",
                    label="Credit Memo Number",
                    auto_number="CM-{0000000000}",
                    createable=False,
                    updateable=False,
                ),
                _f("DocumentNumber", "string"),
                _f("CreditDate", "date"),
                _f("TotalAmount", "currency"),
                _f("TotalAmountWithTax", "currency"),
                _f("Balance", "currency"),
                _f("ExternalReference", "string"),
                _f("ExternalReferenceDataSource", "string"),
                _pick("CreationMode", ("Salesforce", "External"), default="Salesforce"),
                _f("Category", "picklist"),
                _f("SourceAction", "picklist"),
                _f("ReferenceEntityId", "string", length=18),
                _pick(
                    "Status",
                    (
                        "Draft",
                        "Pending",
                        "Posted",
                        "Error",
                        "Canceled",
                        "Void In Progress",
                        "Voided",
                    ),
                    default="Draft",
                ),
                _CURRENCY,
                _f("ERP_Document_Number__c", "string", external_id=True, unique=True, length=40),
                _GL_REFERENCE,
            ],
            change_events=True,
        ),
        _obj(
            "CreditMemoLine",
            "Credit Memo Line",
            "9yx",
            [
                _name(required=False),
                _ref("CreditMemoId", "CreditMemo", master=True),
                _ref("Product2Id", "Product2"),
                _f("ChargeAmount", "currency"),
                _f("AdjustmentAmount", "currency"),
                _f("TaxAmount", "currency"),
                _f("LineAmount", "currency"),
                _f("Balance", "currency"),
                _f("ReferenceEntityItemId", "string", length=18),
                _CURRENCY,
            ],
            change_events=True,
        ),
        _obj(
            "Payment",
            "Payment",
            "0a3",
            [
                _ref("AccountId", "Account"),
                _f("Amount", "currency", required=True),
                _calc("Balance"),
                _rollup("NetApplied"),
                _rollup("TotalApplied"),
                _f("EffectiveDate", "datetime"),
                FieldDef(
                    name="PaymentNumber",
                    type="string",
                    label="Payment Number",
                    auto_number="PAY-{0000000000}",
                    createable=False,
                    updateable=False,
                ),
                _f("GatewayRefNumber", "string"),
                _pick("Type", ("Capture", "Sale"), default="Sale"),
                _pick("ProcessingMode", ("Salesforce", "External"), default="External"),
                _pick("Status", ("Draft", "Processed", "Canceled"), default="Draft"),
                _CURRENCY,
                _f("ERP_Receipt_Number__c", "string", external_id=True, unique=True, length=40),
            ],
            change_events=True,
        ),
        _obj(
            "PaymentLineInvoice",
            "Payment Line Invoice",
            "0a6",
            [
                _ref("PaymentId", "Payment", required=True),
                _ref("InvoiceId", "Invoice", required=True),
                _f("Amount", "currency", required=True),
                _pick("Type", ("Applied", "Unapplied"), default="Applied"),
                _f("AppliedDate", "datetime"),
                _f("UnappliedDate", "datetime"),
                _pick("HasBeenUnapplied", ("NA", "No", "Yes"), default="No"),
                _ref("AssociatedPaymentLineId", "PaymentLineInvoice", rel="AssociatedPaymentLine"),
                _f("ImpactAmount", "currency"),
                _f("EffectiveImpactAmount", "currency"),
                _CURRENCY,
                _f("ERP_Application_Id__c", "string", external_id=True, unique=True, length=40),
            ],
            change_events=True,
        ),
    ]
    return {o.name: o for o in objects}


BILLING_OBJECTS: tuple[str, ...] = (
    "blng__Invoice__c",
    "blng__InvoiceLine__c",
    "blng__Payment__c",
    "blng__PaymentAllocationInvoice__c",
    "blng__CreditNote__c",
    "blng__RevenueSchedule__c",
    "blng__RevenueTransaction__c",
    "Invoice",
    "InvoiceLine",
    "Payment",
    "PaymentLineInvoice",
    "CreditMemo",
    "CreditMemoLine",
)
