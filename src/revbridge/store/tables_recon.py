"""The reconciliation workflow's tables, registered on the ledger's ``metadata``.

- ``recon_runs``: one row per reconciliation run (scope, period, counts, amounts per currency
  as JSON of decimal strings, and the fingerprint of each reconciliation's balances): the
  variance trend of the HTML report and the evidence a sign-off is compared with.
- ``recon_cases``: one case per ``(reconciliation, ref, kind)``, opened by a run, updated by
  later runs; ``state`` is ``open``, ``investigating``, ``resolved`` or ``accepted``. Amounts
  are exact decimal strings. Every transition is also in ``audit_log``.
- ``recon_in_transit``: a finding on a document still on its way (pending, in flight, parked,
  held: the hub is delivering it), first seen by a run; no case. A later run that still finds
  it on its way with the same event opens the case (any run, whatever its period, once its
  delivery is dead-lettered or still on its way ``STUCK_AFTER`` later: decision 0033); a run
  that no longer does forgets it.
- ``recon_signoffs``: a period's month-end sign-off, preparer then reviewer, ``voided`` when a
  later run finds the period's balances changed (fingerprints at sign-off kept here).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from revbridge.store.schema import Id, UTCDateTime, metadata

recon_runs = Table(
    "recon_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("read_at", UTCDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("matched_count", Integer, nullable=False),
    Column("variance_count", Integer, nullable=False),
    Column("within_tolerance_count", Integer, nullable=False),
    Column("opened_count", Integer, nullable=False),
    Column("resolved_count", Integer, nullable=False),
    Column("open_cases", Integer, nullable=False),
    # {"matched": {"USD": "12.00"}, "variance": {"USD": "1.00"}}: decimal strings per currency.
    Column("amounts", Text, nullable=False),
    # {"ar": "<sha256>", "payments": ..., "revenue": ...}
    Column("fingerprints", Text, nullable=False),
    Index(None, "scope", "period_start"),
)

recon_cases = Table(
    "recon_cases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reconciliation", String(16), nullable=False),
    Column("ref", String(300), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("doc_type", String(32)),
    Column("currency", String(3)),
    Column("source_amount", String(40)),
    Column("erp_amount", String(40)),
    Column("difference", String(40)),
    Column("source_value", String(300)),
    Column("erp_value", String(300)),
    Column("hub_state", String(32)),
    Column("event_id", Id),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime()),
    Column("first_run_id", Id, ForeignKey("recon_runs.id"), nullable=False),
    Column("last_run_id", Id, ForeignKey("recon_runs.id"), nullable=False),
    Column("assignee", String(128)),
    Column("resolution_code", String(64)),
    Column("note", Text),
    UniqueConstraint("reconciliation", "ref", "kind"),
    Index(None, "state"),
)

recon_in_transit = Table(
    "recon_in_transit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reconciliation", String(16), nullable=False),
    Column("ref", String(300), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("event_id", Id),
    Column("hub_state", String(32), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("first_run_id", Id, ForeignKey("recon_runs.id"), nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    UniqueConstraint("reconciliation", "ref", "kind"),
)

recon_signoffs = Table(
    "recon_signoffs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("state", String(16), nullable=False),  # prepared | signed | voided
    Column("run_id", Id, ForeignKey("recon_runs.id"), nullable=False),
    Column("fingerprints", Text, nullable=False),
    Column("preparer", String(128), nullable=False),
    Column("prepared_at", UTCDateTime(), nullable=False),
    Column("reviewer", String(128)),
    Column("reviewed_at", UTCDateTime()),
    Column("voided_at", UTCDateTime()),
    Column("void_reason", Text),
    Index(None, "period_start", "state"),
)
