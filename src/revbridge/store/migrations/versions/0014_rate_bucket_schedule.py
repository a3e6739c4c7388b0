"""rate buckets as a schedule: the shared budget keeps its slot and its recent calls

Revision ID: 0014
Revises: 0013

The bucket's token count gives way to the schedule of ``engine.ratelimit.Schedule``: ``tat``
(the next call's slot) and ``recent`` (when the last calls went out), in epoch seconds of the
database clock. ``recent`` is a float8[] on PostgreSQL, where the shared bucket lives; the
table exists on SQLite too, where nothing uses it, so there it is JSON. Existing rows start
afresh (slot 0: the next caller takes the current second; no recent calls).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    recent_type = postgresql.ARRAY(sa.Float()) if postgres else sa.JSON()
    empty = "'{}'" if postgres else "'[]'"
    with op.batch_alter_table("rate_buckets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tat", sa.Float(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(
            sa.Column("recent", recent_type, nullable=False, server_default=sa.text(empty))
        )
        batch_op.drop_column("tokens")
    # The defaults only filled the rows there were; the bucket always writes both.
    with op.batch_alter_table("rate_buckets", schema=None) as batch_op:
        batch_op.alter_column("tat", server_default=None)
        batch_op.alter_column("recent", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("rate_buckets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tokens", sa.Float(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.drop_column("recent")
        batch_op.drop_column("tat")
    with op.batch_alter_table("rate_buckets", schema=None) as batch_op:
        batch_op.alter_column("tokens", server_default=None)
