"""running chat turns

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chat_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("turn_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("turn_heartbeat_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "turn_cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("chat_sessions", schema=None) as batch_op:
        batch_op.drop_column("turn_cancel_requested")
        batch_op.drop_column("turn_heartbeat_at")
        batch_op.drop_column("turn_id")
