"""Migrations keep data: a downgrade and upgrade round trip leaves every referencing row."""

from __future__ import annotations

import uuid
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from indexchat.domain import SEARCH_TABLE_PREFIXES, entries_table, full_text_table, vector_table
from indexchat.services import tenancy
from indexchat.storage.db import Database
from indexchat.storage.migrate import alembic_config, upgrade
from indexchat.storage.tables import ChatEvent, ChatSession


def test_a_sqlite_round_trip_through_every_revision_keeps_sessions_and_their_events(
    tmp_path: Path,
) -> None:
    # SQLite alters a table by rebuilding it; with foreign keys on, dropping the old copy used
    # to cascade into the tables that reference it (0007's downgrade emptied chat_events).
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(db.engine)
    with db.write() as tx:
        project = tenancy.create_project(tx, "migrations")
        chat = ChatSession(id=uuid.uuid4().hex, project_id=project.id, shared_access="read_only")
        tx.add(chat)
        tx.flush()
        tx.add_all(
            ChatEvent(session_id=chat.id, seq=i, type="text", payload={"content": str(i)})
            for i in range(5)
        )
    with db.engine.connect() as connection:
        revisions = ScriptDirectory.from_config(alembic_config(connection)).walk_revisions()
        oldest_with_sessions = "0004"  # chat sessions and events exist from here on
        for revision in [r.revision for r in revisions if r.revision > oldest_with_sessions]:
            command.downgrade(alembic_config(connection), f"{revision}-1")
            connection.commit()
            counts = connection.execute(
                select(func.count()).select_from(ChatEvent.__table__)
            ).scalar_one()
            connection.rollback()  # the next migration starts outside a transaction
            assert counts == 5, f"downgrade below {revision} lost events"
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
    with db.read() as tx:
        assert tx.scalar(select(func.count()).select_from(ChatEvent)) == 5
        assert tx.get(ChatSession, chat.id) is not None
    db.dispose()


def test_migration_0006_names_full_text_tables_as_the_search_store_does(tmp_path: Path) -> None:
    # The migration keeps a frozen copy of the naming; a table it made under another name
    # would never be searched (or dropped) again.
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with db.engine.connect() as connection:
        script = ScriptDirectory.from_config(alembic_config(connection))
        frozen = script.get_revision("0006").module._table
    for index_id in ("idx-1", f"idx-{uuid.uuid4()}", "idx with spaces; DROP", "ü" * 64):
        assert frozen(index_id) == full_text_table(index_id)
        assert full_text_table(index_id).startswith(SEARCH_TABLE_PREFIXES)
    assert vector_table(384).startswith(SEARCH_TABLE_PREFIXES)
    assert entries_table(384).startswith(SEARCH_TABLE_PREFIXES)
