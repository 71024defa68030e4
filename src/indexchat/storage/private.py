"""Folders and files only the user running indexchat may open: the database holds the key that
signs download links (and every tenant's text), the blob store every tenant's files."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# What SQLite writes beside a database (it gives them the database's own mode when it creates
# them; older ones may be wider).
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path, *, narrow: bool = True) -> Path:
    """Create ``path`` (and missing parents) as 0700; with ``narrow``, also narrow it to 0700
    if it already exists wider."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)
    if narrow:
        _narrow(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty as 0600 unless it exists; narrow it to 0600 if it is wider."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    _narrow(path, FILE_MODE)
    return path


def private_database(path: Path) -> None:
    """A SQLite database file and the files SQLite keeps beside it, 0600 (created before SQLite
    opens it, which would make it world-readable); a missing folder is made 0700."""
    private_dir(path.parent, narrow=False)
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _narrow(companion, FILE_MODE)


def _narrow(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 & ~mode:
            path.chmod(mode)
    except PermissionError:  # not ours (a shared parent folder, say): leave it as it is
        pass
