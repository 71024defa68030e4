"""indexes on every column naming a blob: deleting a file asks whether anything else names it

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = [
    ("ix_index_files_content_hash", "index_files", "content_hash"),
    ("ix_index_files_text_hash", "index_files", "text_hash"),
    ("ix_attachments_content_hash", "attachments", "content_hash"),
]


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column], unique=False)


def downgrade() -> None:
    for name, table, _column in INDEXES:
        op.drop_index(name, table_name=table)
