"""The engine's own tables, registered on the ledger's ``metadata``.

- ``summary_lines``: the trace of summarized posting. When a target posts some records
  summarized (NetSuite's ``revenue_posting = "summarized"``: one journal per period and
  currency, one line per GL account and side), each source event's contribution to each
  line of the summarized document is kept here: which event, which document (its reference
  and its id in the target), which line (account and side) and how much. Reconciliation per
  entry follows it from a revenue schedule entry to the journal line that carries it, and
  the batch route reads it back to re-post a period's complete set (the document is upserted
  with all its lines, so a rerun changes nothing and a late entry corrects the totals).
  Amounts are exact decimal strings in the line's currency.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table

from revbridge.store.schema import Id, UTCDateTime, metadata

summary_lines = Table(
    "summary_lines",
    metadata,
    Column("target", String(32), primary_key=True),
    Column("event_id", Id, ForeignKey("events.id"), primary_key=True),
    Column("line_key", String(255), primary_key=True),
    Column("summary_ref", String(255), nullable=False),
    Column("erp_id", String(255), nullable=False),
    Column("account", String(255), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("debit", String(40), nullable=False),
    Column("credit", String(40), nullable=False),
    Column("batch_id", Id, ForeignKey("batches.id")),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "target", "summary_ref"),
)
