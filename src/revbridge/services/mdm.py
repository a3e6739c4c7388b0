"""The customer master: crosswalk, ownership state, echo memory, hierarchy and review queue.

What the CLI (``revbridge mdm ...``) and the ops API call. The rules themselves are pure
(``revbridge.mdm``); this module keeps their state in the ledger database:

- ``link_customer`` records a link (canonical id <-> Salesforce Account id <-> ERP customer
  number and internal id, per ERP and legal entity) when a system *says* so: the ERP answered
  a customer upsert, the ERP-side capture saw the customer with the hub's external id, a
  person approved a match, or an import file named it. Nothing here guesses a link.
- ``apply_reported`` runs the ownership decision for each attribute a side reports and keeps
  the last synced value per (customer, attribute); conflicts land in the review queue.
- ``remember_written`` / ``is_echo``: what the hub wrote per (system, record), so a capture
  that reads it back is dropped.
- ``decide_review``: approve or reject a review item; every decision is audited.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.engine import Connection

from revbridge.core import sfid
from revbridge.core.events import CustomerCreditStatusChanged, CustomerUpserted
from revbridge.core.wording import agreeing, counted
from revbridge.errors import DomainError, RevbridgeError, UsageError
from revbridge.mdm.hierarchy import describe_cycle, find_cycle
from revbridge.mdm.ownership import Decision, Ownership, Side, decide, value_hash
from revbridge.store.schema import audit_log, customer_xref, deliveries, events, external_refs
from revbridge.store.tables_mdm import (
    mdm_attribute_state,
    mdm_customers,
    mdm_reviews,
    mdm_written,
)

REVIEW_KINDS = ("conflict", "match", "held", "cycle")
CSV_COLUMNS = (
    "canonical_id",
    "sf_account_id",
    "erp_system",
    "erp_entity",
    "erp_customer_number",
    "erp_internal_id",
    "parent_canonical_id",
    "name",
)


class NotFound(RevbridgeError):
    """The customer or review item asked for does not exist."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """One customer as the crosswalk knows it, in one ERP and legal entity."""

    canonical_id: str
    sf_account_id: str | None
    erp_system: str | None
    erp_entity: str
    erp_customer_number: str | None
    erp_internal_id: str | None
    parent_canonical_id: str | None
    name: str | None

    def as_dict(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in CSV_COLUMNS}


def sf18(value: str) -> str:
    """A Salesforce Account id in its 18-character form; a malformed id is a domain error."""
    try:
        return sfid.to_18(value.strip())
    except ValueError as exc:
        raise DomainError(str(exc)) from exc


def _audit(
    conn: Connection,
    *,
    now: datetime,
    actor: str,
    action: str,
    entity_id: str | None,
    reason: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    details: Mapping[str, Any] | None = None,
    entity_type: str = "customer",
) -> None:
    conn.execute(
        audit_log.insert().values(
            at=now,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            details=json.dumps(dict(details), sort_keys=True, default=str) if details else None,
        )
    )


# ---------------------------------------------------------------------- the crosswalk


def canonical_for_sf(
    conn: Connection, sf_account_id: str, *, now: datetime, name: str | None = None
) -> str:
    """The canonical id of a Salesforce Account, created on first sight."""
    sf = sf18(sf_account_id)
    found = conn.execute(
        select(mdm_customers.c.canonical_id).where(mdm_customers.c.sf_account_id == sf)
    ).scalar()
    if found is not None:
        if name:
            conn.execute(
                update(mdm_customers)
                .where(mdm_customers.c.canonical_id == found)
                .values(name=name, updated_at=now)
            )
        return str(found)
    canonical = "C" + uuid.uuid4().hex[:15].upper()
    conn.execute(
        mdm_customers.insert().values(
            canonical_id=canonical, sf_account_id=sf, name=name, created_at=now, updated_at=now
        )
    )
    return canonical


def _canonical_for_erp(
    conn: Connection, erp_system: str, erp_entity: str, number: str | None, internal: str | None
) -> str | None:
    keys = []
    if number:
        keys.append(customer_xref.c.erp_customer_number == number)
    if internal:
        keys.append(customer_xref.c.erp_internal_id == internal)
    if not keys:
        return None
    found = conn.execute(
        select(customer_xref.c.canonical_id).where(
            customer_xref.c.erp_system == erp_system,
            customer_xref.c.erp_entity == erp_entity,
            or_(*keys),
        )
    ).scalar()
    return None if found is None else str(found)


def link_customer(
    conn: Connection,
    *,
    sf_account_id: str,
    erp_system: str,
    erp_entity: str = "",
    erp_customer_number: str | None,
    erp_internal_id: str | None,
    now: datetime,
    actor: str,
    reason: str,
    name: str | None = None,
) -> str:
    """Record that the Account and the ERP customer are one customer; returns its canonical id.

    Idempotent; fills in a number or internal id learnt later. A link that contradicts an
    existing one (the Account already tied to another ERP customer, or the reverse) is refused
    with both sides named: unlinking is a person's decision, never a side effect.
    """
    sf = sf18(sf_account_id)
    canonical = canonical_for_sf(conn, sf, now=now, name=name)
    other = _canonical_for_erp(conn, erp_system, erp_entity, erp_customer_number, erp_internal_id)
    if other is not None and other != canonical:
        raise DomainError(
            f"ERP customer {erp_customer_number or erp_internal_id} in {erp_system}"
            f"{'/' + erp_entity if erp_entity else ''} is already linked to {other}, "
            f"not to Account {sf} ({canonical})"
        )
    row = (
        conn.execute(
            select(customer_xref).where(
                customer_xref.c.canonical_id == canonical,
                customer_xref.c.erp_system == erp_system,
                customer_xref.c.erp_entity == erp_entity,
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        conn.execute(
            customer_xref.insert().values(
                canonical_id=canonical,
                sf_account_id=sf,
                erp_system=erp_system,
                erp_entity=erp_entity,
                erp_customer_number=erp_customer_number,
                erp_internal_id=erp_internal_id,
                active=True,
                created_at=now,
                updated_at=now,
            )
        )
        _audit(
            conn,
            now=now,
            actor=actor,
            action="mdm_link",
            entity_id=canonical,
            to_state="linked",
            reason=reason,
            details={
                "sf_account_id": sf,
                "erp_system": erp_system,
                "erp_entity": erp_entity,
                "erp_customer_number": erp_customer_number,
                "erp_internal_id": erp_internal_id,
            },
        )
        return canonical
    changes: dict[str, str] = {}
    for column, value in (
        ("erp_customer_number", erp_customer_number),
        ("erp_internal_id", erp_internal_id),
    ):
        if value is None or row[column] == value:
            continue
        if row[column] is not None:
            raise DomainError(
                f"Account {sf} ({canonical}) is linked to {erp_system} {column} "
                f"{row[column]}, not {value}"
            )
        changes[column] = value
    if changes:
        conn.execute(
            update(customer_xref)
            .where(customer_xref.c.id == row["id"])
            .values(**changes, updated_at=now)
        )
        _audit(
            conn,
            now=now,
            actor=actor,
            action="mdm_link_completed",
            entity_id=canonical,
            reason=reason,
            details=changes,
        )
    return canonical


def _links_query() -> Any:
    return select(
        mdm_customers.c.canonical_id,
        mdm_customers.c.sf_account_id,
        customer_xref.c.erp_system,
        customer_xref.c.erp_entity,
        customer_xref.c.erp_customer_number,
        customer_xref.c.erp_internal_id,
        mdm_customers.c.parent_canonical_id,
        mdm_customers.c.name,
    ).select_from(
        mdm_customers.outerjoin(
            customer_xref, customer_xref.c.canonical_id == mdm_customers.c.canonical_id
        )
    )


def _link(row: Any) -> Link:
    m = row._mapping
    return Link(
        canonical_id=m["canonical_id"],
        sf_account_id=m["sf_account_id"],
        erp_system=m["erp_system"],
        erp_entity=m["erp_entity"] or "",
        erp_customer_number=m["erp_customer_number"],
        erp_internal_id=m["erp_internal_id"],
        parent_canonical_id=m["parent_canonical_id"],
        name=m["name"],
    )


def lookup(engine: Engine, any_id: str) -> list[Link]:
    """Every link of the customer named by any of its ids (canonical, SF 15/18, ERP number or
    internal id); empty when none matches."""
    value = any_id.strip()
    conds = [
        mdm_customers.c.canonical_id == value,
        customer_xref.c.erp_customer_number == value,
        customer_xref.c.erp_internal_id == value,
    ]
    if sfid.is_valid(value):
        conds.append(mdm_customers.c.sf_account_id == sfid.to_18(value))
    with engine.connect() as conn:
        canonicals = {r.canonical_id for r in conn.execute(_links_query().where(or_(*conds))).all()}
        if not canonicals:
            return []
        rows = conn.execute(
            _links_query()
            .where(mdm_customers.c.canonical_id.in_(sorted(canonicals)))
            .order_by(mdm_customers.c.canonical_id, customer_xref.c.erp_system)
        ).all()
    return [_link(r) for r in rows]


def find_link(
    conn: Connection,
    *,
    erp_system: str,
    erp_entity: str = "",
    sf_account_id: str | None = None,
    erp_customer_number: str | None = None,
) -> Link | None:
    """The link in one ERP and entity, by Account id or by ERP customer number."""
    query = _links_query().where(
        customer_xref.c.erp_system == erp_system, customer_xref.c.erp_entity == erp_entity
    )
    if sf_account_id is not None:
        query = query.where(mdm_customers.c.sf_account_id == sf18(sf_account_id))
    elif erp_customer_number is not None:
        query = query.where(customer_xref.c.erp_customer_number == erp_customer_number)
    else:
        return None
    row = conn.execute(query).first()
    return None if row is None else _link(row)


def export_links(engine: Engine, path: Path) -> int:
    """Write the crosswalk as CSV (one row per customer and ERP link); returns the row count."""
    with engine.connect() as conn:
        rows = conn.execute(
            _links_query().order_by(mdm_customers.c.canonical_id, customer_xref.c.erp_system)
        ).all()
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in _link(r).as_dict().items()})
    return len(rows)


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    linked: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Lines of rows naming no ERP at all: a customer `mdm export` lists but not linked yet.
    not_linked: list[int] = field(default_factory=list)
    unchanged: int = 0  # rows the crosswalk already held as they are (not counted as linked)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "linked": self.linked,
            "unchanged": self.unchanged,
            "not_linked": self.not_linked,
            "errors": [{"line": n, "error": e} for n, e in self.errors],
        }


def read_csv_text(path: Path) -> io.StringIO:
    """A CSV file as text for ``csv``: UTF-8 (with or without a byte order mark), else a
    ``UsageError`` naming the line (a spreadsheet's plain "CSV" is often Windows-1252)."""
    data = path.read_bytes()
    try:
        return io.StringIO(data.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{path} line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text; save the "
            "file as CSV UTF-8 and run the command again (nothing was read)"
        ) from exc


def import_links(
    engine: Engine,
    path: Path,
    *,
    erp_systems: Collection[str],
    now: datetime,
    actor: str,
) -> ImportReport:
    """Load links from CSV (the export's columns; ``sf_account_id``, ``erp_system`` and one of
    the ERP ids are required). ``erp_systems``: the names a row's ``erp_system`` may take (the
    configured ERP's, ``targets.erp_system_name``): a link under any other name would never
    be found. Every row is checked first; with any bad row nothing is imported and each bad
    row is reported with its line number."""
    report = ImportReport()
    reader = csv.DictReader(read_csv_text(path))
    missing = {"sf_account_id", "erp_system"} - set(reader.fieldnames or ())
    if missing:
        raise UsageError(
            f"{path}: missing {agreeing(len(missing), 'column')}: "
            f"{', '.join(sorted(missing))} (header: "
            f"{', '.join(reader.fieldnames or ())}); the file needs sf_account_id, erp_system "
            "and erp_customer_number or erp_internal_id, separated by commas"
        )
    rows = [(reader.line_num, row) for row in reader]
    report.rows = len(rows)
    seen_sf: dict[tuple[str, str, str], int] = {}
    seen_erp: dict[tuple[str, str, str], int] = {}
    clean: list[tuple[int, dict[str, Any]]] = []
    for line, row in rows:
        values = {k: (v or "").strip() for k, v in row.items() if k}
        problems = []
        sf = values.get("sf_account_id", "")
        if not sf:
            problems.append("sf_account_id is empty")
        elif not sfid.is_valid(sf):
            problems.append(f"sf_account_id {sf!r} is not a Salesforce id")
        system, entity = values.get("erp_system", ""), values.get("erp_entity", "")
        number = values.get("erp_customer_number") or None
        internal = values.get("erp_internal_id") or None
        if sf and not (system or entity or number or internal):
            report.not_linked.append(line)  # as `mdm export` writes an unlinked customer
            continue
        if not system:
            problems.append("erp_system is empty")
        elif system not in erp_systems:
            problems.append(
                f"erp_system {system!r} is not a configured ERP "
                f"(allowed: {', '.join(sorted(erp_systems))})"
            )
        if not number and not internal:
            problems.append("erp_customer_number or erp_internal_id is required")
        if not problems:
            key_sf = (system, entity, sfid.to_18(sf))
            if key_sf in seen_sf:
                problems.append(f"Account {sf} is linked twice (also line {seen_sf[key_sf]})")
            seen_sf[key_sf] = line
            for ident in (number, internal):
                if ident:
                    key = (system, entity, ident)
                    if key in seen_erp and seen_erp[key] != line:
                        problems.append(
                            f"ERP id {ident} is linked twice (also line {seen_erp[key]})"
                        )
                    seen_erp[key] = line
        if problems:
            report.errors.append((line, "; ".join(problems)))
        else:
            clean.append((line, values))
    if report.errors:
        return report
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            for line, values in clean:
                before = find_link(
                    conn,
                    erp_system=values["erp_system"],
                    erp_entity=values.get("erp_entity", ""),
                    sf_account_id=values["sf_account_id"],
                )
                try:
                    with conn.begin_nested():
                        link_customer(
                            conn,
                            sf_account_id=values["sf_account_id"],
                            erp_system=values["erp_system"],
                            erp_entity=values.get("erp_entity", ""),
                            erp_customer_number=values.get("erp_customer_number") or None,
                            erp_internal_id=values.get("erp_internal_id") or None,
                            name=values.get("name") or None,
                            now=now,
                            actor=actor,
                            reason=f"imported from {path.name}",
                        )
                    asked = (values.get("erp_customer_number"), values.get("erp_internal_id"))
                    if before is not None and all(
                        not v or v == had
                        for v, had in zip(
                            asked,
                            (before.erp_customer_number, before.erp_internal_id),
                            strict=True,
                        )
                    ):
                        report.unchanged += 1  # the crosswalk said so already
                    else:
                        report.linked += 1
                except DomainError as exc:
                    report.errors.append((line, str(exc)))
            if report.errors:
                trans.rollback()
                report.linked = report.unchanged = 0
            else:
                trans.commit()
        except BaseException:
            trans.rollback()
            raise
    return report


# ---------------------------------------------------------------------- the review queue


class OpenedReview(NamedTuple):
    """The open review item (``id``), and whether it is news (``news``)."""

    id: int
    news: bool


def open_review(
    conn: Connection,
    *,
    kind: str,
    message: str,
    now: datetime,
    canonical_id: str | None = None,
    sf_account_id: str | None = None,
    erp_customer_number: str | None = None,
    attribute: str | None = None,
    sf_value: Any = None,
    erp_value: Any = None,
    winner: str | None = None,
    score: float | None = None,
) -> OpenedReview:
    """A new open item, or the open item of the same kind and subject brought up to date,
    and whether it is news: a new open item, or an open item whose
    values (Salesforce's, the ERP's, the winner) changed. The same item reported again (each
    later version still carrying the value, each capture round before a write-back lands) is
    not news: its caller writes no new audit row for it."""
    assert kind in REVIEW_KINDS, kind
    enc = {
        "sf_value": None if sf_value is None else json.dumps(sf_value, default=str),
        "erp_value": None if erp_value is None else json.dumps(erp_value, default=str),
    }
    same = conn.execute(
        select(
            mdm_reviews.c.id,
            mdm_reviews.c.sf_value,
            mdm_reviews.c.erp_value,
            mdm_reviews.c.winner,
        ).where(
            mdm_reviews.c.state == "open",
            mdm_reviews.c.kind == kind,
            _eq(mdm_reviews.c.sf_account_id, sf_account_id),
            _eq(mdm_reviews.c.erp_customer_number, erp_customer_number),
            _eq(mdm_reviews.c.attribute, attribute),
            _eq(mdm_reviews.c.canonical_id, canonical_id),
        )
    ).first()
    values = dict(enc, message=message, winner=winner, score=score)
    if same is not None:
        conn.execute(update(mdm_reviews).where(mdm_reviews.c.id == same.id).values(**values))
        news = (same.sf_value, same.erp_value, same.winner) != (
            enc["sf_value"],
            enc["erp_value"],
            winner,
        )
        return OpenedReview(int(same.id), news)
    review = conn.execute(
        mdm_reviews.insert()
        .values(
            kind=kind,
            state="open",
            canonical_id=canonical_id,
            sf_account_id=sf_account_id,
            erp_customer_number=erp_customer_number,
            attribute=attribute,
            created_at=now,
            **values,
        )
        .returning(mdm_reviews.c.id)
    ).scalar_one()
    return OpenedReview(int(review), True)


def _eq(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def list_reviews(
    engine: Engine, *, state: str | None = "open", kind: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    query = select(mdm_reviews).order_by(mdm_reviews.c.id).limit(limit)
    if state:
        query = query.where(mdm_reviews.c.state == state)
    if kind:
        query = query.where(mdm_reviews.c.kind == kind)
    with engine.connect() as conn:
        return [_review(r) for r in conn.execute(query).mappings()]


def _review(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("sf_value", "erp_value"):
        if out[key] is not None:
            out[key] = json.loads(out[key])
    return out


def show_review(engine: Engine, review_id: int) -> dict[str, Any]:
    """The item, its audit trail, and the events whose delivery is held on it."""
    with engine.connect() as conn:
        row = conn.execute(select(mdm_reviews).where(mdm_reviews.c.id == review_id)).mappings()
        found = row.first()
        if found is None:
            raise NotFound(f"review item {review_id} does not exist")
        audit = conn.execute(
            select(audit_log)
            .where(audit_log.c.entity_type == "mdm_review", audit_log.c.entity_id == str(review_id))
            .order_by(audit_log.c.id)
        ).mappings()
        held = conn.execute(
            select(deliveries.c.event_id)
            .where(deliveries.c.state == "held", deliveries.c.parked_on == f"review:{review_id}")
            .order_by(deliveries.c.event_id)
        ).scalars()
        return _review(found) | {
            "audit": [dict(a) for a in audit],
            "held_events": [int(e) for e in held],
        }


def decide_review(
    engine: Engine,
    review_id: int,
    *,
    approve: bool,
    actor: str,
    now: datetime,
    note: str = "",
    erp_system: str | None = None,
) -> dict[str, Any]:
    """Approve or reject an open item, audited. Approving a match or held customer links the
    two records and puts the held customer's delivery back in line; rejecting it lets the
    customer be created as a new one in the ERP (also put back in line)."""
    with engine.begin() as conn:
        row = (
            conn.execute(select(mdm_reviews).where(mdm_reviews.c.id == review_id).with_for_update())
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"review item {review_id} does not exist")
        if row["state"] != "open":
            raise DomainError(f"review item {review_id} was already {row['state']}")
        to_state = "approved" if approve else "rejected"
        if row["kind"] in ("match", "held") and approve:
            erp = json.loads(row["erp_value"]) if row["erp_value"] else {}
            link_customer(
                conn,
                sf_account_id=row["sf_account_id"],
                erp_system=erp_system or erp.get("erp_system", "erp"),
                erp_entity=erp.get("erp_entity", ""),
                erp_customer_number=row["erp_customer_number"],
                erp_internal_id=erp.get("erp_internal_id"),
                now=now,
                actor=actor,
                reason=f"review {review_id} approved",
            )
            if erp.get("erp_internal_id"):
                adopt_ref(conn, row["sf_account_id"], str(erp["erp_internal_id"]), now)
        conn.execute(
            update(mdm_reviews)
            .where(mdm_reviews.c.id == review_id)
            .values(state=to_state, decided_at=now, decided_by=actor, decision_note=note)
        )
        _audit(
            conn,
            now=now,
            actor=actor,
            action=f"mdm_review_{to_state}",
            entity_type="mdm_review",
            entity_id=str(review_id),
            from_state="open",
            to_state=to_state,
            reason=note or None,
            details={"kind": row["kind"], "sf_account_id": row["sf_account_id"]},
        )
        released = 0
        if row["kind"] in ("match", "held") and row["sf_account_id"]:
            why = (
                "approved: delivered as the linked ERP customer"
                if approve
                else "rejected: not the same customer, created as a new one"
            )
            released = _release_held(
                conn,
                row["sf_account_id"],
                now,
                actor,
                review_id,
                why + (f" ({note})" if note else ""),
            )
    return show_review(engine, review_id) | {"released": released}


def adopt_ref(conn: Connection, sf_account_id: str, erp_internal_id: str, now: datetime) -> None:
    """Invoices for the Account now resolve to the matched ERP customer (no second customer)."""
    subject = f"customer:{sf_account_id}"
    exists = conn.execute(
        select(external_refs.c.subject_ref).where(
            external_refs.c.target == "erp", external_refs.c.subject_ref == subject
        )
    ).first()
    if exists is None:
        conn.execute(
            external_refs.insert().values(
                target="erp", subject_ref=subject, external_id=erp_internal_id, created_at=now
            )
        )


def unlink_customer(
    engine: Engine,
    *,
    sf_account_id: str,
    erp_system: str,
    erp_entity: str = "",
    actor: str,
    reason: str,
    now: datetime,
    relink_to: str | None = None,
) -> dict[str, Any]:
    """Undo a wrong link (a go-live match, an approval, an import) before the ERP has used it.

    The link goes, and so does the internal id the match adopted for the Account's
    documents; the pair is recorded as rejected, so neither ``mdm match`` nor the next
    customer upsert proposes it again; everything is audited, in one transaction. With
    ``relink_to`` the Account is linked to that ERP customer number instead (its internal id
    is found at the first upsert); without it, the next upsert creates a new customer.

    A link the ERP has used (a document of the Account delivered or attempted through it:
    the ERP customer then carries the hub's external id and those documents) is refused:
    undoing it here alone would leave them there.
    """
    if not reason.strip():
        raise UsageError("say why the link is wrong (--reason): it goes to the audit log")
    sf = sf18(sf_account_id)
    with engine.begin() as conn:
        link = find_link(conn, erp_system=erp_system, erp_entity=erp_entity, sf_account_id=sf)
        where = f"{erp_system}{'/' + erp_entity if erp_entity else ''}"
        if link is None or link.erp_system is None:
            raise NotFound(f"Account {sf} has no link in {where}")
        old = link.erp_customer_number or link.erp_internal_id
        if relink_to is not None and relink_to.strip() in (
            link.erp_customer_number,
            link.erp_internal_id,
        ):
            raise UsageError(f"Account {sf} is linked to {where} customer {old} already")
        used = _documents_through(conn, sf)
        if used:
            raise DomainError(
                f"Account {sf}'s link to {where} customer {old} is in use: "
                f"{counted(used, 'document')} of the Account reached the ERP through it "
                "(delivered or attempted), and the ERP customer carries the hub's external id. "
                "Unlinking in the hub alone would leave them on that customer: correct them "
                "in the ERP (reassign or merge the customer) and record the outcome with "
                "`revbridge mdm import`"
            )
        conn.execute(
            customer_xref.delete().where(
                customer_xref.c.canonical_id == link.canonical_id,
                customer_xref.c.erp_system == erp_system,
                customer_xref.c.erp_entity == erp_entity,
            )
        )
        # The internal id a match or an approval adopted (no event wrote it): gone with the
        # link, so the Account's documents wait for its customer again.
        dropped_ref = conn.execute(
            external_refs.delete().where(
                external_refs.c.target == "erp",
                external_refs.c.subject_ref == f"customer:{sf}",
                external_refs.c.event_id.is_(None),
            )
        ).rowcount
        review = open_review(
            conn,
            kind="match",
            sf_account_id=sf,
            erp_customer_number=link.erp_customer_number,
            sf_value={"name": link.name},
            erp_value={
                "erp_system": erp_system,
                "erp_entity": erp_entity,
                "erp_internal_id": link.erp_internal_id,
            },
            message=f"unlinked by {actor}: not the same customer ({reason})",
            now=now,
        ).id
        conn.execute(
            update(mdm_reviews)
            .where(mdm_reviews.c.id == review)
            .values(state="rejected", decided_at=now, decided_by=actor, decision_note=reason)
        )
        _audit(
            conn,
            now=now,
            actor=actor,
            action="mdm_unlink",
            entity_id=link.canonical_id,
            from_state="linked",
            to_state="unlinked",
            reason=reason,
            details={
                "sf_account_id": sf,
                "erp_system": erp_system,
                "erp_entity": erp_entity,
                "erp_customer_number": link.erp_customer_number,
                "erp_internal_id": link.erp_internal_id,
                "adopted_ref_dropped": bool(dropped_ref),
                "review_id": review,
            },
        )
        relinked = relink_to.strip() if relink_to is not None else None
        if relinked is not None:
            link_customer(
                conn,
                sf_account_id=sf,
                erp_system=erp_system,
                erp_entity=erp_entity,
                erp_customer_number=relinked,
                erp_internal_id=None,
                now=now,
                actor=actor,
                reason=f"relinked in place of {old}: {reason}",
            )
    return {
        "canonical_id": link.canonical_id,
        "sf_account_id": sf,
        "erp_system": erp_system,
        "erp_entity": erp_entity,
        "unlinked_from": {
            "erp_customer_number": link.erp_customer_number,
            "erp_internal_id": link.erp_internal_id,
        },
        "relinked_to": relinked,
        "review_id": review,
    }


def _documents_through(conn: Connection, sf: str) -> int:
    """How many of the Account's events (the customer, its invoices, payments, credit memos)
    reached the ERP or may have: delivered, in flight, or attempted at least once."""
    refs = {f"customer:{sf}", f"customer:{sf[:15]}"}
    return int(
        conn.execute(
            select(func.count())
            .select_from(deliveries.join(events, events.c.id == deliveries.c.event_id))
            .where(
                deliveries.c.target == "erp",
                or_(events.c.customer_ref.in_(refs), events.c.subject_ref.in_(refs)),
                or_(deliveries.c.state.in_(("delivered", "in_flight")), deliveries.c.attempts > 0),
            )
        ).scalar_one()
    )


def rejected_pairs(conn: Connection) -> set[tuple[str, str]]:
    """(Account, ERP customer number) pairs a person said are not one customer: a rejected
    proposal or held customer, or an unlinked link."""
    rows = conn.execute(
        select(mdm_reviews.c.sf_account_id, mdm_reviews.c.erp_customer_number).where(
            mdm_reviews.c.state == "rejected",
            mdm_reviews.c.kind.in_(("match", "held")),
            mdm_reviews.c.sf_account_id.is_not(None),
            mdm_reviews.c.erp_customer_number.is_not(None),
        )
    )
    return {(str(sf), str(number)) for sf, number in rows}


def _release_held(
    conn: Connection, sf_account_id: str, now: datetime, actor: str, review_id: int, why: str
) -> int:
    """The customer deliveries held on this review item, back in line (and those a version
    before holds existed had dead-lettered as held)."""
    rows = conn.execute(
        select(deliveries.c.event_id, deliveries.c.state)
        .join(events, events.c.id == deliveries.c.event_id)
        .where(
            deliveries.c.target == "erp",
            events.c.type == "customer.upserted",
            events.c.subject_ref == f"customer:{sf_account_id}",
            or_(
                and_(
                    deliveries.c.state == "held",
                    deliveries.c.parked_on == f"review:{review_id}",
                ),
                and_(
                    deliveries.c.state == "dead_letter",
                    deliveries.c.last_error.like("%held for review%"),
                ),
            ),
        )
    ).all()
    if rows:
        _back_in_line(conn, [r.event_id for r in rows], now)
        for r in rows:
            _audit(
                conn,
                now=now,
                actor=actor,
                action="release",
                entity_type="event",
                entity_id=str(r.event_id),
                from_state=r.state,
                to_state="pending",
                reason=f"review {review_id} {why}",
            )
    return len(rows)


def _back_in_line(conn: Connection, event_ids: list[int], now: datetime) -> None:
    """The events' ERP deliveries pending again, due now, with a fresh attempt count (waiting
    on nothing, no error)."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.event_id.in_(event_ids), deliveries.c.target == "erp")
        .values(
            state="pending",
            attempts=0,
            due_at=now,
            updated_at=now,
            lease_expires_at=None,
            parked_on=None,
            last_error=None,
        )
    )


def resend_customer(
    conn: Connection, sf_account_id: str, *, now: datetime, reason: str
) -> int | None:
    """Send the Account's last delivered version to the ERP again (a revert: the owner's
    values written back over an edit made in the ERP); returns its event id. Nothing when a
    newer version is still on its way (it carries the owner's values anyway)."""
    row = conn.execute(
        select(deliveries.c.event_id, deliveries.c.state)
        .join(events, events.c.id == deliveries.c.event_id)
        .where(
            deliveries.c.target == "erp",
            events.c.type == "customer.upserted",
            events.c.subject_ref == f"customer:{sf18(sf_account_id)}",
        )
        .order_by(events.c.id.desc())
        .limit(1)
    ).first()
    if row is None or row.state != "delivered":
        return None
    _back_in_line(conn, [row.event_id], now)
    _audit(
        conn,
        now=now,
        actor="mdm",
        action="mdm_revert",
        entity_type="event",
        entity_id=str(row.event_id),
        from_state="delivered",
        to_state="pending",
        reason=reason,
    )
    return int(row.event_id)


def held_review_for(conn: Connection, sf_account_id: str) -> dict[str, Any] | None:
    """The open match or held item of an Account: its customer must not be created yet."""
    row = (
        conn.execute(
            select(mdm_reviews)
            .where(
                mdm_reviews.c.state == "open",
                mdm_reviews.c.kind.in_(("match", "held")),
                mdm_reviews.c.sf_account_id == sf18(sf_account_id),
            )
            .order_by(mdm_reviews.c.id)
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def mark_held(conn: Connection, review_id: int) -> None:
    """A match proposal that now holds a customer delivery."""
    conn.execute(update(mdm_reviews).where(mdm_reviews.c.id == review_id).values(kind="held"))


def canonical_of_sf(conn: Connection, sf_account_id: str) -> str | None:
    found = conn.execute(
        select(mdm_customers.c.canonical_id).where(
            mdm_customers.c.sf_account_id == sf18(sf_account_id)
        )
    ).scalar()
    return None if found is None else str(found)


def rejected_match(conn: Connection, sf_account_id: str) -> bool:
    """A person said this Account is *not* the proposed ERP customer: create it anew."""
    return (
        conn.execute(
            select(mdm_reviews.c.id).where(
                mdm_reviews.c.state == "rejected",
                mdm_reviews.c.kind.in_(("match", "held")),
                mdm_reviews.c.sf_account_id == sf18(sf_account_id),
            )
        ).first()
        is not None
    )


# ---------------------------------------------------------------------- ownership state


def customer_attributes(customer: CustomerUpserted) -> dict[str, Any]:
    """The master attributes a Salesforce Account reports, as plain JSON values."""

    def addr(a: Any) -> Any:
        return None if a is None else {k: getattr(a, k) for k in a.__slots__}

    return {
        "name": customer.name,
        "contacts": [{k: getattr(c, k) for k in c.__slots__} for c in customer.contacts],
        "billing_address": addr(customer.billing_address),
        "shipping_address": addr(customer.shipping_address),
        "industry": customer.industry,
        "owner": customer.owner,
        "segment": customer.segment,
        "website": customer.website,
        "tax_id": customer.tax_id,
        "parent": customer.parent_customer_id,
    }


# What the Salesforce capture makes of an Account (``salesforce/mapping.py``, ``_account``):
# it reads no contacts, owner or tax registration, so they come back empty. Of the reverts,
# only the Account fields the write-back has (``salesforce/writeback.py``) change it.
_ACCOUNT_UNREAD: Mapping[str, Any] = {"contacts": [], "owner": None, "tax_id": None}
_ACCOUNT_REVERTED = frozenset({"name", "industry", "segment", "parent", "website"})


def account_after_revert(customer: CustomerUpserted, reverts: Mapping[str, Any]) -> dict[str, Any]:
    """The master attributes the capture will read from the Account once ``reverts`` are
    written over the values ``customer`` brought: the hub's own write, to be recognised as an
    echo when it comes back (``remember_written``, ``is_echo``)."""
    after = customer_attributes(customer) | dict(_ACCOUNT_UNREAD)
    after.update({k: v for k, v in reverts.items() if k in _ACCOUNT_REVERTED})
    return after


def credit_attributes(status: CustomerCreditStatusChanged) -> dict[str, Any]:
    """The credit attributes an ERP reports."""
    return {
        "credit_hold": status.credit_hold,
        "credit_limit": None if status.credit_limit is None else str(status.credit_limit),
        "payment_terms": status.payment_terms,
    }


def synced_values(conn: Connection, canonical_id: str) -> dict[str, Any]:
    rows = conn.execute(
        select(mdm_attribute_state.c.attribute, mdm_attribute_state.c.value).where(
            mdm_attribute_state.c.canonical_id == canonical_id
        )
    ).all()
    return {r.attribute: json.loads(r.value) for r in rows}


def apply_reported(
    conn: Connection,
    ownership: Ownership,
    *,
    canonical_id: str,
    side: Side,
    values: Mapping[str, Any],
    now: datetime,
    actor: str,
    sf_account_id: str | None = None,
    erp_customer_number: str | None = None,
) -> list[Decision]:
    """Decide each reported attribute; keep the new synced values; queue the conflicts."""
    state = {
        r.attribute: r
        for r in conn.execute(
            select(mdm_attribute_state).where(mdm_attribute_state.c.canonical_id == canonical_id)
        )
    }
    decisions = []
    for attribute, value in sorted(values.items()):
        if value is None and ownership.owner_of(attribute) != side:
            continue  # a field the non-owner does not carry (or left empty) says nothing
        synced = state.get(attribute)
        d = decide(
            ownership,
            attribute,
            side,
            value_hash(value),
            None if synced is None else synced.value_hash,
        )
        decisions.append(d)
        if d.action.value in ("first", "propagate"):
            row = {
                "value": json.dumps(value, default=str),
                "value_hash": d.reported_hash,
                "set_by": side,
                "synced_at": now,
            }
            if synced is None:
                conn.execute(
                    mdm_attribute_state.insert().values(
                        canonical_id=canonical_id, attribute=attribute, **row
                    )
                )
            else:
                conn.execute(
                    update(mdm_attribute_state)
                    .where(
                        and_(
                            mdm_attribute_state.c.canonical_id == canonical_id,
                            mdm_attribute_state.c.attribute == attribute,
                        )
                    )
                    .values(**row)
                )
        elif d.is_conflict:
            assert synced is not None
            owner_value = json.loads(synced.value)
            sf_value, erp_value = (
                (value, owner_value) if side == "salesforce" else (owner_value, value)
            )
            review, news = open_review(
                conn,
                kind="conflict",
                canonical_id=canonical_id,
                sf_account_id=sf_account_id,
                erp_customer_number=erp_customer_number,
                attribute=attribute,
                sf_value=sf_value,
                erp_value=erp_value,
                winner=d.owner,
                now=now,
                message=(
                    f"{attribute} changed in {side}, which does not own it ({d.owner} does): "
                    + (
                        f"{d.owner}'s value to be written back"
                        if d.action.value == "revert"
                        else "flagged, not propagated"
                    )
                ),
            )
            if not news:
                continue  # the same open conflict reported again: audited when it was news
            _audit(
                conn,
                now=now,
                actor=actor,
                action=f"mdm_conflict_{d.action.value}",
                entity_id=canonical_id,
                reason=f"{attribute}: {d.owner} owns it and wins over {side}",
                details={
                    "attribute": attribute,
                    "winner": d.owner,
                    "salesforce": sf_value,
                    "erp": erp_value,
                    "review": review,
                },
            )
    return decisions


def seed_synced(
    conn: Connection,
    ownership: Ownership,
    *,
    canonical_id: str,
    values: Mapping[str, Any],
    now: datetime,
    set_by: str,
) -> None:
    """After a create, the values the other side accepted become synced where nothing was:
    the ERP keeps the tax id Salesforce first sent, until the ERP reports its own."""
    known = set(synced_values(conn, canonical_id))
    for attribute, value in values.items():
        if attribute in known or value is None:
            continue
        conn.execute(
            mdm_attribute_state.insert().values(
                canonical_id=canonical_id,
                attribute=attribute,
                value=json.dumps(value, default=str),
                value_hash=value_hash(value),
                set_by=set_by,
                synced_at=now,
            )
        )


# ---------------------------------------------------------------------- echoes


def remember_written(
    conn: Connection, system: str, record_id: str, values: Mapping[str, Any], now: datetime
) -> None:
    """Note what the hub just wrote into ``system`` for ``record_id``."""
    digest = value_hash(dict(values))
    updated = conn.execute(
        update(mdm_written)
        .where(mdm_written.c.system == system, mdm_written.c.record_id == record_id)
        .values(values_hash=digest, written_at=now)
    ).rowcount
    if not updated:
        conn.execute(
            mdm_written.insert().values(
                system=system, record_id=record_id, values_hash=digest, written_at=now
            )
        )


def is_echo(
    conn: Connection,
    system: str,
    record_id: str,
    values: Mapping[str, Any],
    canonical_id: str | None,
    not_owned: frozenset[str] = frozenset(),
) -> bool:
    """A captured record that only shows what the hub wrote (or what is already synced).
    An empty value of an attribute in ``not_owned`` (the capturing side does not own it, and
    may not even carry it) does not count as a change."""
    written = conn.execute(
        select(mdm_written.c.values_hash).where(
            mdm_written.c.system == system, mdm_written.c.record_id == record_id
        )
    ).scalar()
    if written is not None and written == value_hash(dict(values)):
        return True
    if canonical_id is None:
        return False
    synced = {
        r.attribute: r.value_hash
        for r in conn.execute(
            select(mdm_attribute_state.c.attribute, mdm_attribute_state.c.value_hash).where(
                mdm_attribute_state.c.canonical_id == canonical_id
            )
        )
    }
    # An attribute never synced counts as empty (nothing was ever set for it).
    empty = value_hash(None)
    return bool(values) and all(
        synced.get(k, empty) == value_hash(v)
        for k, v in values.items()
        if not (v is None and k in not_owned)
    )


# ---------------------------------------------------------------------- hierarchy


def check_parent(
    conn: Connection, canonical_id: str, parent_canonical_id: str | None
) -> tuple[str, ...] | None:
    """The cycle that this re-parenting would close (as Account ids where known), else None."""
    rows = conn.execute(
        select(
            mdm_customers.c.canonical_id,
            mdm_customers.c.parent_canonical_id,
            mdm_customers.c.sf_account_id,
        )
    ).all()
    parents = {r.canonical_id: r.parent_canonical_id for r in rows}
    cycle = find_cycle(parents, canonical_id, parent_canonical_id)
    if cycle is None:
        return None
    names = {r.canonical_id: r.sf_account_id or r.canonical_id for r in rows}
    return tuple(names.get(c, c) for c in cycle)


def set_parent(
    conn: Connection, canonical_id: str, parent_canonical_id: str | None, now: datetime
) -> bool:
    """Record the parent; True when it changed (a re-parenting)."""
    current = conn.execute(
        select(mdm_customers.c.parent_canonical_id).where(
            mdm_customers.c.canonical_id == canonical_id
        )
    ).scalar()
    if current == parent_canonical_id:
        return False
    conn.execute(
        update(mdm_customers)
        .where(mdm_customers.c.canonical_id == canonical_id)
        .values(parent_canonical_id=parent_canonical_id, updated_at=now)
    )
    return True


def reject_cycle(
    conn: Connection, *, canonical_id: str, sf_account_id: str, cycle: Sequence[str], now: datetime
) -> str:
    """Queue the cycle for review and return the message the delivery is refused with."""
    message = f"customer hierarchy cycle rejected: {describe_cycle(tuple(cycle))}"
    opened = open_review(
        conn,
        kind="cycle",
        canonical_id=canonical_id,
        sf_account_id=sf_account_id,
        message=message,
        now=now,
        # Salesforce's value refused: the parent that closes the cycle. Another parent is
        # news; the same one again (each later version of the Account) is not.
        sf_value=cycle[1] if len(cycle) > 1 else None,
    )
    if opened.news:  # each later version with the same parent is refused, not re-audited
        _audit(
            conn,
            now=now,
            actor="mdm",
            action="mdm_cycle_rejected",
            entity_id=canonical_id,
            reason=message,
            details={"cycle": list(cycle), "review": opened.id},
        )
    return f"{message} (review {opened.id})"


def hierarchy(engine: Engine) -> dict[str, str | None]:
    """Account id -> parent Account id, as the crosswalk holds it."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                mdm_customers.c.canonical_id,
                mdm_customers.c.sf_account_id,
                mdm_customers.c.parent_canonical_id,
            )
        ).all()
    names = {r.canonical_id: r.sf_account_id or r.canonical_id for r in rows}
    return {
        names[r.canonical_id]: (names.get(r.parent_canonical_id) if r.parent_canonical_id else None)
        for r in rows
    }


def all_links(engine: Engine, erp_system: str | None = None) -> Iterable[Link]:
    query = _links_query()
    if erp_system:
        query = query.where(customer_xref.c.erp_system == erp_system)
    with engine.connect() as conn:
        return [_link(r) for r in conn.execute(query)]
