"""The ERP rules the sandbox enforces, as pure functions that return problems.

Each check takes plain values and returns ``Problem`` records (empty when the rule holds); the
record service turns a problem into a NetSuite 400 ``USER_ERROR``. Keeping the rules free of
SQL and HTTP makes each one readable on its own and testable without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Why a request breaks a rule, and where in the body (``path``) the cause is."""

    detail: str
    path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Application:
    """One line applying a payment or credit memo to an invoice."""

    path: str
    invoice_label: str
    amount: Decimal
    invoice_remaining: Decimal


def journal_problems(debits: Sequence[Decimal], credits: Sequence[Decimal]) -> list[Problem]:
    """A journal entry posts only when its lines exist and debits equal credits."""
    if not debits or not credits:
        return [
            Problem(
                detail="A journal entry needs at least one debit and one credit line.", path="line"
            )
        ]
    total_debit, total_credit = sum(debits, Decimal(0)), sum(credits, Decimal(0))
    if total_debit != total_credit:
        return [
            Problem(
                detail=(
                    f"The transaction is out of balance: debits total {total_debit} and credits "
                    f"total {total_credit}. Please make sure both amounts are equal."
                ),
                path="line",
            )
        ]
    return []


def application_problems(
    applications: Sequence[Application], *, available: Decimal, document: str
) -> list[Problem]:
    """No invoice may receive more than it still owes, and no document may apply more than it has.

    ``available`` is the payment amount or the credit memo total; ``document`` names it in the
    messages ("payment", "credit memo"). Several lines for the same invoice add up.
    """
    problems: list[Problem] = []
    applied_per_invoice: dict[str, Decimal] = {}
    for app in applications:
        if app.amount <= 0:
            problems.append(
                Problem(detail="The amount applied must be greater than zero.", path=app.path)
            )
            continue
        applied = applied_per_invoice.get(app.invoice_label, Decimal(0)) + app.amount
        applied_per_invoice[app.invoice_label] = applied
        if applied > app.invoice_remaining:
            problems.append(
                Problem(
                    detail=(
                        f"The amount applied to invoice {app.invoice_label} ({applied}) exceeds "
                        f"its amount remaining ({app.invoice_remaining})."
                    ),
                    path=app.path,
                )
            )
    total = sum((a.amount for a in applications), Decimal(0))
    if total > available:
        problems.append(
            Problem(
                detail=f"The total applied ({total}) exceeds the {document} amount ({available}).",
                path="apply",
            )
        )
    return problems


CreditHold = Literal["AUTO", "ON", "OFF"]


def credit_hold_problems(
    *,
    customer_label: str,
    hold: CreditHold,
    credit_limit: Decimal | None,
    balance: Decimal,
    new_amount: Decimal,
    enforce_limit: bool,
) -> list[Problem]:
    """A customer on hold gets no new invoice.

    ``ON`` always holds, ``OFF`` never does, ``AUTO`` holds when limits are enforced and the
    open balance plus the new invoice would pass the credit limit (amounts in base currency).
    """
    if hold == "ON":
        return [Problem(detail=f"Customer {customer_label} is on credit hold.", path="entity")]
    if hold == "AUTO" and enforce_limit and credit_limit is not None:
        exposure = balance + new_amount
        if exposure > credit_limit:
            return [
                Problem(
                    detail=(
                        f"Customer {customer_label} is on credit hold: the balance with this "
                        f"transaction ({exposure}) exceeds the credit limit ({credit_limit})."
                    ),
                    path="entity",
                )
            ]
    return []


def period_problems(*, period_name: str, closed: bool) -> list[Problem]:
    """A closed accounting period accepts no postings, changes or deletions."""
    if closed:
        return [
            Problem(
                detail=(
                    f"The accounting period {period_name} is closed. You cannot post, change or "
                    "delete transactions in a closed period."
                ),
                path="postingPeriod",
            )
        ]
    return []
