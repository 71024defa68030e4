"""Queries for attachments, the stored artefacts of parsed files (page screenshots). A lookup
for a caller takes ``project_id=``; a sync job's take the index or parsed file it works on."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Row, delete, select
from sqlalchemy.orm import Session

from indexchat.storage.tables import Attachment


def get(session: Session, *, project_id: str, source_id: str, name: str) -> Attachment | None:
    return session.scalar(
        select(Attachment).where(
            Attachment.source_id == source_id,
            Attachment.name == name,
            Attachment.project_id == project_id,
        )
    )


def of_source(session: Session, *, project_id: str, source_id: str) -> Sequence[Attachment]:
    return session.scalars(
        select(Attachment).where(
            Attachment.source_id == source_id, Attachment.project_id == project_id
        )
    ).all()


def get_for_download(session: Session, attachment_id: int) -> Attachment | None:
    """Only for signed download links, whose signature already names the attachment."""
    return session.get(Attachment, attachment_id)


def stored_names(
    session: Session, *, source_ids: Collection[str], names: Collection[str]
) -> set[tuple[str, str]]:
    """Which of these (source id, name) pairs exist, as a superset query: the caller asks for
    pairs, and keeps those in the answer. The source ids are parsed files of a search's hits."""
    rows = session.execute(
        select(Attachment.source_id, Attachment.name).where(
            Attachment.source_id.in_(source_ids), Attachment.name.in_(names)
        )
    )
    return {(row[0], row[1]) for row in rows}


def hashes_of_index(session: Session, *, index_id: str) -> Sequence[Row[str, str]]:
    """(source id, blob) of every attachment an index stored."""
    return session.execute(
        select(Attachment.source_id, Attachment.content_hash).where(Attachment.index_id == index_id)
    ).all()


def remove_of_source(session: Session, source_id: str) -> None:
    session.execute(delete(Attachment).where(Attachment.source_id == source_id))
