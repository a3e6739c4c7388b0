"""The sandbox org: DML with Salesforce's validation rules, roll-ups and formulas, and the change
events and outbound messages every committed change produces.

Every public write runs in a unit of work: one SQLite savepoint plus one CDC ``transactionKey``.
A request that spans several writes (composite, collections with ``allOrNone``) opens an outer
unit of work so the whole set commits or rolls back together, events included.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from revbridge.salesforce.sandbox.config import SandboxConfig
from revbridge.salesforce.sandbox.errors import fail, not_found
from revbridge.salesforce.sandbox.ids import make_id, to18
from revbridge.salesforce.sandbox.schema import FieldDef, ObjectDef, build_objects
from revbridge.salesforce.sandbox.store import Store
from revbridge.salesforce.sandbox.values import (
    Record,
    Value,
    coerce,
    decode_record,
    encode_record,
    format_datetime,
    to_wire,
)

_POD = "5e"
_SYSTEM_FIELDS = frozenset(
    {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById"}
    | {"SystemModstamp"}
)
_ZERO = Decimal(0)


@dataclass(slots=True)
class _UnitOfWork:
    transaction_key: str
    origin: str
    commit_number: int
    sequence: int = 0
    touched_parents: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertResult:
    id: str
    created: bool


class MultipleMatches(Exception):
    """An upsert's external id matched several records (HTTP 300)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        super().__init__(f"{len(ids)} records match")


class Org:
    """One Salesforce org over a :class:`Store`."""

    def __init__(self, config: SandboxConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.objects = build_objects()
        self._by_lower = {name.lower(): obj for name, obj in self.objects.items()}
        self._by_prefix = {obj.key_prefix: obj for obj in self.objects.values()}
        self._uow: _UnitOfWork | None = None
        self.user_id = self._ensure_integration_user()

    def reset(self) -> None:
        """Empty the org, keeping only its integration user."""
        self.store.reset()
        self.user_id = self._ensure_integration_user()

    # -- lookups ---------------------------------------------------------------------------------

    def find_object(self, name: str) -> ObjectDef | None:
        return self._by_lower.get(name.lower())

    def object_for_rest(self, name: str) -> ObjectDef:
        obj = self.find_object(name)
        if obj is None:
            raise not_found()
        return obj

    def object_of_id(self, record_id: str) -> ObjectDef | None:
        return self._by_prefix.get(record_id[:3])

    def now_text(self) -> str:
        return format_datetime(self.config.clock.now())

    def load(
        self, obj: ObjectDef, record_id: str, *, include_deleted: bool = False
    ) -> Record | None:
        """The stored record ``record_id`` of ``obj``, or None if absent (or deleted)."""
        try:
            key = to18(record_id)
        except ValueError:
            return None
        stored = self.store.fetch_record(key)
        if stored is None or stored.sobject != obj.name:
            return None
        if stored.is_deleted and not include_deleted:
            return None
        return decode_record(obj, stored.data)

    def load_any(self, record_id: str) -> tuple[ObjectDef, Record] | None:
        stored = self.store.fetch_record(record_id)
        if stored is None or stored.is_deleted:
            return None
        obj = self.objects[stored.sobject]
        return obj, decode_record(obj, stored.data)

    def records(self, obj: ObjectDef, *, include_deleted: bool) -> list[Record]:
        return [
            decode_record(obj, r.data)
            for r in self.store.records_of(obj.name, include_deleted=include_deleted)
        ]

    def records_where(
        self, obj: ObjectDef, field: FieldDef, ids: list[str], *, include_deleted: bool
    ) -> list[Record]:
        """The records of ``obj`` whose id or reference ``field`` is one of ``ids``."""
        return [
            decode_record(obj, r.data)
            for r in self.store.records_where_in(
                obj.name, field.name, ids, include_deleted=include_deleted
            )
        ]

    def wire_record(
        self,
        obj: ObjectDef,
        record: Mapping[str, Value],
        version: str,
        fields: list[str] | None = None,
    ) -> dict[str, Any]:
        """A record as REST returns it: ``attributes`` first, then fields in describe order."""
        out: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}",
            }
        }
        wanted = obj.fields if fields is None else [self.require_field(obj, f) for f in fields]
        for f in wanted:
            out[f.name] = to_wire(f, record.get(f.name))
        return out

    def require_field(self, obj: ObjectDef, name: str) -> FieldDef:
        f = obj.field(name)
        if f is None:
            raise fail(
                400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
            )
        return f

    # -- units of work ---------------------------------------------------------------------------

    @contextmanager
    def unit_of_work(self, origin: str = "com/salesforce/api/rest") -> Iterator[None]:
        """One transaction: all its writes and their events commit or roll back together."""
        if self._uow is not None:
            with self.store.transaction():
                yield
            return
        with self.store.transaction():
            self._uow = _UnitOfWork(
                transaction_key=str(uuid.uuid4()),
                origin=origin,
                commit_number=self.store.next_sequence("commit"),
            )
            try:
                yield
                self._refresh_rollups()
            finally:
                self._uow = None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested savepoint inside the current unit of work (one record of a batch)."""
        with self.store.transaction():
            yield

    # -- DML -------------------------------------------------------------------------------------

    def create(self, obj: ObjectDef, body: Mapping[str, Any]) -> str:
        with self.unit_of_work():
            values = self._coerce_body(obj, body, creating=True)
            now = self.now_text()
            record_id = make_id(obj.key_prefix, _POD, self.store.next_sequence(obj.name))
            record: Record = {}
            for f in obj.fields:
                if f.default is not None:
                    record[f.name] = f.default
                elif f.type == "boolean":
                    record[f.name] = False
                else:
                    record[f.name] = None
                if f.auto_number is not None:
                    record[f.name] = self._auto_number(obj, f)
            record.update(values)
            record |= {
                "Id": record_id,
                "IsDeleted": False,
                "CreatedDate": now,
                "CreatedById": self.user_id,
                "LastModifiedDate": now,
                "LastModifiedById": self.user_id,
                "SystemModstamp": now,
            }
            if obj.field("OwnerId") is not None and record.get("OwnerId") is None:
                record["OwnerId"] = self.user_id
            self._check_required(obj, record)
            self._check_unique(obj, record, record_id)
            self._check_references(obj, record, values)
            self._apply_formulas(obj, record)
            self.store.insert_record(record_id, obj.name, encode_record(record), now)
            self._after_write(obj, record, "CREATE", changed=None, nulled=())
            return record_id

    def update(self, obj: ObjectDef, record_id: str, body: Mapping[str, Any]) -> None:
        with self.unit_of_work():
            record = self._load_for_write(obj, record_id)
            self._check_editable(obj, record)
            values = self._coerce_body(obj, body, creating=False)
            self._write_changes(obj, record, values)

    def delete(self, obj: ObjectDef, record_id: str) -> None:
        with self.unit_of_work():
            record = self._load_for_write(obj, record_id)
            self._check_editable(obj, record)
            self._delete_cascade(obj, record)

    def upsert(
        self,
        obj: ObjectDef,
        ext_field_name: str,
        value: str,
        body: Mapping[str, Any],
        *,
        update_only: bool = False,
        body_has_key: bool = False,
    ) -> UpsertResult:
        """Insert or update the record whose ``ext_field_name`` equals ``value``.

        ``body_has_key`` is for sObject Collections, where the key is part of each record body.
        """
        ext_field = self.external_id_field(obj, ext_field_name)
        for key in body:
            f = obj.field(key)
            if f is not None and f.name == "Id":
                raise fail(
                    400,
                    "INVALID_FIELD",
                    "Unable to create/update fields: Id. Please check the security settings of "
                    "this field and verify that it is read/write for your profile or "
                    "permission set.",
                    ("Id",),
                )
            if f is not None and f is ext_field and not body_has_key:
                raise fail(
                    400,
                    "INVALID_FIELD",
                    f"The external ID field {ext_field.name} must not be in the request body; "
                    "it is given in the URL.",
                    (ext_field.name,),
                )
        matches = self.find_by_external_id(obj, ext_field, value)
        if len(matches) > 1:
            raise MultipleMatches(matches)
        payload = {k: v for k, v in body.items() if obj.field(k) is not ext_field}
        if matches:
            self.update(obj, matches[0], payload)
            return UpsertResult(id=matches[0], created=False)
        if update_only:
            raise not_found()
        payload[ext_field.name] = value
        return UpsertResult(id=self.create(obj, payload), created=True)

    def external_id_field(self, obj: ObjectDef, name: str) -> FieldDef:
        f = obj.field(name)
        if f is None or not (f.external_id or f.id_lookup):
            raise fail(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {name}",
            )
        return f

    def find_by_external_id(self, obj: ObjectDef, ext_field: FieldDef, value: str) -> list[str]:
        if ext_field.type == "id":
            record = self.load(obj, value)
            return [] if record is None else [str(record["Id"])]
        return self.store.ids_where_field_equals(
            obj.name, ext_field.name, value, case_insensitive=True
        )

    # -- internals -------------------------------------------------------------------------------

    def _ensure_integration_user(self) -> str:
        user_obj = self.objects["User"]
        existing = self.store.ids_where_field_equals(
            "User", "Username", self.config.username, case_insensitive=True
        )
        if existing:
            return existing[0]
        now = self.now_text()
        user_id = make_id(user_obj.key_prefix, _POD, self.store.next_sequence("User"))
        record: Record = {f.name: None for f in user_obj.fields}
        record |= {
            "Id": user_id,
            "IsDeleted": False,
            "CreatedDate": now,
            "CreatedById": user_id,
            "LastModifiedDate": now,
            "LastModifiedById": user_id,
            "SystemModstamp": now,
            "Username": self.config.username,
            "LastName": "Integration",
            "FirstName": "Revbridge",
            "Name": "Revbridge Integration",
            "Email": "integration@example.com",
            "IsActive": True,
        }
        with self.store.transaction():
            self.store.insert_record(user_id, "User", encode_record(record), now)
        return user_id

    def _auto_number(self, obj: ObjectDef, f: FieldDef) -> str:
        pattern = f.auto_number or "{0}"
        head, _, rest = pattern.partition("{")
        digits, _, tail = rest.partition("}")
        number = self.store.next_sequence(f"{obj.name}.{f.name}")
        return f"{head}{number:0{len(digits)}d}{tail}"

    def _load_for_write(self, obj: ObjectDef, record_id: str) -> Record:
        try:
            key = to18(record_id)
        except ValueError:
            raise fail(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {record_id}",
            ) from None
        stored = self.store.fetch_record(key)
        if stored is None or stored.sobject != obj.name:
            raise not_found()
        if stored.is_deleted:
            raise fail(404, "ENTITY_IS_DELETED", "entity is deleted")
        return decode_record(obj, stored.data)

    @staticmethod
    def _check_editable(obj: ObjectDef, record: Mapping[str, Value]) -> None:
        # Revenue Cloud allows editing and deleting a Payment only while it is a Draft.
        if obj.name == "Payment" and record.get("Status") != "Draft":
            raise fail(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"You can't edit or delete a payment in {record.get('Status')} status; "
                "only Draft payments can change.",
                ("Status",),
            )

    def _coerce_body(self, obj: ObjectDef, body: Mapping[str, Any], *, creating: bool) -> Record:
        values: Record = {}
        for key, raw in body.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                rel = obj.relationship(key)
                if rel is not None and isinstance(raw, dict):
                    values[rel.name] = self._resolve_parent_by_external_id(rel, raw)
                    continue
                raise fail(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}"
                )
            allowed = f.createable if creating else f.updateable
            if not allowed:
                raise fail(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {f.name}. Please check the security settings "
                    "of this field and verify that it is read/write for your profile or "
                    "permission set.",
                    (f.name,),
                )
            values[f.name] = coerce(obj, f, raw)
        return values

    def _resolve_parent_by_external_id(self, rel: FieldDef, raw: Mapping[str, Any]) -> str:
        target = self.objects[rel.reference_to[0]]
        keys = [k for k in raw if k != "attributes"]
        if len(keys) != 1:
            raise fail(
                400,
                "INVALID_FIELD",
                f"Relationship {rel.relationship_name} must name exactly one external ID field",
            )
        ext = self.external_id_field(target, keys[0])
        value = str(raw[keys[0]])
        matches = self.find_by_external_id(target, ext, value)
        if len(matches) != 1:
            raise fail(
                400,
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not found for field {ext.name} "
                f"in entity {target.name}",
            )
        return matches[0]

    def _check_required(self, obj: ObjectDef, record: Mapping[str, Value]) -> None:
        missing = [
            f.name
            for f in obj.fields
            if f.required and f.name not in _SYSTEM_FIELDS and record.get(f.name) in (None, "")
        ]
        if missing:
            raise fail(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                tuple(missing),
            )

    def _check_unique(self, obj: ObjectDef, record: Mapping[str, Value], record_id: str) -> None:
        for f in obj.fields:
            value = record.get(f.name)
            if not f.unique or value is None or f.name == "Id":
                continue
            others = [
                other
                for other in self.store.ids_where_field_equals(
                    obj.name, f.name, str(value), case_insensitive=True
                )
                if other != record_id
            ]
            if others:
                raise fail(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value on record with id: "
                    f"{others[0]}",
                    (f.name,),
                )

    def _check_references(
        self, obj: ObjectDef, record: Mapping[str, Value], written: Record
    ) -> None:
        for name, value in written.items():
            f = obj.field(name)
            if f is None or f.type != "reference" or value is None:
                continue
            target = self.objects[f.reference_to[0]]
            if str(value)[:3] != target.key_prefix:
                raise fail(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"field integrity exception: unknown ({f.label}: id value of incorrect type: "
                    f"{value})",
                    (f.name,),
                )
            if self.load(target, str(value)) is None:
                raise fail(
                    400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", (f.name,)
                )
            if f.name == "ParentId" and value == record.get("Id"):
                raise fail(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Parent Account: You cannot select the account itself as its parent",
                    (f.name,),
                )

    def _write_changes(self, obj: ObjectDef, record: Record, values: Mapping[str, Value]) -> None:
        before = dict(record)
        record.update(values)
        now = self.now_text()
        record["LastModifiedDate"] = now
        record["LastModifiedById"] = self.user_id
        record["SystemModstamp"] = now
        self._check_required(obj, record)
        self._check_unique(obj, record, str(record["Id"]))
        self._check_references(obj, record, dict(values))
        self._apply_formulas(obj, record)
        self.store.write_record(str(record["Id"]), encode_record(record), False, now)
        changed = [
            f.name
            for f in obj.fields
            if before.get(f.name) != record.get(f.name) and f.name != "SystemModstamp"
        ]
        nulled = tuple(name for name in changed if record.get(name) is None)
        self._after_write(obj, record, "UPDATE", changed=changed, nulled=nulled, before=before)

    def _delete_cascade(self, obj: ObjectDef, record: Record) -> None:
        record_id = str(record["Id"])
        now = self.now_text()
        record["IsDeleted"] = True
        record["SystemModstamp"] = now
        record["LastModifiedDate"] = now
        self.store.write_record(record_id, encode_record(record), True, now)
        self._after_write(obj, record, "DELETE", changed=None, nulled=())
        for child in self.objects.values():
            for f in child.fields:
                if f.type != "reference" or f.reference_to != (obj.name,):
                    continue
                for child_id in self.store.ids_where_field_equals(
                    child.name, f.name, record_id, case_insensitive=False
                ):
                    child_record = self.load(child, child_id)
                    if child_record is None:
                        continue
                    if f.master_detail:
                        self._delete_cascade(child, child_record)
                    else:
                        # Deleting a lookup target clears the lookup, as Salesforce does.
                        self._write_changes(child, child_record, {f.name: None})

    def _apply_formulas(self, obj: ObjectDef, record: Record) -> None:
        def num(name: str) -> Decimal:
            value = record.get(name)
            return value if isinstance(value, Decimal) else _ZERO

        match obj.name:
            case "blng__Invoice__c":
                total = num("blng__Subtotal__c") + num("blng__TaxAmount__c")
                balance = (
                    total
                    - num("blng__Payments__c")
                    - num("blng__Credits__c")
                    + num("blng__Debits__c")
                )
                record["blng__TotalAmount__c"] = total
                record["blng__Balance__c"] = balance
                if total > 0 and balance <= 0:
                    record["blng__PaymentStatus__c"] = "Paid"
                elif 0 < balance < total:
                    record["blng__PaymentStatus__c"] = "Partially Paid"
                else:
                    record["blng__PaymentStatus__c"] = "Unpaid"
            case "blng__InvoiceLine__c":
                record["blng__TotalAmount__c"] = num("blng__Subtotal__c") + num(
                    "blng__TaxAmount__c"
                )
            case "blng__Payment__c":
                record["blng__Balance__c"] = (
                    num("blng__Amount__c")
                    - num("blng__Allocations__c")
                    + num("blng__Unallocations__c")
                )
            case "Invoice":
                with_tax = num("TotalAmount") + num("TotalTaxAmount")
                record["TotalAmountWithTax"] = with_tax
                record["Balance"] = with_tax - num("NetPaymentsApplied") - num("NetCreditsApplied")
            case "InvoiceLine":
                parent_id = record.get("InvoiceId")
                parent = (
                    None
                    if parent_id is None
                    else self.load(self.objects["Invoice"], str(parent_id))
                )
                record["InvoiceStatus"] = None if parent is None else parent.get("Status")
            case "Payment":
                record["Balance"] = num("Amount") - num("NetApplied")
            case _:
                pass

    # Child objects whose changes move a roll-up on a parent: (child, parent lookup, parent).
    _ROLLUP_LINKS: tuple[tuple[str, str, str], ...] = (
        ("blng__PaymentAllocationInvoice__c", "blng__Invoice__c", "blng__Invoice__c"),
        ("blng__PaymentAllocationInvoice__c", "blng__Payment__c", "blng__Payment__c"),
        ("blng__CreditNote__c", "blng__RelatedInvoice__c", "blng__Invoice__c"),
        ("PaymentLineInvoice", "InvoiceId", "Invoice"),
        ("PaymentLineInvoice", "PaymentId", "Payment"),
    )

    def _after_write(
        self,
        obj: ObjectDef,
        record: Record,
        change_type: str,
        *,
        changed: list[str] | None,
        nulled: tuple[str, ...],
        before: Mapping[str, Value] | None = None,
    ) -> None:
        if obj.change_events:
            self._emit_change_event(obj, record, change_type, changed, nulled)
        if (
            self.config.outbound_url is not None
            and obj.name in self.config.outbound_objects
            and change_type in ("CREATE", "UPDATE")
        ):
            notification_id = make_id("04l", _POD, self.store.next_sequence("outbound"))
            payload = json.dumps(
                {k: to_wire(self.require_field(obj, k), v) for k, v in record.items()},
                separators=(",", ":"),
            )
            self.store.enqueue_outbound(
                notification_id, obj.name, str(record["Id"]), payload, self.now_text()
            )
        if self._uow is not None:
            for child, link, parent in self._ROLLUP_LINKS:
                if child != obj.name:
                    continue
                for source in (record, before or {}):
                    parent_id = source.get(link)
                    if parent_id is not None:
                        self._uow.touched_parents.add((parent, str(parent_id)))

    def _refresh_rollups(self) -> None:
        """Recompute the roll-up summaries of every parent a child change touched."""
        assert self._uow is not None
        while self._uow.touched_parents:
            parent_name, parent_id = self._uow.touched_parents.pop()
            parent_obj = self.objects[parent_name]
            parent = self.load(parent_obj, parent_id)
            if parent is None:
                continue
            sums = self._rollup_values(parent_name, parent_id)
            if any(parent.get(k) != v for k, v in sums.items()):
                self._write_changes(parent_obj, parent, sums)

    def _rollup_values(self, parent_name: str, parent_id: str) -> Record:
        def children(child: str, link: str) -> list[Record]:
            child_obj = self.objects[child]
            return [
                r
                for r in (
                    self.load(child_obj, cid)
                    for cid in self.store.ids_where_field_equals(
                        child, link, parent_id, case_insensitive=False
                    )
                )
                if r is not None
            ]

        def total(
            rows: list[Record], amount: str, kind_field: str | None, kind: str | None
        ) -> Decimal:
            result = _ZERO
            for row in rows:
                if kind_field is not None and row.get(kind_field) != kind:
                    continue
                value = row.get(amount)
                if isinstance(value, Decimal):
                    result += value
            return result

        match parent_name:
            case "blng__Invoice__c":
                allocations = children("blng__PaymentAllocationInvoice__c", "blng__Invoice__c")
                credit_notes = [
                    r
                    for r in children("blng__CreditNote__c", "blng__RelatedInvoice__c")
                    if r.get("blng__Status__c") == "Posted"
                ]
                return {
                    "blng__Payments__c": total(
                        allocations, "blng__Amount__c", "blng__Type__c", "Allocation"
                    )
                    - total(allocations, "blng__Amount__c", "blng__Type__c", "Unallocation"),
                    "blng__Credits__c": total(credit_notes, "blng__TotalAmount__c", None, None),
                }
            case "blng__Payment__c":
                allocations = children("blng__PaymentAllocationInvoice__c", "blng__Payment__c")
                allocated = total(allocations, "blng__Amount__c", "blng__Type__c", "Allocation")
                unallocated = total(allocations, "blng__Amount__c", "blng__Type__c", "Unallocation")
                return {
                    "blng__Allocations__c": allocated,
                    "blng__Unallocations__c": unallocated,
                    "blng__AllocatedtoInvoices__c": allocated - unallocated,
                }
            case "Invoice":
                lines = children("PaymentLineInvoice", "InvoiceId")
                return {
                    "NetPaymentsApplied": total(lines, "Amount", "Type", "Applied")
                    - total(lines, "Amount", "Type", "Unapplied")
                }
            case "Payment":
                lines = children("PaymentLineInvoice", "PaymentId")
                applied = total(lines, "Amount", "Type", "Applied")
                return {
                    "TotalApplied": applied,
                    "NetApplied": applied - total(lines, "Amount", "Type", "Unapplied"),
                }
            case _:
                return {}

    def _emit_change_event(
        self,
        obj: ObjectDef,
        record: Record,
        change_type: str,
        changed: list[str] | None,
        nulled: tuple[str, ...],
    ) -> None:
        uow = self._uow
        assert uow is not None, "writes always run inside a unit of work"
        uow.sequence += 1
        now = self.config.clock.now()
        header = {
            "entityName": obj.name,
            "recordIds": [record["Id"]],
            "changeType": change_type,
            "changeOrigin": uow.origin,
            "transactionKey": uow.transaction_key,
            "sequenceNumber": uow.sequence,
            "commitTimestamp": int(now.timestamp() * 1000),
            "commitNumber": uow.commit_number,
            "commitUser": self.user_id,
            "changedFields": list(changed or []),
            "nulledFields": list(nulled),
            "diffFields": [],
        }
        payload: dict[str, Any] = {"ChangeEventHeader": header}
        if change_type == "CREATE":
            for f in obj.fields:
                value = record.get(f.name)
                if value is not None and f.name not in ("Id", "IsDeleted", "SystemModstamp"):
                    payload[f.name] = to_wire(f, value)
        elif change_type == "UPDATE":
            for name in changed or []:
                payload[name] = to_wire(self.require_field(obj, name), record.get(name))
        channel = f"/data/{obj.change_event_name}"
        event = {"schema": f"sandbox-{obj.change_event_name}-v1", "payload": payload}
        self.store.append_event(
            channel, json.dumps(event, separators=(",", ":")), format_datetime(now)
        )
