"""Engine and transactions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode through ``sqlean`` (a SQLite build that can load sqlite-vec and has
FTS5). Write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction that reads and
then writes fails at once with SQLITE_BUSY when another writer committed in between, whereas an
immediate one waits on ``busy_timeout`` like PostgreSQL waits on its locks. Within one process,
writers queue on a lock first: SQLite's own busy handler polls with sleeps of up to 100 ms, which
under concurrent writes turns into long tail latencies; a lock hands over at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import sqlean
import sqlite_vec
from sqlalchemy import ColumnElement, DateTime, Engine, create_engine, event, func, literal
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from indexchat.domain import utcnow

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, module=sqlean, pool_size=10, max_overflow=20)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        dbapi_connection.enable_load_extension(True)
        sqlite_vec.load(dbapi_connection)
        dbapi_connection.enable_load_extension(False)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class WouldBlock(Exception):
    """A write asked not to wait found another writer of this process active."""


class _NoLock:
    """PostgreSQL needs no process-level write lock: its row locks do the queueing."""

    def acquire(self, blocking: bool = True) -> bool:
        return True

    def release(self) -> None:
        pass


class Database:
    """One engine and two ways into it: a read transaction and a write transaction."""

    _write_lock: threading.Lock | _NoLock

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        writer = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(writer, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.is_sqlite else _NoLock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reads.begin() as session:
            yield session

    @contextmanager
    def write(self, *, wait: bool = True) -> Iterator[Session]:
        """Commit on success, roll back on any exception.

        With ``wait=False`` raise ``WouldBlock`` (before doing anything) instead of queueing
        behind another writer of this process.
        """
        if not self._write_lock.acquire(blocking=wait):
            raise WouldBlock
        try:
            with self._writes.begin() as session:
                yield session
        finally:
            self._write_lock.release()

    def dispose(self) -> None:
        self.engine.dispose()


def database_clock(session: Session) -> ColumnElement[datetime]:
    """Now, in naive UTC, by the database server's clock on PostgreSQL, so that servers on
    several machines judge each other's heartbeats by one clock; SQLite is on this machine."""
    if session.get_bind().dialect.name == "postgresql":
        return func.timezone("UTC", func.clock_timestamp(), type_=DateTime())
    return literal(utcnow(), DateTime())
