"""The SOQL subset over real HTTP: filters, relationships, dates, ordering, paging and errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from .conftest import API, Org


@pytest.fixture
def books(org: Org) -> Org:
    """Three accounts in a hierarchy with invoices on different dates."""
    today = org.config.clock.now().date()
    parent = org.create("Account", {"Name": "Parent Co", "Credit_Limit__c": 5000})
    alpha = org.create(
        "Account",
        {"Name": "Alpha", "ParentId": parent, "BillingCity": "Paris", "Credit_Hold__c": True},
    )
    beta = org.create("Account", {"Name": "beta", "ParentId": parent, "Credit_Limit__c": 100})
    for account, days_ago, subtotal, status in (
        (alpha, 0, 100, "Posted"),
        (alpha, 10, 250.5, "Draft"),
        (beta, 40, 75, "Posted"),
        (beta, 400, 999, "Cancelled"),
    ):
        org.create(
            "blng__Invoice__c",
            {
                "blng__Account__c": account,
                "blng__InvoiceDate__c": (today - timedelta(days=days_ago)).isoformat(),
                "blng__Subtotal__c": subtotal,
                "blng__InvoiceStatus__c": status,
            },
        )
    return org


def names(org: Org, where: str, sobject: str = "Account", field: str = "Name") -> list[Any]:
    rows = org.records(f"SELECT {field} FROM {sobject} WHERE {where} ORDER BY {field}")
    return [r[field] for r in rows]


def test_boolean_logic_with_parentheses_and_not(books: Org) -> None:
    """AND binds tighter than OR; parentheses and NOT change the grouping."""
    assert names(books, "Name = 'Alpha' OR Name = 'beta' AND Credit_Limit__c > 1000") == ["Alpha"]
    assert names(books, "(Name = 'Alpha' OR Name = 'beta') AND Credit_Limit__c < 1000") == ["beta"]
    assert names(books, "NOT (Name = 'Alpha' OR Name = 'beta')") == ["Parent Co"]


def test_comparisons_in_like_and_null(books: Org) -> None:
    """Text compares case-insensitively; IN, NOT IN, LIKE and NULL behave as in SOQL."""
    assert names(books, "Name = 'ALPHA'") == ["Alpha"]
    assert names(books, "Name != 'alpha'") == ["beta", "Parent Co"]
    assert names(books, "Name IN ('alpha', 'BETA')") == ["Alpha", "beta"]
    assert names(books, "Name NOT IN ('alpha', 'BETA')") == ["Parent Co"]
    assert names(books, "Name LIKE '%TA'") == ["beta"]
    assert names(books, "Name LIKE 'P_rent%'") == ["Parent Co"]
    assert names(books, "ParentId = null") == ["Parent Co"]
    assert names(books, "BillingCity != null") == ["Alpha"]
    assert names(books, "Credit_Limit__c >= 100") == ["beta", "Parent Co"]
    assert names(books, "Credit_Limit__c <= 100") == ["beta"]
    assert names(books, "Credit_Hold__c = true") == ["Alpha"]


def test_parent_relationship_fields_select_filter_and_nest(books: Org) -> None:
    """Parent fields appear as nested objects and can be filtered on, two levels deep."""
    rows = books.records(
        "SELECT Name, blng__Account__r.Name, blng__Account__r.Parent.Name FROM blng__Invoice__c "
        "WHERE blng__Account__r.Name = 'Alpha' ORDER BY blng__Subtotal__c DESC"
    )
    assert len(rows) == 2
    account = rows[0]["blng__Account__r"]
    assert account["attributes"]["type"] == "Account"
    assert account["Name"] == "Alpha"
    assert account["Parent"]["Name"] == "Parent Co"
    top = books.records("SELECT Name, Parent.Name FROM Account WHERE ParentId = null")
    assert top[0]["Parent"] is None


def test_date_literals_and_functions(books: Org) -> None:
    """Date literals, TODAY, LAST_N_DAYS:n, THIS_MONTH and ranges compare on whole days."""
    today = books.config.clock.now().date()
    amount = "blng__Subtotal__c"
    invoice = "blng__Invoice__c"
    date_field = "blng__InvoiceDate__c"
    assert names(books, f"{date_field} = TODAY", invoice, amount) == [100]
    assert names(books, f"{date_field} = LAST_N_DAYS:30", invoice, amount) == [100, 250.5]
    assert names(books, f"{date_field} < LAST_N_DAYS:30", invoice, amount) == [75, 999]
    this_month = [
        a
        for a, d in ((100, 0), (250.5, 10), (75, 40), (999, 400))
        if (today - timedelta(days=d)).replace(day=1) == today.replace(day=1)
    ]
    assert names(books, f"{date_field} = THIS_MONTH", invoice, amount) == sorted(this_month)
    cutoff = (today - timedelta(days=40)).isoformat()
    assert names(books, f"{date_field} >= {cutoff}", invoice, amount) == [75, 100, 250.5]
    assert names(books, f"{date_field} > {cutoff}", invoice, amount) == [100, 250.5]


def test_datetime_literals_on_system_fields(books: Org) -> None:
    """CreatedDate takes datetime literals with a zone, and TODAY as a range."""
    now = books.config.clock.now()
    before = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    after = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert len(names(books, f"CreatedDate > {before} AND CreatedDate < {after}")) == 3
    assert len(names(books, "CreatedDate = TODAY")) == 3
    assert names(books, f"CreatedDate > {after}") == []


def test_order_by_nulls_limit_offset(books: Org) -> None:
    """ORDER BY honours direction and NULLS FIRST/LAST; OFFSET then LIMIT slice the result."""
    rows = books.records("SELECT Name FROM Account ORDER BY BillingCity ASC NULLS LAST, Name")
    assert [r["Name"] for r in rows] == ["Alpha", "beta", "Parent Co"]
    rows = books.records("SELECT Name FROM Account ORDER BY BillingCity DESC NULLS FIRST, Name")
    assert [r["Name"] for r in rows] == ["beta", "Parent Co", "Alpha"]
    rows = books.records("SELECT Name FROM Account ORDER BY Name DESC LIMIT 1 OFFSET 1")
    assert [r["Name"] for r in rows] == ["beta"]


def test_count_query(books: Org) -> None:
    """SELECT COUNT() returns the count as totalSize and no records."""
    body = books.query("SELECT COUNT() FROM blng__Invoice__c WHERE blng__Subtotal__c > 80").json()
    assert body == {"totalSize": 3, "done": True, "records": []}


def test_query_all_includes_deleted_records(books: Org) -> None:
    """A deleted record leaves query but stays visible to queryAll with IsDeleted = true."""
    doomed = books.create("Account", {"Name": "Doomed"})
    assert books.client.delete(f"{API}/sobjects/Account/{doomed}").status_code == 204
    assert names(books, "Name = 'Doomed'") == []
    response = books.client.get(
        f"{API}/queryAll", params={"q": "SELECT Id, IsDeleted FROM Account WHERE Name = 'Doomed'"}
    )
    assert response.json()["records"][0]["IsDeleted"] is True


def test_filters_on_ids_take_15_and_18_character_forms(books: Org) -> None:
    """Id and parent-id filters match whichever id form is given, alone or ANDed, and leave
    deleted records to queryAll."""
    alpha, beta = (
        r["Id"]
        for r in books.records("SELECT Id FROM Account WHERE ParentId != null ORDER BY Name")
    )
    assert names(books, f"Id IN ('{alpha[:15]}', '{beta}')") == ["Alpha", "beta"]
    assert names(books, f"Id = '{beta[:15]}' AND Name = 'Alpha'") == []
    subtotals = names(
        books,
        f"blng__Account__c IN ('{alpha[:15]}') AND blng__InvoiceStatus__c = 'Posted'",
        sobject="blng__Invoice__c",
        field="blng__Subtotal__c",
    )
    assert subtotals == [100]
    assert names(books, f"Id NOT IN ('{alpha}')") == ["beta", "Parent Co"]
    assert books.client.delete(f"{API}/sobjects/Account/{beta}").status_code == 204
    assert names(books, f"Id IN ('{alpha}', '{beta}')") == ["Alpha"]
    response = books.client.get(
        f"{API}/queryAll", params={"q": f"SELECT Id, IsDeleted FROM Account WHERE Id = '{beta}'"}
    )
    assert [r["IsDeleted"] for r in response.json()["records"]] == [True]


def test_paging_with_next_records_url(org: Org) -> None:
    """More rows than the batch size come back in pages linked by nextRecordsUrl."""
    for start in range(0, 250, 125):
        records = [
            {"attributes": {"type": "Account"}, "Name": f"Row {n:03d}"}
            for n in range(start, start + 125)
        ]
        response = org.client.post(
            f"{API}/composite/sobjects", json={"allOrNone": True, "records": records}
        )
        assert response.status_code == 200
    first = org.query(
        "SELECT Name FROM Account ORDER BY Name", headers={"Sforce-Query-Options": "batchSize=200"}
    ).json()
    assert (first["totalSize"], first["done"], len(first["records"])) == (250, False, 200)
    assert first["nextRecordsUrl"].startswith(f"{API}/query/01g")
    second = org.client.get(first["nextRecordsUrl"]).json()
    assert second["done"] is True
    assert "nextRecordsUrl" not in second
    assert [r["Name"] for r in second["records"]] == [f"Row {n:03d}" for n in range(200, 250)]
    bogus = org.client.get(f"{API}/query/01gXXXXXXXXXXXXXXX-2000")
    assert bogus.status_code == 400
    assert bogus.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'x' AND", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT x", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Nope__r.Name FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Credit_Limit__c = '5'", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2026-01-01", "INVALID_FIELD"),
        (
            "SELECT Id FROM blng__Invoice__c WHERE blng__InvoiceDate__c = '2026-01-01'",
            "INVALID_FIELD",
        ),
        ("SELECT Id FROM Account WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR"),
    ],
)
def test_bad_queries_get_salesforce_error_codes(org: Org, soql: str, code: str) -> None:
    """Syntax errors, unknown names and mistyped values are 400s with Salesforce's codes."""
    response = org.query(soql)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code
