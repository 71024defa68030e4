"""SQLite database files handled whole, apart from any server: copied page by page from one
snapshot (the online backup API), and read for the blobs their rows name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlean
from sqlalchemy import create_engine

from indexchat.storage.blob_refs import all_referenced
from indexchat.storage.private import private_file

PAGES_PER_STEP = 1024  # 4 MiB of a 4 KiB-page database between two progress reports


def copy_database(source: Path, target: Path, progress: Callable[[int, int], None]) -> None:
    """Copy with the online backup API, all pages from one snapshot.

    The open read transaction pins the snapshot: in WAL mode writers of other connections go
    on appending to the log, and the copy neither sees their pages nor starts over.
    """
    private_file(target)  # before SQLite creates it world-readable
    reader = sqlean.connect(source, isolation_level=None)
    writer = sqlean.connect(target, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
        reader.backup(
            writer,
            pages=PAGES_PER_STEP,
            progress=lambda _status, remaining, total: progress(total - remaining, total),
            sleep=0,
        )
        reader.execute("COMMIT")
    finally:
        writer.close()
        reader.close()


def referenced_blobs(database: Path) -> set[str]:
    """Addresses of every blob a row of ``database`` names (uploads, parsed text, artefacts)."""
    engine = create_engine(f"sqlite:///{database}", module=sqlean)
    try:
        with engine.connect() as connection:
            return {digest for (digest,) in connection.execute(all_referenced())}
    finally:
        engine.dispose()
