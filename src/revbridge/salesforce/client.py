"""The Salesforce REST API over httpx: OAuth 2.0, the token cache, limits and error translation.

Every call goes through ``SalesforceClient.request``, the one place where third-party failures
become revbridge errors::

    httpx.TimeoutException, httpx.TransportError  -> TransientError   (nothing known: retry)
    HTTP 429, 403 REQUEST_LIMIT_EXCEEDED          -> RateLimited      (org limit: slow down)
    HTTP 5xx                                      -> TransientError
    HTTP 300 (external id matches several)        -> SalesforceApiError (terminal)
    HTTP 401 INVALID_SESSION_ID                   -> one new token, the call once more; then
                                                     SalesforceAuthError (AccessRefused)
    token endpoint 400 (invalid_grant ...)        -> SalesforceAuthError (AccessRefused: the
                                                     integration user, not a record; 0038)
    other HTTP 4xx                                -> SalesforceApiError (terminal), carrying
                                                     Salesforce's ``errorCode`` and ``fields``

Two flows get a token: the JWT bearer flow (RS256 assertion signed with the connected app's
private key; the answer has no refresh token, so a new assertion is signed when the session
expires) and, for local use, the username-password flow. The token is cached per client and
shared by concurrent calls; a 401 renews it once.

Every data-API answer carries ``Sforce-Limit-Info: api-usage=N/M``; the last one seen is
``SalesforceClient.api_usage``. Logs name the method, the path (never the query string, which
may hold SOQL with customer data), the status and the error code: no token, key or record data.

Money travels as JSON numbers written from ``Decimal`` text and is parsed back as ``Decimal``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from revbridge.errors import AccessRefused, RateLimited, TerminalError, TransientError

JsonObject = dict[str, Any]
log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "62.0"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
# Salesforce accepts an assertion whose exp is at most 3 minutes ahead.
_JWT_LIFETIME_S = 120


class SalesforceApiError(TerminalError):
    """Salesforce refused the request (HTTP 4xx): retrying the same request cannot help.

    ``error_code`` is Salesforce's own (``REQUIRED_FIELD_MISSING``, ``INVALID_FIELD``...),
    ``fields`` the API names it blamed, ``status`` the HTTP status.
    """

    def __init__(
        self, message: str, *, status: int, error_code: str, fields: Sequence[str] = ()
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.fields = tuple(fields)
        super().__init__(message)


class SalesforceAuthError(AccessRefused):
    """No session could be had: bad credentials, an unapproved user, a wrong audience. Every
    call fails alike until a person fixes it: the circuit opens, nothing is dead-lettered
    (decision 0038). ``status`` and ``error_code`` are Salesforce's, as on
    ``SalesforceApiError``."""

    def __init__(self, message: str, *, status: int, error_code: str) -> None:
        self.status = status
        self.error_code = error_code
        self.fields: tuple[str, ...] = ()
        super().__init__(message)


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
    """Parse JSON with every fractional number as ``Decimal``."""
    return json.loads(raw, parse_float=Decimal)


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtBearerAuth:
    """OAuth 2.0 JWT bearer flow: server to server, no password, no refresh token.

    ``login_url`` is where the token is asked for (``https://login.salesforce.com``,
    ``https://test.salesforce.com``, a My Domain or the sandbox's base URL); ``audience`` is
    the ``aud`` claim, ``https://login.salesforce.com`` for production orgs.
    """

    login_url: str
    client_id: str
    username: str
    private_key_path: Path
    audience: str = "https://login.salesforce.com"

    def form(self) -> dict[str, str]:
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": self.audience,
            "exp": int(time.time()) + _JWT_LIFETIME_S,
        }
        key = self.private_key_path.read_bytes()
        return {"grant_type": JWT_GRANT, "assertion": jwt.encode(claims, key, algorithm="RS256")}


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordAuth:
    """OAuth 2.0 username-password flow: for local use and the sandbox, not for production."""

    login_url: str
    client_id: str
    client_secret: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    security_token: str = field(default="", repr=False)

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "password",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "username": self.username,
            "password": self.password + self.security_token,
        }


Auth = JwtBearerAuth | PasswordAuth


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """``Sforce-Limit-Info``: API requests used in the rolling 24 hours, and the daily cap."""

    used: int
    limit: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class Session:
    access_token: str = field(repr=False)
    instance_url: str
    user_id: str
    org_id: str


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """``api-usage=1234/100000`` -> ``ApiUsage(1234, 100000)``; None when absent or odd."""
    if not header:
        return None
    match = _LIMIT_INFO.search(header)
    return ApiUsage(int(match.group(1)), int(match.group(2))) if match else None


def _errors(response: httpx.Response) -> tuple[str, str, tuple[str, ...]]:
    """Salesforce's first error: (errorCode, message, fields), whatever the body's shape."""
    try:
        body = loads(response.content) if response.content else None
    except ValueError:
        body = None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        return (
            str(
                first.get("errorCode") or first.get("statusCode") or f"HTTP_{response.status_code}"
            ),
            str(first.get("message", "")),
            tuple(str(f) for f in first.get("fields") or ()),
        )
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), str(body.get("error_description", "")), ()
    return f"HTTP_{response.status_code}", response.reason_phrase, ()


class SalesforceClient:
    """An authenticated session with one org's REST API (``/services/data/vXX.X``).

    Use it as an async context manager, or call ``aclose``. ``verify`` is httpx's: an
    ``ssl.SSLContext``, a CA bundle path or a bool.
    """

    def __init__(
        self,
        auth: Auth,
        *,
        api_version: str = DEFAULT_API_VERSION,
        timeout: timedelta = timedelta(seconds=30),
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._auth = auth
        self.api_version = api_version
        self.requests = 0  # API requests sent (what the org's daily API limit counts)
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            timeout=timeout.total_seconds(), verify=verify, transport=transport
        )
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        self.api_usage: ApiUsage | None = None
        self.token_requests = 0

    async def __aenter__(self) -> SalesforceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def data_path(self) -> str:
        """``/services/data/v62.0``: the prefix of every data-API path."""
        return f"/services/data/v{self.api_version}"

    # ------------------------------------------------------------------ session

    async def session(self) -> Session:
        """The cached session, logging in first when there is none."""
        if self._session is None:
            async with self._lock:
                if self._session is None:
                    self._session = await self._login()
        return self._session

    async def user_id(self) -> str:
        """The 18-character id of the user the client acts as (the integration user)."""
        return (await self.session()).user_id

    async def _renew(self, stale: Session) -> Session:
        async with self._lock:
            if self._session is stale or self._session is None:
                self._session = await self._login()
            return self._session

    async def _login(self) -> Session:
        url = self._auth.login_url.rstrip("/") + "/services/oauth2/token"
        self.token_requests += 1
        try:
            response = await self._http.post(url, data=self._auth.form())
        except httpx.TimeoutException as exc:
            raise TransientError("salesforce token request timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"salesforce token request failed: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise TransientError(f"salesforce token endpoint answered {response.status_code}")
        if response.status_code != 200:
            code, message, _ = _errors(response)
            log.warning("salesforce login refused: %s", code)
            raise SalesforceAuthError(
                f"salesforce login refused: {code}: {message}",
                status=response.status_code,
                error_code=code,
            )
        body = loads(response.content)
        identity = str(body.get("id", "")).rstrip("/").split("/")
        return Session(
            access_token=str(body["access_token"]),
            instance_url=str(body["instance_url"]).rstrip("/"),
            user_id=identity[-1] if len(identity) >= 2 else "",
            org_id=identity[-2] if len(identity) >= 2 else "",
        )

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: timedelta | None = None,
    ) -> httpx.Response:
        """One API call; ``path`` starts with ``/`` (``/services/...``, ``/cometd/...`` or
        data-relative). ``timeout`` replaces the client's for this call (a long poll)."""
        if not path.startswith(("/services/", "/cometd/")):
            path = self.data_path + path
        session = await self.session()
        response = await self._send(session, method, path, params, body, headers, timeout)
        if response.status_code == 401:
            code, _, _ = _errors(response)
            log.info("salesforce session rejected (%s): renewing the token once", code)
            session = await self._renew(session)
            response = await self._send(session, method, path, params, body, headers, timeout)
            if response.status_code == 401:
                code, message, _ = _errors(response)
                raise SalesforceAuthError(
                    f"salesforce refused a fresh session: {code}: {message}",
                    status=401,
                    error_code=code,
                )
        self._raise_for(method, path, response)
        return response

    async def _send(
        self,
        session: Session,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Any,
        headers: Mapping[str, str] | None,
        timeout: timedelta | None = None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {session.access_token}", **(headers or {})}
        content = None
        if body is not None:
            content = dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        started = time.monotonic()
        self.requests += 1
        try:
            response = await self._http.request(
                method,
                session.instance_url + path,
                params=params,
                content=content,
                headers=all_headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout.total_seconds(),
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"salesforce {method} {path} timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError(
                f"salesforce {method} {path} failed: {type(exc).__name__}"
            ) from exc
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self.api_usage = usage
        log.debug(
            "salesforce %s %s -> %s in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _raise_for(self, method: str, path: str, response: httpx.Response) -> None:
        status = response.status_code
        if status == 300:
            # An upsert or look-up by external id matched several records: no guessing.
            raise SalesforceApiError(
                f"salesforce {method} {path}: 300: the external id matches several records",
                status=300,
                error_code="MULTIPLE_CHOICES",
            )
        if status < 400:
            return
        code, message, fields = _errors(response)
        what = f"salesforce {method} {path}: {status} {code}: {message}"
        if status == 429 or code == "REQUEST_LIMIT_EXCEEDED":
            log.warning("salesforce API limit hit: %s (%s)", code, self.api_usage)
            raise RateLimited(what)
        if status >= 500:
            raise TransientError(what)
        log.info("salesforce refused %s %s: %s %s", method, path, status, code)
        raise SalesforceApiError(what, status=status, error_code=code, fields=fields)

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return loads((await self.request("GET", path, params=params)).content)

    async def send_json(self, method: str, path: str, body: Any) -> Any:
        response = await self.request(method, path, body=body)
        return loads(response.content) if response.content else None

    # ------------------------------------------------------------------ SOQL

    async def query_pages(
        self, soql: str, *, batch_size: int | None = None, include_deleted: bool = False
    ) -> AsyncIterator[list[JsonObject]]:
        """Every page of a SOQL result, following ``nextRecordsUrl`` exactly as given."""
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else None
        resource = "/queryAll" if include_deleted else "/query"
        response = await self.request("GET", resource, params={"q": soql}, headers=headers)
        page = loads(response.content)
        while True:
            yield list(page.get("records", []))
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            response = await self.request("GET", str(next_url), headers=headers)
            page = loads(response.content)

    async def query(self, soql: str, *, batch_size: int | None = None) -> list[JsonObject]:
        """Every record of a SOQL result, all pages read."""
        records: list[JsonObject] = []
        async for page in self.query_pages(soql, batch_size=batch_size):
            records.extend(page)
        return records

    # ------------------------------------------------------------------ collections, composite

    async def upsert_collection(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = True,
    ) -> list[JsonObject]:
        """sObject Collections upsert by external id, 200 records per call, results in order."""
        results: list[JsonObject] = []
        for start in range(0, len(records), 200):
            chunk = [
                {"attributes": {"type": sobject}, **record}
                for record in records[start : start + 200]
            ]
            answer = await self.send_json(
                "PATCH",
                f"/composite/sobjects/{quote(sobject)}/{quote(external_id_field)}",
                {"allOrNone": all_or_none, "records": chunk},
            )
            results.extend(answer)
        return results

    async def update_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = True
    ) -> list[JsonObject]:
        """sObject Collections update (each record has ``attributes.type`` and ``Id``)."""
        results: list[JsonObject] = []
        for start in range(0, len(records), 200):
            answer = await self.send_json(
                "PATCH",
                "/composite/sobjects",
                {"allOrNone": all_or_none, "records": list(records[start : start + 200])},
            )
            results.extend(answer)
        return results

    async def create_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = True
    ) -> list[JsonObject]:
        """sObject Collections create (each record has ``attributes.type``)."""
        results: list[JsonObject] = []
        for start in range(0, len(records), 200):
            answer = await self.send_json(
                "POST",
                "/composite/sobjects",
                {"allOrNone": all_or_none, "records": list(records[start : start + 200])},
            )
            results.extend(answer)
        return results


def raise_for_results(results: Sequence[Mapping[str, Any]], what: str) -> None:
    """Turn the first failed record of a collections answer into a ``SalesforceApiError``."""
    for i, result in enumerate(results):
        if result.get("success"):
            continue
        errors = result.get("errors") or [{}]
        first = errors[0]
        code = str(first.get("statusCode", "UNKNOWN"))
        if code == "ALL_OR_NONE_OPERATION_ROLLED_BACK":
            continue
        raise SalesforceApiError(
            f"salesforce {what}: record {i}: {code}: {first.get('message', '')}",
            status=400,
            error_code=code,
            fields=tuple(first.get("fields") or ()),
        )
    failed = [r for r in results if not r.get("success")]
    if failed:
        raise SalesforceApiError(
            f"salesforce {what}: rolled back", status=400, error_code="ROLLED_BACK"
        )
