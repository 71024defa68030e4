"""Engine and transactions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode through ``sqlean`` (a SQLite build that can load sqlite-vec and has
FTS5). Write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction that reads and
then writes fails at once with SQLITE_BUSY when another writer committed in between, whereas an
immediate one waits on ``busy_timeout`` like PostgreSQL waits on its locks. Within one process,
writers queue on a lock first: SQLite's own busy handler polls with sleeps of up to 100 ms, which
under concurrent writes turns into long tail latencies; a lock hands over at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlean
import sqlite_vec
from sqlalchemy import ColumnElement, DateTime, Engine, create_engine, event, func, literal, text
from sqlalchemy.engine import Connection, CursorResult, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql import Executable

from indexchat.domain import utcnow
from indexchat.storage.private import private_database

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_PING_AFTER_IDLE_SECONDS = 10.0


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return _postgres_engine(url)


def _postgres_engine(url: str) -> Engine:
    """A pool that pings a connection only when it sat idle a while: a ping on every checkout
    (``pool_pre_ping``) is one more round trip on every request."""
    engine = create_engine(url, pool_size=10, max_overflow=20)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        _proxy: PoolProxiedConnection,
    ) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PG_PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()
        except Exception as exc:  # a dropped connection: the pool replaces it and retries
            raise DisconnectionError from exc

    return engine


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        private_database(Path(database))
    engine = create_engine(url, module=sqlean, pool_size=10, max_overflow=20)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # dbapi_connection is sqlean's, which has sqlite3's API.
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
    def _on_begin(connection: Connection) -> None:
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
        # PostgreSQL reads run in autocommit: at READ COMMITTED each statement takes its own
        # snapshot anyway, and BEGIN and COMMIT are two round trips a read does not need.
        reader = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._reads = sessionmaker(reader, expire_on_commit=False)
        self._writes = sessionmaker(writer, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.is_sqlite else _NoLock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reads.begin() as tx:
            yield tx

    @contextmanager
    def write(self, *, wait: bool = True) -> Iterator[Session]:
        """Commit on success, roll back on any exception.

        With ``wait=False`` raise ``WouldBlock`` (before doing anything) instead of queueing
        behind another writer of this process.
        """
        if not self._write_lock.acquire(blocking=wait):
            raise WouldBlock
        try:
            with self._writes.begin() as tx:
                yield tx
        finally:
            self._write_lock.release()

    def ping(self) -> None:
        """One round trip to the database: raises when it does not answer."""
        with self.read() as tx:
            tx.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


T = TypeVar("T")


def added(tx: Session, row: T) -> T:
    """``row``, added and flushed: its database defaults and generated id are known."""
    tx.add(row)
    tx.flush()
    return row


def rows_touched(tx: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE and count the rows it touched (its result is a CursorResult)."""
    return cast(CursorResult[Any], tx.execute(statement)).rowcount


def database_clock(tx: Session) -> ColumnElement[datetime]:
    """Now, in naive UTC, by the database server's clock on PostgreSQL, so that servers on
    several machines judge each other's heartbeats by one clock; SQLite is on this machine."""
    if tx.get_bind().dialect.name == "postgresql":
        return func.timezone("UTC", func.clock_timestamp(), type_=DateTime())
    return literal(utcnow(), DateTime())
