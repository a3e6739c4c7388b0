"""The FastAPI app: webhooks, the ops API, the console, metrics and health, in one process.

``create_app`` builds it from the settings; the lifespan opens the ledger and, when asked,
runs the delivery worker, batch scheduler and capture in the same event loop (the embedded
SQLite default), stopping them gracefully on shutdown.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from revbridge import __version__
from revbridge.clock import Clock, SystemClock
from revbridge.config import Settings
from revbridge.errors import RevbridgeError, StoreError
from revbridge.services.access import AccessDenied, BadSignature
from revbridge.services.operations import NotFound
from revbridge.services.webhooks import WebhookRejected
from revbridge.store.ledger import Ledger

HERE = Path(__file__).parent
MAX_BUCKETS = 50_000


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413, whether announced or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _too_large(self.max_bytes, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting, send)
        except _TooLarge:
            await _too_large(self.max_bytes, send)


class _TooLarge(Exception):
    pass


async def _too_large(max_bytes: int, send: Send) -> None:
    response = JSONResponse(
        {"error": "body too large", "where": "body", "why": f"over {max_bytes} bytes"},
        status_code=413,
    )
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class RateLimiter:
    """A token bucket per client address (public webhook routes): 429 with Retry-After."""

    def __init__(self, per_min: int) -> None:
        self.rate = per_min / 60.0
        self.capacity = float(per_min)
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when allowed, else seconds until a request would be."""
        now = time.monotonic()
        if len(self.buckets) > MAX_BUCKETS:  # many addresses: forget the refilled ones
            horizon = self.capacity / self.rate
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < horizon}
        tokens, last = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            return 0.0
        self.buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate


def _error(status: int, error: str, where: str, why: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": error, "where": where, "why": why}, status_code=status, headers=extra or None
    )


def _console_error(request: Request, exc: Exception, status_code: int) -> Response | None:
    """A refused console request as a console page saying why (the API answers JSON)."""
    if not request.url.path.startswith("/console"):
        return None
    from revbridge.api.auth import console_session
    from revbridge.api.console import render_error

    return render_error(request, console_session(request), str(exc), status_code=status_code)


def create_app(
    settings: Settings,
    *,
    run_workers: bool = False,
    ledger: Ledger | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    from revbridge.api import console, finance, ops, webhooks
    from revbridge.api.metrics import Metrics
    from revbridge.services import mdm, open_ledger
    from revbridge.services.serve import InProcessRunner

    ledger = ledger or open_ledger(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = InProcessRunner(settings, ledger) if run_workers else None
        app.state.runner = runner
        if runner is not None:
            await runner.start()
        try:
            yield
        finally:
            if runner is not None:
                await runner.close()

    app = FastAPI(
        title="revbridge",
        version=__version__,
        description="Webhooks, operations API and console of the revbridge integration hub.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ledger = ledger
    app.state.clock = clock or SystemClock()
    # Several `serve` processes behind one load balancer share sessions through this key.
    shared_key = os.environ.get("REVBRIDGE_SESSION_KEY", "")
    app.state.session_key = shared_key.encode() if shared_key else secrets.token_bytes(32)
    app.state.metrics = Metrics(ledger.engine)
    app.state.runner = None
    app.state.limiter = RateLimiter(settings.raw.server.rate_limit_per_min)
    from revbridge.store.db import head_revision

    app.state.head_revision = head_revision()  # reading the scripts takes ~0.1 s: once

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith("/webhooks/"):
            client = request.client.host if request.client else "unknown"
            wait = app.state.limiter.take(client)
            if wait:
                return _error(
                    429,
                    "rate limited",
                    "client",
                    f"over {settings.raw.server.rate_limit_per_min} requests a minute",
                    **{"Retry-After": str(math.ceil(wait))},
                )
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        label = getattr(route, "path", "unmatched")
        app.state.metrics.requests.labels(label, str(response.status_code)).inc()
        app.state.metrics.request_latency.labels(label).observe(time.perf_counter() - started)
        return response

    app.add_middleware(BodyLimit, max_bytes=settings.raw.server.max_body_bytes)

    @app.exception_handler(WebhookRejected)
    async def _rejected(_r: Request, exc: WebhookRejected) -> Response:
        return _error(exc.status, "rejected", exc.where, exc.why)

    @app.exception_handler(BadSignature)
    async def _bad_signature(_r: Request, exc: BadSignature) -> Response:
        return _error(401, "bad signature", "X-Revbridge-Signature", str(exc))

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> Response:
        if request.url.path.startswith("/console"):
            from revbridge.api.auth import console_session
            from revbridge.api.console import render_error

            session = console_session(request)
            if session is None:
                return RedirectResponse("/console/login", status_code=303)
            return render_error(request, session, str(exc), status_code=403)
        status = 403 if "role" in str(exc) else 401
        return _error(status, "access denied", "Authorization", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        # On the console (an entry closed meanwhile, a replay sent twice): a page saying so.
        return _console_error(request, exc, 404) or _error(404, "not found", "path", str(exc))

    @app.exception_handler(StoreError)
    async def _store(_r: Request, exc: StoreError) -> Response:
        return _error(503, "ledger unavailable", "ledger", str(exc))

    @app.exception_handler(mdm.NotFound)
    async def _no_review(request: Request, exc: mdm.NotFound) -> Response:
        return _console_error(request, exc, 404) or _error(404, "not found", "path", str(exc))

    @app.exception_handler(RevbridgeError)
    async def _domain(request: Request, exc: RevbridgeError) -> Response:
        return _console_error(request, exc, 400) or _error(400, "refused", "request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid request", where or "request", str(first.get("msg")))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> Response:
        """The ledger is reachable and its schema at the latest migration."""
        from revbridge.store.db import current_revision

        try:
            current = current_revision(ledger.engine)
        except Exception as exc:
            return _error(503, "not ready", "ledger", f"unreachable: {type(exc).__name__}")
        head = app.state.head_revision
        if current != head:
            return _error(503, "not ready", "ledger", f"schema at {current}, not {head}")
        return JSONResponse({"status": "ready", "schema": current})

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus exposition format."""
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/console/", status_code=307)

    app.include_router(webhooks.router)
    app.include_router(ops.router)
    app.include_router(console.router)
    app.include_router(finance.api)
    app.include_router(finance.pages)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
