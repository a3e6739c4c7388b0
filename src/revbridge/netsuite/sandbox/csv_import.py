"""CSV import of customers and journal entries, run as an asynchronous job.

NetSuite has no REST endpoint for CSV import: a real deployment submits the file through a
custom RESTlet that calls ``N/task`` ``CSV_IMPORT`` (see the README). The sandbox plays that
RESTlet; each row goes through the same record service, and so the same rules, as a REST
write. Results are per row: row 1 is the first line after the header.

Columns are matched on the REST field names, ignoring case, spaces and underscores, so both
``externalId`` and ``External ID`` work. References take an internal id, or a name the
import assistant would accept (currency ISO code, term name, subsidiary name, account number,
customer external id). Dates are ``YYYY-MM-DD`` or ``M/D/YYYY``.

A blank cell sets nothing: an upsert that updates a record leaves that field as it was, as
the Import Assistant does by default ("Overwrite Missing Fields" off; the facts do not cover
blank cells, so this is UNCONFIRMED). A blank cell never clears a field here, unlike a JSON
``null`` in a REST write; a client that must clear a field does it by REST.

Journal entries: consecutive rows sharing an ``externalId`` are the lines of one entry; the
header columns (tranDate, currency, subsidiary, memo) are read from its first row; line
columns are account, debit, credit, lineMemo and entity. A row of an unbalanced entry fails
with the entry.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import sqlite3
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Literal

from revbridge.core.wording import agreeing
from revbridge.netsuite.sandbox.errors import NetSuiteError, bad_request
from revbridge.netsuite.sandbox.jobs import Job, finish
from revbridge.netsuite.sandbox.records import RECORD_TYPES, JsonObject, parse_body
from revbridge.netsuite.sandbox.service import RecordService

MAX_ROWS = 25_000
ImportMode = Literal["add", "upsert"]
IMPORTABLE = ("customer", "journalEntry")

_CUSTOMER_COLUMNS = {
    name.lower(): name
    for name in (
        "externalId",
        "entityId",
        "companyName",
        "isPerson",
        "firstName",
        "lastName",
        "email",
        "phone",
        "comments",
        "subsidiary",
        "parent",
        "currency",
        "terms",
        "creditLimit",
        "creditHoldOverride",
        "isInactive",
    )
}
_JOURNAL_HEADER = {
    n.lower(): n for n in ("externalId", "tranDate", "currency", "subsidiary", "memo", "tranId")
}
_JOURNAL_LINE = {
    "account": "account",
    "debit": "debit",
    "credit": "credit",
    "linememo": "memo",
    "entity": "entity",
}
_BOOL = {
    "t": True,
    "true": True,
    "yes": True,
    "y": True,
    "f": False,
    "false": False,
    "no": False,
    "n": False,
}
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")

# How a name in a reference column is looked up, per target.
_NAME_LOOKUPS: dict[str, str] = {
    "currency": "SELECT id FROM currency WHERE symbol = ? OR name = ?",
    "terms": "SELECT id FROM term WHERE name = ? OR name = ?",
    "subsidiary": "SELECT id FROM subsidiary WHERE name = ? OR fullname = ?",
    "account": "SELECT id FROM account WHERE acctnumber = ? OR fullname = ?",
    "parent": "SELECT id FROM customer WHERE externalid = ? OR entityid = ?",
    "entity": "SELECT id FROM customer WHERE externalid = ? OR entityid = ?",
}


def _normalise(header: str) -> str:
    return re.sub(r"[\s_]", "", header).lower()


class CsvImport:
    """Validates a submitted file and runs its rows as a job."""

    def __init__(self, service: RecordService) -> None:
        self._service = service

    def check_request(self, body: Any) -> tuple[str, str, ImportMode]:
        """The record type, CSV text and mode of a RESTlet request body, or a 400."""
        if not isinstance(body, dict):
            raise bad_request("INVALID_CONTENT", "The request body must be a JSON object.")
        record_type = body.get("recordType")
        if record_type not in IMPORTABLE:
            raise bad_request(
                "INVALID_VALUE",
                f"recordType must be one of {', '.join(IMPORTABLE)}.",
                path="recordType",
            )
        text = body.get("csv")
        if not isinstance(text, str) or not text.strip():
            raise bad_request(
                "INVALID_CONTENT", "csv must be the text of the import file.", path="csv"
            )
        mode = body.get("mode", "add")
        if mode not in ("add", "upsert"):
            raise bad_request("INVALID_VALUE", "mode must be add or upsert.", path="mode")
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) - 1 > MAX_ROWS:
            raise bad_request(
                "INVALID_CONTENT", f"A CSV import takes at most {MAX_ROWS} rows.", path="csv"
            )
        return record_type, text, "add" if mode == "add" else "upsert"

    async def run(self, job: Job, record_type: str, text: str, mode: ImportMode) -> None:
        """Import the rows, yielding to the event loop between records so the job is observable."""
        reader = csv.DictReader(io.StringIO(text))
        fieldnames = reader.fieldnames or []
        columns = (
            _CUSTOMER_COLUMNS if record_type == "customer" else {**_JOURNAL_HEADER, **_JOURNAL_LINE}
        )
        unknown = [h for h in fieldnames if _normalise(h) not in columns]
        if unknown or not fieldnames:
            finish(
                job,
                "failed",
                {
                    "recordType": record_type,
                    "error": f"Unknown {agreeing(len(unknown), 'column')}: " + ", ".join(unknown)
                    if unknown
                    else "The file has no header row.",
                    "items": [],
                },
            )
            return
        rows = [
            {_normalise(k): (v or "").strip() for k, v in row.items() if k is not None}
            for row in reader
        ]
        results: list[JsonObject] = []
        if record_type == "customer":
            for number, row in enumerate(rows, start=1):
                results.append(
                    self._import(number, "customer", mode, partial(self._customer_body, row))
                )
                await asyncio.sleep(0)
        else:
            for numbers, group in _journal_groups(rows):
                outcome = self._import(
                    numbers[0], "journalEntry", mode, partial(self._journal_body, group)
                )
                results.extend({**outcome, "row": n} for n in numbers)
                await asyncio.sleep(0)
        failed = sum(1 for r in results if r["status"] == "error")
        finish(
            job,
            "succeeded",
            {
                "recordType": record_type,
                "mode": mode,
                "rows": len(results),
                "succeeded": len(results) - failed,
                "failed": failed,
                "items": results,
            },
        )

    def _import(
        self, number: int, record_type: str, mode: ImportMode, make_body: Callable[[], JsonObject]
    ) -> JsonObject:
        rt = RECORD_TYPES[record_type]
        try:
            body = make_body()
            parsed = parse_body(rt, body)
            external = parsed.header.get("externalId")
            if mode == "upsert":
                if external is None:
                    raise bad_request(
                        "USER_ERROR", "Upsert needs an externalId column value.", path="externalId"
                    )
                record_id, _ = self._service.upsert(
                    rt,
                    external,
                    parsed,
                    url_path=f"/services/rest/record/v1/{record_type}/eid:{external}",
                )
            else:
                record_id = self._service.create(rt, parsed)
        except NetSuiteError as exc:
            return {
                "row": number,
                "status": "error",
                "o:errorDetails": [d.as_json() for d in exc.details],
            }
        out: JsonObject = {"row": number, "status": "success", "id": str(record_id)}
        if external is not None:
            out["externalId"] = external
        return out

    def _customer_body(self, row: dict[str, str]) -> JsonObject:
        body: JsonObject = {}
        for key, value in row.items():
            if value == "":
                continue
            name = _CUSTOMER_COLUMNS[key]
            body[name] = self._value(name, value)
        return body

    def _journal_body(self, group: list[dict[str, str]]) -> JsonObject:
        first = group[0]
        body: JsonObject = {}
        for key, name in _JOURNAL_HEADER.items():
            if first.get(key):
                body[name] = self._value(name, first[key])
        lines: list[JsonObject] = []
        for row in group:
            line: JsonObject = {}
            for key, name in _JOURNAL_LINE.items():
                if row.get(key):
                    line[name] = self._value(name, row[key])
            lines.append(line)
        body["line"] = {"items": lines}
        return body

    def _value(self, name: str, text: str) -> Any:
        """A CSV cell as the JSON value the REST body would carry."""
        if name in ("isPerson", "isInactive"):
            if text.lower() not in _BOOL:
                raise bad_request("INVALID_VALUE", f"{text!r} is not true or false.", path=name)
            return _BOOL[text.lower()]
        if name in ("creditLimit", "debit", "credit"):
            try:
                return Decimal(text.replace(",", ""))
            except InvalidOperation:
                raise bad_request(
                    "INVALID_VALUE", f"{text!r} is not a number.", path=name
                ) from None
        if name == "tranDate":
            return _csv_date(text, name)
        if name == "creditHoldOverride":
            return {"id": text.upper()}
        if name in _NAME_LOOKUPS:
            return self._reference(name, text)
        return text

    def _reference(self, name: str, text: str) -> JsonObject:
        # Names first: account numbers are digits too, and "4000" means the account
        # numbered 4000 to an accountant, not internal id 4000.
        with self._service.storage.read() as conn:
            row: sqlite3.Row | None = conn.execute(_NAME_LOOKUPS[name], (text, text)).fetchone()
        if row is None and text.isdigit():
            return {"id": text}
        if row is None:
            raise bad_request(
                "INVALID_VALUE",
                f"Invalid value for the resource or sub-resource field '{name}'. "
                "Provide a valid value.",
                path=name,
            )
        return {"id": str(row[0])}


def _csv_date(text: str, name: str) -> str:
    match = _US_DATE.match(text)
    try:
        if match:
            return date(int(match.group(3)), int(match.group(1)), int(match.group(2))).isoformat()
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise bad_request("INVALID_VALUE", f"{text!r} is not a date.", path=name) from None


def _journal_groups(rows: list[dict[str, str]]) -> list[tuple[list[int], list[dict[str, str]]]]:
    """Consecutive rows with the same externalId form one entry; a row without one stands alone."""
    groups: list[tuple[list[int], list[dict[str, str]]]] = []
    previous: str | None = None
    for number, row in enumerate(rows, start=1):
        external = row.get("externalid") or None
        if groups and external is not None and external == previous:
            groups[-1][0].append(number)
            groups[-1][1].append(row)
        else:
            groups.append(([number], [row]))
        previous = external
    return groups
