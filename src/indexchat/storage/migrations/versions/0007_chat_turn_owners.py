"""the server process that runs each chat turn

Revision ID: 0007
Revises: 0006

A turn records the host, pid and start time of the process running it, so that a server can
tell at once that a turn's process died (and close the turn) instead of waiting for its
heartbeat to go stale. A partial index finds the running turns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING = sa.text("turn_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("chat_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("turn_owner_host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("turn_owner_pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("turn_owner_started", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_chat_sessions_running_turns",
        "chat_sessions",
        ["turn_id"],
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    )


def downgrade() -> None:
    op.drop_index("ix_chat_sessions_running_turns", table_name="chat_sessions")
    with op.batch_alter_table("chat_sessions", schema=None) as batch_op:
        batch_op.drop_column("turn_owner_started")
        batch_op.drop_column("turn_owner_pid")
        batch_op.drop_column("turn_owner_host")
