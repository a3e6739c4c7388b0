"""The REST API under ``/services/data/vXX.X/``: resources, describe, sObject CRUD and upsert,
SOQL query with cursors, composite and sObject Collections, limits.

Handlers take an :class:`ApiRequest` and return an :class:`ApiResponse`; a
:class:`SalesforceError` raised anywhere below becomes Salesforce's error array. The HTTP layer
adds authentication, API-usage counting and faults around :meth:`RestApi.handle`; composite
subrequests call :meth:`RestApi.dispatch` directly and so count once, as in Salesforce.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from revbridge.salesforce.sandbox.errors import ApiError, SalesforceError, fail, not_found
from revbridge.salesforce.sandbox.http_types import ApiRequest, ApiResponse
from revbridge.salesforce.sandbox.ids import make_id
from revbridge.salesforce.sandbox.limits import ApiUsage
from revbridge.salesforce.sandbox.org import MultipleMatches, Org
from revbridge.salesforce.sandbox.schema import FieldDef, ObjectDef
from revbridge.salesforce.sandbox.soql import execute
from revbridge.salesforce.sandbox.values import format_datetime, parse_datetime, to_wire

MIN_VERSION = 31
MAX_VERSION = 67
MAX_COMPOSITE_SUBREQUESTS = 25
MAX_COMPOSITE_QUERIES = 5
MAX_COLLECTION_RECORDS = 200
_SEASONS = ("Winter", "Spring", "Summer")
_ROLLED_BACK = ApiError(
    error_code="ALL_OR_NONE_OPERATION_ROLLED_BACK",
    message="Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)
_HALTED = ApiError(
    error_code="PROCESSING_HALTED",
    message="The transaction was rolled back since another operation in the same transaction "
    "failed.",
)


def version_label(major: int) -> str:
    """``Summer '26`` for 67: three releases a year, Winter first, Winter '24 being 59.0."""
    offset = major - 59
    return f"{_SEASONS[offset % 3]} '{24 + offset // 3}"


def supported_versions() -> list[dict[str, str]]:
    return [
        {"label": version_label(v), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
        for v in range(MIN_VERSION, MAX_VERSION + 1)
    ]


def is_supported_version(version: str) -> bool:
    major, dot, minor = version.partition(".")
    return (
        dot == "." and minor == "0" and major.isdigit() and MIN_VERSION <= int(major) <= MAX_VERSION
    )


def parse_json_body(body: bytes) -> Any:
    if not body.strip():
        raise fail(400, "JSON_PARSER_ERROR", "The request body is empty.")
    try:
        return json.loads(body, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail(
            400,
            "JSON_PARSER_ERROR",
            f"Unexpected character at [line:{getattr(exc, 'lineno', 1)}]",
        ) from None


def error_response(exc: SalesforceError) -> ApiResponse:
    return ApiResponse(status=exc.status, json=exc.rest_body())


@dataclass(slots=True)
class _Cursor:
    records: list[dict[str, Any]]
    total_size: int
    batch_size: int
    last_used: datetime


class _Rollback(Exception):
    """Unwinds an ``allOrNone`` unit of work after its results are collected."""


class RestApi:
    """The REST resources of one sandbox org."""

    def __init__(
        self,
        org: Org,
        usage: ApiUsage,
        *,
        bulk: Callable[[ApiRequest, list[str]], ApiResponse] | None = None,
    ) -> None:
        self.org = org
        self.usage = usage
        self.bulk = bulk
        self._cursors: dict[str, _Cursor] = {}
        self._cursor_lock = threading.Lock()

    def forget_cursors(self) -> None:
        with self._cursor_lock:
            self._cursors.clear()

    # -- entry points ----------------------------------------------------------------------------

    def handle(self, req: ApiRequest) -> ApiResponse:
        """One top-level request; errors become Salesforce error arrays."""
        try:
            return self.dispatch(req)
        except SalesforceError as exc:
            return error_response(exc)

    def dispatch(self, req: ApiRequest) -> ApiResponse:
        if not is_supported_version(req.version):
            raise not_found()
        parts = [unquote(p) for p in req.path.split("/") if p]
        if not parts:
            return self._only(
                req, ("GET",), lambda: ApiResponse(status=200, json=self._resources(req))
            )
        head = parts[0]
        if head == "sobjects":
            return self._sobjects(req, parts[1:])
        if head in ("query", "queryAll"):
            return self._query(req, parts[1:], include_deleted=head == "queryAll")
        if head == "limits" and len(parts) == 1:
            return self._only(req, ("GET",), lambda: ApiResponse(status=200, json=self._limits()))
        if head == "composite":
            if len(parts) == 1:
                return self._only(req, ("POST",), lambda: self._composite(req))
            if parts[1] == "sobjects":
                return self._collections(req, parts[2:])
        if head == "jobs" and self.bulk is not None and len(parts) >= 2:
            return self.bulk(req, parts[1:])
        raise not_found()

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _only(
        req: ApiRequest, allowed: tuple[str, ...], handler: Callable[[], ApiResponse]
    ) -> ApiResponse:
        """``handler()`` if the request's method is one of ``allowed``, else 405."""
        if req.method not in allowed:
            raise fail(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{req.method}' not allowed. Allowed are {','.join(allowed)}",
            )
        return handler()

    def _url(self, req: ApiRequest, rest: str) -> str:
        return f"/services/data/v{req.version}/{rest}"

    def _resources(self, req: ApiRequest) -> dict[str, str]:
        names = ["sobjects", "query", "queryAll", "limits", "composite", "jobs"]
        return {name: self._url(req, name) for name in names}

    def _limits(self) -> dict[str, dict[str, int]]:
        now = self.org.config.clock.now()
        used = self.usage.used(now)
        limit = self.usage.daily_limit
        return {
            "DailyApiRequests": {"Max": limit, "Remaining": max(limit - used, 0)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkV2QueryFileStorageMB": {"Max": 1048576, "Remaining": 1048576},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }

    # -- describe --------------------------------------------------------------------------------

    def _object_summary(self, req: ApiRequest, obj: ObjectDef) -> dict[str, Any]:
        base = self._url(req, f"sobjects/{obj.name}")
        return {
            "name": obj.name,
            "label": obj.label,
            "labelPlural": obj.label + "s",
            "keyPrefix": obj.key_prefix,
            "custom": obj.custom,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "layoutable": True,
            "replicateable": True,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def _field_describe(self, f: FieldDef) -> dict[str, Any]:
        return {
            "name": f.name,
            "label": f.label or f.name,
            "type": f.type,
            "length": f.length if f.type not in ("boolean", "date", "datetime") else 0,
            "nillable": f.nillable,
            "createable": f.createable,
            "updateable": f.updateable,
            "externalId": f.external_id,
            "unique": f.unique,
            "idLookup": f.id_lookup or f.external_id,
            "calculated": f.calculated,
            "autoNumber": f.auto_number is not None,
            "defaultedOnCreate": f.default is not None or f.type == "boolean",
            "defaultValue": f.default,
            "referenceTo": list(f.reference_to),
            "relationshipName": f.relationship_name,
            "cascadeDelete": f.master_detail,
            "restrictedPicklist": f.restricted_picklist,
            "picklistValues": [
                {"active": True, "defaultValue": v == f.default, "label": v, "value": v}
                for v in f.picklist
            ],
            "precision": 18 if f.type in ("currency", "double", "percent") else 0,
            "scale": 2 if f.type == "currency" else 0,
            "custom": f.name.endswith("__c"),
        }

    def _describe(self, req: ApiRequest, obj: ObjectDef) -> dict[str, Any]:
        out = self._object_summary(req, obj)
        out["fields"] = [self._field_describe(f) for f in obj.fields]
        out["childRelationships"] = [
            {
                "childSObject": child.name,
                "field": f.name,
                "cascadeDelete": f.master_detail,
                "relationshipName": None,
            }
            for child in self.org.objects.values()
            for f in child.fields
            if f.reference_to == (obj.name,)
        ]
        return out

    # -- sobjects --------------------------------------------------------------------------------

    def _sobjects(self, req: ApiRequest, parts: list[str]) -> ApiResponse:
        if not parts:
            return self._only(
                req,
                ("GET",),
                lambda: ApiResponse(
                    status=200,
                    json={
                        "encoding": "UTF-8",
                        "maxBatchSize": 200,
                        "sobjects": [
                            self._object_summary(req, o) for o in self.org.objects.values()
                        ],
                    },
                ),
            )
        obj = self.org.object_for_rest(parts[0])
        if len(parts) == 1:
            return self._only(
                req,
                (
                    "GET",
                    "POST",
                ),
                lambda: (
                    ApiResponse(
                        status=200,
                        json={"objectDescribe": self._object_summary(req, obj), "recentItems": []},
                    )
                    if req.method == "GET"
                    else self._create(req, obj)
                ),
            )
        second = parts[1]
        if len(parts) == 2 and second == "describe":
            return self._only(
                req, ("GET",), lambda: ApiResponse(status=200, json=self._describe(req, obj))
            )
        if len(parts) == 2 and second in ("updated", "deleted"):
            return self._only(
                req, ("GET",), lambda: self._changed(req, obj, deleted=second == "deleted")
            )
        if len(parts) == 2:
            if second == "Id" and req.method == "POST":
                return self._create(req, obj)
            return self._only(
                req,
                (
                    "GET",
                    "PATCH",
                    "DELETE",
                ),
                lambda: self._by_id(req, obj, second),
            )
        if len(parts) == 3:
            return self._only(
                req,
                (
                    "GET",
                    "PATCH",
                    "DELETE",
                    "POST",
                ),
                lambda: self._by_external_id(req, obj, second, parts[2]),
            )
        raise not_found()

    def _create(self, req: ApiRequest, obj: ObjectDef) -> ApiResponse:
        body = parse_json_body(req.body)
        if not isinstance(body, dict):
            raise fail(
                400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from START_ARRAY"
            )
        record_id = self.org.create(obj, body)
        return ApiResponse(
            status=201,
            json={"id": record_id, "success": True, "errors": []},
            headers={"Location": self._url(req, f"sobjects/{obj.name}/{record_id}")},
        )

    def _by_id(self, req: ApiRequest, obj: ObjectDef, record_id: str) -> ApiResponse:
        if req.method == "GET":
            record = self.org.load(obj, record_id)
            if record is None:
                raise not_found()
            fields = req.query.get("fields")
            wanted = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
            return ApiResponse(
                status=200, json=self.org.wire_record(obj, record, req.version, wanted)
            )
        if req.method == "PATCH":
            body = parse_json_body(req.body)
            if not isinstance(body, dict):
                raise fail(
                    400,
                    "JSON_PARSER_ERROR",
                    "Cannot deserialize instance of sObject from START_ARRAY",
                )
            self.org.update(obj, record_id, body)
            return ApiResponse(status=204)
        self.org.delete(obj, record_id)
        return ApiResponse(status=204)

    def _by_external_id(
        self, req: ApiRequest, obj: ObjectDef, field_name: str, value: str
    ) -> ApiResponse:
        ext = self.org.external_id_field(obj, field_name)
        if req.method in ("GET", "DELETE"):
            matches = self.org.find_by_external_id(obj, ext, value)
            if not matches:
                raise not_found()
            if len(matches) > 1:
                return self._multiple(req, obj, matches)
            if req.method == "DELETE":
                self.org.delete(obj, matches[0])
                return ApiResponse(status=204)
            record = self.org.load(obj, matches[0])
            assert record is not None
            return ApiResponse(status=200, json=self.org.wire_record(obj, record, req.version))
        body = parse_json_body(req.body)
        if not isinstance(body, dict):
            raise fail(
                400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from START_ARRAY"
            )
        if ext.name == "Id" and not self.org.find_by_external_id(obj, ext, value):
            raise not_found()
        update_only = req.query.get("updateOnly", "").lower() == "true"
        try:
            result = self.org.upsert(obj, ext.name, value, body, update_only=update_only)
        except MultipleMatches as exc:
            return self._multiple(req, obj, exc.ids)
        payload = {"id": result.id, "success": True, "errors": [], "created": result.created}
        if result.created:
            return ApiResponse(
                status=201,
                json=payload,
                headers={"Location": self._url(req, f"sobjects/{obj.name}/{result.id}")},
            )
        if int(req.version.split(".")[0]) < 46:
            return ApiResponse(status=204)
        return ApiResponse(status=200, json=payload)

    def _multiple(self, req: ApiRequest, obj: ObjectDef, ids: list[str]) -> ApiResponse:
        return ApiResponse(
            status=300, json=[self._url(req, f"sobjects/{obj.name}/{i}") for i in ids]
        )

    def _changed(self, req: ApiRequest, obj: ObjectDef, *, deleted: bool) -> ApiResponse:
        try:
            start = format_datetime(parse_datetime(req.query["start"]))
            end = format_datetime(parse_datetime(req.query["end"]))
        except (KeyError, ValueError):
            raise fail(
                400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 datetimes"
            ) from None
        rows = self.org.store.modified_between(obj.name, start, end, deleted=deleted)
        if deleted:
            return ApiResponse(
                status=200,
                json={
                    "deletedRecords": [{"id": i, "deletedDate": d} for i, d in rows],
                    "earliestDateAvailable": start,
                    "latestDateCovered": end,
                },
            )
        return ApiResponse(status=200, json={"ids": [i for i, _ in rows], "latestDateCovered": end})

    # -- query -----------------------------------------------------------------------------------

    def run_query(
        self, text: str, version: str, *, include_deleted: bool
    ) -> tuple[int, list[dict[str, Any]]]:
        org = self.org
        result = execute(
            text,
            objects=org.objects,
            fetch_all=lambda o: org.records(o, include_deleted=include_deleted),
            fetch_where=lambda o, f, ids: org.records_where(
                o, f, ids, include_deleted=include_deleted
            ),
            load=org.load_any,
            today=org.config.clock.now().date(),
            record_url=lambda o, i: f"/services/data/v{version}/sobjects/{o.name}/{i}",
            wire=to_wire,
        )
        return result.total_size, result.records

    def _batch_size(self, req: ApiRequest) -> int:
        size = self.org.config.query_batch_size
        options = req.header("sforce-query-options") or ""
        for option in options.split(","):
            key, _, value = option.strip().partition("=")
            if key.strip().lower() == "batchsize" and value.strip().isdigit():
                # A hint Salesforce clamps to 200..2000.
                size = min(max(int(value.strip()), 200), 2000)
        return size

    def _query(self, req: ApiRequest, parts: list[str], *, include_deleted: bool) -> ApiResponse:
        if req.method != "GET":
            raise fail(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{req.method}' not allowed. Allowed are GET",
            )
        now = self.org.config.clock.now()
        if parts:
            locator, _, offset_text = parts[0].rpartition("-")
            with self._cursor_lock:
                self._expire_cursors(now)
                cursor = self._cursors.get(locator)
            if cursor is None or not offset_text.isdigit():
                raise fail(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cursor.last_used = now
            return ApiResponse(status=200, json=self._page(req, locator, cursor, int(offset_text)))
        text = req.query.get("q")
        if not text:
            raise fail(400, "MALFORMED_QUERY", "A query string has to be specified")
        total, records = self.run_query(text, req.version, include_deleted=include_deleted)
        batch = self._batch_size(req)
        if len(records) <= batch:
            return ApiResponse(
                status=200, json={"totalSize": total, "done": True, "records": records}
            )
        locator = make_id("01g", "5e", self.org.store.next_sequence("query_locator"))
        cursor = _Cursor(records=records, total_size=total, batch_size=batch, last_used=now)
        with self._cursor_lock:
            self._cursors[locator] = cursor
        return ApiResponse(status=200, json=self._page(req, locator, cursor, 0))

    def _page(self, req: ApiRequest, locator: str, cursor: _Cursor, offset: int) -> dict[str, Any]:
        chunk = cursor.records[offset : offset + cursor.batch_size]
        out: dict[str, Any] = {"totalSize": cursor.total_size, "done": True, "records": chunk}
        following = offset + cursor.batch_size
        if following < len(cursor.records):
            out["done"] = False
            out["nextRecordsUrl"] = self._url(req, f"query/{locator}-{following}")
        else:
            with self._cursor_lock:
                self._cursors.pop(locator, None)
        return out

    def _expire_cursors(self, now: datetime) -> None:
        ttl: timedelta = self.org.config.query_cursor_ttl
        for key in [k for k, c in self._cursors.items() if now - c.last_used > ttl]:
            del self._cursors[key]

    # -- composite -------------------------------------------------------------------------------

    @contextmanager
    def _all_or_none(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return
        try:
            with self.org.unit_of_work():
                yield
        except _Rollback:
            pass

    def _composite(self, req: ApiRequest) -> ApiResponse:
        body = parse_json_body(req.body)
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise fail(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        subrequests: list[Any] = body["compositeRequest"]
        all_or_none = bool(body.get("allOrNone", False))
        if len(subrequests) > MAX_COMPOSITE_SUBREQUESTS:
            raise fail(
                400,
                "INVALID_REQUEST",
                f"A composite request can have at most {MAX_COMPOSITE_SUBREQUESTS} subrequests",
            )
        heavy = sum(
            1
            for s in subrequests
            if isinstance(s, dict)
            and any(
                k in str(s.get("url", "")) for k in ("/query", "/queryAll", "/composite/sobjects")
            )
        )
        if heavy > MAX_COMPOSITE_QUERIES:
            raise fail(
                400,
                "INVALID_REQUEST",
                f"A composite request can have at most {MAX_COMPOSITE_QUERIES} query or "
                "sObject Collections subrequests",
            )
        results: list[dict[str, Any]] = []
        with self._all_or_none(all_or_none):
            references: dict[str, dict[str, Any]] = {}
            failed = False
            for sub in subrequests:
                ref_id = str(sub.get("referenceId", "")) if isinstance(sub, dict) else ""
                if failed and all_or_none:
                    results.append(self._sub_result(ref_id, 400, [_HALTED.rest_body()]))
                    continue
                response = self._run_subrequest(sub, references)
                results.append(
                    self._sub_result(ref_id, response.status, response.json, response.headers)
                )
                if response.status < 300 and isinstance(response.json, dict):
                    references[ref_id] = response.json
                elif response.status >= 400:
                    failed = True
            if failed and all_or_none:
                # The failed subrequest keeps its own error; every other one reports the rollback.
                for item in results:
                    if item["httpStatusCode"] < 400:
                        item.update(httpStatusCode=400, body=[_HALTED.rest_body()], httpHeaders={})
                raise _Rollback
        return ApiResponse(status=200, json={"compositeResponse": results})

    @staticmethod
    def _sub_result(
        ref_id: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return {
            "body": body,
            "httpHeaders": dict(headers or {}),
            "httpStatusCode": status,
            "referenceId": ref_id,
        }

    def _run_subrequest(self, sub: Any, references: dict[str, dict[str, Any]]) -> ApiResponse:
        try:
            if not isinstance(sub, dict) or "method" not in sub or "url" not in sub:
                raise fail(
                    400, "INVALID_REQUEST", "Each subrequest needs method, url and referenceId"
                )
            url = _substitute(str(sub["url"]), references, url_encode=True)
            body = sub.get("body")
            if body is not None:
                body = _substitute_json(body, references)
            split = urlsplit(url)
            prefix = "/services/data/v"
            if not split.path.startswith(prefix):
                raise fail(400, "INVALID_REQUEST", f"Unsupported subrequest url: {url}")
            version, _, rest = split.path[len(prefix) :].partition("/")
            headers = {k.lower(): str(v) for k, v in (sub.get("httpHeaders") or {}).items()}
            sub_req = ApiRequest(
                method=str(sub["method"]).upper(),
                version=version,
                path=rest.strip("/"),
                query=dict(parse_qsl(split.query)),
                headers=headers,
                body=b"" if body is None else json.dumps(body, default=_json_number).encode(),
            )
            if sub_req.path.startswith("composite") and not sub_req.path.startswith(
                "composite/sobjects"
            ):
                raise fail(400, "INVALID_REQUEST", "Composite requests cannot be nested")
            return self.dispatch(sub_req)
        except SalesforceError as exc:
            return error_response(exc)

    # -- sObject Collections ---------------------------------------------------------------------

    def _collections(self, req: ApiRequest, parts: list[str]) -> ApiResponse:
        if req.method == "GET" and len(parts) == 1:
            obj = self.org.object_for_rest(parts[0])
            ids = [i for i in req.query.get("ids", "").split(",") if i]
            fields = [f for f in req.query.get("fields", "").split(",") if f]
            if not ids or not fields:
                raise fail(400, "MALFORMED_QUERY", "ids and fields are required")
            out: list[Any] = []
            for record_id in ids:
                record = self.org.load(obj, record_id)
                out.append(
                    None
                    if record is None
                    else self.org.wire_record(obj, record, req.version, fields)
                )
            return ApiResponse(status=200, json=out)
        if req.method == "DELETE" and not parts:
            ids = [i for i in req.query.get("ids", "").split(",") if i]
            all_or_none = req.query.get("allOrNone", "false").lower() == "true"
            self._check_collection_size(len(ids))
            return self._run_collection(
                [(None, i) for i in ids], all_or_none, lambda item: self._delete_item(item[1] or "")
            )
        if req.method in ("POST", "PATCH"):
            body = parse_json_body(req.body)
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                raise fail(400, "JSON_PARSER_ERROR", "records is required")
            records: list[Any] = body["records"]
            all_or_none = bool(body.get("allOrNone", False))
            self._check_collection_size(len(records))
            if req.method == "PATCH" and len(parts) == 2:
                obj = self.org.object_for_rest(parts[0])
                ext = self.org.external_id_field(obj, parts[1])
                return self._run_collection(
                    [(r, None) for r in records],
                    all_or_none,
                    lambda item: self._upsert_item(obj, ext, item[0]),
                    upsert=True,
                )
            if parts:
                raise not_found()
            if req.method == "POST":
                return self._run_collection(
                    [(r, None) for r in records],
                    all_or_none,
                    lambda item: self._create_item(item[0]),
                )
            return self._run_collection(
                [(r, None) for r in records], all_or_none, lambda item: self._update_item(item[0])
            )
        raise fail(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed.")

    @staticmethod
    def _check_collection_size(count: int) -> None:
        if count > MAX_COLLECTION_RECORDS:
            raise fail(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_COLLECTION_RECORDS} records "
                "into this call",
            )

    def _object_of_item(self, record: Any) -> ObjectDef:
        if not isinstance(record, dict):
            raise fail(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
        attributes = record.get("attributes")
        type_name = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(type_name, str):
            raise fail(400, "INVALID_TYPE", "Must send a concrete entity type.")
        obj = self.org.find_object(type_name)
        if obj is None:
            raise fail(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
        return obj

    def _create_item(self, record: Any) -> dict[str, Any]:
        obj = self._object_of_item(record)
        if any(k.lower() == "id" for k in record):
            raise fail(400, "INVALID_FIELD", "cannot specify Id in an insert call", ("Id",))
        return {"id": self.org.create(obj, record), "success": True, "errors": []}

    def _update_item(self, record: Any) -> dict[str, Any]:
        obj = self._object_of_item(record)
        record_id = next((v for k, v in record.items() if k.lower() == "id"), None)
        if not isinstance(record_id, str) or not record_id:
            raise fail(400, "MISSING_ARGUMENT", "Id not specified in an update call", ("Id",))
        body = {k: v for k, v in record.items() if k.lower() != "id"}
        self.org.update(obj, record_id, body)
        loaded = self.org.load(obj, record_id)
        assert loaded is not None
        return {"id": loaded["Id"], "success": True, "errors": []}

    def _upsert_item(self, obj: ObjectDef, ext: FieldDef, record: Any) -> dict[str, Any]:
        item_obj = self._object_of_item(record)
        if item_obj is not obj:
            raise fail(400, "INVALID_TYPE", f"Records must all be of type {obj.name}")
        value = next((v for k, v in record.items() if k.lower() == ext.name.lower()), None)
        if value is None or value == "":
            raise fail(
                400,
                "MISSING_ARGUMENT",
                f"{ext.name} not specified",
                (ext.name,),
            )
        try:
            result = self.org.upsert(obj, ext.name, str(value), record, body_has_key=True)
        except MultipleMatches as exc:
            raise fail(
                300,
                "DUPLICATE_EXTERNAL_ID",
                f"{ext.name}: more than one record found for external id field: {exc.ids}",
                (ext.name,),
            ) from None
        return {"id": result.id, "success": True, "errors": [], "created": result.created}

    def _delete_item(self, record_id: str) -> dict[str, Any]:
        found = self.org.object_of_id(record_id)
        if found is None:
            raise fail(400, "MALFORMED_ID", f"malformed id {record_id}")
        self.org.delete(found, record_id)
        loaded = self.org.load(found, record_id, include_deleted=True)
        return {"id": None if loaded is None else loaded["Id"], "success": True, "errors": []}

    def _run_collection(
        self,
        items: list[tuple[Any, str | None]],
        all_or_none: bool,
        run: Callable[[tuple[Any, str | None]], dict[str, Any]],
        *,
        upsert: bool = False,
    ) -> ApiResponse:
        results: list[dict[str, Any]] = []
        with self._all_or_none(all_or_none):
            any_failed = False
            for item in items:
                try:
                    with self.org.savepoint():
                        results.append(run(item))
                except SalesforceError as exc:
                    any_failed = True
                    failure: dict[str, Any] = {
                        "success": False,
                        "errors": [e.dml_body() for e in exc.errors],
                    }
                    if item[1] is not None:
                        failure["id"] = item[1]
                    if upsert:
                        failure["created"] = False
                    results.append(failure)
            if all_or_none and any_failed:
                for index, result in enumerate(results):
                    if result["success"]:
                        rolled: dict[str, Any] = {
                            "success": False,
                            "errors": [_ROLLED_BACK.dml_body()],
                        }
                        if items[index][1] is not None:
                            rolled["id"] = items[index][1]
                        results[index] = rolled
                raise _Rollback
        return ApiResponse(status=200, json=results)


def _json_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _lookup_reference(expression: str, references: dict[str, dict[str, Any]]) -> Any:
    """The value of ``ref.field`` or ``ref.records[0].Id`` from earlier subrequest results."""
    ref_id, _, rest = expression.partition(".")
    if ref_id not in references:
        raise fail(
            400,
            "PROCESSING_HALTED",
            f"Invalid reference specified. No value for {expression} found in {ref_id}. "
            f"Provided referenceId ({ref_id}) must be a previously processed subrequest.",
        )
    value: Any = references[ref_id]
    for segment in rest.split(".") if rest else []:
        name, _, index_part = segment.partition("[")
        if name:
            value = value.get(name) if isinstance(value, dict) else None
        if index_part:
            index_text = index_part.rstrip("]")
            if (
                not index_text.isdigit()
                or not isinstance(value, list)
                or int(index_text) >= len(value)
            ):
                value = None
            else:
                value = value[int(index_text)]
        if value is None:
            raise fail(
                400,
                "PROCESSING_HALTED",
                f"Invalid reference specified. No value for {expression} found in {ref_id}.",
            )
    return value


def _substitute(
    text: str, references: dict[str, dict[str, Any]], *, url_encode: bool = False
) -> str:
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("@{", pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        end = text.find("}", start)
        if end < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:start])
        value = _lookup_reference(text[start + 2 : end], references)
        out.append(str(value))
        pos = end + 1


def _substitute_json(value: Any, references: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, str):
        if value.startswith("@{") and value.endswith("}") and value.count("@{") == 1:
            return _lookup_reference(value[2:-1], references)
        return _substitute(value, references)
    if isinstance(value, list):
        return [_substitute_json(v, references) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_json(v, references) for k, v in value.items()}
    return value
