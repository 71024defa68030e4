"""Indexes: searchable collections over a source directory, which chat sessions bind to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from indexchat.domain import Scope, new_id, utcnow
from indexchat.errors import Conflict, InvalidInput, must_exist
from indexchat.search.store import SearchStore
from indexchat.services import directories
from indexchat.services.sync import remove_index_content
from indexchat.storage import files, jobs
from indexchat.storage import indexes as store
from indexchat.storage.db import added
from indexchat.storage.paging import split_page
from indexchat.storage.tables import Index

INDEX_ORDER = store.INDEX_ORDER
ATTACHMENT_KINDS = frozenset({"screenshots"})  # "items" (bounding boxes) are not made here
SYNC_FREQUENCIES = frozenset({"manual", "daily", "on_source_change"})
VECTOR_TARGETS = frozenset({"DEFAULT", "DISABLED"})


def create_index(
    tx: Session,
    scope: Scope,
    *,
    source_directory_id: str,
    name: str | None = None,
    description: str | None = None,
    products: list[dict[str, Any]] | None = None,
    store_attachments: list[str] | None = None,
    sync_frequency: str = "manual",
    vector_target: str = "DEFAULT",
) -> Index:
    """Create an index over a directory, with its own output directory and config ids."""
    source = directories.get_directory(tx, scope, source_directory_id)
    unknown = set(store_attachments or ()) - ATTACHMENT_KINDS
    if unknown:
        raise InvalidInput(f"store_attachments kind {sorted(unknown)[0]!r} is not supported")
    if products:
        raise InvalidInput("products are not supported: files are parsed by the built-in parser")
    if sync_frequency not in SYNC_FREQUENCIES:
        raise InvalidInput(f"sync_frequency must be one of {', '.join(sorted(SYNC_FREQUENCIES))}")
    if vector_target not in VECTOR_TARGETS:
        raise InvalidInput("vector_target must be DEFAULT or DISABLED")
    index_name = name or source.name
    output = directories.create_directory(tx, scope, name=f"{index_name} (parsed)", type="index")
    now = utcnow()
    index = Index(
        id=new_id("idx"),
        project_id=scope.project_id,
        name=index_name,
        description=description,
        source_directory_id=source.id,
        output_directory_id=output.id,
        sync_config_id=new_id("scfg"),
        export_config_id=new_id("ecfg"),
        products=products,
        store_attachments=sorted(set(store_attachments or ())),
        sync_frequency=sync_frequency,
        vector_target=vector_target,
        build_state={},
        created_at=now,
        updated_at=now,
    )
    return added(tx, index)


def get_index(tx: Session, scope: Scope, index_id: str) -> Index:
    return must_exist(
        store.get(tx, project_id=scope.project_id, index_id=index_id), f"index {index_id!r}"
    )


def list_indexes(
    tx: Session,
    scope: Scope,
    *,
    after: Sequence[Any] | None,
    page_size: int,
    source_directory_id: str | None = None,
) -> tuple[list[Index], list[Any] | None]:
    rows = store.page(
        tx,
        project_id=scope.project_id,
        after=after,
        limit=page_size + 1,
        source_directory_id=source_directory_id,
    )
    return split_page(rows, page_size, INDEX_ORDER)


def start_sync(tx: Session, scope: Scope, index_id: str) -> dict[str, Any]:
    """Queue a sync, or report the one already queued or running.

    A running sync is asked for one more pass when its current one ends, so files added while
    it ran are picked up without waiting for it and starting another.
    """
    index = get_index(tx, scope, index_id)
    job = jobs.active_for_index(tx, index.id, lock=True)
    if job is not None:
        jobs.request_rerun(tx, job)
        return {"index_id": index.id, "status": "already_running", "job_id": job.id}
    job = jobs.enqueue(tx, kind="sync", project_id=scope.project_id, index_id=index.id)
    return {"index_id": index.id, "status": "started", "job_id": job.id}


def cancel_sync(tx: Session, scope: Scope, index_id: str) -> dict[str, Any]:
    index = get_index(tx, scope, index_id)
    job = jobs.active_for_index(tx, index.id)
    if job is None:
        raise Conflict(f"no sync is running for index {index_id!r}")
    jobs.request_cancel(tx, job)
    return {"index_id": index.id, "status": "cancelling", "job_id": job.id}


def sync_progress(tx: Session, index_id: str) -> dict[str, Any] | None:
    """The running (or queued) sync's status and the progress of its current pass, if any."""
    job = jobs.active_for_index(tx, index_id)
    if job is None:
        return None
    return {"status": job.status, **(job.progress or {})}


def delete_index(tx: Session, scope: Scope, index_id: str, search: SearchStore) -> None:
    """Delete the index, its output directory and everything built from it."""
    index = get_index(tx, scope, index_id)
    active = jobs.active_for_index(tx, index.id)
    if active is not None:
        jobs.request_cancel(tx, active)
    remove_index_content(tx, search, index)
    output = files.directory(
        tx,
        project_id=index.project_id,
        directory_id=index.output_directory_id,
        include_deleted=True,
    )
    store.remove(tx, project_id=index.project_id, index_id=index.id)
    if output is not None:
        files.remove_directory(tx, project_id=index.project_id, directory_id=output.id)
