"""Alembic environment: runs on the connection handed over by ``indexchat.storage.migrate``."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.schema import SchemaItem

from indexchat.domain import SEARCH_TABLE_PREFIXES
from indexchat.storage.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always given by migrate.py
    raise RuntimeError("run migrations through indexchat.storage.migrate")

# Tables the search store creates itself (their shape depends on the embedding dimension).
# Session search's full-text objects differ per dialect (migration 0012) and have no model.
SEARCH_STORE_PREFIXES = (*SEARCH_TABLE_PREFIXES, "session_text_search")


def include_object(
    obj: SchemaItem,
    name: str | None,
    type_: str,
    reflected: bool,
    compare_to: SchemaItem | None,
) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not (table or "").startswith(SEARCH_STORE_PREFIXES) and not (
        type_ == "index" and (name or "").startswith(SEARCH_STORE_PREFIXES)
    )


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the search store's tables out before they are reflected: SQLAlchemy knows no
    pgvector column type and warns about each one it meets."""
    return not (type_ == "table" and (name or "").startswith(SEARCH_STORE_PREFIXES))


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    include_name=include_name,
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)


@contextmanager
def sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite rebuilds a table to alter it (copy, drop, rename), and with foreign keys on, the
    drop cascades into every table that references it (a migration of ``indexes`` would empty
    ``chunks``). So: keys off while migrating, checked before the commit, on again after.
    The pragma is a no-op inside a transaction, hence the driver connection and our own commit."""
    # sqlean's connection, which has sqlite3's API; always there on a live connection.
    driver = cast(sqlite3.Connection, connection.connection.driver_connection)
    driver.execute("PRAGMA foreign_keys=OFF")
    if driver.execute("PRAGMA foreign_keys").fetchone()[0]:
        raise RuntimeError("migrations need a connection with no transaction open")
    try:
        yield
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            connection.rollback()
            raise RuntimeError(f"the migration left rows with dangling references: {broken[:5]}")
        connection.commit()
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


if connection.dialect.name == "sqlite":
    with sqlite_foreign_keys_off(connection), context.begin_transaction():
        context.run_migrations()
else:
    with context.begin_transaction():
        context.run_migrations()
