"""An async JSON-RPC client for trytond 8.x, and the one place its errors are translated.

Protocol (trytond 8.2): ``POST /<database>/rpc/`` with ``{"id", "method", "params"}``.
``common.db.login`` takes ``[login, {"password": ...}, language]`` and returns
``[user_id, session, bus_url]``; later calls carry ``Authorization: Session
base64("<login>:<user_id>:<session>")``. Model methods are ``model.<model>.<method>`` and take
the user context as their last parameter; wizards are ``wizard.<name>.create/execute/delete``.

Values that JSON lacks travel as tagged objects, e.g. ``{"__class__": "Decimal", "decimal":
"10.00"}``; ``encode`` and ``decode`` convert both ways. Tryton's datetimes are naive UTC:
aware datetimes are converted to UTC on the way out, and naive ones are refused (a naive
timestamp in finance code is a bug); datetimes coming back are made aware (UTC).

Errors, translated once here into revbridge's tree::

    DeliveryError
    ├── TransientError             connection refused/reset, timeouts, HTTP 5xx,
    │   │                          ConcurrencyException (the record moved under us)
    │   ├── TrytonUnreachable      no connection to the server (refused, no such host)
    │   ├── RateLimited            HTTP 429 (``retry_after`` from ``Retry-After``)
    │   └── AccessRefused          the integration itself is refused (decision 0038):
    │       ├── TrytonNoDatabase   HTTP 404: the server serves no database of that name
    │       └── TrytonAuthError    bad credentials, a 403, or the session cannot be renewed
    └── TerminalError
        ├── TrytonUserError        a model refused: validation, access, closed period, ...
        ├── TrytonUserWarning      a warning that needs an explicit, named skip
        └── TrytonServerError      an unexpected exception inside trytond (a bug or a bad
                                   call; the same call would fail again)

A 401 (expired session, or sessions wiped by ``TrytonInstance.reset``) is handled here: the
client logs in again once and repeats the call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import httpx

from revbridge.errors import AccessRefused, RateLimited, TerminalError, TransientError

__all__ = [
    "TrytonAuthError",
    "TrytonClient",
    "TrytonNoDatabase",
    "TrytonServerError",
    "TrytonUnreachable",
    "TrytonUserError",
    "TrytonUserWarning",
    "TrytonWizard",
    "decode",
    "encode",
]


class TrytonUserError(TerminalError):
    """Tryton refused the request (``UserError``): the message is the one a user would see."""

    def __init__(self, method: str, message: str, description: str = "") -> None:
        self.method = method
        self.message = message
        self.description = description
        detail = f" ({description})" if description else ""
        super().__init__(f"Tryton refused {method}: {message}{detail}")


class TrytonUserWarning(TerminalError):
    """Tryton asks for confirmation (``UserWarning``); ``name`` is what a skip must cite."""

    def __init__(self, method: str, name: str, message: str) -> None:
        self.method = method
        self.name = name
        self.message = message
        super().__init__(f"Tryton warning {name!r} on {method}: {message}")


class TrytonUnreachable(TransientError):
    """No connection to the server: refused, reset, no such host (a timeout is not this)."""


class TrytonNoDatabase(AccessRefused):
    """HTTP 404 on ``<url>/<database>/rpc/``: no database of that name (or a wrong URL path)."""


class TrytonAuthError(AccessRefused):
    """The credentials were refused, or a method asks for a fresh password."""


class TrytonServerError(TerminalError):
    """An unexpected exception inside trytond; ``server_traceback`` is its traceback."""

    def __init__(self, method: str, message: str, server_traceback: str = "") -> None:
        self.method = method
        self.server_traceback = server_traceback
        super().__init__(f"trytond failed on {method}: {message}")


# Encoding ----------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """Turn Python values into Tryton's JSON: Decimal, date, datetime, time, timedelta, bytes."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} sent to Tryton: make it aware")
        utc = value.astimezone(dt.UTC)
        return {
            "__class__": "datetime",
            "year": utc.year,
            "month": utc.month,
            "day": utc.day,
            "hour": utc.hour,
            "minute": utc.minute,
            "second": utc.second,
            "microsecond": utc.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.time):
        return {
            "__class__": "time",
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes | bytearray):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """Turn Tryton's JSON back into Python values (datetimes come back aware, in UTC)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get("__class__")
    if tag == "Decimal":
        return Decimal(value["decimal"])
    if tag == "date":
        return dt.date(value["year"], value["month"], value["day"])
    if tag == "datetime":
        return dt.datetime(
            value["year"],
            value["month"],
            value["day"],
            value["hour"],
            value["minute"],
            value["second"],
            value["microsecond"],
            tzinfo=dt.UTC,
        )
    if tag == "time":
        return dt.time(value["hour"], value["minute"], value["second"], value["microsecond"])
    if tag == "timedelta":
        return dt.timedelta(seconds=value["seconds"])
    if tag == "bytes":
        return base64.b64decode(value["base64"])
    return {k: decode(v) for k, v in value.items()}


# Client ------------------------------------------------------------------------------------


class TrytonClient:
    """One logged-in session against one database. Use as ``async with``.

    ``transport`` lets tests substitute ``httpx.MockTransport``. Calls on one client are
    serialised by the server's session anyway; open one client per concurrent worker.
    """

    def __init__(
        self,
        url: str,
        database: str,
        login: str,
        password: str,
        *,
        language: str = "en",
        timeout: dt.timedelta = dt.timedelta(seconds=60),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self.timeout = timeout
        self.database = database
        self.login_name = login
        self._password = password
        self.language = language
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout.total_seconds(), transport=transport
        )
        self._auth: str | None = None
        self._user_id: int | None = None
        self._context: dict[str, Any] = {}
        self._login_lock = asyncio.Lock()
        self._next_id = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Log out (best effort) and close the HTTP connection pool."""
        if self._auth is not None:
            # The session expires on its own; closing must not fail because logout did.
            with contextlib.suppress(TransientError, TerminalError):
                await self._post("common.db.logout", [], authenticated=True)
            self._auth = None
        await self._http.aclose()

    @property
    def context(self) -> dict[str, Any]:
        """The user's context (company, language, ...) from the last login; a copy."""
        return dict(self._context)

    @property
    def user_id(self) -> int:
        """The id of the logged-in user (``res.user``), known after the first login."""
        if self._user_id is None:
            raise TrytonAuthError(f"{self.login_name!r} has not logged in yet")
        return self._user_id

    async def ensure_login(self) -> None:
        """Log in unless a session is open (model calls do this on their own)."""
        if self._auth is None:
            await self._relogin(None)

    @property
    def company_id(self) -> int:
        company = self._context.get("company")
        if not isinstance(company, int):
            raise TrytonAuthError(f"user {self.login_name!r} has no current company")
        return company

    async def login(self) -> None:
        """Open a session and load the user's preferences as the context of later calls."""
        result = await self._post(
            "common.db.login",
            [self.login_name, {"password": self._password}, self.language],
            authenticated=False,
        )
        user_id, session = result[0], result[1]
        self._user_id = int(user_id)
        token = f"{self.login_name}:{user_id}:{session}".encode()
        self._auth = "Session " + base64.b64encode(token).decode("ascii")
        preferences = await self._post(
            "model.res.user.get_preferences", [True, {}], authenticated=True
        )
        self._context = dict(preferences)

    async def call(self, method: str, *params: Any) -> Any:
        """Call any RPC method with exactly these params (no context is added)."""
        if self._auth is None:
            await self._relogin(None)
        auth = self._auth
        try:
            return await self._post(method, list(params), authenticated=True)
        except _SessionExpired:
            await self._relogin(auth)
            try:
                return await self._post(method, list(params), authenticated=True)
            except _SessionExpired as exc:
                raise TrytonAuthError(
                    f"{method}: Tryton keeps refusing the session of {self.login_name!r}"
                ) from exc

    async def model(
        self,
        model: str,
        method: str,
        *args: Any,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call ``model.<model>.<method>(*args, context)`` with the user context (+ extras)."""
        if self._auth is None:
            await self._relogin(None)
        merged = {**self._context, **(context or {})}
        return await self.call(f"model.{model}.{method}", *args, merged)

    async def search_read(
        self,
        model: str,
        domain: Sequence[Any],
        fields: Sequence[str],
        *,
        order: Sequence[tuple[str, str]] | None = None,
        limit: int | None = None,
        offset: int = 0,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        rows = await self.model(
            model,
            "search_read",
            list(domain),
            offset,
            limit,
            [list(o) for o in order] if order else None,
            list(fields),
            context=context,
        )
        return list(rows)

    @contextlib.asynccontextmanager
    async def wizard(
        self, name: str, *, model: str, ids: Sequence[int]
    ) -> AsyncIterator[TrytonWizard]:
        """Open wizard ``name`` on records ``ids`` of ``model``; it is deleted on exit.

        Wizards are how Tryton's own UI pays an invoice or reconciles lines, so driving one
        keeps the server's rules (write-offs, currency, reconciliation) rather than copying
        them into the hub.
        """
        if self._auth is None:
            await self._relogin(None)
        context = {
            **self._context,
            "active_model": model,
            "active_id": ids[0],
            "active_ids": list(ids),
        }
        session_id, _, _ = await self.call(f"wizard.{name}.create", context)
        try:
            yield TrytonWizard(self, name, session_id, context)
        finally:
            await self.call(f"wizard.{name}.delete", session_id, self._context)

    # Internals -------------------------------------------------------------------------

    async def _relogin(self, stale: str | None) -> None:
        async with self._login_lock:
            if self._auth is None or self._auth == stale:
                self._auth = None
                await self.login()

    async def _post(self, method: str, params: list[Any], *, authenticated: bool) -> Any:
        self._next_id += 1
        body = {"id": self._next_id, "method": method, "params": encode(params)}
        headers = {"Authorization": self._auth} if authenticated and self._auth else {}
        try:
            response = await self._http.post(f"{self.database}/rpc/", json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError(f"Tryton {method} timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise TrytonUnreachable(
                f"Tryton at {self.url} unreachable ({method}): {exc!r}"
            ) from exc
        return self._result(method, response, authenticated=authenticated)

    def _result(self, method: str, response: httpx.Response, *, authenticated: bool) -> Any:
        status = response.status_code
        if status == httpx.codes.UNAUTHORIZED:
            if authenticated:
                raise _SessionExpired(method)
            raise TrytonAuthError(f"Tryton refused the login of {self.login_name!r}")
        if status == httpx.codes.TOO_MANY_REQUESTS:
            raise RateLimited(f"Tryton rate-limited {method}", retry_after=_retry_after(response))
        if status >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise TransientError(
                f"Tryton answered {status} to {method}: {response.text[:300]}",
                retry_after=_retry_after(response),
            )
        if status == httpx.codes.FORBIDDEN:
            raise TrytonAuthError(f"Tryton forbids {method} for {self.login_name!r}")
        if status == httpx.codes.NOT_FOUND:
            raise TrytonNoDatabase(f"Tryton has no database {self.database!r} at {self.url}")
        if status != httpx.codes.OK:
            raise TerminalError(f"Tryton answered {status} to {method}: {response.text[:300]}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise TransientError(f"Tryton sent a non-JSON answer to {method}") from exc
        if "error" in payload and payload["error"] is not None:
            raise _translate(method, payload["error"])
        return decode(payload.get("result"))


class TrytonWizard:
    """An open wizard session; ``execute`` runs one state with the forms filled so far."""

    def __init__(
        self, client: TrytonClient, name: str, session_id: int, context: dict[str, Any]
    ) -> None:
        self._client = client
        self.name = name
        self.session_id = session_id
        self._context = context

    async def execute(
        self, state: str, data: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Run ``state``; the result holds ``view`` (with ``defaults``) or ``actions``."""
        result = await self._client.call(
            f"wizard.{self.name}.execute",
            self.session_id,
            {k: dict(v) for k, v in (data or {}).items()},
            state,
            self._context,
        )
        return dict(result)


class _SessionExpired(Exception):
    """Internal: a 401 on an authenticated call; ``call`` logs in again and retries once."""


def _retry_after(response: httpx.Response) -> dt.timedelta | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return dt.timedelta(seconds=float(value))
    except ValueError:
        return None


def _translate(method: str, error: Any) -> Exception:
    """Map a JSON-RPC ``error`` member to revbridge's tree (see the module docstring)."""
    if isinstance(error, list) and len(error) == 2 and isinstance(error[1], list):
        kind, args = error[0], error[1]
        if kind == "UserError":
            message = str(args[0]) if args else "user error"
            description = str(args[1]) if len(args) > 1 and args[1] else ""
            return TrytonUserError(method, message, description)
        if kind == "UserWarning":
            name = str(args[0]) if args else ""
            message = str(args[1]) if len(args) > 1 else ""
            return TrytonUserWarning(method, name, message)
        if kind == "ConcurrencyException":
            return TransientError(f"Tryton {method}: {args[0] if args else 'concurrent update'}")
        if kind == "LoginException":
            return TrytonAuthError(f"Tryton {method} asks for a fresh login: {args}")
    if isinstance(error, list) and error:
        message = str(error[0])
        traceback = str(error[1]) if len(error) > 1 else ""
        if "database is locked" in message:
            # SQLite's single writer was busy past trytond's retries; a later try can pass.
            return TransientError(f"Tryton {method}: {message}")
        return TrytonServerError(method, message, traceback)
    return TrytonServerError(method, repr(error))
