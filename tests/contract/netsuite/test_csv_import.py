"""CSV import through the RESTlet stand-in, run as an async job with per-row results."""

from __future__ import annotations

from typing import Any

from tests.contract.netsuite.conftest import NetSuiteClient, error_codes, wait_for_job

RESTLET = "/app/site/hosting/restlet.nl"
PARAMS = {"script": "customscript_revbridge_csv_import", "deploy": "1"}


def _submit(client: NetSuiteClient, body: dict[str, Any], **headers: str) -> Any:
    return client.session.post(
        client.sandbox.base_url + RESTLET,
        params=PARAMS,
        json=body,
        auth=client.auth,
        headers=headers,
        timeout=10,
    )


def _result(client: NetSuiteClient, job_id: str) -> dict[str, Any]:
    job = wait_for_job(client, job_id)
    assert job["completed"] is True
    result: dict[str, Any] = client.get(f"/async/v1/job/{job_id}/task/{job_id}/result").json()
    return result


def test_a_customer_import_reports_each_row_and_keeps_the_good_ones(client: NetSuiteClient) -> None:
    csv_text = (
        "External ID,Company Name,Email,Currency,Terms,Credit Limit\n"
        "SF-A,Alpha Ltd,ap@alpha.example,USD,Net 30,1000\n"
        "SF-B,,ap@beta.example,USD,Net 30,1000\n"
        "SF-C,Gamma GmbH,ap@gamma.example,EUR,Net 60,2500.50\n"
    )
    submitted = _submit(client, {"recordType": "customer", "csv": csv_text})
    assert submitted.status_code == 200
    job_id = submitted.json()["jobId"]
    assert submitted.headers["Location"].endswith(f"/services/rest/async/v1/job/{job_id}")
    result = _result(client, job_id)
    assert (result["rows"], result["succeeded"], result["failed"]) == (3, 2, 1)
    rows = {r["row"]: r for r in result["items"]}
    assert rows[1]["status"] == "success"
    assert rows[2]["status"] == "error"
    assert rows[2]["o:errorDetails"][0]["o:errorPath"] == "companyName"
    gamma = client.get(f"/record/v1/customer/{rows[3]['id']}").json()
    assert gamma["externalId"] == "SF-C"
    assert gamma["currency"]["refName"] == "EUR"
    assert gamma["creditLimit"] == 2500.5
    assert client.get("/record/v1/customer/eid:SF-B").status_code == 404


def test_a_journal_import_groups_lines_by_external_id(client: NetSuiteClient) -> None:
    csv_text = (
        "externalId,tranDate,memo,account,debit,credit,lineMemo\n"
        "JE-1,,Deferral,4000,100,,release\n"
        "JE-1,,Deferral,2400,,100,release\n"
        "JE-2,,Broken,4000,100,,\n"
        "JE-2,,Broken,2400,,90,\n"
    )
    result = _result(
        client, _submit(client, {"recordType": "journalEntry", "csv": csv_text}).json()["jobId"]
    )
    statuses = [(r["row"], r["status"]) for r in result["items"]]
    assert statuses == [(1, "success"), (2, "success"), (3, "error"), (4, "error")]
    journal = client.get("/record/v1/journalEntry/eid:JE-1?expandSubResources=true").json()
    assert [line.get("debit") for line in journal["line"]["items"]] == [100, None]


def test_an_unknown_column_fails_the_whole_job(client: NetSuiteClient) -> None:
    job_id = _submit(
        client, {"recordType": "customer", "csv": "Company Name,Shoe Size\nA,9\n"}
    ).json()["jobId"]
    assert wait_for_job(client, job_id)["progress"] == "failed"
    assert _result(client, job_id)["error"] == "Unknown column: Shoe Size"
    job_id = _submit(
        client, {"recordType": "customer", "csv": "Company Name,Shoe Size,Hat\nA,9,L\n"}
    ).json()["jobId"]
    assert _result(client, job_id)["error"] == "Unknown columns: Shoe Size, Hat"


def test_a_resubmitted_idempotency_key_does_not_run_a_second_import(client: NetSuiteClient) -> None:
    body = {"recordType": "customer", "csv": "externalId,companyName\nSF-Z,Zeta\n"}
    first = _submit(client, body, **{"X-NetSuite-Idempotency-Key": "batch-7"})
    assert first.status_code == 200
    again = _submit(client, body, **{"X-NetSuite-Idempotency-Key": "batch-7"})
    assert again.status_code == 400
    assert error_codes(again) == ["IDEMPOTENCY_ERROR"]
    assert again.json()["title"] == "Conflict"
    _result(client, first.json()["jobId"])
    assert client.get("/record/v1/customer").json()["totalResults"] == 1


def test_the_restlet_is_signed_like_any_netsuite_call(client: NetSuiteClient) -> None:
    import requests

    response = requests.post(
        client.sandbox.base_url + RESTLET,
        params=PARAMS,
        json={"recordType": "customer"},
        timeout=10,
    )
    assert response.status_code == 401
