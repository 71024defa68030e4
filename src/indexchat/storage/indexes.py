"""Queries for indexes and the files they parsed.

A query that looks an index or a parsed file up for a caller takes ``project_id=``. The rest take
``index_id=`` of an index already found that way, or found by ``get_for_job``: a sync job's queue
entry names its index, which is all the tenancy the job has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, func, or_, select, update
from sqlalchemy.orm import Session

from indexchat.domain import utcnow
from indexchat.storage.paging import Keyset
from indexchat.storage.tables import DirectoryFile, IndexedFile, SearchIndex

INDEX_ORDER = Keyset((SearchIndex.created_at, SearchIndex.id))
PARSED_FILE_ORDER = Keyset((IndexedFile.file_name, IndexedFile.id))


def get(session: Session, *, project_id: str, index_id: str) -> SearchIndex | None:
    return session.scalar(
        select(SearchIndex).where(SearchIndex.id == index_id, SearchIndex.project_id == project_id)
    )


def get_for_job(session: Session, index_id: str) -> SearchIndex | None:
    """The index a sync job names (see the module docstring); None once it is deleted."""
    return session.get(SearchIndex, index_id)


def page(
    session: Session,
    *,
    project_id: str,
    after: Sequence[Any] | None,
    limit: int,
    source_directory_id: str | None = None,
) -> Sequence[SearchIndex]:
    query = select(SearchIndex).where(SearchIndex.project_id == project_id)
    if source_directory_id is not None:
        query = query.where(SearchIndex.source_directory_id == source_directory_id)
    return session.scalars(INDEX_ORDER.apply(query, after, limit)).all()


def touch(session: Session, *, index_id: str) -> None:
    """Move the index's ``updated_at``: its search entries changed, in-memory copies reload."""
    session.execute(
        update(SearchIndex).where(SearchIndex.id == index_id).values(updated_at=utcnow())
    )


def parsed_files(session: Session, *, index_id: str) -> Sequence[IndexedFile]:
    return session.scalars(select(IndexedFile).where(IndexedFile.index_id == index_id)).all()


def parsed_file_ids(session: Session, *, index_id: str) -> Sequence[str]:
    return session.scalars(select(IndexedFile.id).where(IndexedFile.index_id == index_id)).all()


def parsed_file_of_source(
    session: Session, *, index_id: str, source_file_id: str
) -> IndexedFile | None:
    return session.scalar(
        select(IndexedFile).where(
            IndexedFile.index_id == index_id, IndexedFile.source_file_id == source_file_id
        )
    )


def text_hashes(session: Session, *, index_id: str) -> Sequence[Row[str, str | None]]:
    """(parsed file id, text blob) of the index's parsed files that have a text."""
    return session.execute(
        select(IndexedFile.id, IndexedFile.text_hash).where(
            IndexedFile.index_id == index_id, IndexedFile.text_hash.is_not(None)
        )
    ).all()


def remove_parsed_file(session: Session, parsed_file_id: str) -> None:
    session.execute(delete(IndexedFile).where(IndexedFile.id == parsed_file_id))


def parsed_file(
    session: Session, *, project_id: str, index_ids: Sequence[str], parsed_file_id: str
) -> IndexedFile | None:
    """A parsed file of one of these indexes of the project."""
    return session.scalar(
        select(IndexedFile)
        .join(SearchIndex, SearchIndex.id == IndexedFile.index_id)
        .where(
            IndexedFile.id == parsed_file_id,
            IndexedFile.index_id.in_(list(index_ids)),
            SearchIndex.project_id == project_id,
        )
    )


def find_parsed_files(
    session: Session,
    *,
    project_id: str,
    index_id: str,
    file_name: str | None,
    file_name_contains: str | None,
    after: Sequence[Any] | None,
    limit: int,
) -> Sequence[IndexedFile]:
    query = (
        select(IndexedFile)
        .join(SearchIndex, SearchIndex.id == IndexedFile.index_id)
        .where(IndexedFile.index_id == index_id, SearchIndex.project_id == project_id)
    )
    if file_name is not None:
        query = query.where(IndexedFile.file_name == file_name)
    if file_name_contains is not None:
        query = query.where(
            func.lower(IndexedFile.file_name).contains(file_name_contains.lower(), autoescape=True)
        )
    return session.scalars(PARSED_FILE_ORDER.apply(query, after, limit)).all()


def parsed_file_ids_from(session: Session, *, project_id: str, source_id: str) -> Sequence[str]:
    """The parsed files made from the directory file, or the uploaded file, of id
    ``source_id`` in the project, newest first."""
    placed = select(DirectoryFile.id).where(
        DirectoryFile.project_id == project_id,
        or_(DirectoryFile.id == source_id, DirectoryFile.file_id == source_id),
    )
    return session.scalars(
        select(IndexedFile.id)
        .where(IndexedFile.source_file_id.in_(placed))
        .order_by(IndexedFile.updated_at.desc())
    ).all()
