"""Runtime: the process-wide resources built once from Settings (database, signing key)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from indexchat.config import Settings
from indexchat.search.embeddings import Embedder, make_embedder
from indexchat.search.postgres import PostgresSearchStore
from indexchat.search.sqlite import SqliteSearchStore
from indexchat.search.store import SearchStore
from indexchat.services import tenancy
from indexchat.services.sync import SyncDeps
from indexchat.storage.blobs import BlobStore, LocalBlobStore
from indexchat.storage.db import Database
from indexchat.storage.migrate import upgrade


@dataclass
class Runtime:
    settings: Settings
    db: Database
    page_token_secret: bytes
    blobs: BlobStore
    _embedder: Embedder | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def embedder(self) -> Embedder:
        """Built on first use: loading a model takes seconds, and most commands need none."""
        with self._lock:
            if self._embedder is None:
                self._embedder = make_embedder(
                    self.settings.embeddings,
                    cache_dir=self.settings.data_dir / "models",
                    model=self.settings.embedding_model,
                )
            return self._embedder

    @property
    def search(self) -> SearchStore:
        dimension = self.embedder.dimension
        if self.db.is_sqlite:
            return SqliteSearchStore(dimension)
        return PostgresSearchStore(dimension)

    def sync_deps(self) -> SyncDeps:
        return SyncDeps(db=self.db, blobs=self.blobs, embedder=self.embedder, store=self.search)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Connect, migrate to the newest schema and make sure the defaults exist."""
        db = open_database(settings)
        with db.read() as session:
            secret = tenancy.page_token_secret(session)
        blobs = LocalBlobStore(settings.data_dir / "blobs")
        runtime = cls(settings=settings, db=db, page_token_secret=secret, blobs=blobs)
        with db.write() as session:
            runtime.search.ensure_schema(session.connection())
        return runtime

    def close(self) -> None:
        self.db.dispose()


def open_database(settings: Settings) -> Database:
    db = Database(settings.resolved_database_url())
    upgrade(db.engine)
    with db.write() as session:
        tenancy.ensure_defaults(session)
    return db
