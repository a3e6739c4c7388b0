"""SuiteQL over the sandbox's own SQLite tables.

SuiteQL is Oracle-flavoured SQL. The query runs on SQLite after a small rewrite of the parts
of that dialect an integration commonly uses (outside string literals and quoted names):

* ``transaction`` is a keyword in SQLite, so the bare table/column name is quoted;
* ``BUILTIN.DF(x)`` becomes ``BUILTIN_DF(x)`` (returns x: the sandbox has no display values);
* ``SYSDATE`` / ``CURRENT_DATE`` read the sandbox clock;
* ``FETCH FIRST n ROWS ONLY`` becomes ``LIMIT n``;
* ``TO_DATE``, ``TO_TIMESTAMP``, ``TO_CHAR``, ``TO_NUMBER``, ``NVL``, ``NVL2`` are provided as
  functions, with the Oracle format elements YYYY MM DD HH24 HH MI SS FF AM MON MONTH.

Only reads of the NetSuite-named tables are allowed: an SQLite authorizer denies writes,
pragmas and every other table, and a progress handler stops a query that runs too long.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from revbridge.netsuite.sandbox.errors import bad_request
from revbridge.netsuite.sandbox.records import JsonObject
from revbridge.netsuite.sandbox.service import RecordService, collection
from revbridge.netsuite.sandbox.storage import TIMESTAMP_FORMAT, format_timestamp

MAX_RESULTS = 100_000
QUERY_TIME_LIMIT_S = 5.0
READABLE_TABLES = frozenset(
    {
        "account",
        "accountingperiod",
        "currency",
        "customer",
        "item",
        "nexttransactionlinelink",
        "previoustransactionlinelink",
        "subsidiary",
        "term",
        "transaction",
        "transactionaccountingline",
        "transactionline",
    }
)

_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bBUILTIN\s*\.\s*DF\s*\(", re.IGNORECASE), "BUILTIN_DF("),
    (re.compile(r"\b(?:SYSDATE|CURRENT_DATE)\b", re.IGNORECASE), "SANDBOX_SYSDATE()"),
    (re.compile(r"\bFETCH\s+FIRST\s+(\d+)\s+ROWS?\s+ONLY\b", re.IGNORECASE), r"LIMIT \1"),
    (re.compile(r"(?<!\w)transaction(?!\w)", re.IGNORECASE), '"transaction"'),
)
_ORACLE_FORMAT = (
    ("YYYY", "%Y"),
    ("MONTH", "%B"),
    ("MON", "%b"),
    ("HH24", "%H"),
    ("HH12", "%I"),
    ("HH", "%I"),
    ("MI", "%M"),
    ("SS", "%S"),
    ("FF6", "%f"),
    ("FF", "%f"),
    ("MM", "%m"),
    ("DD", "%d"),
    ("AM", "%p"),
    ("PM", "%p"),
)


def translate(query: str) -> str:
    """Rewrite the SuiteQL dialect into SQLite, leaving literals and quoted names alone."""
    out: list[str] = []
    plain: list[str] = []
    i, n = 0, len(query)

    def flush() -> None:
        text = "".join(plain)
        for pattern, replacement in _REWRITES:
            text = pattern.sub(replacement, text)
        out.append(text)
        plain.clear()

    while i < n:
        ch = query[i]
        if ch in "'\"":
            flush()
            end = i + 1
            while end < n:
                if query[end] == ch:
                    if end + 1 < n and query[end + 1] == ch:
                        end += 2
                        continue
                    break
                end += 1
            out.append(query[i : end + 1])
            i = end + 1
        elif query.startswith("--", i):
            end = query.find("\n", i)
            i = n if end < 0 else end
        elif query.startswith("/*", i):
            end = query.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            plain.append(ch)
            i += 1
    flush()
    return "".join(out)


def _python_format(oracle: str) -> str:
    out, i = [], 0
    while i < len(oracle):
        for token, replacement in _ORACLE_FORMAT:
            if oracle[i:].upper().startswith(token):
                out.append(replacement)
                i += len(token)
                break
        else:
            out.append(oracle[i].replace("%", "%%"))
            i += 1
    return "".join(out)


def _parse_moment(value: str, fmt: str | None) -> datetime | None:
    if fmt:
        # Sandbox timestamps are UTC, so a parsed wall-clock time is UTC too.
        return datetime.strptime(value, _python_format(fmt)).replace(tzinfo=UTC)
    for guess in (TIMESTAMP_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, guess).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _to_date(value: Any, fmt: str | None = None) -> str | None:
    """A date as the sandbox stores it: bare date at midnight, full timestamp otherwise."""
    if value is None:
        return None
    moment = _parse_moment(str(value), fmt)
    if moment is None:
        raise ValueError(f"cannot read {value!r} as a date")
    if (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0):
        return moment.date().isoformat()
    return moment.strftime(TIMESTAMP_FORMAT)


def _to_timestamp(value: Any, fmt: str | None = None) -> str | None:
    if value is None:
        return None
    moment = _parse_moment(str(value), fmt)
    if moment is None:
        raise ValueError(f"cannot read {value!r} as a timestamp")
    return moment.strftime(TIMESTAMP_FORMAT)


def _to_char(value: Any, fmt: str | None = None) -> str | None:
    if value is None:
        return None
    if fmt and isinstance(value, str):
        moment = _parse_moment(value, None)
        if moment is not None:
            return moment.strftime(_python_format(fmt))
    return str(value)


def _to_number(value: Any) -> float | int | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"cannot read {value!r} as a number") from None
    return int(number) if number == number.to_integral_value() else float(number)


def _nvl(value: Any, default: Any) -> Any:
    return default if value is None else value


def _nvl2(value: Any, if_set: Any, if_null: Any) -> Any:
    return if_null if value is None else if_set


def _builtin_df(value: Any) -> Any:
    return value


def _authorize(
    action: int, arg1: str | None, arg2: str | None, db: str | None, inner: str | None
) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_READ and arg1 is not None and arg1.lower() in READABLE_TABLES:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _render(value: Any) -> str:
    """SuiteQL hands values back as strings; whole numbers stored as floats lose the '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class SuiteQL:
    """Runs SuiteQL queries for the ``/query/v1/suiteql`` endpoint."""

    def __init__(self, service: RecordService) -> None:
        self._service = service
        self._storage = service.storage
        with self._storage.read() as conn:
            self._register(conn)

    def _register(self, conn: sqlite3.Connection) -> None:
        functions: tuple[tuple[str, int, Callable[..., Any]], ...] = (
            ("TO_DATE", 1, _to_date),
            ("TO_DATE", 2, _to_date),
            ("TO_TIMESTAMP", 1, _to_timestamp),
            ("TO_TIMESTAMP", 2, _to_timestamp),
            ("TO_CHAR", 1, _to_char),
            ("TO_CHAR", 2, _to_char),
            ("TO_NUMBER", 1, _to_number),
            ("NVL", 2, _nvl),
            ("NVL2", 3, _nvl2),
            ("BUILTIN_DF", 1, _builtin_df),
            ("SANDBOX_SYSDATE", 0, lambda: format_timestamp(self._storage.now())),
        )
        for name, arity, fn in functions:
            conn.create_function(name, arity, fn, deterministic=name != "SANDBOX_SYSDATE")

    def run(
        self, body: Any, *, limit: int, offset: int, base_url: str, url_path: str
    ) -> JsonObject:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("q"), str)
            or not body["q"].strip()
        ):
            raise bad_request(
                "INVALID_CONTENT",
                "The request body must be a JSON object with a 'q' query.",
                path="q",
            )
        sql = translate(body["q"].strip().rstrip(";"))
        self._service.refresh_balances()
        deadline = time.monotonic() + QUERY_TIME_LIMIT_S
        with self._storage.read() as conn:
            conn.set_authorizer(_authorize)
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                cursor = conn.execute(sql)
                names = [d[0].lower() for d in cursor.description or ()]
                rows = cursor.fetchmany(MAX_RESULTS)
            except (sqlite3.Error, ValueError) as exc:
                raise bad_request(
                    "INVALID_PARAMETER",
                    f"Invalid search query. Detailed unprocessed description follows. {exc}.",
                    path="q",
                ) from exc
            finally:
                conn.set_authorizer(None)
                conn.set_progress_handler(None, 0)
        items: list[JsonObject] = []
        for row in rows[offset : offset + limit]:
            item: JsonObject = {"links": []}
            for name, value in zip(names, row, strict=True):
                if value is not None:
                    item[name] = _render(value)
            items.append(item)
        return collection(
            items,
            total=len(rows),
            limit=limit,
            offset=offset,
            url=f"{base_url}{url_path}",
            params={},
        )
