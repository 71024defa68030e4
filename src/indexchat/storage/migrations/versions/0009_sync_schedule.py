"""scheduled syncs: the scheduler's lease and its marks on indexes

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    leases = op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # The row exists from the start: taking the lease is then one conditional UPDATE.
    op.bulk_insert(
        leases, [{"name": "sync-scheduler", "holder": None, "expires_at": datetime(1970, 1, 1)}]
    )
    with op.batch_alter_table("indexes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schedule_seen_change_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_scheduled_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("indexes", schema=None) as batch_op:
        batch_op.drop_column("last_scheduled_at")
        batch_op.drop_column("schedule_seen_change_at")
    op.drop_table("leases")
