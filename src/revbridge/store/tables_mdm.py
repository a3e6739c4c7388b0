"""The customer master's tables (revbridge.mdm), registered on ``metadata``.

- ``mdm_customers``: one row per canonical customer: its Salesforce Account id (18 chars,
  normalized) and its parent (the hierarchy, kept here for every ERP, and the only place it
  lives for an ERP without a party parent such as Tryton).
- ``customer_xref`` (in schema.py): one link per canonical customer, ERP and legal entity.
- ``mdm_attribute_state``: the last value synced per (customer, attribute), so that a later
  change can be attributed to the side that made it.
- ``mdm_written``: a hash of the values the hub itself last wrote per (system, record), so a
  capture that reads them back is recognised as an echo and dropped.
- ``mdm_reviews``: the review queue (ownership conflicts, match proposals, cycles, held
  customers), with both values and the decision.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table, Text

from revbridge.store.schema import Id, UTCDateTime, metadata

mdm_customers = Table(
    "mdm_customers",
    metadata,
    Column("canonical_id", String(64), primary_key=True),
    Column("sf_account_id", String(18), unique=True),
    Column("parent_canonical_id", String(64)),
    Column("name", String(255)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

mdm_attribute_state = Table(
    "mdm_attribute_state",
    metadata,
    Column("canonical_id", String(64), primary_key=True),
    Column("attribute", String(64), primary_key=True),
    Column("value", Text),
    Column("value_hash", String(64), nullable=False),
    Column("set_by", String(32), nullable=False),
    Column("synced_at", UTCDateTime(), nullable=False),
)

mdm_written = Table(
    "mdm_written",
    metadata,
    Column("system", String(32), primary_key=True),
    Column("record_id", String(128), primary_key=True),
    Column("values_hash", String(64), nullable=False),
    Column("written_at", UTCDateTime(), nullable=False),
)

mdm_reviews = Table(
    "mdm_reviews",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("canonical_id", String(64)),
    Column("sf_account_id", String(18)),
    Column("erp_customer_number", String(128)),
    Column("attribute", String(64)),
    Column("sf_value", Text),
    Column("erp_value", Text),
    Column("winner", String(32)),
    Column("score", Float),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("decided_at", UTCDateTime()),
    Column("decided_by", String(255)),
    Column("decision_note", Text),
    Index(None, "state", "kind"),
    Index(None, "sf_account_id"),
)
