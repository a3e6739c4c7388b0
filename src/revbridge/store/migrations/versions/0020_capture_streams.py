"""capture_streams: when each capture stream last succeeded, and since when it fails

Revision ID: 0020
Revises: 0019

A capture that fails (a revoked token, a query the org refuses) or stops being run sends no
events, so no backlog ages and no delivery fails: the alert `capture_failing` and `revbridge
status` read this table to say it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import revbridge.store.schema

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capture_streams",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("last_ok_at", revbridge.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "failing_since", revbridge.store.schema.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", revbridge.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_capture_streams")),
    )


def downgrade() -> None:
    op.drop_table("capture_streams")
