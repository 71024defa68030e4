"""Queries for indexes and the files they parsed.

A query that looks an index or a parsed file up for a caller takes ``project_id=``. The rest take
``index_id=`` of an index already found that way, or found by ``get_for_job``: a sync job's queue
entry names its index, which is all the tenancy the job has.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, or_, select, update
from sqlalchemy.orm import Session

from indexchat.domain import utcnow
from indexchat.storage.paging import Keyset
from indexchat.storage.tables import Directory, DirectoryFile, Index, ParsedFile

INDEX_ORDER = Keyset((Index.created_at, Index.id))
PARSED_FILE_ORDER = Keyset((ParsedFile.file_name, ParsedFile.id))


def get(tx: Session, *, project_id: str, index_id: str) -> Index | None:
    return tx.scalar(select(Index).where(Index.id == index_id, Index.project_id == project_id))


def get_for_job(tx: Session, index_id: str) -> Index | None:
    """The index a sync job names (see the module docstring); None once it is deleted."""
    return tx.get(Index, index_id)


def remove(tx: Session, *, project_id: str, index_id: str) -> None:
    tx.execute(delete(Index).where(Index.id == index_id, Index.project_id == project_id))


def page(
    tx: Session,
    *,
    project_id: str,
    after: Sequence[Any] | None,
    limit: int,
    source_directory_id: str | None = None,
) -> Sequence[Index]:
    query = select(Index).where(Index.project_id == project_id)
    if source_directory_id is not None:
        query = query.where(Index.source_directory_id == source_directory_id)
    return tx.scalars(INDEX_ORDER.apply(query, after, limit)).all()


def scheduled_for_job(tx: Session) -> Sequence[Row[Index, datetime]]:
    """Every project's indexes synced on a schedule, each with when its source directory last
    changed: the scheduler queues syncs for the whole instance."""
    return tx.execute(
        select(Index, Directory.updated_at)
        .join(Directory, Directory.id == Index.source_directory_id)
        .where(Index.sync_frequency.in_(("daily", "on_source_change")))
    ).all()


def touch(tx: Session, *, index_id: str) -> None:
    """Move the index's ``updated_at``: its search entries changed, in-memory copies reload."""
    tx.execute(update(Index).where(Index.id == index_id).values(updated_at=utcnow()))


def parsed_files(tx: Session, *, index_id: str) -> Sequence[ParsedFile]:
    return tx.scalars(select(ParsedFile).where(ParsedFile.index_id == index_id)).all()


def parsed_file_ids(tx: Session, *, index_id: str) -> Sequence[str]:
    return tx.scalars(select(ParsedFile.id).where(ParsedFile.index_id == index_id)).all()


def parsed_file_of_source(tx: Session, *, index_id: str, source_file_id: str) -> ParsedFile | None:
    return tx.scalar(
        select(ParsedFile).where(
            ParsedFile.index_id == index_id, ParsedFile.source_file_id == source_file_id
        )
    )


def text_hashes(tx: Session, *, index_id: str) -> Sequence[Row[str, str | None]]:
    """(parsed file id, text blob) of the index's parsed files that have a text."""
    return tx.execute(
        select(ParsedFile.id, ParsedFile.text_hash).where(
            ParsedFile.index_id == index_id, ParsedFile.text_hash.is_not(None)
        )
    ).all()


def remove_parsed_file(tx: Session, parsed_file_id: str) -> None:
    tx.execute(delete(ParsedFile).where(ParsedFile.id == parsed_file_id))


def parsed_file(
    tx: Session, *, project_id: str, index_ids: Sequence[str], parsed_file_id: str
) -> ParsedFile | None:
    """A parsed file of one of these indexes of the project."""
    return tx.scalar(
        select(ParsedFile)
        .join(Index, Index.id == ParsedFile.index_id)
        .where(
            ParsedFile.id == parsed_file_id,
            ParsedFile.index_id.in_(list(index_ids)),
            Index.project_id == project_id,
        )
    )


def find_parsed_files(
    tx: Session,
    *,
    project_id: str,
    index_id: str,
    file_name: str | None,
    file_name_contains: str | None,
    after: Sequence[Any] | None,
    limit: int,
) -> Sequence[ParsedFile]:
    query = (
        select(ParsedFile)
        .join(Index, Index.id == ParsedFile.index_id)
        .where(ParsedFile.index_id == index_id, Index.project_id == project_id)
    )
    if file_name is not None:
        query = query.where(ParsedFile.file_name == file_name)
    if file_name_contains is not None:
        query = query.where(
            func.lower(ParsedFile.file_name).contains(file_name_contains.lower(), autoescape=True)
        )
    return tx.scalars(PARSED_FILE_ORDER.apply(query, after, limit)).all()


def parsed_file_ids_from(tx: Session, *, project_id: str, source_id: str) -> Sequence[str]:
    """The parsed files made from the directory file, or the uploaded file, of id
    ``source_id`` in the project, newest first."""
    placed = select(DirectoryFile.id).where(
        DirectoryFile.project_id == project_id,
        or_(DirectoryFile.id == source_id, DirectoryFile.file_id == source_id),
    )
    return tx.scalars(
        select(ParsedFile.id)
        .where(ParsedFile.source_file_id.in_(placed))
        .order_by(ParsedFile.updated_at.desc())
    ).all()


def sync_states(
    tx: Session, *, project_id: str, index_ids: Sequence[str]
) -> dict[str, Row[str, datetime | None, str]]:
    """(id, last synced at, export config id) of the project's indexes among ``index_ids``, by
    id (unknown ids are left out): all a chat turn reads of its indexes."""
    if not index_ids:
        return {}
    rows = tx.execute(
        select(Index.id, Index.last_synced_at, Index.export_config_id).where(
            Index.project_id == project_id, Index.id.in_(index_ids)
        )
    )
    return {row.id: row for row in rows}
