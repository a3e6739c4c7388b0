"""deliveries: vacuumed and analyzed as a queue, not as a table that mostly grows

Revision ID: 0015
Revises: 0014

Every delivery updates its ``deliveries`` row twice (claimed, then delivered), so the table
churns like a queue. PostgreSQL's defaults wait for a fifth of the table to be dead rows before
vacuuming and a tenth to change before analyzing. During the drain of a large backlog, such
as the one after an ERP outage, the claim's plan and its indexes would then run on statistics
and dead entries far behind the table (docs/decisions/0018). Here it waits for 2 % instead.
SQLite has no autovacuum: nothing to do there.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_SETTINGS = ("autovacuum_vacuum_scale_factor", "autovacuum_analyze_scale_factor")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE deliveries SET ({', '.join(f'{s} = 0.02' for s in _SETTINGS)})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE deliveries RESET ({', '.join(_SETTINGS)})")
