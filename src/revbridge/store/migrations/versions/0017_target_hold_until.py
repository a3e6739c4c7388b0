"""targets.hold_until: a system's "retry after" pause, seen by every worker process

Revision ID: 0017
Revises: 0016

A system that answers 429 with a Retry-After asks its client, not one request, to wait. The
process that hears it publishes the time here, and every worker process makes no call to that
target before it; ``revbridge dr status`` shows it (docs/decisions/0020).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import revbridge.store.schema

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "hold_until", revbridge.store.schema.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.drop_column("hold_until")
