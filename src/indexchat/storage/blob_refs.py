"""Which rows name a blob. The blob store is shared by every project and deduplicates by
content, so one blob may back an upload of one tenant and a page screenshot of another: a blob
may go only when no column listed here names it, whoever the row belongs to."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import CompoundSelect, exists, or_, select, union
from sqlalchemy.orm import InstrumentedAttribute, Session

from indexchat.storage.tables import Attachment, ParsedFile, StoredFile

# Every column holding a blob address. A new one must be added here (backups copy what these
# name, and deletion keeps what they name).
BLOB_COLUMNS: tuple[InstrumentedAttribute[str] | InstrumentedAttribute[str | None], ...] = (
    StoredFile.content_hash,  # uploads, and parsed text published as files
    ParsedFile.content_hash,  # the source bytes an index parsed
    ParsedFile.text_hash,  # parsed text
    Attachment.content_hash,  # page screenshots and other artefacts
)


def all_referenced() -> CompoundSelect:
    """One column of every blob address some row names."""
    return union(*(select(column).where(column.is_not(None)) for column in BLOB_COLUMNS))


def is_referenced(tx: Session, digest: str) -> bool:
    """Whether any row, in any project, names ``digest``."""
    query = select(or_(*(exists().where(column == digest) for column in BLOB_COLUMNS)))
    return bool(tx.scalar(query))


def referenced_among(tx: Session, digests: Collection[str]) -> set[str]:
    """Those of ``digests`` that some row, in any project, names (one query; each column's
    index answers its part)."""
    if not digests:
        return set()
    wanted = list(digests)
    query = union(*(select(column).where(column.in_(wanted)) for column in BLOB_COLUMNS))
    return {digest for (digest,) in tx.execute(query) if digest is not None}
