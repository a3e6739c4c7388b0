"""Demo data for a fresh sandbox org: an account hierarchy with invoices, payments, credit notes
and revenue schedules in both object models. Deterministic, dated relative to the org's clock,
and skipped when the org already has accounts (a reused ``--data`` file)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from revbridge.salesforce.sandbox.org import Org

_GROUPS = (
    ("Acme Holdings", "US", "CA", "San Francisco", ("Acme West", "Acme East", "Acme Labs")),
    ("Globex Group", "DE", "BE", "Berlin", ("Globex GmbH", "Globex Services")),
    ("Initech Corp", "GB", "", "London", ("Initech UK", "Initech Ireland")),
    ("Umbrella Industries", "FR", "", "Paris", ("Umbrella France",)),
)
_PRODUCTS = (
    ("Platform Subscription", "SUB-PLAT", "Recurring"),
    ("Premium Support", "SUP-PREM", "Recurring"),
    ("Implementation Services", "SVC-IMPL", "One-Time"),
    ("API Overage", "USG-API", "Usage"),
)
_CURRENCY = {"US": "USD", "DE": "EUR", "GB": "GBP", "FR": "EUR"}


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randrange(low * 100, high * 100)) / 100


def seed_org(org: Org, *, seed: int = 7) -> dict[str, int]:
    """Create the demo records; return how many of each object were created."""
    counts: dict[str, int] = {}
    if org.records(org.objects["Account"], include_deleted=True):
        return counts
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    today = org.config.clock.now().date()

    def create(name: str, body: dict[str, Any]) -> str:
        counts[name] = counts.get(name, 0) + 1
        return org.create(org.objects[name], body)

    with org.unit_of_work(origin="com/salesforce/sandbox/seed"):
        products = [
            create("Product2", {"Name": n, "ProductCode": c, "IsActive": True})
            for n, c, _ in _PRODUCTS
        ]
        periods: list[tuple[str, date]] = []
        for back in range(6, -7, -1):
            months = today.year * 12 + today.month - 1 - back
            start = date(months // 12, months % 12 + 1, 1)
            nxt = date((months + 1) // 12, (months + 1) % 12 + 1, 1)
            period_id = create(
                "blng__FinancePeriod__c",
                {
                    "Name": start.strftime("%b %Y"),
                    "blng__PeriodStartDate__c": start.isoformat(),
                    "blng__PeriodEndDate__c": (nxt - timedelta(days=1)).isoformat(),
                    "blng__PeriodStatus__c": "Closed" if back > 0 else "Open",
                },
            )
            periods.append((period_id, start))
        term_ids = {
            t: create("PaymentTerm", {"Name": t, "IsActive": True}) for t in ("Net 30", "Net 45")
        }
        customer_number = 1000
        for group_name, country, state, city, children in _GROUPS:
            customer_number += 1
            currency = _CURRENCY[country]
            parent_id = create(
                "Account",
                {
                    "Name": group_name,
                    "Type": "Customer",
                    "BillingCity": city,
                    "BillingCountryCode": country,
                    "BillingStateCode": state or None,
                    "BillingStreet": f"{rng.randrange(1, 400)} Market Street",
                    "BillingPostalCode": f"{rng.randrange(10000, 99999)}",
                    "CurrencyIsoCode": currency,
                    "ERP_Customer_Number__c": f"C-{customer_number}",
                    "Credit_Limit__c": _money(rng, 50_000, 250_000),
                    "Payment_Terms__c": "Net 30",
                },
            )
            for child_name in children:
                customer_number += 1
                account_id = create(
                    "Account",
                    {
                        "Name": child_name,
                        "ParentId": parent_id,
                        "Type": "Customer",
                        "BillingCity": city,
                        "BillingCountryCode": country,
                        "CurrencyIsoCode": currency,
                        "ERP_Customer_Number__c": f"C-{customer_number}",
                        "Credit_Limit__c": _money(rng, 10_000, 80_000),
                        "Credit_Hold__c": rng.random() < 0.15,
                        "Payment_Terms__c": rng.choice(("Net 30", "Net 45", "Net 60")),
                    },
                )
                _seed_billing(create, rng, account_id, currency, products, periods, today)
                _seed_revenue_cloud(create, rng, account_id, currency, products, term_ids, today)
    return counts


def _seed_billing(
    create: Any,
    rng: random.Random,
    account_id: str,
    currency: str,
    products: list[str],
    periods: list[tuple[str, date]],
    today: date,
) -> None:
    for index in range(2):
        invoice_date = today - timedelta(days=rng.randrange(5, 120))
        posted = index == 0 or rng.random() < 0.5
        lines = [(rng.randrange(len(products)), _money(rng, 500, 9000)) for _ in range(2)]
        subtotal = sum((amount for _, amount in lines), Decimal(0))
        tax = (subtotal * Decimal("0.08")).quantize(Decimal("0.01"))
        invoice_id = create(
            "blng__Invoice__c",
            {
                "blng__Account__c": account_id,
                "blng__InvoiceDate__c": invoice_date.isoformat(),
                "blng__DueDate__c": (invoice_date + timedelta(days=30)).isoformat(),
                "blng__InvoiceStatus__c": "Posted" if posted else "Draft",
                "blng__InvoicePostedDate__c": invoice_date.isoformat() if posted else None,
                "blng__Subtotal__c": subtotal,
                "blng__TaxAmount__c": tax,
                "blng__UniqueId__c": f"BI-{account_id[-8:]}-{index}",
                "CurrencyIsoCode": currency,
            },
        )
        for product_index, amount in lines:
            line_tax = (amount * Decimal("0.08")).quantize(Decimal("0.01"))
            line_id = create(
                "blng__InvoiceLine__c",
                {
                    "blng__Invoice__c": invoice_id,
                    "blng__Product__c": products[product_index],
                    "blng__Quantity__c": 1,
                    "blng__UnitPrice__c": amount,
                    "blng__Subtotal__c": amount,
                    "blng__TaxAmount__c": line_tax,
                    "blng__Balance__c": amount + line_tax,
                    "blng__StartDate__c": invoice_date.isoformat(),
                    "blng__EndDate__c": (invoice_date + timedelta(days=89)).isoformat(),
                    "blng__ChargeType__c": _PRODUCTS[product_index][2],
                    "blng__InvoiceLineStatus__c": "Posted" if posted else "Draft",
                    "CurrencyIsoCode": currency,
                },
            )
            schedule_id = create(
                "blng__RevenueSchedule__c",
                {
                    "blng__Account__c": account_id,
                    "blng__InvoiceLine__c": line_id,
                    "blng__TotalRevenueAmount__c": amount,
                    "blng__RevenueStartDate__c": invoice_date.isoformat(),
                    "blng__RevenueEndDate__c": (invoice_date + timedelta(days=89)).isoformat(),
                    "blng__RevenueTransactionStatus__c": "Complete",
                    "CurrencyIsoCode": currency,
                },
            )
            share = (amount / 3).quantize(Decimal("0.01"))
            start_period = next(
                (i for i, (_, s) in enumerate(periods) if s > invoice_date), len(periods) - 3
            )
            for month in range(3):
                period_id, period_start = periods[min(start_period + month - 1, len(periods) - 1)]
                create(
                    "blng__RevenueTransaction__c",
                    {
                        "blng__RevenueSchedule__c": schedule_id,
                        "blng__RevenueFinancePeriod__c": period_id,
                        "blng__RevenueAmount__c": share if month < 2 else amount - 2 * share,
                        "blng__InvoiceLine__c": line_id,
                        "blng__Account__c": account_id,
                        "blng__Status__c": "Recognized" if period_start <= today else "Deferred",
                        "CurrencyIsoCode": currency,
                    },
                )
        credit = Decimal(0)
        if posted and index == 1:
            credit = (subtotal * Decimal("0.1")).quantize(Decimal("0.01"))
            create(
                "blng__CreditNote__c",
                {
                    "blng__Account__c": account_id,
                    "blng__CreditNoteDate__c": (invoice_date + timedelta(days=10)).isoformat(),
                    "blng__TotalAmount__c": credit,
                    "blng__Balance__c": credit,
                    "blng__RelatedInvoice__c": invoice_id,
                    "blng__CreditNoteSourceAction__c": "Credit",
                    "blng__Status__c": "Posted",
                    "CurrencyIsoCode": currency,
                },
            )
        if posted and rng.random() < 0.7:
            total = subtotal + tax
            paid = total - credit if rng.random() < 0.6 else (total / 2).quantize(Decimal("0.01"))
            payment_id = create(
                "blng__Payment__c",
                {
                    "blng__Account__c": account_id,
                    "blng__Amount__c": paid,
                    "blng__PaymentDate__c": (invoice_date + timedelta(days=20)).isoformat(),
                    "blng__PaymentType__c": rng.choice(("ACH", "Bank Transfer", "Check")),
                    "blng__PaymentMode__c": "External",
                    "blng__Invoice__c": invoice_id,
                    "blng__Status__c": "Processed",
                    "blng__GatewayID__c": f"GW-{rng.randrange(10**8, 10**9)}",
                    "CurrencyIsoCode": currency,
                },
            )
            create(
                "blng__PaymentAllocationInvoice__c",
                {
                    "blng__Payment__c": payment_id,
                    "blng__Invoice__c": invoice_id,
                    "blng__Amount__c": paid,
                    "blng__Type__c": "Allocation",
                    "CurrencyIsoCode": currency,
                },
            )


def _seed_revenue_cloud(
    create: Any,
    rng: random.Random,
    account_id: str,
    currency: str,
    products: list[str],
    term_ids: dict[str, str],
    today: date,
) -> None:
    invoice_date = today - timedelta(days=rng.randrange(1, 60))
    amounts = [_money(rng, 300, 6000) for _ in range(2)]
    total = sum(amounts, Decimal(0))
    tax = (total * Decimal("0.2")).quantize(Decimal("0.01"))
    invoice_id = create(
        "Invoice",
        {
            "BillingAccountId": account_id,
            "InvoiceDate": invoice_date.isoformat(),
            "DueDate": (invoice_date + timedelta(days=45)).isoformat(),
            "TotalAmount": total,
            "TotalTaxAmount": tax,
            "PaymentTermId": term_ids["Net 45"],
            "Status": "Posted",
            "PostedDate": f"{invoice_date.isoformat()}T09:00:00Z",
            "CurrencyIsoCode": currency,
        },
    )
    for index, amount in enumerate(amounts):
        create(
            "InvoiceLine",
            {
                "InvoiceId": invoice_id,
                "Name": f"Line {index + 1}",
                "Type": "Charge",
                "Product2Id": products[index],
                "Quantity": 1,
                "UnitPrice": amount,
                "ChargeAmount": amount,
                "TaxAmount": (amount * Decimal("0.2")).quantize(Decimal("0.01")),
                "LineAmount": amount,
                "InvoiceLineStartDate": invoice_date.isoformat(),
                "InvoiceLineEndDate": (invoice_date + timedelta(days=30)).isoformat(),
                "TaxProcessingStatus": "Posted",
                "CurrencyIsoCode": currency,
            },
        )
    if rng.random() < 0.6:
        amount = total + tax
        payment_id = create(
            "Payment",
            {
                "AccountId": account_id,
                "Amount": amount,
                "EffectiveDate": f"{(invoice_date + timedelta(days=15)).isoformat()}T12:00:00Z",
                "GatewayRefNumber": f"PAY-{rng.randrange(10**6, 10**7)}",
                "Type": "Sale",
                "ProcessingMode": "External",
                "Status": "Processed",
                "CurrencyIsoCode": currency,
            },
        )
        create(
            "PaymentLineInvoice",
            {
                "PaymentId": payment_id,
                "InvoiceId": invoice_id,
                "Amount": amount,
                "Type": "Applied",
                "AppliedDate": f"{(invoice_date + timedelta(days=15)).isoformat()}T12:00:00Z",
                "HasBeenUnapplied": "No",
                "CurrencyIsoCode": currency,
            },
        )
    if rng.random() < 0.4:
        credit = (total * Decimal("0.05")).quantize(Decimal("0.01"))
        memo_id = create(
            "CreditMemo",
            {
                "BillingAccountId": account_id,
                "CreditDate": today.isoformat(),
                "TotalAmount": credit,
                "TotalAmountWithTax": credit,
                "Balance": credit,
                "CreationMode": "Salesforce",
                "ReferenceEntityId": invoice_id,
                "Status": "Posted",
                "CurrencyIsoCode": currency,
            },
        )
        create(
            "CreditMemoLine",
            {
                "CreditMemoId": memo_id,
                "Product2Id": products[0],
                "ChargeAmount": credit,
                "LineAmount": credit,
                "Balance": credit,
                "CurrencyIsoCode": currency,
            },
        )
