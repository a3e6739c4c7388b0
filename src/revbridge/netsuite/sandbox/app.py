"""The sandbox's ASGI application: NetSuite's REST paths, governance, faults and the admin API.

Request flow for a NetSuite path (``/services/rest/...`` and the CSV-import RESTlet)::

    GovernanceMiddleware   account concurrency limit (429), outage / random 5xx / 429 faults,
                           latency (while holding the slot), lost responses after commit
      └─ handler           TBA check (401/400), body parsing, record service / SuiteQL / jobs;
                           NetSuiteError becomes NetSuite's error body

``/sandbox/admin/...`` is the sandbox's own API (not NetSuite's): the accountant's back door
and the fault switches. It skips TBA, the concurrency limit and the faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from revbridge.netsuite.sandbox.auth import TokenAuthenticator
from revbridge.netsuite.sandbox.config import SandboxConfig
from revbridge.netsuite.sandbox.csv_import import CsvImport
from revbridge.netsuite.sandbox.errors import (
    ERROR_CONTENT_TYPE,
    ErrorDetail,
    NetSuiteError,
    bad_request,
    error_body,
)
from revbridge.netsuite.sandbox.faults import FaultState, parse_fault_spec
from revbridge.netsuite.sandbox.jobs import ASYNC_PREFIX, Job, JobRegistry, finish
from revbridge.netsuite.sandbox.query_filter import compile_filter
from revbridge.netsuite.sandbox.records import JsonObject, parse_body, parse_ref
from revbridge.netsuite.sandbox.rules import CreditHold
from revbridge.netsuite.sandbox.service import (
    RECORD_PREFIX,
    RecordService,
    Settings,
    paging,
)
from revbridge.netsuite.sandbox.storage import Storage
from revbridge.netsuite.sandbox.suiteql import SuiteQL

log = logging.getLogger("revbridge.netsuite.sandbox")

RESOURCE_TYPE = "application/vnd.oracle.resource+json; type=singular-resource"
COLLECTION_TYPE = "application/vnd.oracle.resource+json; type=collection"
RESTLET_PATH = "/app/site/hosting/restlet.nl"
CSV_IMPORT_SCRIPT = "customscript_revbridge_csv_import"
NETSUITE_PREFIXES = ("/services/rest/", RESTLET_PATH)
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOLDS: dict[str, CreditHold] = {"AUTO": "AUTO", "ON": "ON", "OFF": "OFF"}


@dataclass(slots=True)
class Counters:
    requests: int = 0
    throttled: int = 0
    faults: int = 0
    lost_responses: int = 0


class Sandbox:
    """The state of one running sandbox: storage, services, faults, governance, jobs."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.storage = Storage(config.data_path, config.clock)
        self.settings = Settings(enforce_credit_limit=config.credit_limit_handling == "enforce")
        self.service = RecordService(self.storage, self.settings)
        self.suiteql = SuiteQL(self.service)
        self.auth = TokenAuthenticator(config)
        self.faults = FaultState(config.faults)
        self.jobs = JobRegistry()
        self.csv = CsvImport(self.service)
        self.concurrency_limit = config.concurrency_limit
        self.in_flight = 0
        self.counters = Counters()
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Awaitable[None]) -> None:
        async def wrapper() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(wrapper())
        self._tasks.add(task)  # a task nobody references may be collected mid-run
        task.add_done_callback(self._tasks.discard)


# ---------------------------------------------------------------------------- responses


def _json(
    body: Any,
    status: int = 200,
    content_type: str = RESOURCE_TYPE,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=content_type, headers=headers)


def error_response(exc: NetSuiteError) -> Response:
    return _json(exc.body(), exc.status, ERROR_CONTENT_TYPE, exc.headers)


def _no_content(location: str | None = None) -> Response:
    return Response(status_code=204, headers={"Location": location} if location else None)


def _base_url(request: Request) -> str:
    host = request.headers.get("host")
    if host is None:
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{request.url.scheme}://{host}"


def _signed_url(request: Request) -> str:
    """The URL exactly as the client signed it: raw (still percent-encoded) path and query."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    url = _base_url(request) + raw.decode("latin-1")
    query = request.scope.get("query_string", b"")
    return f"{url}?{query.decode('latin-1')}" if query else url


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise bad_request(
            "INVALID_CONTENT", "The request body is empty; a JSON object is required."
        )
    try:
        return json.loads(raw, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request("INVALID_CONTENT", f"The request body is not valid JSON: {exc}.") from exc


Handler = Callable[[Sandbox, Request], Awaitable[Response]]


def _netsuite(handler: Handler, sandbox: Sandbox) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, run, and answer every refusal in NetSuite's error shape."""

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        failure = sandbox.auth.check(request.method, _signed_url(request), request.headers, body)
        if failure is not None:
            header = {"WWW-Authenticate": sandbox.auth.www_authenticate(failure)}
            code = "INVALID_LOGIN" if failure.status == 401 else "INVALID_REQUEST"
            detail = (
                "Invalid login attempt. For more details, see the Login Audit Trail in the "
                "NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail."
                if failure.status == 401
                else "The Authorization header is malformed or incomplete."
            )
            return error_response(
                NetSuiteError(
                    failure.status,
                    ErrorDetail(code=code, detail=detail, header="Authorization"),
                    headers=header,
                )
            )
        try:
            return await handler(sandbox, request)
        except NetSuiteError as exc:
            return error_response(exc)
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", request.method, request.url.path)
            return error_response(
                NetSuiteError(
                    500,
                    ErrorDetail(code="UNEXPECTED_ERROR", detail="An unexpected error occurred."),
                )
            )

    return endpoint


# ---------------------------------------------------------------------------- record service


def _url_path(request: Request) -> str:
    return request.url.path


async def _record_collection(sb: Sandbox, request: Request) -> Response:
    rt = sb.service.record_type(request.path_params["record_type"], _url_path(request))
    if request.method == "GET":
        limit, offset = paging(
            request.query_params.get("limit"), request.query_params.get("offset")
        )
        q = request.query_params.get("q")
        where = compile_filter(q) if q else None
        result = sb.service.list_records(
            rt,
            limit=limit,
            offset=offset,
            base_url=_base_url(request),
            url_path=_url_path(request),
            where=where,
        )
        return _json(result, content_type=COLLECTION_TYPE)
    sb.service.require_writable(rt)
    body = await _json_body(request)

    def create() -> Response:
        record_id = sb.service.create(rt, parse_body(rt, body))
        return _no_content(f"{_base_url(request)}{RECORD_PREFIX}/{rt.name}/{record_id}")

    return _maybe_async(sb, request, create)


async def _record_instance(sb: Sandbox, request: Request) -> Response:
    rt = sb.service.record_type(request.path_params["record_type"], _url_path(request))
    key = request.path_params["key"]
    path = _url_path(request)
    base = _base_url(request)
    if request.method == "GET":
        fields_param = request.query_params.get("fields")
        fields = [f.strip() for f in fields_param.split(",") if f.strip()] if fields_param else None
        expand = request.query_params.get("expandSubResources", "false").lower() == "true"
        record = sb.service.read(
            rt, key, base_url=base, url_path=path, fields=fields, expand=expand
        )
        return _json(record)
    sb.service.require_writable(rt)
    if request.method == "DELETE":

        def delete() -> Response:
            sb.service.delete(rt, key, url_path=path)
            return _no_content()

        return _maybe_async(sb, request, delete)
    body = await _json_body(request)
    if request.method == "PATCH":
        replace = {
            s.strip() for s in request.query_params.get("replace", "").split(",") if s.strip()
        }

        def patch() -> Response:
            sb.service.update(rt, key, parse_body(rt, body), url_path=path, replace=replace)
            return _no_content()

        return _maybe_async(sb, request, patch)
    if not key.startswith("eid:"):
        raise bad_request(
            "INVALID_REQUEST",
            "PUT (upsert) needs an external ID in the URL: .../{recordType}/eid:{externalId}.",
        )

    def upsert() -> Response:
        record_id, created = sb.service.upsert(rt, key[4:], parse_body(rt, body), url_path=path)
        return _no_content(f"{base}{RECORD_PREFIX}/{rt.name}/{record_id}" if created else None)

    return _maybe_async(sb, request, upsert)


def _maybe_async(sb: Sandbox, request: Request, run: Callable[[], Response]) -> Response:
    """Run a write now or, with ``Prefer: respond-async``, as a job whose result is the response."""
    if "respond-async" not in request.headers.get("prefer", "").lower():
        return run()
    job = sb.jobs.submit(
        "record", sb.storage.now(), request.headers.get("x-netsuite-idempotency-key")
    )
    try:
        response = run()
    except NetSuiteError as exc:
        finish(job, "failed", {"status": exc.status, "headers": exc.headers, "body": exc.body()})
    else:
        headers = {k: v for k, v in response.headers.items() if k.lower() == "location"}
        finish(job, "succeeded", {"status": response.status_code, "headers": headers})
    location = f"{_base_url(request)}{ASYNC_PREFIX}/{job.id}"
    return Response(
        status_code=202, headers={"Location": location, "Preference-Applied": "respond-async"}
    )


async def _record_sublist(sb: Sandbox, request: Request) -> Response:
    rt = sb.service.record_type(request.path_params["record_type"], _url_path(request))
    result = sb.service.sublist(
        rt,
        request.path_params["key"],
        request.path_params["sublist"],
        base_url=_base_url(request),
        url_path=_url_path(request),
    )
    return _json(result, content_type=COLLECTION_TYPE)


async def _suiteql(sb: Sandbox, request: Request) -> Response:
    limit, offset = paging(request.query_params.get("limit"), request.query_params.get("offset"))
    body = await _json_body(request)
    result = sb.suiteql.run(
        body, limit=limit, offset=offset, base_url=_base_url(request), url_path=_url_path(request)
    )
    return _json(result, content_type=COLLECTION_TYPE)


async def _governance(sb: Sandbox, request: Request) -> Response:
    return _json(
        {
            "accountConcurrencyLimit": sb.concurrency_limit,
            "unallocatedConcurrencyLimit": sb.concurrency_limit,
        }
    )


# ---------------------------------------------------------------------------- async jobs


async def _job(sb: Sandbox, request: Request) -> Response:
    job = sb.jobs.get(request.path_params["job_id"], _url_path(request))
    return _json(job.as_json(_base_url(request)))


async def _job_tasks(sb: Sandbox, request: Request) -> Response:
    job = sb.jobs.get(request.path_params["job_id"], _url_path(request))
    task = job.task_json(_base_url(request))
    return _json(
        {
            "links": [],
            "count": 1,
            "hasMore": False,
            "items": [task],
            "offset": 0,
            "totalResults": 1,
        },
        content_type=COLLECTION_TYPE,
    )


def _task(sb: Sandbox, request: Request) -> Job:
    job = sb.jobs.get(request.path_params["job_id"], _url_path(request))
    if request.path_params["task_id"] != job.id:
        raise NetSuiteError(
            404,
            ErrorDetail(
                code="NONEXISTENT_ID",
                detail="The task does not exist.",
                url_path=_url_path(request),
            ),
        )
    return job


async def _job_task(sb: Sandbox, request: Request) -> Response:
    return _json(_task(sb, request).task_json(_base_url(request)))


async def _job_task_result(sb: Sandbox, request: Request) -> Response:
    job = _task(sb, request)
    if not job.completed:
        raise NetSuiteError(
            404,
            ErrorDetail(
                code="NONEXISTENT_ID",
                detail="The task has not completed yet; poll the job until completed is true.",
                url_path=_url_path(request),
            ),
        )
    if job.kind == "record":
        result = job.result
        headers: dict[str, str] = dict(result.get("headers", {}))
        if "body" in result:
            return _json(result["body"], int(result["status"]), ERROR_CONTENT_TYPE, headers)
        return Response(status_code=int(result["status"]), headers=headers)
    return _json(job.result)


async def _restlet(sb: Sandbox, request: Request) -> Response:
    """The CSV-import RESTlet (sandbox stand-in for a custom RESTlet calling N/task CSV_IMPORT)."""
    script = request.query_params.get("script")
    if script != CSV_IMPORT_SCRIPT:
        raise NetSuiteError(
            400,
            ErrorDetail(
                code="INVALID_SCRIPT",
                detail=(
                    f"No RESTlet deployment for script {script!r}; "
                    f"this sandbox deploys {CSV_IMPORT_SCRIPT}."
                ),
                query_param="script",
            ),
        )
    if request.method != "POST":
        raise NetSuiteError(
            405,
            ErrorDetail(code="INVALID_REQUEST", detail="The CSV import RESTlet accepts POST only."),
        )
    record_type, text, mode = sb.csv.check_request(await _json_body(request))
    job = sb.jobs.submit(
        "csvImport", sb.storage.now(), request.headers.get("x-netsuite-idempotency-key")
    )
    sb.spawn(sb.csv.run(job, record_type, text, mode))
    location = f"{_base_url(request)}{ASYNC_PREFIX}/{job.id}"
    return _json(
        {"jobId": job.id, "taskId": job.id, "status": "PENDING", "location": location},
        headers={"Location": location},
        content_type="application/json",
    )


# ---------------------------------------------------------------------------- admin API


def _admin(handler: Handler, sandbox: Sandbox) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(sandbox, request)
        except NetSuiteError as exc:
            return error_response(exc)
        except ValueError as exc:
            return error_response(bad_request("INVALID_VALUE", str(exc)))

    return endpoint


def _fault_state(sb: Sandbox) -> JsonObject:
    remaining = sb.faults.outage_remaining_s()
    return {
        "spec": sb.faults.spec.describe(),
        "outageRemainingSeconds": None
        if remaining is None or remaining == float("inf")
        else remaining,
        "outageActive": remaining is not None,
    }


async def _admin_faults(sb: Sandbox, request: Request) -> Response:
    if request.method == "PUT":
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("spec", ""), str):
            raise bad_request("INVALID_CONTENT", 'Send {"spec": "outage=30s,latency=50ms,..."}.')
        sb.faults.apply(parse_fault_spec(body.get("spec", "")))
        log.info("sandbox: faults set to %r", sb.faults.spec.describe())
    elif request.method == "DELETE":
        sb.faults.apply(parse_fault_spec(""))
    return _json(_fault_state(sb), content_type="application/json")


async def _admin_concurrency(sb: Sandbox, request: Request) -> Response:
    if request.method == "PUT":
        body = await _json_body(request)
        limit = body.get("limit") if isinstance(body, dict) else None
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise bad_request("INVALID_VALUE", "limit must be a positive integer.", path="limit")
        sb.concurrency_limit = limit
    return _json(
        {"limit": sb.concurrency_limit, "inFlight": sb.in_flight}, content_type="application/json"
    )


async def _admin_settings(sb: Sandbox, request: Request) -> Response:
    if request.method == "PUT":
        body = await _json_body(request)
        handling = body.get("creditLimitHandling") if isinstance(body, dict) else None
        if handling not in ("enforce", "ignore"):
            raise bad_request(
                "INVALID_VALUE",
                "creditLimitHandling must be enforce or ignore.",
                path="creditLimitHandling",
            )
        sb.settings.enforce_credit_limit = handling == "enforce"
    return _json(
        {"creditLimitHandling": "enforce" if sb.settings.enforce_credit_limit else "ignore"},
        content_type="application/json",
    )


async def _admin_payment(sb: Sandbox, request: Request) -> Response:
    """The accountant records a customer payment in the ERP (same rules as the REST record)."""
    rt = sb.service.record_type("customerPayment", _url_path(request))
    record_id = sb.service.create(rt, parse_body(rt, await _json_body(request)))
    return _json({"id": str(record_id)}, 201, content_type="application/json")


async def _admin_credit(sb: Sandbox, request: Request) -> Response:
    """Set a customer's credit hold override and/or credit limit (null clears the limit)."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise bad_request("INVALID_CONTENT", "The request body must be a JSON object.")
    customer_id = request.path_params["customer_id"]
    if not customer_id.isdigit():
        raise bad_request("INVALID_VALUE", "The customer id must be an internal id.")
    hold = body.get("creditHoldOverride")
    if hold is not None and (
        not isinstance(hold, str) or hold.upper() not in ("AUTO", "ON", "OFF")
    ):
        raise bad_request(
            "INVALID_VALUE",
            "creditHoldOverride must be AUTO, ON or OFF.",
            path="creditHoldOverride",
        )
    limit = body.get("creditLimit")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int | Decimal) or limit < 0
    ):
        raise bad_request(
            "INVALID_VALUE", "creditLimit must be a non-negative number.", path="creditLimit"
        )
    sb.service.set_credit_hold(
        int(customer_id),
        hold=None if hold is None else _HOLDS[hold.upper()],
        credit_limit=None if limit is None else Decimal(limit),
        clear_limit="creditLimit" in body and limit is None,
    )
    record = sb.service.read(
        sb.service.record_type("customer", _url_path(request)),
        customer_id,
        base_url=_base_url(request),
        url_path=_url_path(request),
    )
    return _json(record, content_type="application/json")


async def _admin_period(sb: Sandbox, request: Request) -> Response:
    """Close or reopen the period given by ``{"id": "3"}`` or ``{"date": "2026-03-15"}``."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise bad_request("INVALID_CONTENT", "The request body must be a JSON object.")
    action = request.path_params["action"]
    if action == "year":
        year = body.get("year")
        if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 9999:
            raise bad_request("INVALID_VALUE", "year must be a four-digit year.", path="year")
        return _json(
            {"created": [str(i) for i in sb.service.open_year(year)]},
            content_type="application/json",
        )
    if action not in ("close", "reopen"):
        raise NetSuiteError(
            404,
            ErrorDetail(
                code="INVALID_ID",
                detail=f"Unknown action {action!r}: use close, reopen or year.",
                url_path=request.url.path,
            ),
        )
    if "date" in body:
        try:
            period_id = sb.service.period_for(date.fromisoformat(str(body["date"])))
        except ValueError:
            raise bad_request("INVALID_VALUE", "date must be YYYY-MM-DD.", path="date") from None
    else:
        period_id = parse_ref(body, "id").id or 0
    return _json(
        sb.service.set_period_closed(period_id, action == "close"), content_type="application/json"
    )


async def _admin_audit(sb: Sandbox, request: Request) -> Response:
    return _json(
        {
            "items": [
                {
                    "at": a.at.isoformat(),
                    "method": a.method,
                    "url": a.url,
                    "consumerKey": a.consumer_key,
                    "token": a.token,
                    "success": a.success,
                    "reason": a.reason,
                }
                for a in reversed(sb.auth.audit)
            ]
        },
        content_type="application/json",
    )


async def _admin_status(sb: Sandbox, request: Request) -> Response:
    return _json(
        {
            "accountId": sb.config.account_id,
            "concurrencyLimit": sb.concurrency_limit,
            "inFlight": sb.in_flight,
            "requests": sb.counters.requests,
            "throttled": sb.counters.throttled,
            "faultsInjected": sb.counters.faults,
            "lostResponses": sb.counters.lost_responses,
            "faults": _fault_state(sb),
        },
        content_type="application/json",
    )


# ---------------------------------------------------------------------------- governance


async def _send(send: Send, response: Response) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class GovernanceMiddleware:
    """Concurrency limit and fault injection around the NetSuite paths (pure ASGI, so that a
    response can be withheld after the handler has committed)."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(NETSUITE_PREFIXES):
            await self.app(scope, receive, send)
            return
        sb = self.sandbox
        sb.counters.requests += 1
        if sb.in_flight >= sb.concurrency_limit:
            sb.counters.throttled += 1
            await _send(send, _throttled(sb.concurrency_limit))
            return
        sb.in_flight += 1
        try:
            fault = sb.faults.before_request()
            if fault is not None:
                sb.counters.faults += 1
                await _send(send, _fault_response(*fault, limit=sb.concurrency_limit))
                return
            latency = sb.faults.spec.latency.total_seconds()
            if latency:
                await asyncio.sleep(latency)
            if scope["method"] in _WRITES and sb.faults.lose_response():
                await self._lose_response(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            sb.in_flight -= 1

    async def _lose_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request to completion (it commits), then withhold its result."""
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        status = messages[0]["status"] if messages else 500
        if not 200 <= status < 300:
            for message in messages:
                await send(message)
            return
        self.sandbox.counters.lost_responses += 1
        log.warning(
            "sandbox fault: response to %s %s lost after commit", scope["method"], scope["path"]
        )
        if self.sandbox.faults.spec.lost_response == "error":
            await _send(
                send,
                error_response(
                    NetSuiteError(
                        500,
                        ErrorDetail(
                            code="UNEXPECTED_ERROR", detail="An unexpected error occurred."
                        ),
                    )
                ),
            )
            return
        # Promise a body and stop after one byte: the server closes the connection, and the
        # client sees it drop mid-response, never the status it was waiting for.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})


def _throttled(limit: int) -> Response:
    return error_response(
        NetSuiteError(
            429,
            ErrorDetail(
                code="CONCURRENCY_LIMIT_EXCEEDED",
                detail=(
                    f"The request exceeds the account concurrency limit of {limit} requests "
                    "being processed at once. Retry the request later."
                ),
            ),
        )
    )


def _fault_response(kind: str, status: int, *, limit: int) -> Response:
    if kind == "throttle":
        return _throttled(limit)
    if status == 503:
        detail = ErrorDetail(
            code="SERVICE_UNAVAILABLE",
            detail="The service is temporarily unavailable. Retry the request later.",
        )
    else:
        detail = ErrorDetail(code="UNEXPECTED_ERROR", detail="An unexpected error occurred.")
    return _json(error_body(status, [detail]), status, ERROR_CONTENT_TYPE)


# ---------------------------------------------------------------------------- factory


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """The sandbox as an ASGI app; ``app.state.sandbox`` holds its ``Sandbox`` state."""
    sandbox = Sandbox(config or SandboxConfig())

    def ns(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return _netsuite(handler, sandbox)

    def admin(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return _admin(handler, sandbox)

    rest = "/services/rest"
    routes = [
        Route(f"{rest}/record/v1/{{record_type}}", ns(_record_collection), methods=["GET", "POST"]),
        Route(
            f"{rest}/record/v1/{{record_type}}/{{key}}",
            ns(_record_instance),
            methods=["GET", "PATCH", "PUT", "DELETE"],
        ),
        Route(
            f"{rest}/record/v1/{{record_type}}/{{key}}/{{sublist}}",
            ns(_record_sublist),
            methods=["GET"],
        ),
        Route(f"{rest}/query/v1/suiteql", ns(_suiteql), methods=["POST"]),
        Route(f"{rest}/system/v1/governanceLimits", ns(_governance), methods=["GET"]),
        Route(f"{ASYNC_PREFIX}/{{job_id}}", ns(_job), methods=["GET"]),
        Route(f"{ASYNC_PREFIX}/{{job_id}}/task", ns(_job_tasks), methods=["GET"]),
        Route(f"{ASYNC_PREFIX}/{{job_id}}/task/{{task_id}}", ns(_job_task), methods=["GET"]),
        Route(
            f"{ASYNC_PREFIX}/{{job_id}}/task/{{task_id}}/result",
            ns(_job_task_result),
            methods=["GET"],
        ),
        Route(RESTLET_PATH, ns(_restlet), methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/sandbox/admin/status", admin(_admin_status), methods=["GET"]),
        Route("/sandbox/admin/faults", admin(_admin_faults), methods=["GET", "PUT", "DELETE"]),
        Route("/sandbox/admin/concurrencyLimit", admin(_admin_concurrency), methods=["GET", "PUT"]),
        Route("/sandbox/admin/settings", admin(_admin_settings), methods=["GET", "PUT"]),
        Route("/sandbox/admin/customerPayment", admin(_admin_payment), methods=["POST"]),
        Route(
            "/sandbox/admin/customer/{customer_id}/credit", admin(_admin_credit), methods=["PUT"]
        ),
        Route("/sandbox/admin/accountingPeriod/{action}", admin(_admin_period), methods=["POST"]),
        Route("/sandbox/admin/loginAudit", admin(_admin_audit), methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        sandbox.storage.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own 404/405 answers, in NetSuite's error shape.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "INVALID_ID", 405: "INVALID_REQUEST"}.get(status, "UNEXPECTED_ERROR")
        return error_response(
            NetSuiteError(
                status,
                ErrorDetail(
                    code=code,
                    detail=f"{request.method} {request.url.path} is not supported.",
                    url_path=request.url.path,
                ),
                headers=exc.headers if isinstance(exc, HTTPException) else None,
            )
        )

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.add_middleware(GovernanceMiddleware, sandbox=sandbox)
    app.state.sandbox = sandbox
    return app
