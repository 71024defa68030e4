"""Queries for files, directories and directory files. Every query takes ``project_id=``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select
from sqlalchemy.orm import Session

from indexchat.storage.paging import Keyset
from indexchat.storage.tables import Directory, DirectoryFile, Index, StoredFile

FILE_ORDERS = {
    "created_at": Keyset((StoredFile.created_at, StoredFile.id), descending=True),
    "name": Keyset((StoredFile.name, StoredFile.id)),
    "id": Keyset((StoredFile.id,)),
}
DIRECTORY_ORDER = Keyset((Directory.created_at, Directory.id))
DIRECTORY_FILE_ORDER = Keyset((DirectoryFile.created_at, DirectoryFile.id))


def file(tx: Session, *, project_id: str, file_id: str) -> StoredFile | None:
    return tx.scalar(
        select(StoredFile).where(StoredFile.id == file_id, StoredFile.project_id == project_id)
    )


def file_any_project(tx: Session, file_id: str) -> StoredFile | None:
    """Only for signed download links, whose signature already names the file."""
    return tx.get(StoredFile, file_id)


def files(
    tx: Session,
    *,
    project_id: str,
    order: Keyset,
    after: Sequence[Any] | None,
    limit: int,
    file_ids: Sequence[str] | None = None,
    file_name: str | None = None,
    external_file_id: str | None = None,
) -> Sequence[StoredFile]:
    query = select(StoredFile).where(StoredFile.project_id == project_id)
    if file_ids:
        query = query.where(StoredFile.id.in_(file_ids))
    if file_name is not None:
        query = query.where(StoredFile.name == file_name)
    if external_file_id is not None:
        query = query.where(StoredFile.external_file_id == external_file_id)
    return tx.scalars(order.apply(query, after, limit)).all()


def remove_file(tx: Session, *, project_id: str, file_id: str) -> None:
    tx.execute(
        delete(StoredFile).where(StoredFile.id == file_id, StoredFile.project_id == project_id)
    )


def remove_directory(tx: Session, *, project_id: str, directory_id: str) -> None:
    tx.execute(
        delete(Directory).where(Directory.id == directory_id, Directory.project_id == project_id)
    )


def directory(
    tx: Session, *, project_id: str, directory_id: str, include_deleted: bool = False
) -> Directory | None:
    query = select(Directory).where(
        Directory.id == directory_id, Directory.project_id == project_id
    )
    if not include_deleted:
        query = query.where(Directory.deleted_at.is_(None))
    return tx.scalar(query)


def directory_by_subscription(
    tx: Session, *, project_id: str, subscription_id: str
) -> Directory | None:
    return tx.scalar(
        select(Directory).where(
            Directory.project_id == project_id,
            Directory.connector_subscription_id == subscription_id,
            Directory.deleted_at.is_(None),
        )
    )


def directories(
    tx: Session,
    *,
    project_id: str,
    after: Sequence[Any] | None,
    limit: int,
    name: str | None = None,
    types: Sequence[str] | None = None,
    include_deleted: bool = False,
) -> Sequence[Directory]:
    query = select(Directory).where(Directory.project_id == project_id)
    if name is not None:
        query = query.where(Directory.name == name)
    if types:
        query = query.where(Directory.type.in_(types))
    if not include_deleted:
        query = query.where(Directory.deleted_at.is_(None))
    return tx.scalars(DIRECTORY_ORDER.apply(query, after, limit)).all()


def indexes_using_directory(tx: Session, *, project_id: str, directory_id: str) -> Sequence[str]:
    return tx.scalars(
        select(Index.id).where(
            Index.project_id == project_id,
            (Index.source_directory_id == directory_id)
            | (Index.output_directory_id == directory_id),
        )
    ).all()


def directory_file(
    tx: Session, *, project_id: str, directory_id: str, directory_file_id: str
) -> DirectoryFile | None:
    return tx.scalar(
        select(DirectoryFile).where(
            DirectoryFile.id == directory_file_id,
            DirectoryFile.directory_id == directory_id,
            DirectoryFile.project_id == project_id,
        )
    )


def live_unique_id_taken(
    tx: Session,
    *,
    project_id: str,
    directory_id: str,
    unique_id: str,
    except_id: str | None = None,
) -> bool:
    query = select(DirectoryFile.id).where(
        DirectoryFile.project_id == project_id,
        DirectoryFile.directory_id == directory_id,
        DirectoryFile.unique_id == unique_id,
        DirectoryFile.deleted_at.is_(None),
    )
    if except_id is not None:
        query = query.where(DirectoryFile.id != except_id)
    return tx.scalar(query.limit(1)) is not None


@dataclass(frozen=True)
class DirectoryFileFilter:
    """Which of a directory's files a listing shows: the ones matching every field given (by
    default all files not deleted)."""

    display_name: str | None = None
    display_name_contains: str | None = None  # case-insensitive
    file_id: str | None = None
    unique_id: str | None = None
    include_deleted: bool = False
    updated_on_or_after: datetime | None = None
    updated_on_or_before: datetime | None = None


def directory_files(
    tx: Session,
    *,
    project_id: str,
    directory_id: str,
    after: Sequence[Any] | None,
    limit: int,
    where: DirectoryFileFilter = DirectoryFileFilter(),
) -> Sequence[DirectoryFile]:
    query = select(DirectoryFile).where(
        DirectoryFile.project_id == project_id, DirectoryFile.directory_id == directory_id
    )
    if where.display_name is not None:
        query = query.where(DirectoryFile.display_name == where.display_name)
    if where.display_name_contains is not None:
        query = query.where(
            func.lower(DirectoryFile.display_name).contains(
                where.display_name_contains.lower(), autoescape=True
            )
        )
    if where.file_id is not None:
        query = query.where(DirectoryFile.file_id == where.file_id)
    if where.unique_id is not None:
        query = query.where(DirectoryFile.unique_id == where.unique_id)
    if not where.include_deleted:
        query = query.where(DirectoryFile.deleted_at.is_(None))
    if where.updated_on_or_after is not None:
        query = query.where(DirectoryFile.updated_at >= where.updated_on_or_after)
    if where.updated_on_or_before is not None:
        query = query.where(DirectoryFile.updated_at <= where.updated_on_or_before)
    return tx.scalars(DIRECTORY_FILE_ORDER.apply(query, after, limit)).all()


def live_sources(
    tx: Session, *, project_id: str, directory_id: str
) -> Sequence[Row[str, str, dict[str, Any] | None, str, int]]:
    """(id, display name, metadata, content hash, size) of the directory's live files, oldest
    first."""
    return tx.execute(
        select(
            DirectoryFile.id,
            DirectoryFile.display_name,
            DirectoryFile.user_metadata,
            StoredFile.content_hash,
            StoredFile.size_bytes,
        )
        .join(StoredFile, StoredFile.id == DirectoryFile.file_id)
        .where(
            DirectoryFile.directory_id == directory_id,
            DirectoryFile.project_id == project_id,
            DirectoryFile.deleted_at.is_(None),
        )
        .order_by(DirectoryFile.created_at, DirectoryFile.id)
    ).all()


def ids_without_file(tx: Session, *, project_id: str, directory_id: str) -> Sequence[str]:
    """The directory's files whose stored file is gone (set to NULL when it was deleted)."""
    return tx.scalars(
        select(DirectoryFile.id).where(
            DirectoryFile.directory_id == directory_id,
            DirectoryFile.project_id == project_id,
            DirectoryFile.file_id.is_(None),
        )
    ).all()


def remove_directory_file(tx: Session, *, project_id: str, directory_file_id: str) -> None:
    tx.execute(
        delete(DirectoryFile).where(
            DirectoryFile.id == directory_file_id, DirectoryFile.project_id == project_id
        )
    )
