"""Content-addressed file bytes. The embedded default keeps them under ``<data_dir>/blobs``;
anything with the same operations (an object store, say) can stand in.

The store is shared by every project and keeps one copy of equal bytes, so deleting a blob is
for the caller to decide: only once no row names it (``storage/blob_refs.py``).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from indexchat.errors import ContentMissing
from indexchat.storage.private import FILE_MODE, private_dir


class BlobStore(Protocol):
    # Bytes up to which ``put`` is quick enough to call on the event loop (0: never).
    inline_put_limit: int

    def put(self, data: bytes) -> str:
        """Store ``data``; return its SHA-256 hex digest (its address)."""

    def put_file(self, source: BinaryIO) -> tuple[str, int]:
        """Store what ``source`` holds from where it stands, read in pieces (memory stays
        small whatever its size); return its digest and size."""

    def get(self, digest: str) -> bytes:
        """The whole blob (raises ``ContentMissing`` if it is gone)."""

    def open(self, digest: str) -> tuple[BinaryIO, int]:
        """The blob as a file to read in pieces, and its size (raises ``ContentMissing``)."""

    def exists(self, digest: str) -> bool: ...

    def delete_if_stale(self, digest: str, *, grace_seconds: float) -> bool:
        """Delete a blob no row references any more, unless it was written in the last
        ``grace_seconds`` (an upload of the same bytes may be about to reference it)."""

    def older_than(self, seconds: float) -> Iterator[str]:
        """The digests of the blobs written (or stored again) more than ``seconds`` ago."""

    def remove_partial_writes(self, older_than_seconds: float) -> int:
        """Remove what writes that never finished (a process killed mid-write) left behind."""


class LocalBlobStore:
    # Hashing and writing 256 KiB to a local disk takes well under a millisecond.
    inline_put_limit = 256 * 1024

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a blob address: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if self._refresh(path):
            return digest
        # Write-then-rename: readers never see a half-written blob.
        tmp, fd = self._temporary(path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest

    def put_file(self, source: BinaryIO) -> tuple[str, int]:
        # Written under the root until its digest is known, then renamed into its place.
        tmp, fd = self._temporary(self.root)
        hasher, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                while piece := source.read(_PIECE):
                    hasher.update(piece)
                    out.write(piece)
                    size += len(piece)
            digest = hasher.hexdigest()
            path = self._path(digest)
            if self._refresh(path):
                tmp.unlink()
                return digest, size
            private_dir(path.parent)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest, size

    @staticmethod
    def _refresh(path: Path) -> bool:
        """Whether the blob is there, its grace period restarted: it is about to be named
        again. (Collection moves a blob aside before it deletes it, so a blob whose time was
        refreshed here is not deleted.)"""
        try:
            os.utime(path)
            return True
        except FileNotFoundError:
            return False

    @staticmethod
    def _temporary(folder: Path) -> tuple[Path, int]:
        tmp = folder / f".{uuid.uuid4().hex}{_PARTIAL}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileNotFoundError:  # the first blob under this prefix
            private_dir(folder)
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)

    def get(self, digest: str) -> bytes:
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            raise ContentMissing(f"stored bytes {digest} are missing") from None

    def open(self, digest: str) -> tuple[BinaryIO, int]:
        try:
            reader = self._path(digest).open("rb")
        except FileNotFoundError:
            raise ContentMissing(f"stored bytes {digest} are missing") from None
        return reader, os.fstat(reader.fileno()).st_size

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def delete_if_stale(self, digest: str, *, grace_seconds: float) -> bool:
        path = self._path(digest)
        try:
            if time.time() - path.stat().st_mtime < grace_seconds:
                return False
            # Moved aside first, then its time read again: a ``put`` of the same bytes that
            # refreshed it in between wins (it goes back); one after the move writes anew.
            aside = path.with_name(f".{digest}.{uuid.uuid4().hex}{_DOOMED}")
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if time.time() - aside.stat().st_mtime < grace_seconds:
            os.replace(aside, path)
            return False
        aside.unlink()
        return True

    def older_than(self, seconds: float) -> Iterator[str]:
        cutoff = time.time() - seconds
        for folder, _, names in os.walk(self.root):
            for name in names:
                if len(name) != 64 or name.startswith("."):
                    continue
                try:
                    if os.stat(os.path.join(folder, name)).st_mtime < cutoff:
                        yield name
                except FileNotFoundError:
                    continue

    def remove_partial_writes(self, older_than_seconds: float) -> int:
        cutoff, removed = time.time() - older_than_seconds, 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not name.startswith(".") or not name.endswith((_PARTIAL, _DOOMED)):
                    continue
                path = os.path.join(folder, name)
                try:
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


# Pieces a streamed write reads at a time.
_PIECE = 1024 * 1024
# Names of files that are not blobs: a write under way, a blob being deleted.
_PARTIAL = ".tmp"
_DOOMED = ".deleting"
