"""Batch route: NetSuite CSV import files for customers and journal entries.

Data flow::

    canonical records --customers_csv / journals_csv--> CsvFile (text + Manifest)
        --CsvImporter.run--> look up every external id already in NetSuite
                             submit only the rows not confirmed there (RESTlet, N/task CSV_IMPORT)
                             poll the async job, read its per-row results
        --> ImportResult: one RowOutcome per external id

NetSuite has no REST endpoint for CSV import (facts 2.8); the route is a custom RESTlet that
calls ``N/task`` ``CSV_IMPORT``, which the sandbox emulates at
``/app/site/hosting/restlet.nl?script=customscript_revbridge_csv_import&deploy=1``.

Invariants:

* A file is deterministic for its input: same records, same text, same SHA-256.
* The manifest states what the file must do: rows, distinct records, control totals per
  currency (journal debits), checksum. ``ImportResult`` carries the manifest of what was sent.
* A rerun never posts a record twice. Documents (journal entries) are imported in ``add``
  mode: rows whose external id NetSuite already holds are reported ``already_present`` and
  not sent. Customers are imported in ``upsert`` mode: every row is sent, and NetSuite
  updates the customer its external id names (a rerun of a renamed customer applies the
  new name; decision 0026). A blank cell leaves a field as it was, so a customer whose
  ``parent`` cell is blank and who still has a parent gets the real-time upsert's
  ``parent: null`` by REST after the import (decision 0029). The submission's idempotency
  key is derived from the checksum of the text sent, so a resubmission of the very same
  text (say after a lost response) attaches to the first job instead of importing again.
* Journal lines of one entry are consecutive rows sharing the external id; NetSuite imports
  or refuses the entry as a whole.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from revbridge.core.events import CustomerUpserted, RevenueRecognized
from revbridge.errors import TerminalError
from revbridge.netsuite import mapping
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.client import NetSuiteErrorDetail, NetSuiteRequestError, loads
from revbridge.netsuite.config import NetSuiteConfig

RESTLET_PATH = "/app/site/hosting/restlet.nl"
RESTLET_SCRIPT = "customscript_revbridge_csv_import"
RESTLET_DEPLOY = "1"
CsvRecordType = Literal["customer", "journalEntry"]
Outcome = Literal["success", "error", "already_present"]
ImportMode = Literal["add", "upsert"]

# The fields of the real-time upsert (``mapping.customer_body``), so a customer synced by
# the nightly file is the same record as one sent at once.
CUSTOMER_COLUMNS = (
    "externalId",
    "entityId",
    "companyName",
    "subsidiary",
    "currency",
    "parent",
    "email",
    "phone",
    "isInactive",
)
JOURNAL_COLUMNS = (
    "externalId",
    "tranDate",
    "currency",
    "subsidiary",
    "memo",
    "account",
    "debit",
    "credit",
    "lineMemo",
    "entity",
)
_LOOKUP_CHUNK = 500
_LOOKUP_TABLE = {
    "customer": ("customer", ""),
    "journalEntry": ("transaction", " AND type = 'Journal'"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a CSV file holds and must achieve; written beside it as JSON."""

    record_type: CsvRecordType
    rows: int
    records: int
    control_totals: Mapping[str, Decimal]
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {
            "recordType": self.record_type,
            "rows": self.rows,
            "records": self.records,
            "controlTotals": {c: format(t, "f") for c, t in sorted(self.control_totals.items())},
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvRow:
    """One row of the file: its external id (the record it belongs to) and its cells."""

    external_id: str
    cells: Mapping[str, str]
    currency: str | None = None
    debit: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvFile:
    record_type: CsvRecordType
    columns: tuple[str, ...]
    rows: tuple[CsvRow, ...]
    text: str = field(init=False)
    manifest: Manifest = field(init=False)

    def __post_init__(self) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([row.cells.get(c, "") for c in self.columns])
        text = out.getvalue()
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for row in self.rows:
            if row.currency is not None:
                totals[row.currency] += row.debit
        object.__setattr__(self, "text", text)
        object.__setattr__(
            self,
            "manifest",
            Manifest(
                record_type=self.record_type,
                rows=len(self.rows),
                records=len({r.external_id for r in self.rows}),
                control_totals=dict(totals),
                sha256=hashlib.sha256(text.encode()).hexdigest(),
            ),
        )

    @classmethod
    def parse(cls, record_type: CsvRecordType, text: str) -> CsvFile:
        """The file back from its text (as written by ``customers_csv``/``journals_csv``):
        what the engine stored and submits is the text, and a rerun reads it again."""
        columns = CUSTOMER_COLUMNS if record_type == "customer" else JOURNAL_COLUMNS
        reader = csv.DictReader(io.StringIO(text))
        if tuple(reader.fieldnames or ()) != columns:
            raise TerminalError(
                f"a {record_type} import file must have the columns {', '.join(columns)};"
                f" this one has {', '.join(reader.fieldnames or ()) or 'none'}"
            )
        rows = []
        for cells in reader:
            journal = record_type == "journalEntry"
            rows.append(
                CsvRow(
                    external_id=cells["externalId"],
                    cells=cells,
                    currency=cells["currency"] if journal else None,
                    debit=Decimal(cells["debit"] or 0) if journal else Decimal(0),
                )
            )
        return cls(record_type=record_type, columns=columns, rows=tuple(rows))

    @property
    def external_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.external_id for r in self.rows))

    def without(self, external_ids: set[str]) -> CsvFile:
        """The same file minus the rows of ``external_ids``."""
        kept = tuple(r for r in self.rows if r.external_id not in external_ids)
        return CsvFile(record_type=self.record_type, columns=self.columns, rows=kept)

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write ``name.csv`` and ``name.manifest.json``; returns both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        csv_path = directory / f"{name}.csv"
        manifest_path = directory / f"{name}.manifest.json"
        csv_path.write_text(self.text, encoding="utf-8")
        manifest_path.write_text(
            json.dumps(self.manifest.as_json(), indent=2) + "\n", encoding="utf-8"
        )
        return csv_path, manifest_path


def _plain(amount: Decimal) -> str:
    return format(amount, "f")


def customers_csv(
    config: NetSuiteConfig, customers: Sequence[tuple[str, CustomerUpserted]]
) -> CsvFile:
    """A customer import file; ``customers`` are ``(source ref, payload)``.

    Parents are written before their children (the import runs rows in order) and referred
    to by external id, so a hierarchy can arrive in one file.
    """
    by_ref = dict(customers)
    ordered: list[str] = []
    placed: set[str] = set()

    def place(ref: str, trail: tuple[str, ...] = ()) -> None:
        if ref in placed or ref in trail:
            return
        parent = by_ref[ref].parent_customer_id
        if parent in by_ref:
            place(parent, (*trail, ref))
        placed.add(ref)
        ordered.append(ref)

    for ref, _ in customers:
        place(ref)
    rows = []
    for ref in ordered:
        customer = by_ref[ref]
        eid = mapping.external_id(config.external_id_prefix, ref)
        body = mapping.customer_body(config, customer, None)
        cells = {
            "externalId": eid,
            "companyName": str(body["companyName"]),
            "subsidiary": config.subsidiary_id,
            "currency": customer.currency,
            "parent": mapping.external_id(config.external_id_prefix, customer.parent_customer_id)
            if customer.parent_customer_id
            else "",
            "email": str(body.get("email", "")),
            "entityId": str(body.get("entityId", "")),
            "phone": str(body.get("phone", "")),
            "isInactive": "false",
        }
        rows.append(CsvRow(external_id=eid, cells=cells))
    return CsvFile(record_type="customer", columns=CUSTOMER_COLUMNS, rows=tuple(rows))


def journals_csv(
    config: NetSuiteConfig, entries: Sequence[tuple[str, RevenueRecognized]]
) -> CsvFile:
    """A journal import file, one entry per recognized schedule entry (``(ref, payload)``).

    Accounts and the subsidiary are written as internal ids (from ``gl_account_map``),
    currencies as ISO codes, customers as their external ids.
    """
    rows = []
    for ref, entry in entries:
        eid = mapping.external_id(config.external_id_prefix, ref)
        currency = mapping.single_currency(entry.lines, f"revenue entry {ref}")
        mapping.currency_ref(config, currency)  # a missing mapping fails the file, not a row
        entity = (
            mapping.external_id(config.external_id_prefix, entry.customer_id)
            if entry.customer_id
            else ""
        )
        for line in entry.lines:
            cells = {
                "externalId": eid,
                "tranDate": entry.entry_date.isoformat(),
                "currency": currency,
                "subsidiary": config.subsidiary_id,
                "memo": (entry.memo or f"Revenue {entry.period}")[:999],
                "account": str(mapping.account_ref(config, line.account)["id"]),
                "debit": _plain(line.debit) if line.debit else "",
                "credit": _plain(line.credit) if line.credit else "",
                "lineMemo": (line.memo or "")[:999],
                "entity": entity,
            }
            rows.append(CsvRow(external_id=eid, cells=cells, currency=currency, debit=line.debit))
    return CsvFile(record_type="journalEntry", columns=JOURNAL_COLUMNS, rows=tuple(rows))


@dataclass(frozen=True, slots=True, kw_only=True)
class RowOutcome:
    """What happened to one record of the file (all its rows)."""

    external_id: str
    status: Outcome
    erp_id: str | None = None
    rows: tuple[int, ...] = ()
    errors: tuple[NetSuiteErrorDetail, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """The outcome of one run: the manifest of the whole file, of what was sent, and per
    external id what happened. ``job_id`` is None when nothing needed sending."""

    manifest: Manifest
    sent: Manifest
    job_id: str | None
    outcomes: Mapping[str, RowOutcome]

    @property
    def failed(self) -> tuple[RowOutcome, ...]:
        return tuple(o for o in self.outcomes.values() if o.status == "error")

    @property
    def confirmed(self) -> tuple[RowOutcome, ...]:
        return tuple(o for o in self.outcomes.values() if o.status != "error")


class CsvImporter:
    """Submits CSV files through the import RESTlet of the connector's account."""

    def __init__(self, erp: NetSuiteErp) -> None:
        self.erp = erp
        self.http = erp.http
        self.config = erp.config

    async def present(
        self, record_type: CsvRecordType, external_ids: Sequence[str], *, also: str = ""
    ) -> dict[str, str]:
        """External id -> internal id, for those of ``external_ids`` NetSuite holds (and
        that meet the SuiteQL condition ``also``, when given)."""
        table, where = _LOOKUP_TABLE[record_type]
        where += also
        found: dict[str, str] = {}
        ids = list(external_ids)
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            # External ids are letters, digits, '_' and '-' only: safe inside a literal.
            listed = ", ".join(f"'{e}'" for e in chunk if mapping.is_external_id(e))
            if not listed:
                continue
            for row in await self.http.suiteql_all(
                f"SELECT id, externalid FROM {table} WHERE externalid IN ({listed}){where}"
                " ORDER BY id"
            ):
                found[str(row["externalid"])] = str(row["id"])
        return found

    async def run(self, file: CsvFile, *, mode: ImportMode = "add") -> ImportResult:
        """Import ``file``. ``add``: only the records NetSuite does not hold yet (documents
        are created once); ``upsert``: every record, created or updated by its external id
        (customers: a rerun of a changed customer must apply the change)."""
        already = await self.present(file.record_type, file.external_ids) if mode == "add" else {}
        outcomes: dict[str, RowOutcome] = {
            eid: RowOutcome(external_id=eid, status="already_present", erp_id=erp_id)
            for eid, erp_id in already.items()
        }
        to_send = file.without(set(already))
        if not to_send.rows:
            return ImportResult(
                manifest=file.manifest, sent=to_send.manifest, job_id=None, outcomes=outcomes
            )
        job_id = await self._submit(to_send, mode)
        result = await self._wait(job_id)
        outcomes.update(self._outcomes(to_send, result))
        if mode == "upsert" and file.record_type == "customer":
            await self._clear_blank_parents(to_send, outcomes)
        return ImportResult(
            manifest=file.manifest, sent=to_send.manifest, job_id=job_id, outcomes=outcomes
        )

    async def _clear_blank_parents(self, file: CsvFile, outcomes: Mapping[str, RowOutcome]) -> None:
        """Clear the parent of every imported customer whose ``parent`` cell is blank but
        which NetSuite still holds under a parent (decision 0029).

        The real-time upsert sends ``parent: null``, which moves a customer to the top of
        its hierarchy. A blank cell is no null: an import that updates a record leaves a
        field whose cell is blank as it was. So the same null is sent here, by REST, to
        those customers alone. A failure fails the file, whose rerun upserts again (0026).
        """
        blank = [
            r.external_id
            for r in file.rows
            if not r.cells.get("parent") and outcomes[r.external_id].status == "success"
        ]
        with_parent = await self.present("customer", blank, also=" AND parent IS NOT NULL")
        for erp_id in with_parent.values():
            await self.http.request(
                "PATCH", f"/record/v1/customer/{int(erp_id)}", body={"parent": None}
            )

    async def _submit(self, file: CsvFile, mode: ImportMode) -> str:
        key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"revbridge-csv:{mode}:{file.manifest.sha256}"))
        url = self.config.root_url + RESTLET_PATH
        try:
            response = await self.http.request(
                "POST",
                url,
                body={"recordType": file.record_type, "csv": file.text, "mode": mode},
                params={"script": RESTLET_SCRIPT, "deploy": RESTLET_DEPLOY},
                headers={"X-NetSuite-Idempotency-Key": key},
            )
        except NetSuiteRequestError as exc:
            if "IDEMPOTENCY_ERROR" in exc.codes and exc.location:
                # This very text was submitted before (its answer was lost): follow that job.
                return exc.location.rstrip("/").rsplit("/", 1)[-1]
            raise
        assert response is not None
        job_id: str = loads(response.content)["jobId"]
        return job_id

    async def _wait(self, job_id: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.csv_poll_timeout.total_seconds()
        while True:
            job = await self.http.json("GET", f"/async/v1/job/{job_id}")
            if job.get("completed"):
                break
            if loop.time() > deadline:
                raise TerminalError(f"CSV import job {job_id} did not finish in time")
            await asyncio.sleep(self.config.csv_poll_interval.total_seconds())
        result = await self.http.json("GET", f"/async/v1/job/{job_id}/task/{job_id}/result")
        if job.get("progress") == "failed":
            raise TerminalError(
                f"CSV import job {job_id} failed as a whole: {result.get('error', result)}"
            )
        return result

    @staticmethod
    def _outcomes(file: CsvFile, result: Mapping[str, Any]) -> dict[str, RowOutcome]:
        by_row = {int(item["row"]): item for item in result.get("items") or []}
        rows: dict[str, list[int]] = defaultdict(list)
        for number, row in enumerate(file.rows, start=1):
            rows[row.external_id].append(number)
        outcomes = {}
        for eid, numbers in rows.items():
            items = [by_row.get(n) for n in numbers]
            errors = tuple(
                NetSuiteErrorDetail(
                    code=str(d.get("o:errorCode", "")),
                    detail=str(d.get("detail", "")),
                    path=d.get("o:errorPath"),
                )
                for item in items
                if item is not None
                for d in item.get("o:errorDetails") or ()
            )
            ok = all(item is not None and item.get("status") == "success" for item in items)
            erp_id = next((str(i["id"]) for i in items if i is not None and i.get("id")), None)
            outcomes[eid] = RowOutcome(
                external_id=eid,
                status="success" if ok else "error",
                erp_id=erp_id if ok else None,
                rows=tuple(numbers),
                errors=tuple(dict.fromkeys(errors)),
            )
        return outcomes
