"""The ERP rules as pure functions: no server, just values in and problems out."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from revbridge.netsuite.sandbox.rules import (
    Application,
    application_problems,
    credit_hold_problems,
    journal_problems,
    period_problems,
)

cents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=2)


@given(st.lists(cents, min_size=1, max_size=8))
def test_a_journal_whose_credits_mirror_its_debits_balances(debits: list[Decimal]) -> None:
    assert journal_problems(debits, list(reversed(debits))) == []


@given(st.lists(cents, min_size=1, max_size=8), cents)
def test_any_difference_between_debits_and_credits_is_a_problem(
    debits: list[Decimal], extra: Decimal
) -> None:
    assert len(journal_problems(debits, [*debits, extra])) == 1


def test_a_journal_without_credit_lines_is_a_problem() -> None:
    assert journal_problems([Decimal(10)], []) != []


def test_two_lines_for_one_invoice_add_up_against_its_remaining_amount() -> None:
    apps = [
        Application(
            path="a", invoice_label="INV1", amount=Decimal(60), invoice_remaining=Decimal(100)
        ),
        Application(
            path="b", invoice_label="INV1", amount=Decimal(50), invoice_remaining=Decimal(100)
        ),
    ]
    problems = application_problems(apps, available=Decimal(500), document="payment")
    assert [p.path for p in problems] == ["b"]


def test_applying_more_than_the_payment_is_a_problem() -> None:
    apps = [
        Application(
            path="a", invoice_label="INV1", amount=Decimal(60), invoice_remaining=Decimal(100)
        )
    ]
    assert [
        p.path for p in application_problems(apps, available=Decimal(50), document="payment")
    ] == ["apply"]


def test_credit_hold_on_always_holds_and_off_never_does() -> None:
    common = {
        "customer_label": "C1",
        "credit_limit": Decimal(10),
        "balance": Decimal(100),
        "new_amount": Decimal(1),
    }
    assert credit_hold_problems(hold="ON", enforce_limit=False, **common) != []
    assert credit_hold_problems(hold="OFF", enforce_limit=True, **common) == []
    assert credit_hold_problems(hold="AUTO", enforce_limit=True, **common) != []
    assert credit_hold_problems(hold="AUTO", enforce_limit=False, **common) == []


def test_an_invoice_that_reaches_the_limit_exactly_is_allowed() -> None:
    assert (
        credit_hold_problems(
            customer_label="C1",
            hold="AUTO",
            credit_limit=Decimal(100),
            balance=Decimal(60),
            new_amount=Decimal(40),
            enforce_limit=True,
        )
        == []
    )


def test_only_a_closed_period_refuses_postings() -> None:
    assert period_problems(period_name="Jan 2026", closed=True)[0].path == "postingPeriod"
    assert period_problems(period_name="Jan 2026", closed=False) == []
