"""ERP rules: what NetSuite refuses, and the AR amounts it keeps."""

from __future__ import annotations

from datetime import UTC, datetime

from revbridge.netsuite.sandbox import SandboxConfig, running_sandbox
from tests.contract.netsuite.conftest import NetSuiteClient, error_codes, invoice_body


def test_an_invoice_for_an_unknown_customer_is_refused(client: NetSuiteClient) -> None:
    response = client.post("/record/v1/invoice", invoice_body("4242"))
    assert response.status_code == 400
    detail = response.json()["o:errorDetails"][0]
    assert detail["o:errorCode"] == "INVALID_VALUE"
    assert detail["o:errorPath"] == "entity"
    assert client.suiteql("SELECT id FROM transaction")["totalResults"] == 0


def test_a_payment_reduces_the_invoice_and_the_customer_balance(
    client: NetSuiteClient, customer_id: str
) -> None:
    invoice = client.create("invoice", invoice_body(customer_id, 200))
    assert client.get(f"/record/v1/customer/{customer_id}").json()["balance"] == 200
    client.create(
        "customerPayment",
        {
            "customer": {"id": customer_id},
            "payment": 250,
            "apply": {"items": [{"doc": {"id": invoice}, "apply": True, "amount": 200.0}]},
        },
    )
    paid = client.get(f"/record/v1/invoice/{invoice}").json()
    assert paid["amountPaid"] == 200
    assert paid["amountRemaining"] == 0
    assert paid["status"]["refName"] == "Paid In Full"
    # 50 of the payment is unapplied: the customer is in credit.
    assert client.get(f"/record/v1/customer/{customer_id}").json()["balance"] == -50


def test_a_payment_larger_than_the_open_amount_is_refused(
    client: NetSuiteClient, customer_id: str
) -> None:
    invoice = client.create("invoice", invoice_body(customer_id, 200))
    response = client.post(
        "/record/v1/customerPayment",
        {
            "customer": {"id": customer_id},
            "payment": 300,
            "apply": {"items": [{"doc": {"id": invoice}, "amount": 250.0}]},
        },
    )
    assert response.status_code == 400
    assert error_codes(response) == ["USER_ERROR"]
    assert client.get(f"/record/v1/invoice/{invoice}").json()["amountRemaining"] == 200


def test_applying_more_than_the_payment_is_refused(
    client: NetSuiteClient, customer_id: str
) -> None:
    invoice = client.create("invoice", invoice_body(customer_id, 200))
    response = client.post(
        "/record/v1/customerPayment",
        {
            "customer": {"id": customer_id},
            "payment": 100,
            "apply": {"items": [{"doc": {"id": invoice}, "amount": 150.0}]},
        },
    )
    assert response.status_code == 400


def test_a_credit_memo_applied_to_an_invoice_closes_it(
    client: NetSuiteClient, customer_id: str
) -> None:
    invoice = client.create("invoice", invoice_body(customer_id, 120))
    memo = client.create(
        "creditMemo",
        {
            "entity": {"id": customer_id},
            "createdFrom": {"id": invoice},
            "item": {"items": [{"item": {"id": "1"}, "amount": 120}]},
            "apply": {"items": [{"doc": {"id": invoice}, "apply": True, "amount": 120}]},
        },
    )
    assert client.get(f"/record/v1/invoice/{invoice}").json()["status"]["id"] == "B"
    assert client.get(f"/record/v1/creditMemo/{memo}").json()["unapplied"] == 0
    assert client.get(f"/record/v1/customer/{customer_id}").json()["balance"] == 0


def test_an_invoice_with_a_payment_cannot_be_deleted(
    client: NetSuiteClient, customer_id: str
) -> None:
    invoice = client.create("invoice", invoice_body(customer_id, 100))
    client.create(
        "customerPayment",
        {
            "customer": {"id": customer_id},
            "payment": 100,
            "apply": {"items": [{"doc": {"id": invoice}}]},
        },
    )
    assert client.delete(f"/record/v1/invoice/{invoice}").status_code == 400


def test_a_closed_period_refuses_postings(client: NetSuiteClient, customer_id: str) -> None:
    today = datetime.now(UTC).date().isoformat()
    closed = client.admin("POST", "/accountingPeriod/close", {"date": today})
    assert closed.status_code == 200
    response = client.post("/record/v1/invoice", invoice_body(customer_id))
    assert response.status_code == 400
    detail = response.json()["o:errorDetails"][0]
    assert detail["o:errorCode"] == "USER_ERROR"
    assert "closed" in detail["detail"]
    client.admin("POST", "/accountingPeriod/reopen", {"date": today})
    assert client.post("/record/v1/invoice", invoice_body(customer_id)).status_code == 204


def test_a_customer_on_credit_hold_gets_no_invoice(
    client: NetSuiteClient, customer_id: str
) -> None:
    held = client.admin("PUT", f"/customer/{customer_id}/credit", {"creditHoldOverride": "ON"})
    assert held.json()["creditHoldOverride"]["id"] == "ON"
    response = client.post("/record/v1/invoice", invoice_body(customer_id))
    assert response.status_code == 400
    assert "credit hold" in response.json()["o:errorDetails"][0]["detail"]


def test_an_invoice_over_the_credit_limit_is_refused(
    client: NetSuiteClient, customer_id: str
) -> None:
    client.admin("PUT", f"/customer/{customer_id}/credit", {"creditLimit": 500})
    assert client.post("/record/v1/invoice", invoice_body(customer_id, 400)).status_code == 204
    over = client.post("/record/v1/invoice", invoice_body(customer_id, 200))
    assert over.status_code == 400
    client.admin("PUT", "/settings", {"creditLimitHandling": "ignore"})
    assert client.post("/record/v1/invoice", invoice_body(customer_id, 200)).status_code == 204


def test_an_unbalanced_journal_is_refused(client: NetSuiteClient) -> None:
    response = client.post(
        "/record/v1/journalEntry",
        {
            "subsidiary": {"id": "1"},
            "line": {
                "items": [
                    {"account": {"id": "3"}, "debit": 300.0},
                    {"account": {"id": "4"}, "credit": 299.99},
                ]
            },
        },
    )
    assert response.status_code == 400
    assert "balance" in response.json()["o:errorDetails"][0]["detail"]


def test_a_balanced_journal_posts_to_the_ledger(client: NetSuiteClient) -> None:
    journal = client.create(
        "journalEntry",
        {
            "memo": "Revenue release",
            "line": {
                "items": [
                    {"account": {"id": "6"}, "debit": 300.0},
                    {"account": {"id": "4"}, "credit": 300.0},
                ]
            },
        },
    )
    ledger = client.suiteql(
        "SELECT account, debit, credit FROM transactionaccountingline"
        f" WHERE transaction = {journal} ORDER BY transactionline"
    )["items"]
    assert [(r["account"], r.get("debit"), r.get("credit")) for r in ledger] == [
        ("6", "300", None),
        ("4", None, "300"),
    ]


def test_overdue_balance_counts_invoices_past_due() -> None:
    """With the sandbox clock on 15 June, a Net 30 invoice of 2 January is overdue."""
    config = SandboxConfig(clock=lambda: datetime(2026, 6, 15, 12, 0, tzinfo=UTC))
    with running_sandbox(config) as sandbox:
        client = NetSuiteClient(sandbox)
        customer = client.create("customer", {"companyName": "Late Payer", "terms": {"id": "3"}})
        old = client.create("invoice", invoice_body(customer, 100, tranDate="2026-01-02"))
        client.create("invoice", invoice_body(customer, 50, tranDate="2026-06-10"))
        assert client.get(f"/record/v1/invoice/{old}").json()["dueDate"] == "2026-02-01"
        record = client.get(f"/record/v1/customer/{customer}").json()
        assert record["balance"] == 150
        assert record["overdueBalance"] == 100
        row = client.suiteql(f"SELECT overduebalance FROM customer WHERE id = {customer}")
        assert row["items"][0]["overduebalance"] == "100"


def test_an_accountant_payment_is_visible_through_suiteql(
    client: NetSuiteClient, customer_id: str
) -> None:
    invoice = client.create("invoice", invoice_body(customer_id, 80))
    mark = client.suiteql("SELECT MAX(lastmodifieddate) AS mark FROM transaction")["items"][0][
        "mark"
    ]
    entered = client.admin(
        "POST",
        "/customerPayment",
        {
            "customer": {"id": customer_id},
            "payment": 80,
            "apply": {"items": [{"doc": {"id": invoice}}]},
        },
    )
    assert entered.status_code == 201
    changed = client.suiteql(
        f"SELECT id, type, status FROM transaction WHERE lastmodifieddate > '{mark}' ORDER BY id"
    )["items"]
    assert [(r["id"], r["type"], r["status"]) for r in changed] == [
        (invoice, "CustInvc", "B"),
        (entered.json()["id"], "CustPymt", "B"),
    ]
