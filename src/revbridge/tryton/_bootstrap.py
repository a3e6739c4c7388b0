"""Set up a freshly activated Tryton database as revbridge's local ERP.

This file is run as a script, in a subprocess, by ``revbridge.tryton.template``: it imports
trytond, which the hub's own process never does. It is deliberately standalone (no revbridge
imports) so that it runs with nothing but the environment's trytond packages, and its content
hash is part of the template cache key: editing it invalidates every cached template.

It expects a database on which ``trytond-admin -u ... --activate-dependencies`` has already run,
and writes one JSON object on stdout with the ids the hub needs to know about.

Usage: ``python _bootstrap.py CONFIG DATABASE SETTINGS_JSON``. SETTINGS_JSON holds the API
user's login and password, and the reference year around which the fiscal years are built.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

COMPANY_NAME = "Revbridge Local ERP"
# Rates are against the company currency (USD = 1). They are fixed, illustrative values so
# that foreign-currency documents can be posted; they are not market data.
CURRENCIES: tuple[tuple[str, str, str, Decimal, int, Decimal], ...] = (
    ("USD", "U.S. Dollar", "$", Decimal("0.01"), 2, Decimal(1)),
    ("EUR", "Euro", "€", Decimal("0.01"), 2, Decimal("0.92")),
    ("GBP", "Pound Sterling", "£", Decimal("0.01"), 2, Decimal("0.79")),
    ("JPY", "Yen", "¥", Decimal(1), 0, Decimal(150)),
)
PAYMENT_METHOD_NAME = "Cash"
CASH_ACCOUNT_CODE = "1.1.1"
REVENUE_ACCOUNT_CODE = "4.1.2"
# Sales tax and VAT collected from customers is owed to the authorities: a current liability.
# The Universal Chart's "6.3.x" tax accounts are the company's own tax *expenses*; 2.2.3
# "Accrued Taxes (Other Than Payroll)" is the liability an accountant books output tax on.
TAX_ACCOUNT_CODE = "2.2.3"
# Rounding left over when a foreign-currency invoice is settled at company-currency amounts
# that differ by a cent (each document is converted on its own): realised exchange result.
EXCHANGE_ACCOUNT_CODE = "6.2.1"
SALES_TAX_NAME = "Sales tax (Salesforce)"
RATES_SINCE = dt.date(2000, 1, 1)


def main(config_file: str, database: str, settings_file: str) -> dict[str, Any]:
    with open(settings_file, encoding="utf-8") as handle:
        settings = json.load(handle)

    from trytond.config import update_etc

    update_etc(config_file)

    from trytond.pool import Pool
    from trytond.transaction import Transaction

    Pool.start()
    pool = Pool(database)
    pool.init()

    from trytond.transaction import TransactionError

    # Some writes need table locks declared when the transaction starts; like trytond's own
    # dispatcher, learn them from the error, roll back and start over.
    extras: dict[str, Any] = {}
    while True:
        with Transaction().start(database, 0, readonly=False, **extras) as transaction:
            try:
                result = _setup(pool, settings)
            except TransactionError as exc:
                transaction.rollback()
                exc.fix(extras)
                continue
            transaction.commit()
            return result


def _setup(pool: Any, settings: dict[str, Any]) -> dict[str, Any]:
    from trytond.transaction import Transaction

    Currency = pool.get("currency.currency")
    Rate = pool.get("currency.currency.rate")
    Party = pool.get("party.party")
    Company = pool.get("company.company")
    User = pool.get("res.user")
    Group = pool.get("res.group")
    ModelData = pool.get("ir.model.data")

    currencies = {}
    for code, name, symbol, rounding, digits, rate in CURRENCIES:
        (currency,) = Currency.create(
            [
                {
                    "name": name,
                    "code": code,
                    "symbol": symbol,
                    "rounding": rounding,
                    "digits": digits,
                }
            ]
        )
        Rate.create([{"currency": currency.id, "rate": rate, "date": RATES_SINCE}])
        currencies[code] = currency

    (company_party,) = Party.create(
        [{"name": COMPANY_NAME, "code": "REVBRIDGE-COMPANY", "addresses": [("create", [{}])]}]
    )
    (company,) = Company.create(
        [{"party": company_party.id, "currency": currencies["USD"].id, "timezone": "UTC"}]
    )

    (admin,) = User.search([("login", "=", "admin")])
    User.write([admin], {"companies": [("add", [company.id])], "company": company.id})

    # The hub gets every business group (accounting, party, company, payment, credit limit)
    # but none of the technical ones (user and module administration).
    hub_groups = [
        data.db_id
        for data in ModelData.search(
            [("model", "=", Group.__name__), ("module", "not in", ["ir", "res"])]
        )
    ]
    (api_user,) = User.create(
        [
            {
                "name": "revbridge hub",
                "login": settings["api_login"],
                "password": settings["api_password"],
                "companies": [("add", [company.id])],
                "company": company.id,
                "groups": [("add", hub_groups)],
            }
        ]
    )

    with (
        Transaction().set_user(admin.id),
        Transaction().set_context(User.get_preferences(context_only=True)),
    ):
        accounts = _create_chart(pool, company)
        fiscal_years = _create_fiscal_years(pool, company, int(settings["year"]))
        payment_term = _net_30_payment_term(pool)
        payment_method = _create_payment_method(pool, company, accounts["cash"])
        _configure_defaults(pool, payment_term, accounts["revenue"], accounts["exchange"])
        sales_tax = _create_sales_tax(pool, company, accounts["tax"])

    return {
        "company_id": company.id,
        "api_user_id": api_user.id,
        "currencies": {code: c.id for code, c in currencies.items()},
        "fiscal_years": fiscal_years,
        "payment_term_id": payment_term.id,
        "payment_method_id": payment_method.id,
        "sales_tax_id": sales_tax.id,
        "accounts": {name: a.id for name, a in accounts.items()},
    }


def _create_chart(pool: Any, company: Any) -> dict[str, Any]:
    AccountTemplate = pool.get("account.account.template")
    Account = pool.get("account.account")
    ModelData = pool.get("ir.model.data")
    CreateChart = pool.get("account.create_chart", type="wizard")

    template = AccountTemplate(ModelData.get_id("account", "account_template_root_en"))
    session_id, _, _ = CreateChart.create()
    wizard = CreateChart(session_id)
    wizard.account.account_template = template
    wizard.account.company = company
    wizard.transition_create_account()

    def by_domain(*domain: Any) -> Any:
        (account,) = Account.search([("company", "=", company.id), *domain], limit=1)
        return account

    receivable = by_domain(("type.receivable", "=", True), ("party_required", "=", True))
    payable = by_domain(("type.payable", "=", True), ("party_required", "=", True))
    wizard.properties.company = company
    wizard.properties.account_receivable = receivable
    wizard.properties.account_payable = payable
    wizard.transition_create_properties()
    CreateChart.delete(session_id)
    return {
        "receivable": receivable,
        "payable": payable,
        "cash": by_domain(("code", "=", CASH_ACCOUNT_CODE)),
        "revenue": by_domain(("code", "=", REVENUE_ACCOUNT_CODE)),
        "tax": by_domain(("code", "=", TAX_ACCOUNT_CODE)),
        "exchange": by_domain(("code", "=", EXCHANGE_ACCOUNT_CODE)),
    }


def _create_fiscal_years(pool: Any, company: Any, year: int) -> dict[str, int]:
    FiscalYear = pool.get("account.fiscalyear")
    Sequence = pool.get("ir.sequence.strict")
    SequenceType = pool.get("ir.sequence.type")
    InvoiceSequence = pool.get("account.fiscalyear.invoice_sequence")

    (move_type,) = SequenceType.search([("name", "=", "Account Move")], limit=1)
    (invoice_type,) = SequenceType.search([("name", "=", "Invoice")], limit=1)

    def sequence(name: str, kind: Any, prefix: str) -> Any:
        (created,) = Sequence.create(
            [{"name": name, "sequence_type": kind.id, "company": company.id, "prefix": prefix}]
        )
        return created

    created = {}
    # The previous and next years cost about 0.3 s each and let tests and demos post into
    # last December or next January without a manual step.
    for fy_year in (year - 1, year, year + 1):
        invoices = sequence(f"Invoices {fy_year}", invoice_type, f"INV/{fy_year}/")
        credit_notes = sequence(f"Credit notes {fy_year}", invoice_type, f"CN/{fy_year}/")
        invoice_sequence = InvoiceSequence(
            company=company,
            out_invoice_sequence=invoices,
            out_credit_note_sequence=credit_notes,
            in_invoice_sequence=sequence(f"Supplier invoices {fy_year}", invoice_type, ""),
            in_credit_note_sequence=sequence(f"Supplier credits {fy_year}", invoice_type, ""),
        )
        fiscal_year = FiscalYear(
            name=str(fy_year),
            company=company,
            start_date=dt.date(fy_year, 1, 1),
            end_date=dt.date(fy_year, 12, 31),
            move_sequence=sequence(f"Moves {fy_year}", move_type, f"MOV/{fy_year}/"),
            invoice_sequences=[invoice_sequence],
        )
        fiscal_year.save()
        FiscalYear.create_period([fiscal_year])
        created[str(fy_year)] = fiscal_year.id
    return created


def _net_30_payment_term(pool: Any) -> Any:
    # account_invoice ships "Net 30 days" (a remainder line at +30 days); reuse it rather
    # than adding a look-alike that a user would have to tell apart.
    PaymentTerm = pool.get("account.invoice.payment_term")
    ModelData = pool.get("ir.model.data")
    return PaymentTerm(ModelData.get_id("account_invoice", "payment_term_net30"))


def _create_payment_method(pool: Any, company: Any, cash: Any) -> Any:
    Method = pool.get("account.invoice.payment.method")
    ModelData = pool.get("ir.model.data")
    (method,) = Method.create(
        [
            {
                "name": PAYMENT_METHOD_NAME,
                "company": company.id,
                "journal": ModelData.get_id("account", "journal_cash"),
                "debit_account": cash.id,
                "credit_account": cash.id,
            }
        ]
    )
    return method


def _configure_defaults(pool: Any, payment_term: Any, revenue: Any, exchange: Any) -> None:
    Configuration = pool.get("account.configuration")
    config = Configuration(1)
    config.default_customer_payment_term = payment_term
    config.default_category_account_revenue = revenue
    # Without these, reconciling a foreign-currency invoice whose company-currency amounts
    # miss each other by a rounding cent fails ("configure the currency exchange accounts").
    config.currency_exchange_credit_account = exchange
    config.currency_exchange_debit_account = exchange
    config.save()


def _create_sales_tax(pool: Any, company: Any, account: Any) -> Any:
    """The tax Salesforce's amounts are posted under: it computes nothing (type ``none``).

    Invoices carry it on *manual* tax lines whose amounts are Salesforce's, so Tryton never
    recomputes them; the tax record gives those lines a name in tax reports and the account
    they credit.
    """
    Tax = pool.get("account.tax")
    (tax,) = Tax.create(
        [
            {
                "name": SALES_TAX_NAME,
                "description": "Sales tax as computed by Salesforce",
                "type": "none",
                "company": company.id,
                "invoice_account": account.id,
                "credit_note_account": account.id,
            }
        ]
    )
    return tax


if __name__ == "__main__":
    outcome = main(sys.argv[1], sys.argv[2], sys.argv[3])
    sys.stdout.write(json.dumps(outcome) + "\n")
