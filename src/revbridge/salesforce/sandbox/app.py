"""The HTTP face of the sandbox org: a Starlette application.

Layers, outermost first, for every ``/services/data/vXX.X/...`` request: outage fault (503),
concurrent long-request limit (403 ``REQUEST_LIMIT_EXCEEDED``), latency fault, bearer-token check
(401 ``INVALID_SESSION_ID``), daily API limit (403 ``REQUEST_LIMIT_EXCEEDED``), error-rate fault
(500 ``UNKNOWN_EXCEPTION``), then :class:`RestApi`. Every such response
carries ``Sforce-Limit-Info``; the versions list does not, as in Salesforce.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revbridge.salesforce.sandbox.auth import Authenticator, OAuthError
from revbridge.salesforce.sandbox.bulk import BulkJobs
from revbridge.salesforce.sandbox.cometd import CometdServer
from revbridge.salesforce.sandbox.config import SandboxConfig
from revbridge.salesforce.sandbox.events import ChangeEvents
from revbridge.salesforce.sandbox.faults import (
    FaultState,
    FaultSyntaxError,
    format_faults,
    parse_faults,
)
from revbridge.salesforce.sandbox.http_types import ApiRequest, ApiResponse
from revbridge.salesforce.sandbox.limits import ApiUsage
from revbridge.salesforce.sandbox.org import Org
from revbridge.salesforce.sandbox.outbound import OutboundNotifier
from revbridge.salesforce.sandbox.rest import RestApi, is_supported_version, supported_versions
from revbridge.salesforce.sandbox.store import Store
from revbridge.salesforce.sandbox.values import json_default

_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
_SERVER_UNAVAILABLE = [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}]


class Sandbox:
    """Everything one sandbox org holds: store, org, auth, usage, faults, events, workers."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.data_path)
        self.org = Org(config, self.store)
        self.auth = Authenticator(config, self.org.user_id)
        self.usage = ApiUsage(self.store, config.daily_api_limit)
        self.faults = FaultState(parse_faults(config.faults), config.clock.now())
        self.bulk = BulkJobs(self.org)
        self.api = RestApi(self.org, self.usage, bulk=self.bulk.handle)
        self.events = ChangeEvents(config, self.store, self.org.objects, self.faults)
        self.cometd = CometdServer(config, self.events)
        self.outbound = OutboundNotifier(config, self.store, self.faults)
        # REST requests being served and when each started: the concurrent long-request limit.
        self.in_flight: dict[object, datetime] = {}
        # The event loop serving this sandbox, once its lifespan has started.
        self.loop: asyncio.AbstractEventLoop | None = None
        if config.seed:
            from revbridge.salesforce.sandbox.seed import seed_org

            seed_org(self.org)

    def long_requests_running(self, now: datetime) -> int:
        """How many requests in flight have run for at least the long-request threshold."""
        threshold = self.config.long_request_threshold
        return sum(1 for started in list(self.in_flight.values()) if now - started >= threshold)

    def reset(self) -> None:
        """Return to a fresh org: no records, events, sessions, jobs, usage; configured faults;
        the demo data again if the configuration asks for it."""
        self.org.reset()
        self.auth.revoke_all()
        self.api.forget_cursors()
        self.bulk.forget_jobs()
        self.cometd.reset()
        self.faults.apply(parse_faults(self.config.faults), self.config.clock.now())
        if self.config.seed:
            from revbridge.salesforce.sandbox.seed import seed_org

            seed_org(self.org)

    def close(self) -> None:
        self.cometd.closed = True
        self.store.close()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(body, default=json_default),
        status_code=status,
        media_type="application/json;charset=UTF-8",
        headers=headers,
    )


def _render(resp: ApiResponse) -> Response:
    if resp.status == 204 or (resp.json is None and resp.text is None):
        return Response(status_code=resp.status, headers=resp.headers)
    if resp.text is not None:
        return Response(
            content=resp.text,
            status_code=resp.status,
            media_type=resp.content_type,
            headers=resp.headers,
        )
    return _json(resp.status, resp.json, resp.headers)


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the OAuth endpoints take nothing else)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@dataclass(frozen=True, slots=True)
class _Routes:
    sandbox: Sandbox

    # -- platform --------------------------------------------------------------------------------

    async def versions(self, request: Request) -> Response:
        return _json(200, supported_versions())

    async def token(self, request: Request) -> Response:
        sandbox = self.sandbox
        if sandbox.faults.in_outage(sandbox.config.clock.now()):
            return _json(503, {"error": "server_unavailable", "error_description": "down"})
        fields = await _form(request)
        try:
            body = sandbox.auth.issue_token(fields, _base_url(request))
        except OAuthError as exc:
            return _json(exc.status, {"error": exc.error, "error_description": exc.description})
        return _json(200, body)

    async def revoke(self, request: Request) -> Response:
        form = await _form(request)
        self.sandbox.auth.revoke(form.get("token", ""))
        return Response(status_code=200)

    async def identity(self, request: Request) -> Response:
        session = self.sandbox.auth.check_bearer(request.headers.get("authorization"))
        if session is None:
            return Response("Bad_OAuth_Token", status_code=403)
        return _json(
            200,
            {
                "id": str(request.url),
                "user_id": self.sandbox.org.user_id,
                "organization_id": self.sandbox.config.org_id,
                "username": session.username,
                "active": True,
            },
        )

    # -- REST ------------------------------------------------------------------------------------

    async def rest(self, request: Request) -> Response:
        sandbox = self.sandbox
        clock = sandbox.config.clock
        faults = sandbox.faults
        if faults.in_outage(clock.now()):
            return self._with_usage(_json(503, _SERVER_UNAVAILABLE))
        started = clock.now()
        if sandbox.long_requests_running(started) >= sandbox.config.max_concurrent_long_requests:
            return self._with_usage(
                _json(
                    403,
                    [
                        {
                            "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                            "errorCode": "REQUEST_LIMIT_EXCEEDED",
                        }
                    ],
                )
            )
        token = object()
        sandbox.in_flight[token] = started
        try:
            return await self._rest_call(request)
        finally:
            del sandbox.in_flight[token]

    async def _rest_call(self, request: Request) -> Response:
        sandbox = self.sandbox
        clock = sandbox.config.clock
        faults = sandbox.faults
        if faults.spec.latency:
            await asyncio.sleep(faults.spec.latency.total_seconds())
        if sandbox.auth.check_bearer(request.headers.get("authorization")) is None:
            return self._with_usage(_json(401, _INVALID_SESSION))
        now = clock.now()
        if sandbox.usage.used(now) >= sandbox.usage.daily_limit:
            return self._with_usage(
                _json(
                    403,
                    [
                        {
                            "message": "TotalRequests Limit exceeded.",
                            "errorCode": "REQUEST_LIMIT_EXCEEDED",
                        }
                    ],
                )
            )
        sandbox.usage.count(now)
        if faults.roll(faults.spec.error_rate):
            return self._with_usage(
                _json(
                    500,
                    [
                        {
                            "message": "An unexpected error occurred. Please include this ErrorId "
                            "if you contact support: sandbox-injected",
                            "errorCode": "UNKNOWN_EXCEPTION",
                        }
                    ],
                )
            )
        api_request = ApiRequest(
            method=request.method,
            version=request.path_params["version"],
            path=request.path_params.get("path", "").strip("/"),
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        return self._with_usage(_render(sandbox.api.handle(api_request)))

    def _with_usage(self, response: Response) -> Response:
        usage = self.sandbox.usage
        response.headers["Sforce-Limit-Info"] = usage.header(self.sandbox.config.clock.now())
        return response

    # -- streaming API (CometD) -----------------------------------------------------------------

    async def cometd(self, request: Request) -> Response:
        """``POST /cometd/{version}``: Bayeux messages in, Bayeux messages out (``cometd.py``)."""
        sandbox = self.sandbox
        if not is_supported_version(request.path_params["version"]):
            return _json(
                404,
                [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
            )
        if sandbox.faults.in_outage(sandbox.config.clock.now()):
            return _json(503, _SERVER_UNAVAILABLE)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        messages = [body] if isinstance(body, dict) else body
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _json(400, [{"successful": False, "error": "400::Malformed Bayeux message"}])
        if sandbox.auth.check_bearer(request.headers.get("authorization")) is None:
            return _json(
                401,
                [
                    {
                        "channel": m.get("channel"),
                        "successful": False,
                        "error": "401::Authentication invalid",
                        "advice": {"reconnect": "none"},
                    }
                    for m in messages
                ],
            )
        if sandbox.faults.spec.latency:
            await asyncio.sleep(sandbox.faults.spec.latency.total_seconds())
        return _json(200, await sandbox.cometd.handle(messages, request.is_disconnected))

    # -- admin -----------------------------------------------------------------------------------

    async def admin_faults(self, request: Request) -> Response:
        sandbox = self.sandbox
        if request.method == "PUT":
            text = (await request.body()).decode()
            try:
                payload = json.loads(text) if text.strip().startswith("{") else {"faults": text}
                spec = parse_faults(str(payload.get("faults", "")))
            except (FaultSyntaxError, json.JSONDecodeError) as exc:
                return _json(400, [{"message": str(exc), "errorCode": "INVALID_FAULTS"}])
            sandbox.faults.apply(spec, sandbox.config.clock.now())
        spec = sandbox.faults.spec
        return _json(
            200,
            {
                "faults": format_faults(spec),
                "outageUntil": sandbox.faults.outage_until.isoformat(),
            },
        )

    async def admin_clock(self, request: Request) -> Response:
        clock = self.sandbox.config.clock
        if request.method == "POST":
            try:
                body = json.loads(await request.body())
                seconds = float(body["advance_s"])
            except (ValueError, KeyError, TypeError):
                return _json(
                    400,
                    [{"message": 'body must be {"advance_s": n}', "errorCode": "INVALID_REQUEST"}],
                )
            if seconds < 0:
                return _json(
                    400,
                    [{"message": "the clock only moves forward", "errorCode": "INVALID_REQUEST"}],
                )
            clock.advance(timedelta(seconds=seconds))
        return _json(200, {"now": clock.now().isoformat()})

    async def admin_outbound(self, request: Request) -> Response:
        return _json(
            200,
            [
                {
                    "notificationId": n.notification_id,
                    "sobject": n.sobject,
                    "recordId": n.record_id,
                    "attempts": n.attempts,
                    "state": n.state,
                    "lastError": n.last_error,
                }
                for n in self.sandbox.store.all_outbound()
            ],
        )

    async def admin_reset(self, request: Request) -> Response:
        self.sandbox.reset()
        return Response(status_code=204)

    async def admin_usage(self, request: Request) -> Response:
        sandbox = self.sandbox
        now = sandbox.config.clock.now()
        return _json(200, {"used": sandbox.usage.used(now), "limit": sandbox.usage.daily_limit})


def create_app(config: SandboxConfig, *, sandbox: Sandbox | None = None) -> Starlette:
    """The sandbox org as an ASGI application. Nothing runs until the app's lifespan starts."""
    org = sandbox or Sandbox(config)
    routes = _Routes(org)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        org.loop = asyncio.get_running_loop()
        tasks = [
            asyncio.create_task(org.outbound.run()),
            asyncio.create_task(org.bulk.run(config.bulk_poll_interval.total_seconds())),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    all_methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]
    app = Starlette(
        routes=[
            Route("/services/data", routes.versions, methods=["GET"]),
            Route("/services/data/", routes.versions, methods=["GET"]),
            Route("/services/data/v{version}", routes.rest, methods=all_methods),
            Route("/services/data/v{version}/{path:path}", routes.rest, methods=all_methods),
            Route("/services/oauth2/token", routes.token, methods=["POST"]),
            Route("/services/oauth2/revoke", routes.revoke, methods=["POST"]),
            Route("/id/{org_id}/{user_id}", routes.identity, methods=["GET"]),
            Route("/cometd/{version}", routes.cometd, methods=["POST"]),
            Route("/sandbox/admin/faults", routes.admin_faults, methods=["GET", "PUT"]),
            Route("/sandbox/admin/clock", routes.admin_clock, methods=["GET", "POST"]),
            Route("/sandbox/admin/outbound", routes.admin_outbound, methods=["GET"]),
            Route("/sandbox/admin/usage", routes.admin_usage, methods=["GET"]),
            Route("/sandbox/admin/reset", routes.admin_reset, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = org
    return app


__all__ = ["Sandbox", "create_app"]
