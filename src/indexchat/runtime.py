"""Runtime: the process-wide resources built once from Settings (database, signing key)."""

from __future__ import annotations

from dataclasses import dataclass

from indexchat.config import Settings
from indexchat.services import tenancy
from indexchat.storage.blobs import BlobStore, LocalBlobStore
from indexchat.storage.db import Database
from indexchat.storage.migrate import upgrade


@dataclass
class Runtime:
    settings: Settings
    db: Database
    page_token_secret: bytes
    blobs: BlobStore

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Connect, migrate to the newest schema and make sure the defaults exist."""
        db = open_database(settings)
        with db.read() as session:
            secret = tenancy.page_token_secret(session)
        blobs = LocalBlobStore(settings.data_dir / "blobs")
        return cls(settings=settings, db=db, page_token_secret=secret, blobs=blobs)

    def close(self) -> None:
        self.db.dispose()


def open_database(settings: Settings) -> Database:
    db = Database(settings.resolved_database_url())
    upgrade(db.engine)
    with db.write() as session:
        tenancy.ensure_defaults(session)
    return db
