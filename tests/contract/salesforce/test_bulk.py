"""Bulk API 2.0: ingest with a failing row, query jobs paged by Sforce-Locator."""

from __future__ import annotations

import csv
import io
from typing import Any

from .conftest import API, Org, wait_for


def job_state(org: Org, kind: str, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = org.client.get(f"{API}/jobs/{kind}/{job_id}").json()
    return body


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ingest_upsert_reports_successes_and_failures(org: Org) -> None:
    """An upsert job processes good rows, reports the bad row with its error, and counts both."""
    org.create("Account", {"Name": "Existing", "ERP_Customer_Number__c": "C-2"})
    job = org.client.post(
        f"{API}/jobs/ingest",
        json={
            "object": "Account",
            "externalIdFieldName": "ERP_Customer_Number__c",
            "contentType": "CSV",
            "operation": "upsert",
            "lineEnding": "LF",
        },
    ).json()
    assert job["state"] == "Open"
    assert job["contentUrl"] == f"services/data/v62.0/jobs/ingest/{job['id']}/batches"
    data = (
        "ERP_Customer_Number__c,Name,Credit_Limit__c\n"
        "C-1,Acme,1000\n"
        "C-2,Existing Renamed,\n"
        "C-3,Bad Limit,lots\n"
        "C-4,,5\n"
    )
    upload = org.client.put(
        f"{API}/jobs/ingest/{job['id']}/batches",
        content=data.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 201
    closed = org.client.patch(f"{API}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert closed.json()["state"] == "UploadComplete"
    wait_for(lambda: job_state(org, "ingest", job["id"])["state"] == "JobComplete")
    final = job_state(org, "ingest", job["id"])
    assert (final["numberRecordsProcessed"], final["numberRecordsFailed"]) == (4, 2)
    ok = rows(org.client.get(f"{API}/jobs/ingest/{job['id']}/successfulResults/").text)
    assert [(r["sf__Created"], r["ERP_Customer_Number__c"]) for r in ok] == [
        ("true", "C-1"),
        ("false", "C-2"),
    ]
    failed = rows(org.client.get(f"{API}/jobs/ingest/{job['id']}/failedResults/").text)
    assert [r["ERP_Customer_Number__c"] for r in failed] == ["C-3", "C-4"]
    assert failed[0]["sf__Error"].startswith("JSON_PARSER_ERROR:")
    assert failed[1]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    unprocessed = org.client.get(f"{API}/jobs/ingest/{job['id']}/unprocessedrecords/").text
    assert rows(unprocessed) == []
    names = org.records("SELECT Name FROM Account ORDER BY ERP_Customer_Number__c")
    assert [r["Name"] for r in names] == ["Acme", "Existing Renamed"]


def test_ingest_job_refuses_uploads_after_close_and_can_abort(org: Org) -> None:
    """A closed job takes no more data; an open job can be aborted and reports its rows."""
    job = org.client.post(
        f"{API}/jobs/ingest", json={"object": "Account", "operation": "insert"}
    ).json()
    org.client.put(
        f"{API}/jobs/ingest/{job['id']}/batches",
        content=b"Name\nOne\n",
        headers={"Content-Type": "text/csv"},
    )
    aborted = org.client.patch(f"{API}/jobs/ingest/{job['id']}", json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    late = org.client.put(
        f"{API}/jobs/ingest/{job['id']}/batches",
        content=b"Name\nTwo\n",
        headers={"Content-Type": "text/csv"},
    )
    assert late.status_code == 409
    bad = org.client.post(f"{API}/jobs/ingest", json={"object": "Nope", "operation": "insert"})
    assert bad.status_code == 400


def test_query_job_results_are_paged_by_locator(org: Org) -> None:
    """A query job completes and serves CSV pages linked by Sforce-Locator until 'null'."""
    parent = org.create("Account", {"Name": "Top"})
    for n in range(5):
        org.create("Account", {"Name": f"Bulk {n}", "ParentId": parent})
    job = org.client.post(
        f"{API}/jobs/query",
        json={
            "operation": "query",
            "query": "SELECT Id, Name, Parent.Name FROM Account"
            " WHERE ParentId != null ORDER BY Name",
        },
    ).json()
    wait_for(lambda: job_state(org, "query", job["id"])["state"] == "JobComplete")
    page = org.client.get(f"{API}/jobs/query/{job['id']}/results", params={"maxRecords": 3})
    assert page.headers["Sforce-NumberOfRecords"] == "3"
    first = rows(page.text)
    assert list(first[0]) == ["Id", "Name", "Parent.Name"]
    assert [r["Name"] for r in first] == ["Bulk 0", "Bulk 1", "Bulk 2"]
    assert first[0]["Parent.Name"] == "Top"
    locator = page.headers["Sforce-Locator"]
    rest = org.client.get(
        f"{API}/jobs/query/{job['id']}/results", params={"maxRecords": 3, "locator": locator}
    )
    assert [r["Name"] for r in rows(rest.text)] == ["Bulk 3", "Bulk 4"]
    assert rest.headers["Sforce-Locator"] == "null"
    other_version = org.client.get(f"/services/data/v61.0/jobs/query/{job['id']}/results")
    assert other_version.status_code == 409
    malformed = org.client.post(
        f"{API}/jobs/query", json={"operation": "query", "query": "SELECT FROM"}
    )
    assert malformed.status_code == 400
    assert malformed.json()[0]["errorCode"] == "MALFORMED_QUERY"
