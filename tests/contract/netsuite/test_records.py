"""Record service: NetSuite's verbs, status codes, headers and error bodies."""

from __future__ import annotations

from tests.contract.netsuite.conftest import NetSuiteClient, error_codes, invoice_body


def test_create_answers_204_with_location_and_the_record_reads_back(
    client: NetSuiteClient,
) -> None:
    response = client.post(
        "/record/v1/customer",
        {"companyName": "Acme Ltd", "externalId": "SF-001", "creditLimit": 50000},
    )
    assert response.status_code == 204
    assert response.content == b""
    location = response.headers["Location"]
    assert location.startswith(client.rest + "/record/v1/customer/")
    record = client.get(f"/record/v1/customer/{location.rsplit('/', 1)[1]}").json()
    assert record["companyName"] == "Acme Ltd"
    assert record["creditLimit"] == 50000
    assert record["subsidiary"]["id"] == "1"
    assert record["currency"]["refName"] == "USD"
    assert record["links"][0]["rel"] == "self"


def test_read_by_external_id_finds_the_same_record(
    client: NetSuiteClient, customer_id: str
) -> None:
    by_eid = client.get("/record/v1/customer/eid:SF-001")
    assert by_eid.status_code == 200
    assert by_eid.json()["id"] == customer_id


def test_upsert_creates_then_updates_without_a_second_record(client: NetSuiteClient) -> None:
    body = {"companyName": "Globex", "subsidiary": {"id": "1"}, "terms": {"id": "2"}}
    first = client.put("/record/v1/customer/eid:SF-GLOBEX", body)
    assert first.status_code == 204
    assert "Location" in first.headers
    second = client.put("/record/v1/customer/eid:SF-GLOBEX", {**body, "companyName": "Globex Corp"})
    assert second.status_code == 204
    assert "Location" not in second.headers
    listing = client.get("/record/v1/customer").json()
    assert listing["totalResults"] == 1
    assert client.get("/record/v1/customer/eid:SF-GLOBEX").json()["companyName"] == "Globex Corp"


def test_upsert_of_an_invoice_twice_keeps_one_set_of_lines(
    client: NetSuiteClient, customer_id: str
) -> None:
    for _ in range(2):
        response = client.put("/record/v1/invoice/eid:SF-INV-1", invoice_body(customer_id, 300))
        assert response.status_code == 204
    invoice = client.get("/record/v1/invoice/eid:SF-INV-1?expandSubResources=true").json()
    assert invoice["total"] == 300
    assert invoice["item"]["totalResults"] == 1


def test_patch_changes_only_the_fields_sent(client: NetSuiteClient, customer_id: str) -> None:
    response = client.patch(f"/record/v1/customer/{customer_id}", {"email": "ar@acme.example"})
    assert response.status_code == 204
    record = client.get(f"/record/v1/customer/{customer_id}").json()
    assert record["email"] == "ar@acme.example"
    assert record["companyName"] == "Acme Ltd"


def test_patch_of_an_invoice_line_updates_that_line(
    client: NetSuiteClient, customer_id: str
) -> None:
    invoice = client.create("invoice", invoice_body(customer_id, 100))
    response = client.patch(
        f"/record/v1/invoice/{invoice}", {"item": {"items": [{"line": 1, "rate": 150.0}]}}
    )
    assert response.status_code == 204
    lines = client.get(f"/record/v1/invoice/{invoice}/item").json()["items"]
    assert [line["amount"] for line in lines] == [150.0]


def test_delete_answers_204_and_the_record_is_gone(
    client: NetSuiteClient, customer_id: str
) -> None:
    assert client.delete(f"/record/v1/customer/{customer_id}").status_code == 204
    missing = client.get(f"/record/v1/customer/{customer_id}")
    assert missing.status_code == 404


def test_unknown_id_is_a_404_in_netsuite_error_form(client: NetSuiteClient) -> None:
    response = client.get("/record/v1/customer/999")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/vnd.oracle.resource+json")
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"].startswith("https://")
    assert body["o:errorDetails"][0]["o:errorCode"] == "NONEXISTENT_ID"
    assert client.get("/record/v1/customer/eid:NOPE").status_code == 404
    assert client.get("/record/v1/notARecord/1").status_code == 404


def test_unknown_body_field_is_refused_with_its_path(client: NetSuiteClient) -> None:
    response = client.post("/record/v1/customer", {"companyName": "X", "colour": "blue"})
    assert response.status_code == 400
    detail = response.json()["o:errorDetails"][0]
    assert detail["o:errorCode"] == "NONEXISTENT_FIELD"
    assert detail["o:errorPath"] == "colour"


def test_duplicate_external_id_on_create_is_refused(
    client: NetSuiteClient, customer_id: str
) -> None:
    response = client.post("/record/v1/customer", {"companyName": "Again", "externalId": "SF-001"})
    assert response.status_code == 400
    assert error_codes(response) == ["USER_ERROR"]


def test_fields_parameter_limits_the_body(client: NetSuiteClient, customer_id: str) -> None:
    record = client.get(
        f"/record/v1/customer/{customer_id}", params={"fields": "companyName"}
    ).json()
    assert set(record) == {"links", "id", "companyName"}


def test_sublists_are_links_unless_expanded(client: NetSuiteClient, customer_id: str) -> None:
    invoice = client.create("invoice", invoice_body(customer_id))
    plain = client.get(f"/record/v1/invoice/{invoice}").json()
    assert "items" not in plain["item"]
    expanded = client.get(f"/record/v1/invoice/{invoice}?expandSubResources=true").json()
    assert expanded["item"]["items"][0]["item"]["id"] == "1"


def test_list_pages_with_limit_and_offset(client: NetSuiteClient) -> None:
    for n in range(5):
        client.create("customer", {"companyName": f"Customer {n}"})
    page = client.get("/record/v1/customer", params={"limit": 2, "offset": 2}).json()
    assert page["count"] == 2
    assert page["totalResults"] == 5
    assert page["hasMore"] is True
    assert page["offset"] == 2
    assert {link["rel"] for link in page["links"]} >= {"next", "prev", "self", "last"}


def test_list_filters_with_q(client: NetSuiteClient) -> None:
    client.create("customer", {"companyName": "Acme Ltd"})
    client.create("customer", {"companyName": "Globex"})
    page = client.get("/record/v1/customer", params={"q": 'companyName START_WITH "Ac"'}).json()
    assert page["totalResults"] == 1
    bad = client.get("/record/v1/customer", params={"q": "companyName WIBBLE"})
    assert bad.status_code == 400


def test_async_write_returns_202_and_a_job_with_the_original_response(
    client: NetSuiteClient,
) -> None:
    response = client.post(
        "/record/v1/customer",
        {"companyName": "Async Inc"},
        headers={"Prefer": "respond-async", "X-NetSuite-Idempotency-Key": "k-1"},
    )
    assert response.status_code == 202
    job_path = response.headers["Location"].split("/services/rest", 1)[1]
    job = client.get(job_path).json()
    assert job["completed"] is True
    result = client.get(f"{job_path}/task/{job['id']}/result")
    assert result.status_code == 204
    assert "/record/v1/customer/" in result.headers["Location"]
    again = client.post(
        "/record/v1/customer",
        {"companyName": "Async Inc"},
        headers={"Prefer": "respond-async", "X-NetSuite-Idempotency-Key": "k-1"},
    )
    assert again.status_code == 400
    assert error_codes(again) == ["IDEMPOTENCY_ERROR"]
    assert client.get("/record/v1/customer").json()["totalResults"] == 1


def test_an_unsupported_method_is_a_405_in_netsuite_form(client: NetSuiteClient) -> None:
    response = client.patch("/record/v1/customer", {"companyName": "x"})
    assert response.status_code == 405
    assert response.json()["status"] == 405
    assert "POST" in response.headers["Allow"]


def test_reference_records_are_read_only(client: NetSuiteClient) -> None:
    assert client.get("/record/v1/currency/2").json()["symbol"] == "EUR"
    assert client.post("/record/v1/currency", {"name": "Bitcoin"}).status_code == 405


def test_an_unknown_path_is_a_404_in_netsuite_form(client: NetSuiteClient) -> None:
    response = client.get("/record/v2/customer")
    assert response.status_code == 404
    assert response.json()["o:errorDetails"][0]["o:urlPath"] == "/services/rest/record/v2/customer"


def test_a_refused_async_write_completes_as_failed_with_the_error(client: NetSuiteClient) -> None:
    response = client.post(
        "/record/v1/invoice", invoice_body("4242"), headers={"Prefer": "respond-async"}
    )
    assert response.status_code == 202
    job_path = response.headers["Location"].split("/services/rest", 1)[1]
    job = client.get(job_path).json()
    assert job["progress"] == "failed"
    result = client.get(f"{job_path}/task/{job['id']}/result")
    assert result.status_code == 400
    assert error_codes(result) == ["INVALID_VALUE"]
