"""SuiteTalk REST over httpx: TBA signing, concurrency slots, and error translation.

Every call to NetSuite goes through ``NetSuiteHttp.request``, which is the one boundary
where third-party failures become revbridge errors::

    httpx.TimeoutException, httpx.TransportError   -> TransientError  (nothing known: retry)
    HTTP 429, CONCURRENCY_LIMIT_EXCEEDED,
      SSS_REQUEST_LIMIT_EXCEEDED (RESTlets)        -> RateLimited     (Retry-After if given)
    HTTP 5xx                                       -> TransientError
    HTTP 401                                       -> NetSuiteAuthError (AccessRefused: the
                                                      integration's TBA token, not a record)
    HTTP 403                                       -> NetSuiteRequestError (terminal: the role
                                                      lacks a permission for this record)
    HTTP 400 / 404 / 405 / 409 ...                 -> NetSuiteRequestError (terminal), carrying
                                                      NetSuite's ``o:errorDetails``

``NetSuiteRequestError`` is a ``TerminalError``; its ``details`` keep NetSuite's own codes,
messages and paths so that a dead letter says exactly what NetSuite refused.

TBA (OAuth 1.0a, HMAC-SHA256, ``realm`` = account id) is signed by oauthlib's ``Client``,
fresh nonce and timestamp per request. JSON bodies are not form-encoded, so as OAuth 1.0a
says they are not part of the signature; the query string is.

Money travels as JSON numbers written from ``Decimal`` text (never through ``float``), and
responses are parsed with ``parse_float=Decimal``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from oauthlib.oauth1 import (  # type: ignore[import-untyped]  # oauthlib ships no type hints
    SIGNATURE_HMAC_SHA256,
)
from oauthlib.oauth1 import Client as OAuth1Client

from revbridge.engine.concurrency import LocalSlots, Slots
from revbridge.errors import (
    AccessRefused,
    DeliveryError,
    RateLimited,
    TerminalError,
    TransientError,
)
from revbridge.netsuite.config import NetSuiteConfig

JsonObject = dict[str, Any]
_RATE_CODES = frozenset({"CONCURRENCY_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED"})


class TbaAuth(httpx.Auth):
    """NetSuite Token-Based Authentication: an OAuth 1.0a header per request."""

    def __init__(self, config: NetSuiteConfig) -> None:
        self._client = OAuth1Client(
            config.consumer_key,
            client_secret=config.consumer_secret,
            resource_owner_key=config.token_id,
            resource_owner_secret=config.token_secret,
            signature_method=SIGNATURE_HMAC_SHA256,
            realm=config.account_id,
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        _, headers, _ = self._client.sign(str(request.url), request.method)
        request.headers["Authorization"] = headers["Authorization"]
        yield request


@dataclass(frozen=True, slots=True, kw_only=True)
class NetSuiteErrorDetail:
    """One entry of NetSuite's ``o:errorDetails``."""

    code: str
    detail: str
    path: str | None = None


class _NetSuiteRefusal(DeliveryError):
    """NetSuite's answer to a request it refused: the status, its error details, and where
    (``Location``, for an idempotency conflict)."""

    def __init__(
        self,
        status: int,
        details: tuple[NetSuiteErrorDetail, ...],
        context: str,
        location: str | None = None,
    ) -> None:
        self.status = status
        self.details = details
        self.location = location
        text = "; ".join(
            f"{d.code}: {d.detail}" + (f" (at {d.path})" if d.path else "") for d in details
        )
        super().__init__(f"NetSuite {status} on {context}: {text or 'no detail given'}")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(d.code for d in self.details)


class NetSuiteRequestError(_NetSuiteRefusal, TerminalError):
    """NetSuite refused the request (validation, business rule, a permission the role lacks
    for this record): retrying it cannot help."""


class NetSuiteAuthError(_NetSuiteRefusal, AccessRefused):
    """401: NetSuite refused the integration's TBA credentials (a revoked or wrong token, an
    inactive user or role; see the login audit trail). Every call fails alike until a person
    fixes it: the circuit opens and no event is dead-lettered (decision 0038)."""


def dumps(value: Any) -> str:
    """JSON text with ``Decimal`` written as a plain JSON number, exactly."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def loads(raw: bytes | str) -> Any:
    return json.loads(raw, parse_float=Decimal)


def _details(body: Any) -> tuple[NetSuiteErrorDetail, ...]:
    if not isinstance(body, dict):
        return ()
    out = []
    for d in body.get("o:errorDetails") or ():
        if isinstance(d, dict):
            out.append(
                NetSuiteErrorDetail(
                    code=str(d.get("o:errorCode", "")),
                    detail=str(d.get("detail", "")),
                    path=d.get("o:errorPath") or d.get("o:errorQueryParam") or d.get("o:urlPath"),
                )
            )
    return tuple(out)


def retry_after(response: httpx.Response) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    try:
        when = parsedate_to_datetime(value)
        date_header = response.headers.get("Date")
        now = parsedate_to_datetime(date_header) if date_header else None
    except (TypeError, ValueError):
        return None
    if now is None:
        return None
    return max(when - now, timedelta(0))


def raise_for_response(response: httpx.Response, context: str) -> None:
    """Translate a non-2xx NetSuite answer into the revbridge error tree."""
    status = response.status_code
    if status < 400:
        return
    try:
        body = loads(response.content) if response.content else None
    except ValueError:
        body = None
    details = _details(body)
    codes = {d.code for d in details}
    if status == 429 or codes & _RATE_CODES:
        raise RateLimited(
            f"NetSuite {status} on {context}: concurrency limit exceeded",
            retry_after=retry_after(response),
        )
    if status >= 500:
        text = "; ".join(f"{d.code}: {d.detail}" for d in details) or response.reason_phrase
        raise TransientError(
            f"NetSuite {status} on {context}: {text}", retry_after=retry_after(response)
        )
    if status == 401:
        if not details:
            details = (
                NetSuiteErrorDetail(
                    code="INVALID_LOGIN",
                    detail=response.headers.get("WWW-Authenticate", "authentication failed"),
                ),
            )
        raise NetSuiteAuthError(status, details, context)
    raise NetSuiteRequestError(status, details, context, response.headers.get("Location"))


class NetSuiteHttp:
    """The connector's HTTP session: one ``httpx.AsyncClient`` per event loop, slot-gated."""

    def __init__(
        self,
        config: NetSuiteConfig,
        *,
        slots: Slots | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.local = LocalSlots(config.concurrency_limit)
        self.shared = slots
        self._auth = TbaAuth(config)
        self._transport = transport
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._lifetime: AsyncGenerator[None, None] | None = None
        self.requests = 0

    async def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # A client's connection pool belongs to the loop that opened it. The pool is
            # closed when its loop shuts down: ``asyncio.run`` finalizes live async
            # generators before closing the loop, so ``_client_lifetime`` closes the client
            # there, and a hub that runs ``asyncio.run`` per batch leaks no sockets.
            self._loop = loop
            self._client = httpx.AsyncClient(
                auth=self._auth,
                timeout=self.config.timeout.total_seconds(),
                transport=self._transport,
                limits=httpx.Limits(max_connections=self.config.concurrency_limit),
                headers={"Accept": "application/json"},
            )
            self._lifetime = _client_lifetime(self._client)
            await anext(self._lifetime)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        lifetime, self._lifetime = self._lifetime, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()
            if lifetime is not None:
                await lifetime.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_404: bool = False,
    ) -> httpx.Response | None:
        """One NetSuite call; returns the response, or None for a 404 when ``ok_404``.

        ``url`` is relative to the REST root (``/record/v1/...``) or absolute.
        """
        full = url if url.startswith("http") else self.config.rest_url + url
        content = None if body is None else dumps(body).encode()
        send_headers = dict(headers or {})
        if content is not None:
            send_headers["Content-Type"] = "application/json"
        context = f"{method} {url.split('?', 1)[0]}"
        async with self.local.hold():
            if self.shared is not None:
                async with self.shared.hold():
                    response = await self._send(method, full, content, params, send_headers)
            else:
                response = await self._send(method, full, content, params, send_headers)
        if ok_404 and response.status_code == 404:
            return None
        raise_for_response(response, context)
        return response

    async def _send(
        self,
        method: str,
        url: str,
        content: bytes | None,
        params: Mapping[str, str | int] | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        self.requests += 1
        try:
            client = await self._http()
            return await client.request(
                method, url, content=content, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"NetSuite {method} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            # Includes a connection dropped mid-response: the write may have committed.
            raise TransientError(f"NetSuite {method} connection failed: {exc!r}") from exc

    async def read(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_404: bool = False,
    ) -> httpx.Response | None:
        """A request that changes nothing (GET, SuiteQL): retried a few times on transient
        errors, since repeating it is always safe. Not a refused login: repeating that only
        adds failed logins to the user's audit trail (and may lock it)."""
        attempt = 0
        while True:
            try:
                return await self.request(
                    method, url, body=body, params=params, headers=headers, ok_404=ok_404
                )
            except TransientError as exc:
                attempt += 1
                if attempt > self.config.read_retries or isinstance(exc, AccessRefused):
                    raise
                delay = exc.retry_after.total_seconds() if exc.retry_after else 0.1 * attempt
                await asyncio.sleep(min(delay, 5.0))

    async def json(self, method: str, url: str, **kwargs: Any) -> JsonObject:
        response = await self.read(method, url, **kwargs)
        assert response is not None
        data: JsonObject = loads(response.content)
        return data

    async def suiteql(self, query: str, *, limit: int, offset: int) -> JsonObject:
        return await self.json(
            "POST",
            "/query/v1/suiteql",
            body={"q": query},
            params={"limit": limit, "offset": offset},
            headers={"Prefer": "transient"},
        )

    async def suiteql_all(self, query: str, *, page_size: int = 1000) -> list[JsonObject]:
        """Every row of ``query``, paged with ``offset`` until ``hasMore`` is false.

        Offset paging is only stable when the rows do not move while paging: use it for
        bounded, ORDER BY'd reads (a period, a list of ids), not for change capture.
        """
        rows: list[JsonObject] = []
        offset = 0
        while True:
            page = await self.suiteql(query, limit=page_size, offset=offset)
            items = page.get("items") or []
            rows.extend(items)
            if not page.get("hasMore") or not items:
                return rows
            offset += len(items)


async def _client_lifetime(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Suspended for the life of ``client``; closing it (loop shutdown) closes the client."""
    try:
        yield
    finally:
        await client.aclose()


def location_id(response: httpx.Response) -> str | None:
    """The internal id at the end of a ``Location`` header, if NetSuite sent one."""
    location = response.headers.get("Location")
    if not location:
        return None
    tail = location.rstrip("/").rsplit("/", 1)[-1]
    return tail if tail.isdigit() else None
