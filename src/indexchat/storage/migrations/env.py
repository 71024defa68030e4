"""Alembic environment: runs on the connection handed over by ``indexchat.storage.migrate``."""

from alembic import context

from indexchat.storage.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always given by migrate.py
    raise RuntimeError("run migrations through indexchat.storage.migrate")

# Tables the search store creates itself (their shape depends on the embedding dimension).
SEARCH_STORE_PREFIXES = ("chunk_text", "chunk_vectors_", "chunk_search_")


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not (table or "").startswith(SEARCH_STORE_PREFIXES)


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
