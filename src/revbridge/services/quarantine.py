"""The quarantine's review: what was set aside at the door, and an operator closing it.

An entry is ``open`` until a person closes it, audited with who, when and why:

* ``resolved``: dealt with. A line the mapping got wrong is corrected at its source and
  ingested again as usual (a new event, or the duplicate of one the ledger holds); an
  ``idempotency_conflict`` is resolved once the kept original is confirmed right, or the
  corrected change came in with a new version.
* ``discarded``: nothing to do (a test line, noise, a change that no longer matters).

Closing changes no event and delivers nothing; the raw input stays, for the record. The
ledger lists the entries (``Ledger.list_quarantine``); ``status`` counts the open ones.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, case, func, select, update

from revbridge.errors import UsageError
from revbridge.services.operations import NotFound
from revbridge.store.schema import audit_log, quarantine

OPEN = "open"
Outcome = Literal["resolved", "discarded"]
OUTCOMES: tuple[Outcome, ...] = ("resolved", "discarded")
STATES = (OPEN, *OUTCOMES)


def entry(engine: Engine, entry_id: int) -> dict[str, Any]:
    """One entry in full: the raw input, where it came from (origin, line), why, its state."""
    with engine.connect() as conn:
        row = conn.execute(select(quarantine).where(quarantine.c.id == entry_id)).first()
    if row is None:
        raise NotFound(f"quarantine entry {entry_id} does not exist")
    return dict(row._mapping)


def source_id(raw: str) -> str | None:
    """The source record's id as the raw input names it: an envelope's ``source_id``, a
    Salesforce record's ``Id``; None when the input is not a JSON object or names none."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    found = body.get("source_id") or body.get("Id")
    return None if found is None else str(found)


def review(engine: Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    """Entries for a person's review: the open ones first (oldest first), then the closed
    ones (last closed first); each with the ``source_id`` its raw input names."""
    is_open = quarantine.c.status == OPEN
    query = (
        select(quarantine)
        .order_by(
            case((is_open, 0), else_=1),
            case((is_open, quarantine.c.id), else_=None),
            quarantine.c.resolved_at.desc(),
            quarantine.c.id.desc(),
        )
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    return [r | {"source_id": source_id(r["raw"])} for r in rows]


def counts(engine: Engine) -> dict[str, int]:
    """How many entries are in each state (every state named, zero included)."""
    with engine.connect() as conn:
        by_status = select(quarantine.c.status, func.count()).group_by(quarantine.c.status)
        found: dict[str, int] = dict(conn.execute(by_status).all())
    return {s: int(found.get(s, 0)) for s in STATES}


def close_entries(
    engine: Engine,
    *,
    now: datetime,
    actor: str,
    reason: str,
    outcome: Outcome = "resolved",
    entry_id: int | None = None,
    reason_code: str | None = None,
) -> int:
    """Close one open entry (``entry_id``) or every open one (of ``reason_code``) as
    ``outcome``, each audited with the actor and the reason. Returns how many were closed;
    an ``entry_id`` that is not open raises ``NotFound`` naming its state."""
    if not reason.strip():
        raise UsageError("closing a quarantine entry needs a reason for the audit log")
    if outcome not in OUTCOMES:
        raise UsageError(f"outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
    if entry_id is not None and reason_code is not None:
        raise UsageError("an entry id names one entry: a reason code goes with every entry")
    with engine.begin() as conn:
        query = select(quarantine.c.id).where(quarantine.c.status == OPEN)
        if entry_id is not None:
            query = query.where(quarantine.c.id == entry_id)
        if reason_code is not None:
            query = query.where(quarantine.c.reason_code == reason_code)
        ids = [r.id for r in conn.execute(query.order_by(quarantine.c.id).with_for_update())]
        if entry_id is not None and not ids:
            closed = conn.execute(
                select(
                    quarantine.c.status, quarantine.c.resolved_by, quarantine.c.resolved_at
                ).where(quarantine.c.id == entry_id)
            ).first()
            if closed is None:
                raise NotFound(f"quarantine entry {entry_id} does not exist")
            raise NotFound(
                f"quarantine entry {entry_id} is not open: {closed.status} by "
                f"{closed.resolved_by} at {closed.resolved_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        if not ids:
            return 0
        conn.execute(
            update(quarantine)
            .where(quarantine.c.id.in_(ids))
            .values(status=outcome, resolved_at=now, resolved_by=actor, resolution_note=reason)
        )
        conn.execute(
            audit_log.insert(),
            [
                {
                    "at": now,
                    "actor": actor,
                    "action": "resolve" if outcome == "resolved" else "discard",
                    "entity_type": "quarantine",
                    "entity_id": str(i),
                    "from_state": OPEN,
                    "to_state": outcome,
                    "reason": reason,
                }
                for i in ids
            ],
        )
    return len(ids)
