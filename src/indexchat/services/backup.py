"""Backup and restore of an embedded deployment: the SQLite database and the blobs it names.

A backup is a folder: ``indexchat.db`` (a copy made with SQLite's online backup API while a read
transaction holds one snapshot, so a server may keep writing), ``blobs/`` with every blob a row
of that snapshot references (checked against its address as it is copied), and
``backup.json`` describing both. Blobs are written before the rows that name them, so each one
the snapshot references exists when the copy starts; only a file deleted meanwhile can take a
blob away, and then the whole backup is taken again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

from sqlalchemy.engine import make_url

from indexchat.domain import utcnow
from indexchat.errors import Conflict, IndexchatError, InvalidInput
from indexchat.storage.private import private_dir, private_file
from indexchat.storage.snapshots import copy_database, referenced_blobs

DATABASE_NAME = "indexchat.db"
BLOBS_DIR = "blobs"
MANIFEST_NAME = "backup.json"
FORMAT = 1
COPY_CHUNK = 1 << 20
ATTEMPTS = 3

# Called with (stage, done, total): stage "database" counts pages, stage "blobs" counts bytes.
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


class BlobMissing(IndexchatError):
    """A blob the database references is not in the blob store (or does not match its address)."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    created_at: datetime
    database_bytes: int
    blobs: int
    blob_bytes: int


def sqlite_path(database_url: str) -> Path:
    """The database file of a SQLite URL; other databases have their own tools."""
    parsed = make_url(database_url)
    if parsed.get_backend_name() != "sqlite":
        raise InvalidInput(
            "backup and restore work on the embedded SQLite database; for PostgreSQL use "
            "pg_dump / pg_restore and copy the blobs folder of the data dir (see the README)"
        )
    if not parsed.database or parsed.database == ":memory:":
        raise InvalidInput("an in-memory database has nothing to back up")
    return Path(parsed.database)


def backup(
    database_url: str, blobs_root: Path, target: Path, progress: Progress = _no_progress
) -> BackupSummary:
    """Write a backup of the database and its blobs into ``target`` (new or empty)."""
    source = sqlite_path(database_url)
    if not source.is_file():
        raise InvalidInput(f"no database at {source}")
    _require_empty(target)
    for attempt in range(1, ATTEMPTS + 1):
        private_dir(target)  # a backup holds the database's secrets and every tenant's files
        try:
            return _backup_once(source, blobs_root, target, progress)
        except BlobMissing:
            _clear(target)
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _backup_once(source: Path, blobs_root: Path, target: Path, progress: Progress) -> BackupSummary:
    created_at = utcnow()
    copy = target / DATABASE_NAME
    copy_database(source, copy, lambda done, total: progress("database", done, total))
    digests = referenced_blobs(copy)
    blob_bytes = copy_blobs(
        digests, blobs_root, target / BLOBS_DIR, lambda d, t: progress("blobs", d, t)
    )
    summary = BackupSummary(target, created_at, copy.stat().st_size, len(digests), blob_bytes)
    _write_manifest(target, summary)
    return summary


def restore(
    backup_dir: Path,
    database_url: str,
    blobs_root: Path,
    *,
    force: bool = False,
    progress: Progress = _no_progress,
) -> BackupSummary:
    """Put a backup in place as the database and blobs of a data dir.

    The data dir must hold neither a database nor blobs, unless ``force`` (then both are
    replaced); no server may be running on it.
    """
    database = sqlite_path(database_url)
    manifest = read_manifest(backup_dir)
    present = _existing_data(database, blobs_root)
    if present and not force:
        names = ", ".join(str(p) for p in present)
        raise Conflict(f"the data dir already holds data ({names}); pass --force to replace it")
    private_dir(database.parent, narrow=False)
    staged = database.with_name(f".{database.name}.restoring")
    staged.unlink(missing_ok=True)
    copy_database(backup_dir / DATABASE_NAME, staged, lambda d, t: progress("database", d, t))
    digests = referenced_blobs(staged)
    _remove(present)
    blob_bytes = copy_blobs(
        digests, backup_dir / BLOBS_DIR, blobs_root, lambda d, t: progress("blobs", d, t)
    )
    os.replace(staged, database)
    return BackupSummary(
        backup_dir,
        datetime.fromisoformat(cast(str, manifest["created_at"])),  # ISO text, from _write_manifest
        database.stat().st_size,
        len(digests),
        blob_bytes,
    )


def blob_path(root: Path, digest: str) -> Path:
    return root / digest[:2] / digest[2:4] / digest


def copy_blobs(
    digests: Iterable[str], source: Path, target: Path, progress: Callable[[int, int], None]
) -> int:
    """Copy blobs, checking each against its address; returns the bytes copied."""
    sizes: dict[str, int] = {}
    for digest in sorted(digests):
        try:
            sizes[digest] = blob_path(source, digest).stat().st_size
        except FileNotFoundError:
            raise BlobMissing(f"blob {digest} is missing from {source}") from None
    total = sum(sizes.values())
    done = 0
    progress(done, total)
    for digest in sizes:
        done += _copy_blob(digest, source, target)
        progress(done, total)
    return done


def _copy_blob(digest: str, source: Path, target: Path) -> int:
    destination = blob_path(target, digest)
    private_dir(destination.parent)
    partial = private_file(destination.with_name(f".{digest}.partial"))
    hasher = hashlib.sha256()
    size = 0
    try:
        with blob_path(source, digest).open("rb") as reader, partial.open("wb") as writer:
            while chunk := reader.read(COPY_CHUNK):
                hasher.update(chunk)
                writer.write(chunk)
                size += len(chunk)
    except FileNotFoundError:
        partial.unlink(missing_ok=True)
        raise BlobMissing(f"blob {digest} is missing from {source}") from None
    if hasher.hexdigest() != digest:
        partial.unlink(missing_ok=True)
        raise BlobMissing(f"blob {digest} in {source} does not match its address")
    os.replace(partial, destination)
    return size


def read_manifest(backup_dir: Path) -> dict[str, object]:
    try:
        manifest = json.loads((backup_dir / MANIFEST_NAME).read_text())
    except FileNotFoundError:
        raise InvalidInput(
            f"{backup_dir} is not an indexchat backup (no {MANIFEST_NAME})"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {backup_dir / MANIFEST_NAME}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{backup_dir} holds a backup format this version cannot read")
    if not (backup_dir / DATABASE_NAME).is_file():
        raise InvalidInput(f"{backup_dir} has no {DATABASE_NAME}")
    return manifest


def _write_manifest(target: Path, summary: BackupSummary) -> None:
    manifest = {
        "format": FORMAT,
        "created_at": summary.created_at.isoformat(),
        "database": DATABASE_NAME,
        "database_bytes": summary.database_bytes,
        "blobs": summary.blobs,
        "blob_bytes": summary.blob_bytes,
    }
    private_file(target / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def _require_empty(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise Conflict(f"{folder} is not empty; choose a new folder")


def _existing_data(database: Path, blobs_root: Path) -> list[Path]:
    """The database files and blobs folder already in a data dir (models are only a cache)."""
    suffixes = ("", "-wal", "-shm")
    present = [p for s in suffixes if (p := database.with_name(database.name + s)).exists()]
    if blobs_root.is_dir() and any(blobs_root.iterdir()):
        present.append(blobs_root)
    return present


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _clear(folder: Path) -> None:
    _remove(list(folder.iterdir()))
