"""Directories and directory files (contract §5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import File, Form, Query, Request, Response, UploadFile
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from indexchat.api.deps import Caller, ProjectCaller, SingleFormValues, heavy_page, project_router
from indexchat.api.pagination import next_token, page_after
from indexchat.api.responses import json_response
from indexchat.api.routes.files import presigned, read_upload
from indexchat.api.schemas.common import CursorPage, ErrorBody, IdPath, NoNul
from indexchat.api.schemas.files import (
    AddDirectoryFile,
    CreateDirectory,
    DirectoryFileOut,
    DirectoryOut,
    Metadata,
    UpdateDirectory,
    UpdateDirectoryFile,
)
from indexchat.domain import Scope
from indexchat.errors import InvalidInput
from indexchat.services import directories as service
from indexchat.services import files as file_service
from indexchat.storage import files as store
from indexchat.storage.tables import DirectoryFile

router = project_router("/api/v1/beta/directories", "directories")
PAGE_DEFAULT, PAGE_MAX = 50, 1000
DirectoryType = Literal["ephemeral", "index", "user"]
PageSize = Annotated[int, Query(ge=1, le=PAGE_MAX)]
PageToken = Annotated[str | None, Query(max_length=1024)]
# What a directory file can be expanded with: the stored file's signed download link.
Expand = Annotated[list[Literal["download_url"]] | None, Query(max_length=10)]
_METADATA = TypeAdapter(Metadata)


@router.post(
    "",
    response_model=DirectoryOut,
    summary="Create a directory",
    operation_id="directories_create",
    responses={409: {"model": ErrorBody}},
)
async def create_directory(body: CreateDirectory, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        directory = service.create_directory(
            tx,
            scope,
            name=body.name,
            description=body.description,
            type=body.type,
            connector_subscription_id=body.connector_subscription_id,
            system_metadata=body.system_metadata,
        )
        return json_response(DirectoryOut.of(directory))

    return await caller.in_project(work)


@router.get(
    "",
    response_model=CursorPage[DirectoryOut],
    summary="List directories",
    operation_id="directories_list",
)
async def list_directories(
    caller: ProjectCaller,
    page_size: PageSize = PAGE_DEFAULT,
    page_token: PageToken = None,
    include_deleted: bool = False,
    name: Annotated[str | None, Query(max_length=200)] = None,
    type: DirectoryType | None = None,
    types: Annotated[list[DirectoryType] | None, Query()] = None,
) -> Response:
    tokens = caller.page_tokens
    wanted = [*(types or ()), *([type] if type else [])]

    def work(tx: Session, scope: Scope) -> Response:
        listing = f"directories:{scope.project_id}"
        rows, after = service.list_directories(
            tx,
            scope,
            after=page_after(tokens, listing, page_token, store.DIRECTORY_ORDER),
            page_size=page_size,
            name=name,
            types=wanted or None,
            include_deleted=include_deleted,
        )
        return json_response(
            CursorPage[DirectoryOut](
                items=[DirectoryOut.of(d) for d in rows],
                next_page_token=next_token(tokens, listing, after),
            )
        )

    return await caller.in_project(work, heavy=heavy_page(page_size))


@router.get(
    "/{directory_id}",
    response_model=DirectoryOut,
    summary="Get a directory",
    operation_id="directories_get",
)
async def get_directory(directory_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        return json_response(DirectoryOut.of(service.get_directory(tx, scope, directory_id)))

    return await caller.in_project(work)


@router.patch(
    "/{directory_id}",
    response_model=DirectoryOut,
    summary="Update a directory's name or description",
    operation_id="directories_update",
)
async def update_directory(
    directory_id: IdPath, body: UpdateDirectory, caller: ProjectCaller
) -> Response:
    changes = body.model_dump(exclude_unset=True)  # absent = unchanged, null = cleared

    def work(tx: Session, scope: Scope) -> Response:
        directory = service.update_directory(tx, scope, directory_id, **changes)
        return json_response(DirectoryOut.of(directory))

    return await caller.in_project(work)


@router.delete(
    "/{directory_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a directory",
    operation_id="directories_delete",
    responses={409: {"model": ErrorBody}},
)
async def delete_directory(directory_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        service.delete_directory(tx, scope, directory_id)
        return Response(status_code=204)

    return await caller.in_project(work)


@router.post(
    "/{directory_id}/files",
    response_model=DirectoryFileOut,
    summary="Add an existing file to a directory",
    operation_id="directory_files_add",
    responses={409: {"model": ErrorBody}},
)
async def add_file(directory_id: IdPath, body: AddDirectoryFile, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        placed = service.add_file(
            tx,
            scope,
            directory_id,
            file_id=body.file_id,
            display_name=body.display_name,
            unique_id=body.unique_id,
            metadata=body.metadata,
        )
        return json_response(DirectoryFileOut.of(placed))

    return await caller.in_project(work)


@router.post(
    "/{directory_id}/files/upload",
    response_model=DirectoryFileOut,
    summary="Upload a file into a directory",
    operation_id="directory_files_upload",
    responses={409: {"model": ErrorBody}, 413: {"model": ErrorBody}},
    dependencies=[SingleFormValues],
)
async def upload_file(
    directory_id: IdPath,
    caller: ProjectCaller,
    upload_file: Annotated[UploadFile, File(description="The file's bytes.")],
    display_name: Annotated[str | None, Form(max_length=255), NoNul] = None,
    unique_id: Annotated[str | None, Form(max_length=255), NoNul] = None,
    external_file_id: Annotated[str | None, Form(max_length=200), NoNul] = None,
    metadata: Annotated[
        str | None, Form(description="User metadata as a JSON object."), NoNul
    ] = None,
) -> Response:
    # Authenticate and find the directory before storing any bytes.
    await caller.reading(lambda tx, scope: service.get_directory(tx, scope, directory_id))
    user_metadata = _parse_metadata(metadata)
    digest, size = await read_upload(upload_file, caller)

    def work(tx: Session, scope: Scope) -> Response:
        stored = file_service.record_file(
            tx,
            scope,
            digest=digest,
            size=size,
            filename=upload_file.filename,
            purpose="user_data",
            external_file_id=external_file_id,
        )
        placed = service.place_uploaded(
            tx,
            scope,
            directory_id,
            stored,
            display_name=display_name,
            unique_id=unique_id,
            metadata=user_metadata,
        )
        return json_response(DirectoryFileOut.of(placed))

    return await caller.in_project(work)


@router.get(
    "/{directory_id}/files",
    response_model=CursorPage[DirectoryFileOut],
    summary="List the files of a directory",
    operation_id="directory_files_list",
)
async def list_files(
    request: Request,
    directory_id: IdPath,
    caller: ProjectCaller,
    page_size: PageSize = PAGE_DEFAULT,
    page_token: PageToken = None,
    display_name: Annotated[str | None, Query(max_length=255)] = None,
    display_name_contains: Annotated[str | None, Query(max_length=255)] = None,
    file_id: Annotated[str | None, Query(max_length=200)] = None,
    unique_id: Annotated[str | None, Query(max_length=255)] = None,
    include_deleted: bool = False,
    expand: Expand = None,
    updated_at_on_or_after: datetime | None = None,
    updated_at_on_or_before: datetime | None = None,
) -> Response:
    tokens = caller.page_tokens
    where = store.DirectoryFileFilter(
        display_name=display_name,
        display_name_contains=display_name_contains,
        file_id=file_id,
        unique_id=unique_id,
        include_deleted=include_deleted,
        updated_on_or_after=_naive_utc(updated_at_on_or_after),
        updated_on_or_before=_naive_utc(updated_at_on_or_before),
    )

    def work(tx: Session, scope: Scope) -> Response:
        listing = f"directory_files:{scope.project_id}:{directory_id}"
        rows, after = service.list_files(
            tx,
            scope,
            directory_id,
            after=page_after(tokens, listing, page_token, store.DIRECTORY_FILE_ORDER),
            page_size=page_size,
            where=where,
        )
        return json_response(
            CursorPage[DirectoryFileOut](
                items=[_out(request, caller, scope, f, expand) for f in rows],
                next_page_token=next_token(tokens, listing, after),
            )
        )

    return await caller.in_project(work, heavy=heavy_page(page_size))


@router.get(
    "/{directory_id}/files/{directory_file_id}",
    response_model=DirectoryFileOut,
    summary="Get a directory file",
    operation_id="directory_files_get",
)
async def get_file(
    request: Request,
    directory_id: IdPath,
    directory_file_id: IdPath,
    caller: ProjectCaller,
    expand: Expand = None,
) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        placed = service.get_file(tx, scope, directory_id, directory_file_id)
        return json_response(_out(request, caller, scope, placed, expand))

    return await caller.in_project(work)


@router.patch(
    "/{directory_id}/files/{directory_file_id}",
    response_model=DirectoryFileOut,
    summary="Update or move a directory file",
    operation_id="directory_files_update",
    responses={409: {"model": ErrorBody}},
)
async def update_file(
    directory_id: IdPath,
    directory_file_id: IdPath,
    body: UpdateDirectoryFile,
    caller: ProjectCaller,
) -> Response:
    changes = body.model_dump(exclude_unset=True)

    def work(tx: Session, scope: Scope) -> Response:
        placed = service.update_file(tx, scope, directory_id, directory_file_id, **changes)
        return json_response(DirectoryFileOut.of(placed))

    return await caller.in_project(work)


@router.delete(
    "/{directory_id}/files/{directory_file_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a file from a directory",
    operation_id="directory_files_delete",
)
async def delete_file(
    directory_id: IdPath, directory_file_id: IdPath, caller: ProjectCaller
) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        service.delete_file(tx, scope, directory_id, directory_file_id)
        return Response(status_code=204)

    return await caller.in_project(work)


def _out(
    request: Request,
    caller: Caller,
    scope: Scope,
    placed: DirectoryFile,
    expand: list[Literal["download_url"]] | None,
) -> DirectoryFileOut:
    """With ``expand=download_url``, a signed link to the stored file's bytes (none once the
    file itself was deleted)."""
    url = None
    if expand and placed.file_id is not None:
        url = presigned(request, caller, scope, placed.file_id)
    return DirectoryFileOut.of(placed, url)


def _parse_metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    try:
        return _METADATA.validate_python(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise InvalidInput(
            "metadata must be a JSON object of strings, numbers, booleans, nulls or string lists"
        ) from exc


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
