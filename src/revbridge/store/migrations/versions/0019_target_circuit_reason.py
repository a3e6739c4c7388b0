"""target_circuit_reason: why a target's circuit opened

Revision ID: 0019
Revises: 0018

The circuit's alert and `revbridge dr status` say why calls to a target failed: the last
error when the circuit opened, or that the system refused the integration's access
(credentials, token, user: decision 0038). Cleared when the circuit closes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("targets") as batch:
        batch.add_column(sa.Column("circuit_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("targets") as batch:
        batch.drop_column("circuit_reason")
