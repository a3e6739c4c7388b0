"""Composite and sObject Collections: references, allOrNone rollback, collection upsert."""

from __future__ import annotations

from typing import Any

from .conftest import API, Org
from .test_events import subscribed


def count(org: Org, soql: str) -> int:
    total: int = org.query(soql).json()["totalSize"]
    return total


def test_composite_with_references(org: Org) -> None:
    """Later subrequests use @{ref.id} from earlier ones; the response lists each result."""
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"{API}/sobjects/Account/ERP_Customer_Number__c/C-1001",
                "referenceId": "acct",
                "body": {"Name": "Acme"},
            },
            {
                "method": "POST",
                "url": f"{API}/sobjects/blng__Invoice__c",
                "referenceId": "inv",
                "body": {"blng__Account__c": "@{acct.id}", "blng__Subtotal__c": 10},
            },
            {
                "method": "GET",
                "url": f"{API}/query?q=SELECT+Id+FROM+blng__Invoice__c"
                "+WHERE+blng__Account__c='@{acct.id}'",
                "referenceId": "check",
            },
            {
                "method": "GET",
                "url": f"{API}/sobjects/blng__Invoice__c/@{{check.records[0].Id}}",
                "referenceId": "read",
            },
        ],
    }
    response = org.client.post(f"{API}/composite", json=body)
    assert response.status_code == 200
    results = response.json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [201, 201, 200, 200]
    assert [r["referenceId"] for r in results] == ["acct", "inv", "check", "read"]
    assert results[2]["body"]["records"][0]["Id"] == results[1]["body"]["id"]
    assert results[3]["body"]["blng__Account__c"] == results[0]["body"]["id"]
    assert results[1]["httpHeaders"]["Location"].endswith(results[1]["body"]["id"])
    usage = org.client.get(f"{API}/limits").headers["Sforce-Limit-Info"]
    assert usage.startswith("api-usage=2/")  # the composite counted once


def test_composite_all_or_none_rolls_back_every_subrequest(org: Org) -> None:
    """With allOrNone a failing subrequest undoes the earlier ones and halts the rest."""
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{API}/sobjects/Account",
                "referenceId": "ok",
                "body": {"Name": "Rolled Back"},
            },
            {
                "method": "POST",
                "url": f"{API}/sobjects/Account",
                "referenceId": "bad",
                "body": {"Name": "Broken", "Nope__c": 1},
            },
            {
                "method": "POST",
                "url": f"{API}/sobjects/Account",
                "referenceId": "later",
                "body": {"Name": "Never"},
            },
        ],
    }
    results = org.client.post(f"{API}/composite", json=body).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [400, 400, 400]
    assert results[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert results[1]["body"][0]["errorCode"] == "INVALID_FIELD"
    assert results[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert count(org, "SELECT COUNT() FROM Account WHERE Name IN ('Rolled Back', 'Never')") == 0
    assert subscribed(org).drain() == []  # no change event escapes a rolled-back transaction


def test_composite_without_all_or_none_keeps_successes(org: Org) -> None:
    """Without allOrNone each subrequest stands alone; a dangling reference is PROCESSING_HALTED."""
    body = {
        "compositeRequest": [
            {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "a", "body": {}},
            {
                "method": "POST",
                "url": f"{API}/sobjects/Account",
                "referenceId": "b",
                "body": {"Name": "Kept"},
            },
            {"method": "GET", "url": f"{API}/sobjects/Account/@{{a.id}}", "referenceId": "c"},
        ]
    }
    results = org.client.post(f"{API}/composite", json=body).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [400, 201, 400]
    assert results[0]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert count(org, "SELECT COUNT() FROM Account WHERE Name = 'Kept'") == 1


def test_composite_limits(org: Org) -> None:
    """More than 25 subrequests, or more than 5 queries, are refused."""
    too_many = [
        {"method": "GET", "url": f"{API}/limits", "referenceId": f"r{i}"} for i in range(26)
    ]
    assert (
        org.client.post(f"{API}/composite", json={"compositeRequest": too_many}).status_code == 400
    )
    queries = [
        {"method": "GET", "url": f"{API}/query?q=SELECT+Id+FROM+Account", "referenceId": f"q{i}"}
        for i in range(6)
    ]
    assert (
        org.client.post(f"{API}/composite", json={"compositeRequest": queries}).status_code == 400
    )


def records(*names: str) -> list[dict[str, Any]]:
    return [{"attributes": {"type": "Account"}, "Name": n} for n in names]


def test_collections_all_or_none_rolls_back(org: Org) -> None:
    """One bad record with allOrNone fails the batch; good records report ROLLED_BACK."""
    batch = [*records("Good 1", "Good 2"), {"attributes": {"type": "Account"}, "Phone": "1"}]
    results = org.client.post(
        f"{API}/composite/sobjects", json={"allOrNone": True, "records": batch}
    ).json()
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2]["errors"][0]["fields"] == ["Name"]
    assert count(org, "SELECT COUNT() FROM Account") == 0
    partial = org.client.post(
        f"{API}/composite/sobjects", json={"allOrNone": False, "records": batch}
    ).json()
    assert [r["success"] for r in partial] == [True, True, False]
    assert count(org, "SELECT COUNT() FROM Account") == 2


def test_collections_update_delete_and_retrieve(org: Org) -> None:
    """PATCH updates by Id, GET retrieves chosen fields, DELETE removes by ids."""
    created = org.client.post(
        f"{API}/composite/sobjects", json={"records": records("One", "Two")}
    ).json()
    ids = [r["id"] for r in created]
    updates = [
        {"attributes": {"type": "Account"}, "id": ids[0], "Phone": "111"},
        {"attributes": {"type": "Account"}, "id": ids[1][:15], "Phone": "222"},
    ]
    updated = org.client.patch(f"{API}/composite/sobjects", json={"records": updates}).json()
    assert [r["id"] for r in updated] == ids
    fetched = org.client.get(
        f"{API}/composite/sobjects/Account", params={"ids": ",".join(ids), "fields": "Name,Phone"}
    ).json()
    assert [(r["Name"], r["Phone"]) for r in fetched] == [("One", "111"), ("Two", "222")]
    deleted = org.client.delete(f"{API}/composite/sobjects", params={"ids": ",".join(ids)}).json()
    assert all(r["success"] for r in deleted)
    assert count(org, "SELECT COUNT() FROM Account") == 0


def test_collections_upsert_by_external_id(org: Org) -> None:
    """PATCH /composite/sobjects/Account/ERP_Customer_Number__c creates then updates."""
    url = f"{API}/composite/sobjects/Account/ERP_Customer_Number__c"
    batch = [
        {"attributes": {"type": "Account"}, "ERP_Customer_Number__c": "C-1", "Name": "Acme"},
        {"attributes": {"type": "Account"}, "ERP_Customer_Number__c": "C-2", "Name": "Globex"},
    ]
    first = org.client.patch(url, json={"allOrNone": False, "records": batch}).json()
    assert [r["created"] for r in first] == [True, True]
    batch[1]["Name"] = "Globex Corp"
    batch.append({"attributes": {"type": "Account"}, "ERP_Customer_Number__c": "C-3"})
    second = org.client.patch(url, json={"allOrNone": False, "records": batch}).json()
    assert [r["success"] for r in second] == [True, True, False]
    assert [r["created"] for r in second[:2]] == [False, False]
    assert second[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    rows = org.records("SELECT Name FROM Account ORDER BY ERP_Customer_Number__c")
    assert [r["Name"] for r in rows] == ["Acme", "Globex Corp"]


def test_collections_refuse_more_than_200_records(org: Org) -> None:
    """A collection call carries at most 200 records."""
    response = org.client.post(
        f"{API}/composite/sobjects",
        json={"records": records(*[f"N{i}" for i in range(201)])},
    )
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
