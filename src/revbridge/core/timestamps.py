"""Timestamps as the operators read them (``docs/decisions/0028``): ISO 8601, in UTC, with
the zone said.

* JSON (every ``--json``, ``dlq show``, the HTTP API): ``2026-11-27T22:49:25.330359Z``, the
  form the API's serializer writes for an aware UTC datetime (the fraction only when there is
  one), so that a value reads the same from the CLI and from the API.
* People (tables, the console, messages): ``2026-11-27 22:49:25 UTC``, to the second.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def _utc(at: datetime) -> datetime:
    # The ledger stores UTC; a value without a zone from it is UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def json_timestamp(at: datetime) -> str:
    """``at`` for JSON: ISO 8601 in UTC, with ``Z``."""
    return _utc(at).isoformat().replace("+00:00", "Z")


def human_timestamp(at: datetime) -> str:
    """``at`` for a person: ``YYYY-MM-DD HH:MM:SS UTC``."""
    return f"{_utc(at):%Y-%m-%d %H:%M:%S} UTC"


def json_default(value: Any) -> Any:
    """``json.dumps``'s ``default``: datetimes by ``json_timestamp``, dates in ISO 8601,
    anything else (a Decimal, a path) as its text."""
    if isinstance(value, datetime):
        return json_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
