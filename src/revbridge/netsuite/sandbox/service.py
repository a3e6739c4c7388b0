"""The record service: create, read, update, upsert, delete and list NetSuite records.

Every write runs in one SQLite transaction: resolve references, check the ERP rules
(``rules.py``), write the document, its lines, its general-ledger impact and its applications,
then recompute what depends on it (invoice amounts paid and remaining, customer balances).
A rule that fails raises ``NetSuiteError`` and the transaction rolls back, so a refused request
leaves no trace.

An update is "unpost, merge, post again": the stored record is read back as a body, the
request's fields are laid over it, and the result goes through the same checks as a create.
That keeps one code path for the rules, and a PATCH can never sneak past a check a POST meets.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from revbridge.netsuite.sandbox import rules
from revbridge.netsuite.sandbox.errors import (
    ErrorDetail,
    NetSuiteError,
    bad_request,
    invalid_value,
    not_found,
    user_error,
)
from revbridge.netsuite.sandbox.records import (
    EXTERNAL_ID,
    RECORD_TYPES,
    REF_LINK_TYPES,
    REF_TARGETS,
    STATUS_LABELS,
    Field,
    JsonObject,
    Kind,
    Parsed,
    RecordType,
    Ref,
    Sublist,
    render_number,
)
from revbridge.netsuite.sandbox.storage import (
    AR_ACCOUNT_ID,
    UNDEPOSITED_FUNDS_ACCOUNT_ID,
    Storage,
    parse_timestamp,
    round_money,
    to_decimal,
)

BASE_PRECISION = 2
REST_PREFIX = "/services/rest"
RECORD_PREFIX = f"{REST_PREFIX}/record/v1"
MAX_PAGE = 1000


@dataclass(slots=True)
class Settings:
    """Account preferences the accountant may change at run time."""

    enforce_credit_limit: bool = True


@dataclass(slots=True)
class _Plan:
    """Everything a transaction writes, computed and checked before anything is written."""

    row: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    gl: list[tuple[int, int, Decimal, Decimal]] = field(default_factory=list)
    applications: list[tuple[int, int, Decimal]] = field(default_factory=list)
    linktype: str = "Payment"


def collection(
    items: list[JsonObject],
    *,
    total: int,
    limit: int,
    offset: int,
    url: str,
    params: dict[str, str],
) -> JsonObject:
    """NetSuite's paged collection envelope, shared by record lists and SuiteQL."""

    def href(at: int) -> str:
        return f"{url}?{urlencode({**params, 'limit': limit, 'offset': at})}"

    links = [{"rel": "first", "href": href(0)}]
    if offset > 0:
        links.append({"rel": "prev", "href": href(max(0, offset - limit))})
    has_more = offset + len(items) < total
    if has_more:
        links.append({"rel": "next", "href": href(offset + limit)})
    last = max(0, (total - 1) // limit * limit) if total else 0
    links.append({"rel": "last", "href": href(last)})
    links.append({"rel": "self", "href": href(offset)})
    return {
        "links": links,
        "count": len(items),
        "hasMore": has_more,
        "items": items,
        "offset": offset,
        "totalResults": total,
    }


def paging(limit: str | None, offset: str | None) -> tuple[int, int]:
    """The ``limit`` and ``offset`` query parameters, checked as NetSuite bounds them."""
    try:
        lim = MAX_PAGE if limit is None else int(limit)
    except ValueError:
        raise bad_request(
            "INVALID_VALUE", "limit must be an integer.", query_param="limit"
        ) from None
    try:
        off = 0 if offset is None else int(offset)
    except ValueError:
        raise bad_request(
            "INVALID_VALUE", "offset must be an integer.", query_param="offset"
        ) from None
    if not 1 <= lim <= MAX_PAGE:
        raise bad_request(
            "INVALID_VALUE", f"limit must be between 1 and {MAX_PAGE}.", query_param="limit"
        )
    if off < 0:
        raise bad_request("INVALID_VALUE", "offset must not be negative.", query_param="offset")
    return lim, off


def _fmt_datetime(text: str) -> str:
    return parse_timestamp(text).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _first(problems: list[rules.Problem]) -> None:
    if problems:
        raise user_error(problems[0].detail, path=problems[0].path)


class RecordService:
    """The record service over one ``Storage``; all methods are synchronous and short."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings

    # ------------------------------------------------------------------ lookup

    @staticmethod
    def record_type(name: str, url_path: str) -> RecordType:
        rt = RECORD_TYPES.get(name)
        if rt is None:
            raise NetSuiteError(
                404,
                ErrorDetail(
                    code="INVALID_ID",
                    detail=f"Record type '{name}' does not exist.",
                    url_path=url_path,
                ),
            )
        return rt

    def _type_filter(self, rt: RecordType) -> tuple[str, tuple[Any, ...]]:
        return ("AND type = ?", (rt.tran_type,)) if rt.tran_type else ("", ())

    def resolve(self, conn: sqlite3.Connection, rt: RecordType, key: str, url_path: str) -> int:
        """The internal id for ``key`` (an id or ``eid:VALUE``), or a NetSuite 404."""
        where, args = self._type_filter(rt)
        table = _quoted(rt.table)
        if key.startswith("eid:"):
            external = key[4:]
            if not EXTERNAL_ID.match(external):
                raise not_found(url_path)
            row = conn.execute(
                f"SELECT id FROM {table} WHERE externalid = ? {where}", (external, *args)
            ).fetchone()
        elif key.isdigit():
            row = conn.execute(
                f"SELECT id FROM {table} WHERE id = ? {where}", (int(key), *args)
            ).fetchone()
        else:
            row = None
        if row is None:
            raise not_found(url_path)
        return int(row["id"])

    def _row(self, conn: sqlite3.Connection, rt: RecordType, record_id: int) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            f"SELECT * FROM {_quoted(rt.table)} WHERE id = ?", (record_id,)
        ).fetchone()
        if row is None:
            raise not_found(f"{RECORD_PREFIX}/{rt.name}/{record_id}")
        return row

    def _ref(self, conn: sqlite3.Connection, ref: Ref | None, target: str, path: str) -> int | None:
        """Resolve a body reference to an existing record of ``target``, else a 400."""
        if ref is None:
            return None
        table, _ = REF_TARGETS[target]
        type_clause = " AND type = 'CustInvc'" if target == "invoice" else ""
        if ref.id is not None:
            row = conn.execute(
                f"SELECT id FROM {table} WHERE id = ?{type_clause}", (ref.id,)
            ).fetchone()
        elif table in ("customer", '"transaction"'):
            row = conn.execute(
                f"SELECT id FROM {table} WHERE externalid = ?{type_clause}", (ref.external_id,)
            ).fetchone()
        else:
            row = None
        if row is None:
            raise invalid_value(path)
        return int(row["id"])

    # ------------------------------------------------------------------ reading

    def read(
        self,
        rt: RecordType,
        key: str,
        *,
        base_url: str,
        url_path: str,
        fields: list[str] | None = None,
        expand: bool = False,
    ) -> JsonObject:
        with self.storage.read() as conn:
            record_id = self.resolve(conn, rt, key, url_path)
            if fields is not None:
                known = {f.name for f in rt.fields} | {s.name for s in rt.sublists} | {"id"}
                for name in fields:
                    if name not in known:
                        raise bad_request(
                            "NONEXISTENT_FIELD",
                            f"The field '{name}' does not exist on the {rt.name} record.",
                            query_param="fields",
                        )
            return self._render(conn, rt, record_id, base_url, fields, expand)

    def _render(
        self,
        conn: sqlite3.Connection,
        rt: RecordType,
        record_id: int,
        base_url: str,
        fields: list[str] | None,
        expand: bool,
    ) -> JsonObject:
        row = dict(self._row(conn, rt, record_id))
        if rt.name == "customer":
            row["balance"], row["overduebalance"] = self.customer_balance(conn, record_id)
        href = f"{base_url}{RECORD_PREFIX}/{rt.name}/{record_id}"
        out: JsonObject = {"links": [{"rel": "self", "href": href}], "id": str(record_id)}
        wanted = set(fields) if fields is not None else None
        for f in rt.fields:
            if wanted is not None and f.name not in wanted:
                continue
            value = row.get(f.column)
            if value is not None:
                out[f.name] = self._render_value(conn, rt, f, value, base_url)
        for sub in rt.sublists:
            if wanted is not None and sub.name not in wanted:
                continue
            sub_href = f"{href}/{sub.name}"
            if expand:
                lines = self.sublist_lines(conn, rt, sub, record_id, base_url)
                out[sub.name] = {
                    "links": [{"rel": "self", "href": sub_href}],
                    "count": len(lines),
                    "hasMore": False,
                    "items": lines,
                    "offset": 0,
                    "totalResults": len(lines),
                }
            else:
                out[sub.name] = {"links": [{"rel": "self", "href": sub_href}]}
        return out

    def _render_value(
        self, conn: sqlite3.Connection, rt: RecordType | None, f: Field, value: Any, base_url: str
    ) -> Any:
        if f.kind == Kind.BOOL:
            return value == "T"
        if f.kind in (Kind.MONEY, Kind.NUMBER):
            return render_number(to_decimal(value))
        if f.kind == Kind.INT:
            return int(value)
        if f.kind == Kind.DATETIME:
            return _fmt_datetime(str(value))
        if f.kind == Kind.REF and f.target is not None:
            return self._render_ref(conn, f.target, int(value), base_url)
        if f.kind == Kind.ENUM:
            if f.column == "status" and rt is not None and rt.tran_type:
                label = STATUS_LABELS[rt.tran_type].get(str(value), str(value))
            else:
                label = dict(f.choices).get(str(value), str(value))
            return {"id": str(value), "refName": label}
        return value

    def _render_ref(
        self, conn: sqlite3.Connection, target: str, ref_id: int, base_url: str
    ) -> JsonObject:
        table, name_sql = REF_TARGETS[target]
        row = conn.execute(
            f"SELECT {name_sql} AS n FROM {table} WHERE id = ?", (ref_id,)
        ).fetchone()
        link_type = REF_LINK_TYPES.get(target, target)
        out: JsonObject = {
            "links": [{"rel": "self", "href": f"{base_url}{RECORD_PREFIX}/{link_type}/{ref_id}"}],
            "id": str(ref_id),
        }
        if row is not None and row["n"] is not None:
            out["refName"] = row["n"]
        return out

    def sublist(
        self, rt: RecordType, key: str, name: str, *, base_url: str, url_path: str
    ) -> JsonObject:
        sub = rt.sublist(name)
        if sub is None:
            raise not_found(url_path, f"The sub-resource '{name}' does not exist on {rt.name}.")
        with self.storage.read() as conn:
            record_id = self.resolve(conn, rt, key, url_path)
            lines = self.sublist_lines(conn, rt, sub, record_id, base_url)
        href = f"{base_url}{RECORD_PREFIX}/{rt.name}/{record_id}/{name}"
        return {
            "links": [{"rel": "self", "href": href}],
            "count": len(lines),
            "hasMore": False,
            "items": lines,
            "offset": 0,
            "totalResults": len(lines),
        }

    def sublist_lines(
        self, conn: sqlite3.Connection, rt: RecordType, sub: Sublist, record_id: int, base_url: str
    ) -> list[JsonObject]:
        out: list[JsonObject] = []
        for line in self._stored_lines(conn, sub, record_id):
            rendered: JsonObject = {"links": []}
            for f in sub.fields:
                value = line.get(f.name)
                if value is None:
                    continue
                if f.kind == Kind.REF and f.target is not None:
                    assert isinstance(value, Ref)
                    assert value.id is not None
                    rendered[f.name] = self._render_ref(conn, f.target, value.id, base_url)
                elif f.kind in (Kind.MONEY, Kind.NUMBER):
                    rendered[f.name] = render_number(value)
                else:
                    rendered[f.name] = value
            out.append(rendered)
        return out

    def _stored_lines(
        self, conn: sqlite3.Connection, sub: Sublist, record_id: int
    ) -> list[dict[str, Any]]:
        """Sublist lines as parsed Python values (``Ref``, Decimal), as a body would give them."""
        if sub.name == "apply":
            rows = conn.execute(
                "SELECT l.previousdoc, l.previousline, l.foreignamount, t.tranid, t.foreigntotal,"
                ' t.foreignamountremaining FROM nexttransactionlinelink l JOIN "transaction" t'
                " ON t.id = l.previousdoc WHERE l.nextdoc = ? ORDER BY l.nextline",
                (record_id,),
            ).fetchall()
            return [
                {
                    "doc": Ref(id=int(r["previousdoc"])),
                    "line": int(r["previousline"]),
                    "apply": True,
                    "amount": to_decimal(r["foreignamount"]),
                    "refNum": r["tranid"],
                    "total": to_decimal(r["foreigntotal"]),
                    "due": to_decimal(r["foreignamountremaining"]),
                }
                for r in rows
            ]
        rows = conn.execute(
            "SELECT * FROM transactionline WHERE \"transaction\" = ? AND mainline = 'F'"
            " ORDER BY linesequencenumber",
            (record_id,),
        ).fetchall()
        lines: list[dict[str, Any]] = []
        for r in rows:
            if sub.name == "item":
                line: dict[str, Any] = {
                    "line": int(r["id"]),
                    "item": Ref(id=int(r["item"])),
                    "quantity": to_decimal(r["quantity"]),
                    "rate": to_decimal(r["rate"]),
                    "amount": to_decimal(r["foreignamount"]),
                    "description": r["description"],
                }
            else:
                line = {
                    "line": int(r["id"]),
                    "account": Ref(id=int(r["account"])),
                    "memo": r["memo"],
                    "entity": Ref(id=int(r["entity"])) if r["entity"] is not None else None,
                }
                if r["debitforeignamount"] is not None:
                    line["debit"] = to_decimal(r["debitforeignamount"])
                if r["creditforeignamount"] is not None:
                    line["credit"] = to_decimal(r["creditforeignamount"])
            lines.append(line)
        return lines

    def list_records(
        self,
        rt: RecordType,
        *,
        limit: int,
        offset: int,
        base_url: str,
        url_path: str,
        where: Callable[[JsonObject], bool] | None = None,
    ) -> JsonObject:
        with self.storage.read() as conn:
            clause, args = self._type_filter(rt)
            ids = [
                int(r["id"])
                for r in conn.execute(
                    f"SELECT id FROM {_quoted(rt.table)} WHERE 1 = 1 {clause} ORDER BY id", args
                )
            ]
            if where is not None:
                ids = [i for i in ids if where(self._render(conn, rt, i, base_url, None, False))]
        page = ids[offset : offset + limit]
        items = [
            {
                "links": [{"rel": "self", "href": f"{base_url}{RECORD_PREFIX}/{rt.name}/{i}"}],
                "id": str(i),
            }
            for i in page
        ]
        return collection(
            items,
            total=len(ids),
            limit=limit,
            offset=offset,
            url=f"{base_url}{url_path}",
            params={},
        )

    # ------------------------------------------------------------------ writing

    def create(self, rt: RecordType, record: Parsed) -> int:
        self.require_writable(rt)
        with self.storage.write() as conn:
            external = record.header.get("externalId")
            if external is not None:
                self._refuse_duplicate(conn, rt, external)
            return self._save(conn, rt, record, None)

    def update(
        self, rt: RecordType, key: str, patch: Parsed, *, url_path: str, replace: Iterable[str] = ()
    ) -> int:
        self.require_writable(rt)
        with self.storage.write() as conn:
            record_id = self.resolve(conn, rt, key, url_path)
            return self._update(conn, rt, record_id, patch, set(replace))

    def upsert(
        self, rt: RecordType, external_id: str, record: Parsed, *, url_path: str
    ) -> tuple[int, bool]:
        """Create or update by external id; sublists given are replaced so a retry is harmless."""
        self.require_writable(rt)
        body_eid = record.header.get("externalId")
        if body_eid is not None and body_eid != external_id:
            raise bad_request(
                "INVALID_VALUE",
                "The externalId in the body differs from the one in the URL.",
                path="externalId",
            )
        record.header["externalId"] = external_id
        with self.storage.write() as conn:
            where, args = self._type_filter(rt)
            row = conn.execute(
                f"SELECT id FROM {_quoted(rt.table)} WHERE externalid = ? {where}",
                (external_id, *args),
            ).fetchone()
            if row is None:
                return self._save(conn, rt, record, None), True
            return self._update(conn, rt, int(row["id"]), record, set(record.sublists)), False

    def delete(self, rt: RecordType, key: str, *, url_path: str) -> None:
        self.require_writable(rt)
        with self.storage.write() as conn:
            record_id = self.resolve(conn, rt, key, url_path)
            row = self._row(conn, rt, record_id)
            if rt.name == "customer":
                used = (
                    conn.execute(
                        'SELECT 1 FROM "transaction" WHERE entity = ? LIMIT 1', (record_id,)
                    ).fetchone()
                    or conn.execute(
                        "SELECT 1 FROM customer WHERE parent = ? LIMIT 1", (record_id,)
                    ).fetchone()
                    or conn.execute(
                        "SELECT 1 FROM transactionline WHERE entity = ? LIMIT 1", (record_id,)
                    ).fetchone()
                )
                if used:
                    raise _dependent()
                conn.execute("DELETE FROM customer WHERE id = ?", (record_id,))
                return
            self._check_period(conn, int(row["postingperiod"]))
            if conn.execute(
                "SELECT 1 FROM nexttransactionlinelink WHERE previousdoc = ? LIMIT 1", (record_id,)
            ).fetchone():
                raise _dependent()
            self._unpost(conn, row)
            conn.execute('DELETE FROM "transaction" WHERE id = ?', (record_id,))
            if row["entity"] is not None:
                self._store_customer_balance(conn, int(row["entity"]))

    def require_writable(self, rt: RecordType) -> None:
        if not rt.writable:
            raise NetSuiteError(
                405,
                ErrorDetail(
                    code="INVALID_REQUEST",
                    detail=f"The {rt.name} record is read-only in this sandbox.",
                    url_path=f"{RECORD_PREFIX}/{rt.name}",
                ),
            )

    def _refuse_duplicate(self, conn: sqlite3.Connection, rt: RecordType, external: str) -> None:
        where, args = self._type_filter(rt)
        if conn.execute(
            f"SELECT 1 FROM {_quoted(rt.table)} WHERE externalid = ? {where}", (external, *args)
        ).fetchone():
            raise user_error(
                f"A {rt.title.lower()} with external ID '{external}' already exists. "
                "Use PUT .../eid:{externalId} to update it.",
                path="externalId",
            )

    def _update(
        self,
        conn: sqlite3.Connection,
        rt: RecordType,
        record_id: int,
        patch: Parsed,
        replace: set[str],
    ) -> int:
        stored = self._stored_record(conn, rt, record_id)
        merged = _merge(rt, stored, patch, replace)
        external = patch.header.get("externalId")
        if external is not None and external != stored.header.get("externalId"):
            self._refuse_duplicate(conn, rt, external)
        return self._save(conn, rt, merged, self._row(conn, rt, record_id))

    def _stored_record(self, conn: sqlite3.Connection, rt: RecordType, record_id: int) -> Parsed:
        row = self._row(conn, rt, record_id)
        parsed = Parsed()
        for f in rt.fields:
            if not f.writable:
                continue
            value = row[f.column]
            if value is None:
                continue
            if f.kind == Kind.REF:
                parsed.header[f.name] = Ref(id=int(value))
            elif f.kind == Kind.BOOL:
                parsed.header[f.name] = value == "T"
            elif f.kind in (Kind.MONEY, Kind.NUMBER):
                parsed.header[f.name] = to_decimal(value)
            elif f.kind == Kind.DATE:
                parsed.header[f.name] = date.fromisoformat(value)
            else:
                parsed.header[f.name] = value
        for sub in rt.sublists:
            parsed.sublists[sub.name] = [
                {k: v for k, v in line.items() if v is not None and (sub.field(k) or _RO).writable}
                for line in self._stored_lines(conn, sub, record_id)
            ]
        return parsed

    def _save(
        self, conn: sqlite3.Connection, rt: RecordType, record: Parsed, existing: sqlite3.Row | None
    ) -> int:
        if rt.name == "customer":
            return self._save_customer(conn, record, existing)
        if existing is not None:
            self._check_period(conn, int(existing["postingperiod"]))
            self._unpost(conn, existing)
        planner = {
            "invoice": self._plan_invoice,
            "customerPayment": self._plan_payment,
            "creditMemo": self._plan_credit_memo,
            "journalEntry": self._plan_journal,
        }[rt.name]
        return self._write_plan(conn, rt, planner(conn, record), existing)

    # ------------------------------------------------------------------ customers

    def _save_customer(
        self, conn: sqlite3.Connection, record: Parsed, existing: sqlite3.Row | None
    ) -> int:
        h = record.header
        is_person = bool(h.get("isPerson"))
        if is_person and not h.get("lastName"):
            raise user_error("Please enter value(s) for: Last Name", path="lastName")
        if not is_person and not h.get("companyName"):
            raise user_error("Please enter value(s) for: Company Name", path="companyName")
        subsidiary = self._ref(conn, h.get("subsidiary"), "subsidiary", "subsidiary") or 1
        currency = self._ref(conn, h.get("currency"), "currency", "currency") or int(
            conn.execute("SELECT currency FROM subsidiary WHERE id = ?", (subsidiary,)).fetchone()[
                0
            ]
        )
        parent = self._ref(conn, h.get("parent"), "customer", "parent")
        if existing is not None and parent == existing["id"]:
            raise invalid_value("parent")
        limit = h.get("creditLimit")
        if limit is not None:
            if limit < 0:
                raise invalid_value("creditLimit")
            limit = round_money(limit, BASE_PRECISION)
        stamp = self.storage.stamp()
        values: dict[str, Any] = {
            "entityid": h.get("entityId") or (existing["entityid"] if existing else ""),
            "externalid": h.get("externalId"),
            "companyname": h.get("companyName"),
            "isperson": "T" if is_person else "F",
            "firstname": h.get("firstName"),
            "lastname": h.get("lastName"),
            "email": h.get("email"),
            "phone": h.get("phone"),
            "comments": h.get("comments"),
            "subsidiary": subsidiary,
            "parent": parent,
            "currency": currency,
            "terms": self._ref(conn, h.get("terms"), "term", "terms"),
            "creditlimit": None if limit is None else str(limit),
            "creditholdoverride": h.get("creditHoldOverride") or "AUTO",
            "isinactive": "T" if h.get("isInactive") else "F",
            "lastmodifieddate": stamp,
        }
        if existing is not None:
            record_id = int(existing["id"])
            assignments = ", ".join(f"{c} = ?" for c in values)
            conn.execute(
                f"UPDATE customer SET {assignments} WHERE id = ?", (*values.values(), record_id)
            )
        else:
            values["datecreated"] = stamp
            cursor = conn.execute(
                f"INSERT INTO customer ({', '.join(values)})"
                f" VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
            assert cursor.lastrowid is not None
            record_id = cursor.lastrowid
            if not values["entityid"]:
                conn.execute(
                    "UPDATE customer SET entityid = ? WHERE id = ?", (f"CUST{record_id}", record_id)
                )
        return record_id

    def customer_balance(
        self, conn: sqlite3.Connection, customer_id: int
    ) -> tuple[Decimal, Decimal]:
        """Open AR balance and its overdue part, in the base currency.

        Balance = invoices' amounts remaining less unapplied payments and credit memos, each
        converted at its own exchange rate; overdue counts invoices whose due date has passed.
        """
        today = self.storage.today().isoformat()
        balance = overdue = Decimal(0)
        for r in conn.execute(
            "SELECT type, foreignamountremaining, foreignpaymentamountunused, exchangerate,"
            ' duedate FROM "transaction" WHERE entity = ?'
            " AND type IN ('CustInvc', 'CustPymt', 'CustCred')",
            (customer_id,),
        ):
            rate = to_decimal(r["exchangerate"])
            if r["type"] == "CustInvc":
                open_amount = to_decimal(r["foreignamountremaining"]) * rate
                balance += open_amount
                if r["duedate"] is not None and r["duedate"] < today:
                    overdue += open_amount
            else:
                balance -= to_decimal(r["foreignpaymentamountunused"]) * rate
        return round_money(balance, BASE_PRECISION), round_money(overdue, BASE_PRECISION)

    def _store_customer_balance(self, conn: sqlite3.Connection, customer_id: int) -> None:
        balance, overdue = self.customer_balance(conn, customer_id)
        conn.execute(
            "UPDATE customer SET balance = ?, overduebalance = ? WHERE id = ?",
            (str(balance), str(overdue), customer_id),
        )

    def refresh_balances(self) -> None:
        """Bring every stored balance up to date; overdue amounts move with the calendar alone."""
        with self.storage.write() as conn:
            for (customer_id,) in conn.execute("SELECT id FROM customer").fetchall():
                self._store_customer_balance(conn, int(customer_id))

    # ------------------------------------------------------------------ transactions

    def _check_period(self, conn: sqlite3.Connection, period_id: int) -> None:
        row = conn.execute(
            "SELECT periodname, closed FROM accountingperiod WHERE id = ?", (period_id,)
        ).fetchone()
        _first(rules.period_problems(period_name=row["periodname"], closed=row["closed"] == "T"))

    def _customer(
        self, conn: sqlite3.Connection, ref: Ref | None, path: str, label: str
    ) -> sqlite3.Row:
        if ref is None:
            raise user_error(f"Please enter value(s) for: {label}", path=path)
        customer_id = self._ref(conn, ref, "customer", path)
        row: sqlite3.Row = conn.execute(
            "SELECT * FROM customer WHERE id = ?", (customer_id,)
        ).fetchone()
        return row

    def _header(
        self, conn: sqlite3.Connection, record: Parsed, customer: sqlite3.Row | None
    ) -> tuple[dict[str, Any], int]:
        """Columns every transaction shares, with NetSuite's defaults, and the precision."""
        h = record.header
        tran_date: date = h.get("tranDate") or self.storage.today()
        subsidiary = self._ref(conn, h.get("subsidiary"), "subsidiary", "subsidiary") or (
            int(customer["subsidiary"]) if customer is not None else 1
        )
        currency = self._ref(conn, h.get("currency"), "currency", "currency")
        if currency is None:
            currency = (
                int(customer["currency"])
                if customer is not None
                else int(
                    conn.execute(
                        "SELECT currency FROM subsidiary WHERE id = ?", (subsidiary,)
                    ).fetchone()[0]
                )
            )
        cur = conn.execute("SELECT * FROM currency WHERE id = ?", (currency,)).fetchone()
        rate = h.get("exchangeRate")
        if rate is None:
            rate = to_decimal(cur["exchangerate"])
        elif rate <= 0:
            raise invalid_value("exchangeRate")
        period = self._ref(conn, h.get("postingPeriod"), "accountingPeriod", "postingPeriod")
        if period is None:
            row = conn.execute(
                "SELECT id FROM accountingperiod WHERE isposting = 'T' AND startdate <= ?"
                " AND enddate >= ? ORDER BY startdate LIMIT 1",
                (tran_date.isoformat(), tran_date.isoformat()),
            ).fetchone()
            if row is None:
                raise user_error(
                    f"No accounting period is set up for {tran_date.isoformat()}.", path="tranDate"
                )
            period = int(row["id"])
        self._check_period(conn, period)
        header = {
            "tranid": h.get("tranId"),
            "trandate": tran_date.isoformat(),
            "externalid": h.get("externalId"),
            "currency": currency,
            "exchangerate": str(rate),
            "subsidiary": subsidiary,
            "postingperiod": period,
            "memo": h.get("memo"),
        }
        return header, int(cur["currencyprecision"])

    def _item_lines(
        self, conn: sqlite3.Connection, record: Parsed, precision: int
    ) -> list[tuple[dict[str, Any], int]]:
        """Item lines as transactionline rows, each with its income account."""
        lines = record.sublists.get("item") or []
        if not lines:
            raise user_error(
                "You must enter at least one line item for this transaction.", path="item"
            )
        out: list[tuple[dict[str, Any], int]] = []
        for index, line in enumerate(lines, start=1):
            path = f"item.items[{index - 1}]"
            if line.get("item") is None:
                raise user_error("Please enter value(s) for: Item", path=f"{path}.item")
            item_id = self._ref(conn, line.get("item"), "item", f"{path}.item")
            income = int(
                conn.execute("SELECT incomeaccount FROM item WHERE id = ?", (item_id,)).fetchone()[
                    0
                ]
            )
            given_quantity: Decimal | None = line.get("quantity")
            quantity = Decimal(1) if given_quantity is None else given_quantity
            if quantity <= 0:
                raise invalid_value(f"{path}.quantity")
            rate: Decimal | None = line.get("rate")
            amount: Decimal | None = line.get("amount")
            if amount is None:
                if rate is None:
                    raise user_error("Please enter value(s) for: Rate", path=f"{path}.rate")
                amount = quantity * rate
            amount = round_money(amount, precision)
            if rate is None:
                rate = amount / quantity
            out.append(
                (
                    {
                        "id": index,
                        "linesequencenumber": index,
                        "mainline": "F",
                        "item": item_id,
                        "quantity": str(quantity),
                        "rate": str(rate),
                        "foreignamount": str(amount),
                        "description": line.get("description"),
                    },
                    income,
                )
            )
        return out

    def _applications(
        self,
        conn: sqlite3.Connection,
        record: Parsed,
        *,
        customer_id: int,
        currency: int,
        available: Decimal,
        precision: int,
        document: str,
    ) -> list[tuple[int, int, Decimal]]:
        """Check and size the apply lines; returns (invoice id, invoice line, amount)."""
        planned: list[tuple[int, int, Decimal]] = []
        checks: list[rules.Application] = []
        unallocated = available
        for index, line in enumerate(record.sublists.get("apply") or []):
            if line.get("apply") is False:
                continue
            path = f"apply.items[{index}]"
            if line.get("doc") is None:
                raise user_error("Please enter value(s) for: Doc", path=f"{path}.doc")
            invoice_id = self._ref(conn, line.get("doc"), "invoice", f"{path}.doc")
            invoice = conn.execute(
                'SELECT * FROM "transaction" WHERE id = ?', (invoice_id,)
            ).fetchone()
            if int(invoice["entity"]) != customer_id:
                raise invalid_value(f"{path}.doc")
            if int(invoice["currency"]) != currency:
                raise user_error(
                    f"Invoice {invoice['tranid']} is in another currency.", path=f"{path}.doc"
                )
            remaining = to_decimal(invoice["foreignamountremaining"])
            amount: Decimal | None = line.get("amount")
            if amount is None:
                amount = max(Decimal(0), min(remaining, unallocated))
            amount = round_money(amount, precision)
            unallocated -= amount
            checks.append(
                rules.Application(
                    path=f"{path}.amount",
                    invoice_label=str(invoice["tranid"]),
                    amount=amount,
                    invoice_remaining=remaining,
                )
            )
            planned.append((int(invoice["id"]), int(line.get("line") or 0), amount))
        _first(rules.application_problems(checks, available=available, document=document))
        return planned

    def _plan_invoice(self, conn: sqlite3.Connection, record: Parsed) -> _Plan:
        h = record.header
        customer = self._customer(conn, h.get("entity"), "entity", "Customer")
        header, precision = self._header(conn, record, customer)
        items = self._item_lines(conn, record, precision)
        total = sum((to_decimal(line["foreignamount"]) for line, _ in items), Decimal(0))
        rate = to_decimal(header["exchangerate"])
        self._check_credit(conn, customer, round_money(total * rate, BASE_PRECISION))
        terms = self._ref(conn, h.get("terms"), "term", "terms")
        if terms is None and customer["terms"] is not None:
            terms = int(customer["terms"])
        due: date | None = h.get("dueDate")
        if due is None:
            days = 0
            if terms is not None:
                days = int(
                    conn.execute(
                        "SELECT daysuntilnetdue FROM term WHERE id = ?", (terms,)
                    ).fetchone()[0]
                )
            due = date.fromisoformat(header["trandate"]) + timedelta(days=days)
        account = self._ar_account(conn, h.get("account"))
        plan = _Plan(
            row={
                **header,
                "entity": int(customer["id"]),
                "terms": terms,
                "duedate": due.isoformat(),
                "account": account,
                "otherrefnum": h.get("otherRefNum"),
                "createdfrom": None,
                "status": "A",
                "foreigntotal": str(total),
                "foreignamountpaid": "0",
                "foreignamountremaining": str(total),
                "foreignpaymentamountused": "0",
                "foreignpaymentamountunused": "0",
            }
        )
        plan.lines.append(_mainline(account, int(customer["id"]), total, header["memo"]))
        credits = [
            (
                line["id"],
                income,
                round_money(to_decimal(line["foreignamount"]) * rate, BASE_PRECISION),
            )
            for line, income in items
        ]
        plan.lines.extend(line for line, _ in items)
        plan.gl.append((0, account, sum((c for _, _, c in credits), Decimal(0)), Decimal(0)))
        plan.gl.extend((line_id, income, Decimal(0), base) for line_id, income, base in credits)
        return plan

    def _check_credit(
        self, conn: sqlite3.Connection, customer: sqlite3.Row, new_amount: Decimal
    ) -> None:
        balance, _ = self.customer_balance(conn, int(customer["id"]))
        limit = customer["creditlimit"]
        _first(
            rules.credit_hold_problems(
                customer_label=str(customer["entityid"]),
                hold=customer["creditholdoverride"],
                credit_limit=None if limit is None else to_decimal(limit),
                balance=balance,
                new_amount=new_amount,
                enforce_limit=self.settings.enforce_credit_limit,
            )
        )

    def _ar_account(self, conn: sqlite3.Connection, ref: Ref | None) -> int:
        account = self._ref(conn, ref, "account", "account")
        if account is None:
            return AR_ACCOUNT_ID
        kind = conn.execute("SELECT accttype FROM account WHERE id = ?", (account,)).fetchone()[0]
        if kind != "AcctRec":
            raise invalid_value("account")
        return account

    def _plan_payment(self, conn: sqlite3.Connection, record: Parsed) -> _Plan:
        h = record.header
        customer = self._customer(conn, h.get("customer"), "customer", "Customer")
        header, precision = self._header(conn, record, customer)
        payment: Decimal | None = h.get("payment")
        if payment is None:
            raise user_error("Please enter value(s) for: Payment Amount", path="payment")
        payment = round_money(payment, precision)
        if payment <= 0:
            raise invalid_value("payment")
        account = (
            self._ref(conn, h.get("account"), "account", "account") or UNDEPOSITED_FUNDS_ACCOUNT_ID
        )
        kind = conn.execute("SELECT accttype FROM account WHERE id = ?", (account,)).fetchone()[0]
        if kind not in ("Bank", "OthCurrAsset"):
            raise invalid_value("account")
        applications = self._applications(
            conn,
            record,
            customer_id=int(customer["id"]),
            currency=int(header["currency"]),
            available=payment,
            precision=precision,
            document="payment",
        )
        used = sum((a for _, _, a in applications), Decimal(0))
        base = round_money(payment * to_decimal(header["exchangerate"]), BASE_PRECISION)
        plan = _Plan(
            row={
                **header,
                "entity": int(customer["id"]),
                "account": account,
                "status": "C" if kind == "Bank" else "B",
                "foreigntotal": str(payment),
                "foreignpaymentamountused": str(used),
                "foreignpaymentamountunused": str(payment - used),
            },
            applications=applications,
            linktype="Payment",
        )
        plan.lines.append(_mainline(account, int(customer["id"]), payment, header["memo"]))
        plan.gl.append((0, account, base, Decimal(0)))
        plan.gl.append((0, AR_ACCOUNT_ID, Decimal(0), base))
        return plan

    def _plan_credit_memo(self, conn: sqlite3.Connection, record: Parsed) -> _Plan:
        h = record.header
        customer = self._customer(conn, h.get("entity"), "entity", "Customer")
        header, precision = self._header(conn, record, customer)
        created_from = self._ref(conn, h.get("createdFrom"), "invoice", "createdFrom")
        if created_from is not None:
            source = conn.execute(
                'SELECT entity FROM "transaction" WHERE id = ?', (created_from,)
            ).fetchone()
            if int(source["entity"]) != int(customer["id"]):
                raise invalid_value("createdFrom")
        items = self._item_lines(conn, record, precision)
        total = sum((to_decimal(line["foreignamount"]) for line, _ in items), Decimal(0))
        applications = self._applications(
            conn,
            record,
            customer_id=int(customer["id"]),
            currency=int(header["currency"]),
            available=total,
            precision=precision,
            document="credit memo",
        )
        used = sum((a for _, _, a in applications), Decimal(0))
        account = self._ar_account(conn, h.get("account"))
        rate = to_decimal(header["exchangerate"])
        plan = _Plan(
            row={
                **header,
                "entity": int(customer["id"]),
                "account": account,
                "createdfrom": created_from,
                "otherrefnum": h.get("otherRefNum"),
                "status": "A" if used < total else "B",
                "foreigntotal": str(total),
                "foreignamountremaining": str(total - used),
                "foreignpaymentamountused": str(used),
                "foreignpaymentamountunused": str(total - used),
            },
            applications=applications,
            linktype="Credit Memo Application",
        )
        plan.lines.append(_mainline(account, int(customer["id"]), total, header["memo"]))
        debits = [
            (
                line["id"],
                income,
                round_money(to_decimal(line["foreignamount"]) * rate, BASE_PRECISION),
            )
            for line, income in items
        ]
        plan.lines.extend(line for line, _ in items)
        plan.gl.append((0, account, Decimal(0), sum((d for _, _, d in debits), Decimal(0))))
        plan.gl.extend((line_id, income, base, Decimal(0)) for line_id, income, base in debits)
        return plan

    def _plan_journal(self, conn: sqlite3.Connection, record: Parsed) -> _Plan:
        header, precision = self._header(conn, record, None)
        lines = record.sublists.get("line") or []
        debits: list[Decimal] = []
        credits: list[Decimal] = []
        rate = to_decimal(header["exchangerate"])
        plan = _Plan(row={**header, "status": "B"})
        total = Decimal(0)
        for index, line in enumerate(lines, start=1):
            path = f"line.items[{index - 1}]"
            if line.get("account") is None:
                raise user_error("Please enter value(s) for: Account", path=f"{path}.account")
            account = self._ref(conn, line.get("account"), "account", f"{path}.account")
            entity = self._ref(conn, line.get("entity"), "customer", f"{path}.entity")
            debit: Decimal | None = line.get("debit")
            credit: Decimal | None = line.get("credit")
            if (debit is None) == (credit is None):
                raise user_error(
                    "Each journal line needs either a debit or a credit amount.", path=path
                )
            amount = round_money(debit if debit is not None else credit or Decimal(0), precision)
            if amount <= 0:
                raise invalid_value(f"{path}.{'debit' if debit is not None else 'credit'}")
            (debits if debit is not None else credits).append(amount)
            if debit is not None:
                total += amount
            plan.lines.append(
                {
                    "id": index,
                    "linesequencenumber": index,
                    "mainline": "F",
                    "account": account,
                    "entity": entity,
                    "foreignamount": str(amount if debit is not None else -amount),
                    "debitforeignamount": str(amount) if debit is not None else None,
                    "creditforeignamount": str(amount) if credit is not None else None,
                    "memo": line.get("memo"),
                }
            )
            assert account is not None
            base = round_money(amount * rate, BASE_PRECISION)
            plan.gl.append(
                (
                    index,
                    account,
                    base if debit is not None else Decimal(0),
                    base if credit is not None else Decimal(0),
                )
            )
        _first(rules.journal_problems(debits, credits))
        _balance_base_rounding(plan.gl)
        plan.row["foreigntotal"] = str(total)
        plan.lines.insert(0, _mainline(None, None, total, header["memo"]))
        return plan

    def _write_plan(
        self, conn: sqlite3.Connection, rt: RecordType, plan: _Plan, existing: sqlite3.Row | None
    ) -> int:
        stamp = self.storage.stamp()
        row = {
            **plan.row,
            "type": rt.tran_type,
            "recordtype": rt.name.lower(),
            "lastmodifieddate": stamp,
        }
        if row.get("tranid") is None:
            row["tranid"] = existing["tranid"] if existing is not None else ""
        if existing is not None:
            record_id = int(existing["id"])
            assignments = ", ".join(f"{c} = ?" for c in row)
            conn.execute(
                f'UPDATE "transaction" SET {assignments} WHERE id = ?', (*row.values(), record_id)
            )
        else:
            row["createddate"] = stamp
            cursor = conn.execute(
                f'INSERT INTO "transaction" ({", ".join(row)})'
                f" VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            assert cursor.lastrowid is not None
            record_id = cursor.lastrowid
            if not row["tranid"]:
                conn.execute(
                    'UPDATE "transaction" SET tranid = ? WHERE id = ?',
                    (f"{rt.tran_prefix}{record_id}", record_id),
                )
        for line in plan.lines:
            cols = ["transaction", *line]
            conn.execute(
                f"INSERT INTO transactionline ({', '.join(_quoted(c) for c in cols)})"
                f" VALUES ({', '.join('?' * len(cols))})",
                (record_id, *line.values()),
            )
        conn.executemany(
            'INSERT INTO transactionaccountingline ("transaction", transactionline, account, debit,'
            " credit, amount, lastmodifieddate) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    record_id,
                    line,
                    account,
                    str(debit) if debit else None,
                    str(credit) if credit else None,
                    str(debit - credit),
                    stamp,
                )
                for line, account, debit, credit in plan.gl
            ],
        )
        conn.executemany(
            "INSERT INTO nexttransactionlinelink (previousdoc, previousline, nextdoc, nextline,"
            " linktype, foreignamount, lastmodifieddate) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (invoice, line, record_id, index, plan.linktype, str(amount), stamp)
                for index, (invoice, line, amount) in enumerate(plan.applications)
            ],
        )
        touched = {invoice for invoice, _, _ in plan.applications}
        if rt.tran_type == "CustInvc":
            touched.add(record_id)
        for invoice in sorted(touched):
            self._recompute_invoice(conn, invoice)
        if row.get("entity") is not None:
            self._store_customer_balance(conn, int(row["entity"]))
        return record_id

    def _unpost(self, conn: sqlite3.Connection, existing: sqlite3.Row) -> None:
        """Remove a transaction's lines, ledger impact and applications (not the row itself)."""
        record_id = int(existing["id"])
        invoices = [
            int(r[0])
            for r in conn.execute(
                "SELECT previousdoc FROM nexttransactionlinelink WHERE nextdoc = ?", (record_id,)
            )
        ]
        conn.execute("DELETE FROM nexttransactionlinelink WHERE nextdoc = ?", (record_id,))
        conn.execute('DELETE FROM transactionline WHERE "transaction" = ?', (record_id,))
        conn.execute('DELETE FROM transactionaccountingline WHERE "transaction" = ?', (record_id,))
        for invoice in sorted(set(invoices)):
            self._recompute_invoice(conn, invoice)
        if existing["entity"] is not None:
            self._store_customer_balance(conn, int(existing["entity"]))

    def _recompute_invoice(self, conn: sqlite3.Connection, invoice_id: int) -> None:
        """Amount paid, remaining and status of an invoice from the applications pointing at it."""
        invoice = conn.execute(
            'SELECT tranid, foreigntotal FROM "transaction" WHERE id = ?', (invoice_id,)
        ).fetchone()
        total = to_decimal(invoice["foreigntotal"])
        paid = sum(
            (
                to_decimal(r[0])
                for r in conn.execute(
                    "SELECT foreignamount FROM nexttransactionlinelink WHERE previousdoc = ?",
                    (invoice_id,),
                )
            ),
            Decimal(0),
        )
        if paid > total:
            raise user_error(
                f"Invoice {invoice['tranid']} already has {paid} applied to it, more than its "
                f"new total ({total}).",
                path="item",
            )
        conn.execute(
            'UPDATE "transaction" SET foreignamountpaid = ?, foreignamountremaining = ?,'
            " status = ?, lastmodifieddate = ? WHERE id = ?",
            (
                str(paid),
                str(total - paid),
                "B" if paid == total else "A",
                self.storage.stamp(),
                invoice_id,
            ),
        )

    # ------------------------------------------------------------------ accountant actions

    def set_credit_hold(
        self,
        customer_id: int,
        *,
        hold: rules.CreditHold | None = None,
        credit_limit: Decimal | None = None,
        clear_limit: bool = False,
    ) -> None:
        with self.storage.write() as conn:
            self._row(conn, RECORD_TYPES["customer"], customer_id)
            if hold is not None:
                conn.execute(
                    "UPDATE customer SET creditholdoverride = ? WHERE id = ?", (hold, customer_id)
                )
            if credit_limit is not None or clear_limit:
                conn.execute(
                    "UPDATE customer SET creditlimit = ? WHERE id = ?",
                    (None if credit_limit is None else str(credit_limit), customer_id),
                )
            conn.execute(
                "UPDATE customer SET lastmodifieddate = ? WHERE id = ?",
                (self.storage.stamp(), customer_id),
            )

    def set_period_closed(self, period_id: int, closed: bool) -> JsonObject:
        with self.storage.write() as conn:
            row = conn.execute(
                "SELECT * FROM accountingperiod WHERE id = ?", (period_id,)
            ).fetchone()
            if row is None:
                raise not_found(f"{RECORD_PREFIX}/accountingPeriod/{period_id}")
            conn.execute(
                "UPDATE accountingperiod SET closed = ?, closedondate = ?, lastmodifieddate = ?"
                " WHERE id = ?",
                (
                    "T" if closed else "F",
                    self.storage.now().astimezone(UTC).date().isoformat() if closed else None,
                    self.storage.stamp(),
                    period_id,
                ),
            )
            return {"id": str(period_id), "periodName": row["periodname"], "closed": closed}

    def period_for(self, day: date) -> int:
        with self.storage.read() as conn:
            row = conn.execute(
                "SELECT id FROM accountingperiod WHERE startdate <= ? AND enddate >= ?",
                (day.isoformat(), day.isoformat()),
            ).fetchone()
        if row is None:
            raise user_error(f"No accounting period is set up for {day.isoformat()}.")
        return int(row["id"])

    def open_year(self, year: int) -> list[int]:
        with self.storage.write() as conn:
            return self.storage.open_year(conn, year)


_RO = Field("", "", Kind.TEXT, writable=False)


def _dependent() -> NetSuiteError:
    return user_error("This record cannot be deleted because it has dependent records.")


def _quoted(name: str) -> str:
    return name if name.startswith('"') else f'"{name}"'


def _mainline(
    account: int | None, entity: int | None, amount: Decimal, memo: str | None
) -> dict[str, Any]:
    return {
        "id": 0,
        "linesequencenumber": 0,
        "mainline": "T",
        "account": account,
        "entity": entity,
        "foreignamount": str(amount),
        "memo": memo,
    }


def _balance_base_rounding(gl: list[tuple[int, int, Decimal, Decimal]]) -> None:
    """Put a base-currency rounding difference on the largest line so the ledger balances.

    Converting each line of a balanced foreign-currency journal on its own can leave a cent
    over; NetSuite posts that cent too, rather than refuse a journal the user balanced.
    """
    diff = sum((d - c for _, _, d, c in gl), Decimal(0))
    if not diff or not gl:
        return
    index = max(range(len(gl)), key=lambda i: gl[i][2] + gl[i][3])
    line, account, debit, credit = gl[index]
    gl[index] = (
        (line, account, debit - diff, credit) if debit else (line, account, debit, credit + diff)
    )


def _merge(rt: RecordType, stored: Parsed, patch: Parsed, replace: set[str]) -> Parsed:
    """Lay a PATCH over the stored record.

    Header fields replace; sublist lines are matched on the sublist's key (``line`` for item
    and journal lines, the applied ``doc`` for apply lines) and updated, others are added;
    a sublist named in ``replace`` is replaced whole, as NetSuite's ``?replace=`` does.
    """
    merged = Parsed(header={**stored.header, **patch.header}, sublists=dict(stored.sublists))
    for name, lines in patch.sublists.items():
        sub = rt.sublist(name)
        assert sub is not None
        if name in replace or name not in stored.sublists:
            merged.sublists[name] = lines
            continue
        current = [dict(line) for line in stored.sublists[name]]
        for line in lines:
            key = _line_key(sub, line)
            match = next((c for c in current if key is not None and _line_key(sub, c) == key), None)
            if match is None:
                current.append(line)
                continue
            if name == "item":
                # A new rate or quantity means a new amount, and a new amount a new rate,
                # unless the request sets both; the stored value must not win.
                if "amount" not in line and ("rate" in line or "quantity" in line):
                    match.pop("amount", None)
                if "rate" not in line and "amount" in line:
                    match.pop("rate", None)
            match.update(line)
        merged.sublists[name] = current
    return merged


def _line_key(sub: Sublist, line: dict[str, Any]) -> object:
    value = line.get(sub.key)
    if isinstance(value, Ref):
        return value.id if value.id is not None else value.external_id
    return value
