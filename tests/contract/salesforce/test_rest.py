"""sObject REST: describe, CRUD, upsert outcomes, validation errors, roll-ups and limits."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import httpx

from .conftest import API, Org, OrgFactory


def test_versions_list_has_no_limit_header(org: Org) -> None:
    """The versions list is public and, as in Salesforce, carries no Sforce-Limit-Info."""
    response = httpx.get(f"{org.base_url}/services/data/")
    assert response.status_code == 200
    assert {
        "label": "Summer '26",
        "url": "/services/data/v67.0",
        "version": "67.0",
    } in response.json()
    assert "sforce-limit-info" not in response.headers


def test_describe_global_and_object(org: Org) -> None:
    """Describe lists both object models and reports field properties an integration needs."""
    names = {o["name"] for o in org.client.get(f"{API}/sobjects").json()["sobjects"]}
    assert {"Account", "blng__Invoice__c", "blng__RevenueTransaction__c", "Invoice"} <= names
    assert {"InvoiceLine", "Payment", "PaymentLineInvoice", "CreditMemo", "CreditMemoLine"} <= names
    describe = org.client.get(f"{API}/sobjects/Account/describe").json()
    fields = {f["name"]: f for f in describe["fields"]}
    assert describe["keyPrefix"] == "001"
    assert fields["ERP_Customer_Number__c"]["externalId"] is True
    assert fields["ERP_Customer_Number__c"]["unique"] is True
    assert fields["ParentId"]["referenceTo"] == ["Account"]
    assert fields["ParentId"]["relationshipName"] == "Parent"
    assert fields["SystemModstamp"]["updateable"] is False
    # The customer master's Salesforce-owned fields, as the real org describes them.
    assert (fields["Website"]["type"], fields["Website"]["length"]) == ("url", 255)
    for code in ("ShippingStateCode", "ShippingCountryCode"):
        assert (fields[code]["type"], fields[code]["length"]) == ("string", 10)
    invoice = org.client.get(f"{API}/sobjects/blng__Invoice__c/describe").json()
    status = next(f for f in invoice["fields"] if f["name"] == "blng__InvoiceStatus__c")
    assert [p["value"] for p in status["picklistValues"]][:4] == [
        "Draft",
        "Initiated",
        "Post In progress",
        "Posted",
    ]
    assert org.client.get(f"{API}/sobjects/Nope__c/describe").status_code == 404


def test_crud_maintains_system_fields(org: Org) -> None:
    """Create, read, update and delete answer 201/200/204/204 and keep audit fields current."""
    created = org.client.post(f"{API}/sobjects/Account", json={"Name": "Crud Ltd"})
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "success": True, "errors": []}
    record_id = created.json()["id"]
    before = org.client.get(f"{API}/sobjects/Account/{record_id}").json()
    assert before["IsDeleted"] is False
    assert before["CreatedDate"] == before["SystemModstamp"]
    org.config.clock.advance(timedelta(seconds=5))
    patched = org.client.patch(f"{API}/sobjects/Account/{record_id}", json={"Phone": "555"})
    assert patched.status_code == 204
    after = org.client.get(
        f"{API}/sobjects/Account/{record_id}", params={"fields": "Phone,LastModifiedDate"}
    ).json()
    assert after["Phone"] == "555"
    assert after["LastModifiedDate"] > before["LastModifiedDate"]
    assert set(after) == {"attributes", "Phone", "LastModifiedDate"}
    assert org.client.delete(f"{API}/sobjects/Account/{record_id}").status_code == 204
    gone = org.client.get(f"{API}/sobjects/Account/{record_id}")
    assert gone.status_code == 404
    assert gone.json()[0]["errorCode"] == "NOT_FOUND"
    again = org.client.delete(f"{API}/sobjects/Account/{record_id}")
    assert again.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_upsert_outcomes(org: Org) -> None:
    """Upsert answers 201 created, 200 updated (v46+), 204 (v45), 300 on several matches, and
    404 with updateOnly when nothing matches."""
    url = f"{API}/sobjects/Account/ERP_Customer_Number__c/C-1001"
    created = org.client.patch(url, json={"Name": "Acme"})
    assert created.status_code == 201
    assert created.json()["created"] is True
    updated = org.client.patch(url, json={"Name": "Acme Ltd"})
    assert updated.status_code == 200
    assert updated.json() == {
        "id": created.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    old = org.client.patch(
        "/services/data/v45.0/sobjects/Account/ERP_Customer_Number__c/C-1001", json={"Name": "A"}
    )
    assert old.status_code == 204
    org.create("Account", {"Name": "One", "ERP_Id__c": "SAME"})
    second = org.create("Account", {"Name": "Two", "ERP_Id__c": "SAME"})
    multiple = org.client.patch(f"{API}/sobjects/Account/ERP_Id__c/SAME", json={"Name": "?"})
    assert multiple.status_code == 300
    assert f"{API}/sobjects/Account/{second}" in multiple.json()
    missing = org.client.patch(
        f"{API}/sobjects/Account/ERP_Customer_Number__c/C-404",
        params={"updateOnly": "true"},
        json={"Name": "No"},
    )
    assert missing.status_code == 404
    by_key = org.client.get(f"{API}/sobjects/Account/ERP_Customer_Number__c/C-1001").json()
    assert by_key["Name"] == "A"
    not_key = org.client.patch(f"{API}/sobjects/Account/Name/Acme", json={"Phone": "1"})
    assert not_key.status_code == 404


def test_upsert_refuses_key_or_id_in_body(org: Org) -> None:
    """The external id field and Id belong in the URL, not in the body."""
    url = f"{API}/sobjects/Account/ERP_Customer_Number__c/C-7"
    with_key = org.client.patch(url, json={"Name": "X", "ERP_Customer_Number__c": "C-7"})
    assert with_key.status_code == 400
    with_id = org.client.patch(url, json={"Name": "X", "Id": "001000000000001AAA"})
    assert with_id.status_code == 400


def test_dml_validation_errors(org: Org) -> None:
    """Unknown, read-only, required, duplicate, mistyped and dangling-reference writes fail."""
    account = org.create("Account", {"Name": "Valid", "ERP_Customer_Number__c": "C-1"})

    def error(sobject: str, body: dict[str, object]) -> dict[str, object]:
        response = org.client.post(f"{API}/sobjects/{sobject}", json=body)
        assert response.status_code == 400, response.text
        first: dict[str, object] = response.json()[0]
        return first

    assert error("Account", {"Name": "X", "Bogus__c": 1})["errorCode"] == "INVALID_FIELD"
    assert (
        error("Account", {"Name": "X", "CreatedDate": "2020-01-01T00:00:00Z"})["errorCode"]
        == "INVALID_FIELD_FOR_INSERT_UPDATE"
    )
    missing = error("blng__Payment__c", {"blng__Status__c": "Draft"})
    assert missing["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert missing["fields"] == ["blng__Account__c", "blng__Amount__c"]
    duplicate = error("Account", {"Name": "Y", "ERP_Customer_Number__c": "c-1"})
    assert duplicate["errorCode"] == "DUPLICATE_VALUE"
    assert error("Account", {"Name": "Y", "Credit_Limit__c": "lots"})["errorCode"] == (
        "JSON_PARSER_ERROR"
    )
    picklist = error(
        "blng__Invoice__c", {"blng__Account__c": account, "blng__InvoiceStatus__c": "X"}
    )
    assert picklist["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert error("Account", {"Name": "Y", "ParentId": "garbage"})["errorCode"] == "MALFORMED_ID"
    assert error("Account", {"Name": "Y", "ParentId": "001000000000099AAA"})["errorCode"] == (
        "INVALID_CROSS_REFERENCE_KEY"
    )
    wrong_type = error(
        "blng__Invoice__c", {"blng__Account__c": org.create("Product2", {"Name": "P"})}
    )
    assert wrong_type["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    bad_json = org.client.post(
        f"{API}/sobjects/Account",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert bad_json.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_parent_by_external_id_in_body(org: Org) -> None:
    """A lookup can be set through the parent's external id: {"blng__Account__r": {...}}."""
    account = org.create("Account", {"Name": "Keyed", "ERP_Customer_Number__c": "C-55"})
    invoice = org.create(
        "blng__Invoice__c", {"blng__Account__r": {"ERP_Customer_Number__c": "C-55"}}
    )
    record = org.client.get(f"{API}/sobjects/blng__Invoice__c/{invoice}").json()
    assert record["blng__Account__c"] == account


def test_allocations_roll_up_to_invoice_and_payment(org: Org) -> None:
    """Allocating a payment updates the invoice's payments, balance and status, as Billing does."""
    account = org.create("Account", {"Name": "Payer"})
    invoice = org.create(
        "blng__Invoice__c",
        {"blng__Account__c": account, "blng__Subtotal__c": 100, "blng__TaxAmount__c": 20},
    )
    payment = org.create("blng__Payment__c", {"blng__Account__c": account, "blng__Amount__c": 150})
    org.create(
        "blng__PaymentAllocationInvoice__c",
        {"blng__Payment__c": payment, "blng__Invoice__c": invoice, "blng__Amount__c": 50},
    )
    row = org.records(
        "SELECT blng__TotalAmount__c, blng__Payments__c, blng__Balance__c, blng__PaymentStatus__c "
        f"FROM blng__Invoice__c WHERE Id = '{invoice}'"
    )[0]
    assert (row["blng__TotalAmount__c"], row["blng__Payments__c"], row["blng__Balance__c"]) == (
        120.0,
        50.0,
        70.0,
    )
    assert row["blng__PaymentStatus__c"] == "Partially Paid"
    pay = org.client.get(f"{API}/sobjects/blng__Payment__c/{payment}").json()
    assert pay["blng__Balance__c"] == 100.0
    calculated = org.client.patch(
        f"{API}/sobjects/blng__Invoice__c/{invoice}", json={"blng__Balance__c": 0}
    )
    assert calculated.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_deleting_a_master_cascades_to_details(org: Org) -> None:
    """Deleting an account deletes its master-detail invoices, as Salesforce does."""
    account = org.create("Account", {"Name": "Parent"})
    invoice = org.create("blng__Invoice__c", {"blng__Account__c": account})
    assert org.client.delete(f"{API}/sobjects/Account/{account}").status_code == 204
    assert org.client.get(f"{API}/sobjects/blng__Invoice__c/{invoice}").status_code == 404


def test_limit_header_counts_and_limit_is_enforced(make_org: OrgFactory) -> None:
    """Each call raises api-usage; past the daily limit calls get 403 REQUEST_LIMIT_EXCEEDED."""
    with make_org(daily_api_limit=5) as org:
        first = org.client.get(f"{API}/limits")
        assert first.headers["Sforce-Limit-Info"] == "api-usage=1/5"
        assert first.json()["DailyApiRequests"] == {"Max": 5, "Remaining": 4}
        for expected in range(2, 6):
            response = org.client.get(f"{API}/sobjects")
            assert response.headers["Sforce-Limit-Info"] == f"api-usage={expected}/5"
        refused = org.client.get(f"{API}/sobjects")
        assert refused.status_code == 403
        assert refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        assert refused.headers["Sforce-Limit-Info"] == "api-usage=5/5"
        org.config.clock.advance(timedelta(hours=25))
        org.login()  # the old session expired too
        assert org.client.get(f"{API}/limits").headers["Sforce-Limit-Info"] == "api-usage=1/5"


def test_updated_and_deleted_resources(org: Org) -> None:
    """GET /sobjects/X/updated and /deleted report changes in a time window."""
    start = org.config.clock.now()
    kept = org.create("Account", {"Name": "Kept"})
    dropped = org.create("Account", {"Name": "Dropped"})
    org.client.delete(f"{API}/sobjects/Account/{dropped}")
    window = {
        "start": (start - timedelta(seconds=1)).isoformat(),
        "end": (org.config.clock.now() + timedelta(seconds=1)).isoformat(),
    }
    updated = org.client.get(f"{API}/sobjects/Account/updated/", params=window).json()
    assert kept in updated["ids"]
    assert dropped not in updated["ids"]
    deleted = org.client.get(f"{API}/sobjects/Account/deleted/", params=window).json()
    assert [d["id"] for d in deleted["deletedRecords"]] == [dropped]


def test_concurrent_long_requests_are_limited(make_org: OrgFactory) -> None:
    """Past the concurrent long-running request cap a new call gets REQUEST_LIMIT_EXCEEDED."""
    with make_org(
        max_concurrent_long_requests=1,
        long_request_threshold=timedelta(milliseconds=100),
        faults="latency=3s",
    ) as org:
        statuses: list[int] = []
        headers = dict(org.client.headers)

        def slow_call() -> None:
            statuses.append(
                httpx.get(f"{org.base_url}{API}/limits", headers=headers, timeout=30).status_code
            )

        worker = threading.Thread(target=slow_call)
        worker.start()
        # Wait until the org counts the first call as long-running (not a fixed sleep: on a
        # loaded machine the call may take a while to reach the server).
        deadline = time.monotonic() + 10
        sandbox = org.running.sandbox
        while sandbox.long_requests_running(org.config.clock.now()) < 1:
            assert time.monotonic() < deadline, "the slow call never reached the org"
            time.sleep(0.02)
        refused = org.client.get(f"{API}/limits")
        worker.join()
        assert refused.status_code == 403
        assert refused.json()[0] == {
            "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
        }
        assert statuses == [200]


def test_resources_versions_and_wrong_methods(org: Org) -> None:
    """The version root lists resources; unknown versions 404; a wrong method is a 405."""
    resources = org.client.get("/services/data/v62.0").json()
    assert resources["query"] == f"{API}/query"
    unknown = org.client.get("/services/data/v20.0/limits")
    assert unknown.status_code == 404
    assert unknown.json()[0]["errorCode"] == "NOT_FOUND"
    wrong = org.client.put(f"{API}/sobjects/Account/001000000000001AAA", json={})
    assert wrong.status_code == 405
    assert wrong.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_revenue_cloud_payment_changes_only_while_draft(org: Org) -> None:
    """A Draft payment can be edited and processed; a Processed one can no longer change, but
    applying it to an invoice still moves its roll-ups."""
    account = org.create("Account", {"Name": "RC Customer"})
    invoice = org.create(
        "Invoice", {"BillingAccountId": account, "TotalAmount": 100, "TotalTaxAmount": 20}
    )
    payment = org.create("Payment", {"AccountId": account, "Amount": 120})
    url = f"{API}/sobjects/Payment/{payment}"
    assert org.client.patch(url, json={"Amount": 110, "Status": "Processed"}).status_code == 204
    refused = org.client.patch(url, json={"Amount": 1})
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert org.client.delete(url).status_code == 400
    org.create("PaymentLineInvoice", {"PaymentId": payment, "InvoiceId": invoice, "Amount": 110})
    pay = org.client.get(url).json()
    assert (pay["NetApplied"], pay["Balance"]) == (110.0, 0.0)
    inv = org.client.get(f"{API}/sobjects/Invoice/{invoice}").json()
    assert (inv["TotalAmountWithTax"], inv["NetPaymentsApplied"], inv["Balance"]) == (
        120.0,
        110.0,
        10.0,
    )
