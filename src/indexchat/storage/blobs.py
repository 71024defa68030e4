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
from pathlib import Path
from typing import BinaryIO, Protocol

from indexchat.errors import ContentMissing
from indexchat.storage.private import FILE_MODE, private_dir


class BlobStore(Protocol):
    # Bytes up to which ``put`` is quick enough to call on the event loop (0: never).
    inline_put_limit: int

    def put(self, data: bytes) -> str:
        """Store ``data``; return its SHA-256 hex digest (its address)."""

    def get(self, digest: str) -> bytes:
        """The whole blob (raises ``ContentMissing`` if it is gone)."""

    def open(self, digest: str) -> tuple[BinaryIO, int]:
        """The blob as a file to read in pieces, and its size (raises ``ContentMissing``)."""

    def exists(self, digest: str) -> bool: ...

    def delete_if_stale(self, digest: str, *, grace_seconds: float) -> bool:
        """Delete a blob no row references any more, unless it was written in the last
        ``grace_seconds`` (an upload of the same bytes may be about to reference it)."""


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
        if path.exists():
            os.utime(path)  # refresh the grace period of a blob about to be referenced again
            return digest
        # Write-then-rename: readers never see a half-written blob.
        tmp = path.with_name(f".{digest}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileNotFoundError:  # the first blob under this prefix
            private_dir(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest

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
            path.unlink()
            return True
        except FileNotFoundError:
            return False
