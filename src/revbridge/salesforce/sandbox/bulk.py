"""Bulk API 2.0: ingest jobs (CSV upload, close, asynchronous processing, result CSVs) and query
jobs (asynchronous SOQL with CSV results paged by ``Sforce-Locator``).

Jobs live in memory for the life of the server. A background worker moves closed jobs through
``UploadComplete`` → ``InProgress`` → ``JobComplete`` a slice of rows at a time, so a client that
polls sees the real state sequence.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from revbridge.salesforce.sandbox.errors import SalesforceError, fail, not_found
from revbridge.salesforce.sandbox.http_types import ApiRequest, ApiResponse
from revbridge.salesforce.sandbox.ids import make_id
from revbridge.salesforce.sandbox.org import MultipleMatches, Org
from revbridge.salesforce.sandbox.soql import execute, parse
from revbridge.salesforce.sandbox.values import format_datetime, to_wire

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
ROWS_PER_TICK = 500
_DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}


@dataclass(slots=True)
class BulkJob:
    id: str
    kind: str  # "ingest" or "query"
    operation: str
    sobject: str
    api_version: str
    created_date: str
    state: str
    external_id_field: str | None = None
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    query: str | None = None
    upload: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    next_row: int = 0
    successes: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    result_columns: list[str] = field(default_factory=list)
    result_rows: list[list[str]] = field(default_factory=list)
    error_message: str | None = None
    modstamp: str = ""
    created_by: str = ""

    def info(self, base_version: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": self.created_by,
            "createdDate": self.created_date,
            "systemModstamp": self.modstamp or self.created_date,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if self.kind == "ingest":
            out["externalIdFieldName"] = self.external_id_field
            out["contentUrl"] = f"services/data/v{base_version}/jobs/ingest/{self.id}/batches"
            out["jobType"] = "V2Ingest"
            out["numberRecordsProcessed"] = len(self.successes) + len(self.failures)
            out["numberRecordsFailed"] = len(self.failures)
        else:
            out["query"] = self.query
            out["jobType"] = "V2Query"
            out["numberRecordsProcessed"] = len(self.result_rows)
        out["retries"] = 0
        out["totalProcessingTime"] = 0
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out


def _csv_text(columns: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")
    return str(value)


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


class BulkJobs:
    """The Bulk API 2.0 resources and the worker that processes closed jobs."""

    def __init__(self, org: Org) -> None:
        self._org = org
        self._jobs: dict[str, BulkJob] = {}
        self._lock = threading.Lock()

    def forget_jobs(self) -> None:
        with self._lock:
            self._jobs.clear()

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, req: ApiRequest, parts: list[str]) -> ApiResponse:
        kind = parts[0]
        if kind not in ("ingest", "query"):
            raise not_found()
        if len(parts) == 1:
            if req.method == "POST":
                return self._create(req, kind)
            if req.method == "GET":
                jobs = [j.info(req.version) for j in self._jobs.values() if j.kind == kind]
                return ApiResponse(
                    status=200, json={"done": True, "records": jobs, "nextRecordsUrl": None}
                )
            raise fail(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed.")
        job = self._jobs.get(parts[1])
        if job is None or job.kind != kind:
            raise fail(404, "NOT_FOUND", "The requested resource does not exist")
        if len(parts) == 2:
            if req.method == "GET":
                return ApiResponse(status=200, json=job.info(req.version))
            if req.method == "PATCH":
                return self._change_state(req, job)
            if req.method == "DELETE":
                if job.state in ("Open", "UploadComplete", "InProgress"):
                    raise fail(400, "INVALIDJOBSTATE", f"Job {job.id} is not finished")
                with self._lock:
                    del self._jobs[job.id]
                return ApiResponse(status=204)
        resource = parts[2].lower() if len(parts) == 3 else ""
        if kind == "ingest" and resource == "batches" and req.method == "PUT":
            return self._upload(req, job)
        if (
            req.method == "GET"
            and kind == "ingest"
            and resource
            in (
                "successfulresults",
                "failedresults",
                "unprocessedrecords",
            )
        ):
            return self._ingest_results(job, resource)
        if req.method == "GET" and kind == "query" and resource == "results":
            return self._query_results(req, job)
        raise not_found()

    def _create(self, req: ApiRequest, kind: str) -> ApiResponse:
        try:
            body = json.loads(req.body or b"{}")
        except json.JSONDecodeError:
            raise fail(400, "JSON_PARSER_ERROR", "Unexpected character in job request") from None
        if not isinstance(body, dict):
            raise fail(400, "JSON_PARSER_ERROR", "A job request must be a JSON object")
        now = format_datetime(self._org.config.clock.now())
        job_id = make_id("750", "5e", self._org.store.next_sequence("bulk_job"))
        operation = str(body.get("operation", ""))
        delimiter = str(body.get("columnDelimiter", "COMMA"))
        if delimiter not in _DELIMITERS:
            raise fail(400, "INVALIDJOB", f"Unknown columnDelimiter {delimiter}")
        if kind == "ingest":
            if operation not in INGEST_OPERATIONS:
                raise fail(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
            obj = self._org.find_object(str(body.get("object", "")))
            if obj is None:
                raise fail(
                    400, "INVALIDJOB", f"InvalidJob : Unable to find object: {body.get('object')}"
                )
            ext = body.get("externalIdFieldName")
            if operation == "upsert":
                if not isinstance(ext, str):
                    raise fail(400, "INVALIDJOB", "InvalidJob : External ID was blank for upsert")
                self._org.external_id_field(obj, ext)
            job = BulkJob(
                id=job_id,
                kind=kind,
                operation=operation,
                sobject=obj.name,
                api_version=req.version,
                created_date=now,
                created_by=self._org.user_id,
                state="Open",
                external_id_field=ext if isinstance(ext, str) else None,
                line_ending=str(body.get("lineEnding", "LF")),
                column_delimiter=delimiter,
            )
        else:
            if operation not in QUERY_OPERATIONS:
                raise fail(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
            query = str(body.get("query", ""))
            records = self._run_query(query, req.version, operation == "queryAll")
            columns: list[str] = []
            flat = [_flatten(r) for r in records]
            for row in flat:
                for key in row:
                    if key not in columns:
                        columns.append(key)
            if not columns:
                columns = [path.text for path in parse(query).fields]
            job = BulkJob(
                id=job_id,
                kind=kind,
                operation=operation,
                sobject=parse(query).sobject,
                api_version=req.version,
                created_date=now,
                created_by=self._org.user_id,
                state="UploadComplete",
                column_delimiter=delimiter,
                query=query,
                result_columns=columns,
                result_rows=[[_csv_cell(row.get(c)) for c in columns] for row in flat],
            )
        with self._lock:
            self._jobs[job_id] = job
        return ApiResponse(status=200, json=job.info(req.version))

    def _run_query(self, text: str, version: str, include_deleted: bool) -> list[dict[str, Any]]:
        org = self._org
        result = execute(
            text,
            objects=org.objects,
            fetch_all=lambda o: org.records(o, include_deleted=include_deleted),
            load=org.load_any,
            today=org.config.clock.now().date(),
            record_url=lambda o, i: f"/services/data/v{version}/sobjects/{o.name}/{i}",
            wire=to_wire,
        )
        return result.records

    def _upload(self, req: ApiRequest, job: BulkJob) -> ApiResponse:
        if job.state != "Open":
            raise fail(409, "INVALIDJOBSTATE", f"Job {job.id} is not open for uploads")
        content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "text/csv":
            raise fail(415, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
        job.upload.append(req.body.decode("utf-8-sig"))
        return ApiResponse(status=201)

    def _change_state(self, req: ApiRequest, job: BulkJob) -> ApiResponse:
        try:
            body = json.loads(req.body or b"{}")
        except json.JSONDecodeError:
            raise fail(400, "JSON_PARSER_ERROR", "Unexpected character in state change") from None
        state = body.get("state") if isinstance(body, dict) else None
        if state == "Aborted":
            if job.state in ("JobComplete", "Failed", "Aborted"):
                raise fail(400, "INVALIDJOBSTATE", f"Job {job.id} is already finished")
            job.state = "Aborted"
        elif state == "UploadComplete" and job.kind == "ingest":
            if job.state != "Open":
                raise fail(400, "INVALIDJOBSTATE", f"Job {job.id} is not open")
            self._parse_upload(job)
            job.state = "UploadComplete"
        else:
            raise fail(400, "INVALIDJOBSTATE", f"Cannot change state to {state}")
        job.modstamp = format_datetime(self._org.config.clock.now())
        return ApiResponse(status=200, json=job.info(req.version))

    def _parse_upload(self, job: BulkJob) -> None:
        delimiter = _DELIMITERS[job.column_delimiter]
        for chunk in job.upload:
            reader = csv.reader(io.StringIO(chunk), delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                continue
            if job.columns and header != job.columns:
                job.state = "Failed"
                job.error_message = "InvalidBatch : All uploads must share the same header"
                return
            job.columns = header
            job.rows.extend(row for row in reader if row)
        job.upload.clear()

    def _ingest_results(self, job: BulkJob, resource: str) -> ApiResponse:
        if resource == "successfulresults":
            text = _csv_text(["sf__Id", "sf__Created", *job.columns], job.successes)
        elif resource == "failedresults":
            text = _csv_text(["sf__Id", "sf__Error", *job.columns], job.failures)
        else:
            remaining = job.rows[job.next_row :] if job.state in ("Aborted", "Failed") else []
            text = _csv_text(job.columns, remaining)
        return ApiResponse(status=200, text=text, content_type="text/csv")

    def _query_results(self, req: ApiRequest, job: BulkJob) -> ApiResponse:
        if req.version != job.api_version:
            raise fail(409, "INVALIDJOBSTATE", "Results must be fetched with the job's API version")
        if job.state != "JobComplete":
            raise fail(400, "INVALIDJOBSTATE", f"Job {job.id} is not complete")
        locator = req.query.get("locator") or "0"
        max_records = req.query.get("maxRecords") or "50000"
        if not locator.isdigit() or not max_records.isdigit() or int(max_records) < 1:
            raise fail(400, "INVALIDLOCATOR", "Invalid locator or maxRecords")
        start, size = int(locator), int(max_records)
        rows = job.result_rows[start : start + size]
        following = start + size
        next_locator = str(following) if following < len(job.result_rows) else "null"
        return ApiResponse(
            status=200,
            text=_csv_text(job.result_columns, rows, _DELIMITERS[job.column_delimiter]),
            content_type="text/csv",
            headers={"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(len(rows))},
        )

    # -- processing ------------------------------------------------------------------------------

    def process_tick(self) -> None:
        """Advance every closed job by one slice of rows."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.state == "UploadComplete":
                job.state = "InProgress"
            elif job.state == "InProgress":
                if job.kind == "query":
                    job.state = "JobComplete"
                else:
                    self._process_rows(job)
            else:
                continue
            job.modstamp = format_datetime(self._org.config.clock.now())

    def _process_rows(self, job: BulkJob) -> None:
        obj = self._org.objects[job.sobject]
        end = min(job.next_row + ROWS_PER_TICK, len(job.rows))
        for row in job.rows[job.next_row : end]:
            body = self._row_body(job.columns, row)
            try:
                record_id, created = self._apply(job, obj.name, body)
                job.successes.append([record_id, "true" if created else "false", *row])
            except SalesforceError as exc:
                error = exc.errors[0]
                text = f"{error.error_code}:{error.message}:{','.join(error.fields)} --"
                given_id = body.get("Id")
                job.failures.append([given_id if isinstance(given_id, str) else "", text, *row])
        job.next_row = end
        if end >= len(job.rows):
            job.state = "JobComplete"

    @staticmethod
    def _row_body(columns: list[str], row: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name, value in zip(columns, row, strict=False):
            if value == "":
                continue  # an empty cell leaves the field alone; #N/A nulls it
            cell: Any = None if value == "#N/A" else value
            relationship, dot, field_name = name.partition(".")
            if dot:
                body.setdefault(relationship, {})[field_name] = cell
            else:
                body[name] = cell
        return body

    def _apply(self, job: BulkJob, sobject: str, body: dict[str, Any]) -> tuple[str, bool]:
        org = self._org
        obj = org.objects[sobject]
        record_id = next((v for k, v in body.items() if k.lower() == "id"), None)
        if job.operation == "insert":
            return org.create(obj, body), True
        if job.operation in ("update", "delete", "hardDelete"):
            if not isinstance(record_id, str):
                raise fail(400, "MISSING_ARGUMENT", "Id not specified", ("Id",))
            if job.operation == "update":
                org.update(obj, record_id, {k: v for k, v in body.items() if k.lower() != "id"})
            else:
                org.delete(obj, record_id)
            loaded = org.load(obj, record_id, include_deleted=True)
            return (str(loaded["Id"]) if loaded else record_id), False
        assert job.external_id_field is not None
        ext = org.external_id_field(obj, job.external_id_field)
        value = next((v for k, v in body.items() if k.lower() == ext.name.lower()), None)
        if not isinstance(value, str) or not value:
            raise fail(400, "MISSING_ARGUMENT", f"{ext.name} not specified", (ext.name,))
        try:
            result = org.upsert(obj, ext.name, value, body, body_has_key=True)
        except MultipleMatches as exc:
            raise fail(
                300, "DUPLICATE_EXTERNAL_ID", f"more than one record found: {exc.ids}", (ext.name,)
            ) from None
        return result.id, result.created

    async def run(self, interval_s: float) -> None:
        while True:
            self.process_tick()
            await asyncio.sleep(interval_s)
