"""Alembic environment: runs on the connection handed over by ``indexchat.storage.migrate``."""

from alembic import context

from indexchat.storage.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always given by migrate.py
    raise RuntimeError("run migrations through indexchat.storage.migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
