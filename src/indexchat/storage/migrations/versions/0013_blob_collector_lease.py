"""blob collection: the lease one worker of a fleet holds while it collects unnamed blobs

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEASES = sa.table(
    "leases",
    sa.column("name", sa.String(64)),
    sa.column("holder", sa.String(64)),
    sa.column("expires_at", sa.DateTime()),
)


def upgrade() -> None:
    # Like the scheduler's: the row exists, so taking the lease is one conditional UPDATE.
    op.bulk_insert(
        _LEASES, [{"name": "blob-collector", "holder": None, "expires_at": datetime(1970, 1, 1)}]
    )


def downgrade() -> None:
    op.execute(_LEASES.delete().where(_LEASES.c.name == "blob-collector"))
