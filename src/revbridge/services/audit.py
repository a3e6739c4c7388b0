"""``revbridge audit`` and ``GET /api/v1/audit``: read the audit log, newest first.

Every operator action (a pause, a resume, a drain and its start, a replay, a sign-off) and
every run the hub starts by itself (the post-outage reconciliation) is a row of
``audit_log``; this reads them back, filtered by action, entity and time.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, select, true

from revbridge.core.durations import parse_duration
from revbridge.errors import UsageError
from revbridge.store.schema import audit_log


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a time ago (``30min``, ``2h``, ``7d``) or a date or time in ISO 8601
    (``2026-11-03``, ``2026-11-03T08:00+01:00``; without a zone, UTC). Anything else is the
    operator's mistake, said as such (``UsageError``)."""
    with contextlib.suppress(ValueError):
        return now - parse_duration(text)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a time ago (30min, 2h, 7d) nor an ISO 8601 date or "
            "time (2026-11-03, 2026-11-03T08:00+01:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _where(
    action: str | None,
    entity_type: str | None,
    entity_id: str | None,
    since: datetime | None,
) -> ColumnElement[bool]:
    c = audit_log.c
    parts: list[ColumnElement[bool]] = [true()]
    if action is not None:
        parts.append(c.action == action)
    if entity_type is not None:
        parts.append(c.entity_type == entity_type)
    if entity_id is not None:
        parts.append(c.entity_id == entity_id)
    if since is not None:
        parts.append(c.at >= since)
    return and_(*parts)


def read_audit(
    engine: Engine,
    *,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """Audit rows matching every filter given, newest first, at most ``limit`` (``at``
    tz-aware, UTC), and how many match in all."""
    where = _where(action, entity_type, entity_id, since)
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log)
            .where(where)
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            .limit(limit)
        ).mappings()
        page = [dict(r) for r in rows]
        total = conn.execute(select(func.count()).select_from(audit_log).where(where))
        return page, int(total.scalar_one())
