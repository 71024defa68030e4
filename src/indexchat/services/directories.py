"""Directories and the files in them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from indexchat.domain import Scope, new_id, utcnow
from indexchat.errors import Conflict, InvalidInput, NotFound, must_exist
from indexchat.services.files import clean_display_name
from indexchat.storage import files as store
from indexchat.storage.db import added
from indexchat.storage.paging import split_page
from indexchat.storage.tables import Directory, DirectoryFile, StoredFile

UNSET: Any = object()  # "leave unchanged" in updates, distinct from an explicit None


class DuplicateSubscription(Conflict):
    """A connector subscription already syncs into another directory."""

    def __init__(self, directory_id: str) -> None:
        super().__init__(f"connector subscription already syncs into directory {directory_id}")
        self.directory_id = directory_id

    @property
    def detail(self) -> object:
        return {"directory_id": self.directory_id, "message": self.message}


def create_directory(
    tx: Session,
    scope: Scope,
    *,
    name: str,
    description: str | None = None,
    type: str = "user",
    connector_subscription_id: str | None = None,
    system_metadata: dict[str, Any] | None = None,
) -> Directory:
    if connector_subscription_id is not None:
        existing = store.directory_by_subscription(
            tx, project_id=scope.project_id, subscription_id=connector_subscription_id
        )
        if existing is not None:
            raise DuplicateSubscription(existing.id)
    now = utcnow()
    directory = Directory(
        id=new_id("dir"),
        project_id=scope.project_id,
        name=name,
        description=description,
        type=type,
        connector_subscription_id=connector_subscription_id,
        system_metadata=system_metadata,
        created_at=now,
        updated_at=now,
    )
    return added(tx, directory)


def get_directory(tx: Session, scope: Scope, directory_id: str) -> Directory:
    return must_exist(
        store.directory(tx, project_id=scope.project_id, directory_id=directory_id),
        f"directory {directory_id!r}",
    )


def list_directories(
    tx: Session,
    scope: Scope,
    *,
    after: Sequence[Any] | None,
    page_size: int,
    name: str | None = None,
    types: Sequence[str] | None = None,
    include_deleted: bool = False,
) -> tuple[list[Directory], list[Any] | None]:
    rows = store.directories(
        tx,
        project_id=scope.project_id,
        after=after,
        limit=page_size + 1,
        name=name,
        types=types,
        include_deleted=include_deleted,
    )
    return split_page(rows, page_size, store.DIRECTORY_ORDER)


def update_directory(
    tx: Session,
    scope: Scope,
    directory_id: str,
    *,
    name: str | None = UNSET,
    description: str | None = UNSET,
) -> Directory:
    directory = get_directory(tx, scope, directory_id)
    if name is not UNSET:
        if name is None:
            raise InvalidInput("name cannot be null")
        directory.name = name
    if description is not UNSET:
        directory.description = description
    directory.updated_at = utcnow()
    tx.flush()
    return directory


def delete_directory(tx: Session, scope: Scope, directory_id: str) -> None:
    directory = get_directory(tx, scope, directory_id)
    users = store.indexes_using_directory(
        tx, project_id=scope.project_id, directory_id=directory_id
    )
    if users:
        raise Conflict(f"directory {directory_id!r} is used by index {users[0]!r}; delete it first")
    store.remove_directory(tx, project_id=scope.project_id, directory_id=directory.id)


def add_file(
    tx: Session,
    scope: Scope,
    directory_id: str,
    *,
    file_id: str,
    display_name: str | None = None,
    unique_id: str | None = None,
    external_file_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> DirectoryFile:
    directory = get_directory(tx, scope, directory_id)
    stored = must_exist(
        store.file(tx, project_id=scope.project_id, file_id=file_id), f"file {file_id!r}"
    )
    return _place(
        tx,
        directory,
        stored,
        display_name=display_name or stored.name,
        unique_id=unique_id or external_file_id or stored.external_file_id or stored.name,
        external_file_id=external_file_id or stored.external_file_id,
        metadata=metadata or {},
    )


def _place(
    tx: Session,
    directory: Directory,
    stored: StoredFile,
    *,
    display_name: str,
    unique_id: str,
    external_file_id: str | None,
    metadata: dict[str, Any],
) -> DirectoryFile:
    if store.live_unique_id_taken(
        tx, project_id=directory.project_id, directory_id=directory.id, unique_id=unique_id
    ):
        raise Conflict(f"unique_id {unique_id!r} is already used in directory {directory.id!r}")
    now = utcnow()
    placed = DirectoryFile(
        id=new_id("dfl"),
        directory_id=directory.id,
        project_id=directory.project_id,
        file_id=stored.id,
        display_name=clean_display_name(display_name, stored.name),
        unique_id=unique_id,
        external_file_id=external_file_id,
        user_metadata=metadata,
        created_at=now,
        updated_at=now,
    )
    tx.add(placed)
    directory.updated_at = now
    tx.flush()
    return placed


def place_uploaded(
    tx: Session,
    scope: Scope,
    directory_id: str,
    stored: StoredFile,
    *,
    display_name: str | None,
    unique_id: str | None,
    metadata: dict[str, Any] | None,
) -> DirectoryFile:
    directory = get_directory(tx, scope, directory_id)
    return _place(
        tx,
        directory,
        stored,
        display_name=display_name or stored.name,
        unique_id=unique_id or stored.external_file_id or stored.name,
        external_file_id=stored.external_file_id,
        metadata=metadata or {},
    )


def get_file(tx: Session, scope: Scope, directory_id: str, directory_file_id: str) -> DirectoryFile:
    get_directory(tx, scope, directory_id)
    found = store.directory_file(
        tx,
        project_id=scope.project_id,
        directory_id=directory_id,
        directory_file_id=directory_file_id,
    )
    return must_exist(found, f"directory file {directory_file_id!r}")


def list_files(
    tx: Session,
    scope: Scope,
    directory_id: str,
    *,
    after: Sequence[Any] | None,
    page_size: int,
    where: store.DirectoryFileFilter,
) -> tuple[list[DirectoryFile], list[Any] | None]:
    get_directory(tx, scope, directory_id)
    rows = store.directory_files(
        tx,
        project_id=scope.project_id,
        directory_id=directory_id,
        after=after,
        limit=page_size + 1,
        where=where,
    )
    return split_page(rows, page_size, store.DIRECTORY_FILE_ORDER)


def update_file(
    tx: Session,
    scope: Scope,
    directory_id: str,
    directory_file_id: str,
    *,
    display_name: str | None = UNSET,
    unique_id: str | None = UNSET,
    metadata: dict[str, Any] | None = UNSET,
    target_directory_id: str | None = UNSET,
) -> DirectoryFile:
    placed = get_file(tx, scope, directory_id, directory_file_id)
    if placed.deleted_at is not None:
        raise NotFound(f"directory file {directory_file_id!r} not found")
    if display_name is not UNSET and display_name is not None:
        placed.display_name = clean_display_name(display_name, placed.display_name)
    if metadata is not UNSET:
        placed.user_metadata = metadata or {}  # replaces the user metadata layer
    target = placed.directory_id
    if target_directory_id is not UNSET and target_directory_id is not None:
        target = get_directory(tx, scope, target_directory_id).id
    new_unique = unique_id if unique_id is not UNSET and unique_id is not None else placed.unique_id
    if (target, new_unique) != (
        placed.directory_id,
        placed.unique_id,
    ) and store.live_unique_id_taken(
        tx,
        project_id=scope.project_id,
        directory_id=target,
        unique_id=new_unique,
        except_id=placed.id,
    ):
        raise Conflict(f"unique_id {new_unique!r} is already used in directory {target!r}")
    _touch(tx, scope, placed.directory_id, target)  # both sides changed for their indexes
    placed.directory_id, placed.unique_id = target, new_unique
    placed.updated_at = utcnow()
    tx.flush()
    return placed


def delete_file(tx: Session, scope: Scope, directory_id: str, directory_file_id: str) -> None:
    """Soft delete: the row stays (with ``deleted_at``) so a sync can remove its chunks."""
    placed = get_file(tx, scope, directory_id, directory_file_id)
    if placed.deleted_at is not None:
        raise NotFound(f"directory file {directory_file_id!r} not found")
    placed.deleted_at = placed.updated_at = utcnow()
    _touch(tx, scope, directory_id)
    tx.flush()


def _touch(tx: Session, scope: Scope, *directory_ids: str) -> None:
    """A directory's ``updated_at`` moves with its files: indexes that follow it see it."""
    now = utcnow()
    for directory_id in set(directory_ids):
        directory = store.directory(
            tx, project_id=scope.project_id, directory_id=directory_id, include_deleted=True
        )
        if directory is not None:
            directory.updated_at = now
