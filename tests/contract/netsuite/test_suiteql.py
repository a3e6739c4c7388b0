"""SuiteQL: a real SQL engine over the sandbox tables, with NetSuite's paging envelope."""

from __future__ import annotations

from tests.contract.netsuite.conftest import NetSuiteClient, invoice_body


def _invoices(client: NetSuiteClient, customer: str, count: int) -> list[str]:
    return [client.create("invoice", invoice_body(customer, 10 + n)) for n in range(count)]


def test_results_page_with_links_and_totals(client: NetSuiteClient, customer_id: str) -> None:
    _invoices(client, customer_id, 5)
    q = "SELECT id, tranid, foreigntotal FROM transaction WHERE type = 'CustInvc' ORDER BY id"
    first = client.suiteql(q, limit=2, offset=0)
    assert first["count"] == 2
    assert first["hasMore"] is True
    assert first["totalResults"] == 5
    rels = {link["rel"]: link["href"] for link in first["links"]}
    assert rels["next"].endswith("limit=2&offset=2")
    assert rels["last"].endswith("limit=2&offset=4")
    last = client.suiteql(q, limit=2, offset=4)
    assert last["count"] == 1
    assert last["hasMore"] is False
    assert last["items"][0]["foreigntotal"] == "14"
    assert last["items"][0]["links"] == []


def test_column_names_come_back_in_lower_case_as_strings(
    client: NetSuiteClient, customer_id: str
) -> None:
    row = client.suiteql(
        f"SELECT ID, CompanyName, BUILTIN.DF(Terms) AS t FROM customer WHERE id = {customer_id}"
    )
    assert row["items"][0] == {"links": [], "id": customer_id, "companyname": "Acme Ltd", "t": "3"}


def test_a_watermark_query_returns_only_later_changes(
    client: NetSuiteClient, customer_id: str
) -> None:
    first = _invoices(client, customer_id, 2)
    mark = client.suiteql(
        "SELECT TO_CHAR(MAX(lastmodifieddate), 'YYYY-MM-DD HH24:MI:SS.FF6') AS mark"
        " FROM transaction"
    )["items"][0]["mark"]
    later = _invoices(client, customer_id, 1)
    client.patch(f"/record/v1/invoice/{first[0]}", {"memo": "changed"})
    changed = client.suiteql(
        "SELECT id FROM transaction WHERE lastmodifieddate > "
        f"TO_TIMESTAMP('{mark}', 'YYYY-MM-DD HH24:MI:SS.FF6') ORDER BY id"
    )
    assert [r["id"] for r in changed["items"]] == [first[0], later[0]]


def test_suiteql_joins_lines_and_links(client: NetSuiteClient, customer_id: str) -> None:
    invoice = client.create("invoice", invoice_body(customer_id, 90))
    payment = client.create(
        "customerPayment",
        {
            "customer": {"id": customer_id},
            "payment": 40,
            "apply": {"items": [{"doc": {"id": invoice}}]},
        },
    )
    rows = client.suiteql(
        "SELECT l.nextdoc, t.tranid, l.foreignamount, t.foreignamountremaining"
        " FROM nexttransactionlinelink l JOIN transaction t ON t.id = l.previousdoc"
    )["items"]
    assert rows == [
        {
            "links": [],
            "nextdoc": payment,
            "tranid": f"INV{invoice}",
            "foreignamount": "40",
            "foreignamountremaining": "50",
        }
    ]


def test_suiteql_cannot_write_or_read_outside_netsuite_tables(client: NetSuiteClient) -> None:
    for q in (
        "DELETE FROM customer",
        "SELECT name FROM sqlite_master",
        "SELECT 1; DELETE FROM customer",
        "PRAGMA table_info(customer)",
        "SELEC nonsense",
    ):
        response = client.post("/query/v1/suiteql", {"q": q})
        assert response.status_code == 400, q
        assert response.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_PARAMETER"


def test_a_limit_over_1000_is_refused(client: NetSuiteClient) -> None:
    response = client.post(
        "/query/v1/suiteql", {"q": "SELECT id FROM customer"}, params={"limit": 1001}
    )
    assert response.status_code == 400
    assert response.json()["o:errorDetails"][0]["o:errorQueryParam"] == "limit"
