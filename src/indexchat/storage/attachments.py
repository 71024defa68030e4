"""Queries for attachments, the stored artefacts of parsed files (page screenshots). A lookup
for a caller takes ``project_id=``; a sync job's take the index or parsed file it works on."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Row, delete, select
from sqlalchemy.orm import Session

from indexchat.storage.tables import Attachment


def get(tx: Session, *, project_id: str, source_id: str, name: str) -> Attachment | None:
    return tx.scalar(
        select(Attachment).where(
            Attachment.source_id == source_id,
            Attachment.name == name,
            Attachment.project_id == project_id,
        )
    )


def of_source(tx: Session, *, project_id: str, source_id: str) -> Sequence[Attachment]:
    return tx.scalars(
        select(Attachment).where(
            Attachment.source_id == source_id, Attachment.project_id == project_id
        )
    ).all()


def get_for_download(tx: Session, attachment_id: int) -> Attachment | None:
    """Only for signed download links, whose signature already names the attachment."""
    return tx.get(Attachment, attachment_id)


def stored_names(
    tx: Session, *, source_ids: Collection[str], names: Collection[str]
) -> set[tuple[str, str]]:
    """Which of these (source id, name) pairs exist, as a superset query: the caller asks for
    pairs, and keeps those in the answer. The source ids are parsed files of a search's hits."""
    rows = tx.execute(
        select(Attachment.source_id, Attachment.name).where(
            Attachment.source_id.in_(source_ids), Attachment.name.in_(names)
        )
    )
    return {(row[0], row[1]) for row in rows}


def hashes_of_index(tx: Session, *, index_id: str) -> Sequence[Row[str, str]]:
    """(source id, blob) of every attachment an index stored."""
    return tx.execute(
        select(Attachment.source_id, Attachment.content_hash).where(Attachment.index_id == index_id)
    ).all()


def remove_of_source(tx: Session, source_id: str) -> None:
    tx.execute(delete(Attachment).where(Attachment.source_id == source_id))
