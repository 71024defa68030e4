"""SQLite: one full-text table per index instead of one shared by all

Revision ID: 0006
Revises: 0005

BM25 statistics then belong to each index, and a search no longer joins ``chunks`` to keep
other indexes' rows out. Contentless FTS5 tables cannot be read back, so each index's table is
filled from its chunks' text, which is what was indexed. PostgreSQL keeps per-index statistics
already; nothing changes there.
"""

import hashlib
from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As indexchat.search.sqlite names and creates them at this revision.
_TOKENIZER = "porter unicode61 remove_diacritics 2"


def _table(index_id: str) -> str:
    return "chunk_text_" + hashlib.sha256(index_id.encode()).hexdigest()[:24]


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    shared = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chunk_text'"
    ).first()
    if shared is None:
        return  # a new database: the store creates tables as indexes sync
    for (index_id,) in connection.exec_driver_sql("SELECT DISTINCT index_id FROM chunks").all():
        table = _table(index_id)
        connection.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
            f"text, content='', contentless_delete=1, tokenize='{_TOKENIZER}')"
        )
        connection.exec_driver_sql(
            f"INSERT INTO {table}(rowid, text) SELECT id, text FROM chunks WHERE index_id = ?",
            (index_id,),
        )
    connection.exec_driver_sql("DROP TABLE chunk_text")


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    connection.exec_driver_sql(
        "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_text USING fts5("
        f"text, content='', contentless_delete=1, tokenize='{_TOKENIZER}')"
    )
    connection.exec_driver_sql("INSERT INTO chunk_text(rowid, text) SELECT id, text FROM chunks")
    for (index_id,) in connection.exec_driver_sql("SELECT DISTINCT index_id FROM chunks").all():
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_table(index_id)}")
