"""recon_in_transit: findings on documents the hub is still delivering, first seen by a run

Revision ID: 0018
Revises: 0017

A document still on its way (pending, in flight, parked, held) is reported in transit, not as
a case; a later run that still finds it undelivered opens the case. This table remembers
which run saw it first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import revbridge.store.schema

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recon_in_transit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("reconciliation", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("hub_state", sa.String(length=32), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column(
            "first_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "first_seen_at", revbridge.store.schema.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "last_seen_at", revbridge.store.schema.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["first_run_id"],
            ["recon_runs.id"],
            name=op.f("fk_recon_in_transit_first_run_id_recon_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_in_transit")),
        sa.UniqueConstraint(
            "reconciliation",
            "ref",
            "kind",
            name=op.f("uq_recon_in_transit_reconciliation_ref_kind"),
        ),
    )


def downgrade() -> None:
    op.drop_table("recon_in_transit")
