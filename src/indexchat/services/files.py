"""Uploaded files: store bytes once per content, record the file in its project."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from indexchat.domain import Scope, utcnow
from indexchat.errors import InvalidInput, must_exist
from indexchat.storage import files as store
from indexchat.storage.blob_refs import is_referenced
from indexchat.storage.blobs import BlobStore
from indexchat.storage.db import added
from indexchat.storage.paging import split_page
from indexchat.storage.tables import StoredFile

PURPOSES = frozenset({"user_data", "parse", "extract", "classify", "split", "sheet", "agent_app"})
# Control characters, and the bidirectional controls that make "evil\u202etxt.exe" show as
# "evilexe.txt".
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_file_name(raw: str | None) -> str:
    """A safe display name: no directories (either slash), no control or bidirectional
    formatting characters, ≤ 255 chars."""
    name = PurePosixPath((raw or "").replace("\\", "/")).name
    name = _CONTROL.sub("", name).strip().lstrip(".")
    return name[:255] or "upload"


def clean_display_name(raw: str, fallback: str) -> str:
    """A directory file's display name: a relative path (a folder upload keeps its folders),
    each part cleaned like a file name; never absolute, never climbing out (``..``)."""
    parts = (_CONTROL.sub("", part).strip() for part in raw.replace("\\", "/").split("/"))
    name = "/".join(part for part in parts if part not in ("", ".", ".."))
    return name[:255] or fallback


def file_type_of(name: str) -> str | None:
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    return suffix[:32] or None


def record_file(
    tx: Session,
    scope: Scope,
    *,
    digest: str,
    size: int,
    filename: str | None,
    purpose: str,
    external_file_id: str | None,
) -> StoredFile:
    """Record a file whose bytes are already in the blob store under ``digest``."""
    if purpose not in PURPOSES:
        raise InvalidInput(f"purpose must be one of {', '.join(sorted(PURPOSES))}")
    name = clean_file_name(filename)
    now = utcnow()
    stored = StoredFile(
        id=str(uuid.uuid4()),  # files use bare UUIDs, as in the API
        project_id=scope.project_id,
        name=name,
        file_type=file_type_of(name),
        purpose=purpose,
        external_file_id=external_file_id,
        content_hash=digest,
        size_bytes=size,
        created_at=now,
        last_modified_at=now,
    )
    return added(tx, stored)


def get_file(tx: Session, scope: Scope, file_id: str) -> StoredFile:
    return must_exist(
        store.file(tx, project_id=scope.project_id, file_id=file_id), f"file {file_id!r}"
    )


def list_files(
    tx: Session,
    scope: Scope,
    *,
    order_by: str,
    after: Sequence[Any] | None,
    page_size: int,
    file_ids: Sequence[str] | None = None,
    file_name: str | None = None,
    external_file_id: str | None = None,
) -> tuple[list[StoredFile], list[Any] | None]:
    order = store.FILE_ORDERS[order_by]
    rows = store.files(
        tx,
        project_id=scope.project_id,
        order=order,
        after=after,
        limit=page_size + 1,
        file_ids=file_ids,
        file_name=file_name,
        external_file_id=external_file_id,
    )
    return split_page(rows, page_size, order)


def delete_file(
    tx: Session, scope: Scope, blobs: BlobStore, file_id: str, *, grace_seconds: float
) -> None:
    """Delete the file; its bytes go too unless any row of any project still names them (the
    same bytes uploaded elsewhere, a page screenshot, parsed text) or they are younger than
    ``grace_seconds`` (an upload of the same bytes may not have committed its row yet)."""
    found = get_file(tx, scope, file_id)
    digest = found.content_hash
    store.remove_file(tx, project_id=scope.project_id, file_id=found.id)
    if not is_referenced(tx, digest):
        blobs.delete_if_stale(digest, grace_seconds=grace_seconds)
