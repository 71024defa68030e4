"""session search: the texts of chat sessions (titles, prompts, answers) in full text

Revision ID: 0012
Revises: 0011

SQLite: an FTS5 table over ``session_texts`` (external content, so snippets can be cut from the
stored text) kept by triggers, which also fire for rows a deleted session cascades away.
PostgreSQL: a table of their ``tsvector`` under a GIN index, filled by a statement trigger and
emptied by the cascade; stored, so ranking reads the vector instead of parsing the text again.
Existing sessions are filled in.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As indexchat.search.session_text names and queries them at this revision.
_TOKENIZER = "porter unicode61 remove_diacritics 2"
_SQLITE = [
    "CREATE VIRTUAL TABLE session_text_search USING fts5(text, "
    f"content='session_texts', content_rowid='id', tokenize='{_TOKENIZER}')",
    "CREATE TRIGGER session_text_search_added AFTER INSERT ON session_texts BEGIN "
    "INSERT INTO session_text_search(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER session_text_search_removed AFTER DELETE ON session_texts BEGIN "
    "INSERT INTO session_text_search(session_text_search, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
]
_POSTGRES = [
    "CREATE TABLE session_text_search (id BIGINT PRIMARY KEY REFERENCES session_texts(id) "
    "ON DELETE CASCADE, project_id VARCHAR(64) NOT NULL, terms TSVECTOR NOT NULL)",
    "CREATE INDEX session_text_search_terms ON session_text_search USING GIN (terms)",
    "CREATE FUNCTION session_text_search_added() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO session_text_search (id, project_id, terms) "
    "SELECT id, project_id, to_tsvector('english', text) FROM added; RETURN NULL; END $$",
    "CREATE TRIGGER session_text_search_added AFTER INSERT ON session_texts "
    "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
    "EXECUTE FUNCTION session_text_search_added()",
]


def upgrade() -> None:
    op.create_table(
        "session_texts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["chat_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("session_texts", schema=None) as batch_op:
        batch_op.create_index("ix_session_texts_session", ["session_id"], unique=False)
    connection = op.get_bind()
    sqlite = connection.dialect.name == "sqlite"
    for statement in _SQLITE if sqlite else _POSTGRES:
        connection.exec_driver_sql(statement)
    content = "json_extract(e.payload, '$.content')" if sqlite else "e.payload->>'content'"
    _backfill(connection, content)


def _backfill(connection: sa.Connection, content: str) -> None:
    """Titles (at their session's first prompt), prompts and answers of existing sessions."""
    connection.exec_driver_sql(
        "INSERT INTO session_texts (project_id, session_id, seq, kind, text) "
        "SELECT s.project_id, s.id, coalesce((SELECT min(e.seq) FROM chat_events e "
        "WHERE e.session_id = s.id AND e.type = 'user_input'), 1), 'title', s.generated_title "
        "FROM chat_sessions s WHERE s.generated_title IS NOT NULL"
    )
    connection.exec_driver_sql(
        "INSERT INTO session_texts (project_id, session_id, seq, kind, text) "
        "SELECT s.project_id, e.session_id, e.seq, "
        "CASE e.type WHEN 'user_input' THEN 'prompt' ELSE 'answer' END, "
        f"{content} FROM chat_events e JOIN chat_sessions s ON s.id = e.session_id "
        f"WHERE e.type IN ('user_input', 'text') AND {content} IS NOT NULL ORDER BY e.id"
    )


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS session_text_search_added")
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS session_text_search_removed")
    else:
        connection.exec_driver_sql("DROP TRIGGER session_text_search_added ON session_texts")
        connection.exec_driver_sql("DROP FUNCTION session_text_search_added()")
    connection.exec_driver_sql("DROP TABLE IF EXISTS session_text_search")
    with op.batch_alter_table("session_texts", schema=None) as batch_op:
        batch_op.drop_index("ix_session_texts_session")
    op.drop_table("session_texts")
