"""The ledger's tables, one schema for SQLite and PostgreSQL.

SQL is kept as SQL: these are SQLAlchemy Core tables, queried with Core statements. Alembic
migrations (``migrations/``) create them; a test proves the migrations and these tables agree.

- ``events``: immutable canonical events, unique by idempotency key.
- ``deliveries``: the mutable delivery state of each event.
- ``quarantine``: what was rejected, with where it came from and why.
- ``audit_log``: append-only (triggers refuse UPDATE and DELETE): who changed what, when, why.
- ``customer_xref``: the customer ID crosswalk (Salesforce Account id ↔ ERP customer number).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC; naive values are refused, never guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else utc_result(value)


def utc_result(value: str | datetime) -> datetime:
    """A stored timestamp as a UTC-aware datetime: what SQLite's text (raw SQL) or a driver's
    datetime holds."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            # Naive text is UTC: parsing it again with the offset costs about a third of
            # ``replace(tzinfo=UTC)`` (0.26 µs against 0.7), once per claimed delivery.
            return datetime.fromisoformat(value + "+00:00")
        value = parsed
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def sqlite_timestamp(value: datetime) -> str:
    """A UTC timestamp as SQLAlchemy stores it in SQLite text, for raw-SQL fast paths.

    Always with microseconds: stored values are compared as text, and '…00' < '…00.000000'.
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def pg_timestamp(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
    return value


def timestamp_param(dialect_name: str) -> Callable[[datetime], Any]:
    return sqlite_timestamp if dialect_name == "sqlite" else pg_timestamp


naming = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=naming)

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (autoincrementing).
Id = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(512), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("source_id", String(255), nullable=False),
    Column("source_version", String(255), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("customer_ref", String(300)),
    Column("subject_ref", String(300), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    # Every index costs each ingest; these are the ones queries use (dependency look-ups).
    Index(None, "subject_ref"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("event_id", Id, ForeignKey("events.id"), primary_key=True),
    Column("target", String(32), nullable=False),
    Column("pattern", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("lease_expires_at", UTCDateTime()),
    Column("worker_id", String(128)),
    Column("parked_on", String(300)),
    Column("last_error", Text),
    Column("external_ref", String(255)),
    Column("delivered_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Copied from the event so that the claim query can keep per-customer order on one table.
    Column("customer_ref", String(300)),
    Index(None, "state", "due_at"),
    Index(
        "ix_deliveries_parked_on",
        "parked_on",
        postgresql_where=text("parked_on IS NOT NULL"),
        sqlite_where=text("parked_on IS NOT NULL"),
    ),
    # The head of each customer's line: only undelivered rows, so the claim's look-up of a
    # customer's earliest open delivery never walks its delivered history.
    Index(
        "ix_deliveries_open_line",
        "target",
        "pattern",
        "customer_ref",
        "event_id",
        postgresql_where=text("state IN ('pending', 'in_flight')"),
        sqlite_where=text("state IN ('pending', 'in_flight')"),
    ),
    # What the claim walks: pending deliveries in event order, so that it stops at its limit
    # instead of reading and sorting the whole backlog each round (decision 0015).
    Index(
        "ix_deliveries_pending_line",
        "target",
        "pattern",
        "event_id",
        postgresql_where=text("state = 'pending'"),
        sqlite_where=text("state = 'pending'"),
    ),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("events.id"), nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("worker_id", String(128), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("outcome", String(32)),
    Column("error", Text),
    Column("external_ref", String(255)),
    Index(None, "event_id", "attempt_no"),
)

# Where each delivered business record lives in the target system: the hub's own memory of
# "invoice:a0X... is NetSuite invoice 4711", used to resolve dependencies without guessing.
external_refs = Table(
    "external_refs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target", String(32), nullable=False),
    Column("subject_ref", String(300), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("event_id", Id, ForeignKey("events.id")),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("target", "subject_ref"),
)

# Operator and breaker state per target system (pause, circuit), shared by all workers.
targets = Table(
    "targets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("paused_reason", Text),
    Column("circuit", String(16), nullable=False, default="closed"),
    Column("circuit_opened_at", UTCDateTime()),
    # Why the calls failed when the circuit opened (the alert and `dr status` say it).
    Column("circuit_reason", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime(), nullable=False),
    # The system answered 429 with a Retry-After: no process calls it before then.
    Column("hold_until", UTCDateTime()),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("origin", String(1024)),
    Column("line_no", Integer),
    Column("event_type", String(64)),
    Column("idempotency_key", String(512)),
    Column("original_event_id", Id, ForeignKey("events.id")),
    Column("raw", Text, nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("resolved_at", UTCDateTime()),
    Column("resolved_by", String(128)),
    Column("resolution_note", Text),
    Index(None, "status", "created_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity_type", String(64), nullable=False),
    Column("entity_id", String(300)),
    Column("from_state", String(32)),
    Column("to_state", String(32)),
    Column("reason", Text),
    Column("details", Text),
    Index(None, "entity_type", "entity_id"),
    Index(None, "at"),
)

customer_xref = Table(
    "customer_xref",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("canonical_id", String(64), nullable=False),
    Column("sf_account_id", String(18)),
    Column("erp_system", String(32), nullable=False),
    Column("erp_entity", String(64), nullable=False, default=""),
    Column("erp_customer_number", String(128)),
    Column("erp_internal_id", String(128)),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("erp_system", "erp_entity", "sf_account_id"),
    UniqueConstraint("erp_system", "erp_entity", "erp_customer_number"),
    UniqueConstraint("canonical_id", "erp_system", "erp_entity"),  # one link per ERP and entity
)

# A batch run: the ERP's own import file, its manifest and what became of each event.
batches = Table(
    "batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target", String(32), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("file_path", String(1024)),
    Column("file_format", String(32)),
    Column("checksum", String(64)),
    Column("record_count", Integer, nullable=False),
    Column("control_totals", Text, nullable=False),
    Column("summary", Text),
    Index(None, "event_type", "created_at"),
)

batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", Id, ForeignKey("batches.id"), primary_key=True),
    Column("event_id", Id, ForeignKey("events.id"), primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("external_ref", String(255)),
    Column("error", Text),
)

# One row per open or past incident, so that every process sends one alert per incident and
# one resolve message when it clears.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime()),
    Column("severity", String(16), nullable=False),
    Column("title", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Index(None, "key", "resolved_at"),
)

# External calls per day, target, event type and pattern: the API cost of the policy.
api_calls = Table(
    "api_calls",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("target", String(32), primary_key=True),
    Column("event_type", String(64), primary_key=True),
    Column("pattern", String(16), primary_key=True),
    Column("calls", BigInteger, nullable=False),
)

# Where each capture stream stopped: advanced only after what it read is durably ingested.
watermarks = Table(
    "watermarks",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# The health of each capture stream (a system's changes read into the ledger, ``erp:netsuite``,
# ``salesforce:org``): when a round last succeeded, and since when every round has failed. A
# capture that fails, or stops, sends no events: no backlog ages, so only this can say it.
capture_streams = Table(
    "capture_streams",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("last_ok_at", UTCDateTime()),
    Column("failing_since", UTCDateTime()),
    Column("last_error", Text),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Rate schedules shared by every worker process on PostgreSQL (per ERP account), in epoch
# seconds of the database clock: ``tat`` is the next call's slot, ``recent`` when the last
# ``int(rate)`` calls went out (``engine.ratelimit.PgTokenBucket``; the table exists on SQLite
# too, where nothing uses it). ``burst`` is the catch-up allowance in slots.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("rate", Float, nullable=False),
    Column("configured_rate", Float, nullable=False),
    Column("burst", Float, nullable=False),
    Column("tat", Float, nullable=False),
    Column("recent", ARRAY(Float).with_variant(JSON(), "sqlite"), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
from revbridge.store import tables_engine as tables_engine  # noqa: E402  (registers its tables)
from revbridge.store import tables_mdm as tables_mdm  # noqa: E402  (registers its tables)
from revbridge.store import tables_ops as tables_ops  # noqa: E402  (registers its tables)
from revbridge.store import tables_recon as tables_recon  # noqa: E402  (registers its tables)
