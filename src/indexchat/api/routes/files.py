"""Files (contract §6): upload, list, get, delete, and a signed URL to the bytes."""

from __future__ import annotations

import mimetypes
from typing import Annotated, BinaryIO, Literal
from urllib.parse import quote

from fastapi import File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from indexchat.api.deps import Caller, ProjectCaller, SingleFormValues, heavy_page, project_router
from indexchat.api.errors import error_response
from indexchat.api.pagination import next_token, page_after
from indexchat.api.responses import json_response, stream_blob
from indexchat.api.schemas.common import CursorPage, ErrorBody, IdPath, NoNul
from indexchat.api.schemas.files import (
    FileOut,
    FileQuery,
    FileQueryFilter,
    FileQueryPage,
    PresignedURL,
)
from indexchat.api.signing import INVALID_LINK, SignedLink, signed_link
from indexchat.domain import Scope
from indexchat.errors import ContentMissing, InvalidInput, LimitExceeded, NotFound
from indexchat.services import files as service
from indexchat.storage import files as store

router = project_router("/api/v1/beta/files", "files")
FILES_PAGE_DEFAULT = 50
FILES_PAGE_MAX = 1000
# files.query's order_by (comma-separated fields, ascending unless "desc"), as the orders kept.
QUERY_ORDERS = {"name": "name", "name asc": "name", "id": "id", "id asc": "id"}
QUERY_ORDERS["created_at desc"] = "created_at"
Purpose = Literal["user_data", "parse", "extract", "classify", "split", "sheet", "agent_app"]


async def read_upload(upload: UploadFile, caller: Caller) -> tuple[str, int]:
    """Store an upload within the size limit; returns (digest, size). The multipart parser
    has spooled it to a temporary file: it is copied from there in pieces, so a large upload
    costs the server no more memory than a small one."""
    limit = caller.runtime.settings.max_upload_bytes
    blobs = caller.runtime.blobs
    too_large = LimitExceeded(f"file is larger than the {limit} byte limit")
    if upload.size is not None and upload.size > limit:
        raise too_large
    if upload.size is not None and upload.size <= blobs.inline_put_limit:
        # A thread hop would cost more than the write.
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise too_large
        return blobs.put(data), len(data)
    await upload.seek(0)
    # Off the event loop: hashing and writing a large file takes a while.
    digest, size = await run_in_threadpool(blobs.put_file, upload.file)
    if size > limit:  # a size the parser did not report; the bytes stay unnamed, collected later
        raise too_large
    return digest, size


def presigned(
    request: Request, caller: Caller, scope: Scope, file_id: str, expires_in: int | None = None
) -> PresignedURL:
    """A link to the file's bytes, bound to the key or sign-in of ``scope``."""
    runtime = caller.runtime
    lifetime = expires_in or runtime.settings.download_link_seconds
    return signed_link(request, runtime, scope, "download_file", lifetime, file_id=file_id)


@router.post(
    "",
    response_model=FileOut,
    summary="Upload a file",
    operation_id="files_create",
    dependencies=[SingleFormValues],
)
async def create_file(
    caller: ProjectCaller,
    file: Annotated[UploadFile, File(description="The file's bytes.")],
    purpose: Annotated[Purpose, Form()],
    external_file_id: Annotated[str | None, Form(max_length=200), NoNul] = None,
) -> Response:
    await caller.check()  # nothing reaches the blob store from an unauthenticated caller
    digest, size = await read_upload(file, caller)

    def work(tx: Session, scope: Scope) -> Response:
        stored = service.record_file(
            tx,
            scope,
            digest=digest,
            size=size,
            filename=file.filename,
            purpose=purpose,
            external_file_id=external_file_id,
        )
        return json_response(FileOut.of(stored))

    return await caller.in_project(work)


@router.get("", response_model=CursorPage[FileOut], summary="List files", operation_id="files_list")
async def list_files(
    request: Request,
    caller: ProjectCaller,
    page_size: Annotated[int, Query(ge=1, le=FILES_PAGE_MAX)] = FILES_PAGE_DEFAULT,
    page_token: Annotated[str | None, Query(max_length=1024)] = None,
    expand: Annotated[list[Literal["download_url"]] | None, Query()] = None,
    external_file_id: Annotated[str | None, Query(max_length=200)] = None,
    file_ids: Annotated[list[str] | None, Query(max_length=1000)] = None,
    file_name: Annotated[str | None, Query(max_length=255)] = None,
    order_by: Literal["name", "id", "created_at"] = "created_at",
) -> Response:
    tokens = caller.page_tokens
    keyset = store.FILE_ORDERS[order_by]

    def work(tx: Session, scope: Scope) -> Response:
        listing = f"files:{scope.project_id}:{order_by}"
        rows, after = service.list_files(
            tx,
            scope,
            order_by=order_by,
            after=page_after(tokens, listing, page_token, keyset),
            page_size=page_size,
            file_ids=file_ids,
            file_name=file_name,
            external_file_id=external_file_id,
        )
        items = [
            FileOut.of(f, presigned(request, caller, scope, f.id) if expand else None) for f in rows
        ]
        return json_response(
            CursorPage[FileOut](items=items, next_page_token=next_token(tokens, listing, after))
        )

    return await caller.in_project(work, heavy=heavy_page(page_size))


@router.post(
    "/query",
    response_model=FileQueryPage,
    summary="Query files (deprecated in the SDK: use GET /api/v1/beta/files)",
    operation_id="files_query",
)
async def query_files(body: FileQuery, caller: ProjectCaller) -> Response:
    wanted = body.filter or FileQueryFilter()
    tokens = caller.page_tokens

    def work(tx: Session, scope: Scope) -> Response:
        order_by = _query_order(body.order_by)  # checked once the caller is known
        keyset = store.FILE_ORDERS[order_by]
        listing = f"files:{scope.project_id}:{order_by}"
        after = page_after(tokens, listing, body.page_token, keyset)
        if not _may_match(wanted, scope):
            return json_response(FileQueryPage(items=[]))
        rows, following = service.list_files(
            tx,
            scope,
            order_by=order_by,
            after=after,
            page_size=body.page_size or FILES_PAGE_DEFAULT,
            file_ids=wanted.file_ids,
            file_name=wanted.file_name,
            external_file_id=wanted.external_file_id,
        )
        return json_response(
            FileQueryPage(
                items=[FileOut.of(f) for f in rows],
                next_page_token=next_token(tokens, listing, following),
            )
        )

    return await caller.in_project(work, heavy=heavy_page(body.page_size or FILES_PAGE_DEFAULT))


def _query_order(order_by: str | None) -> str:
    if order_by is None:
        return "created_at"
    found = QUERY_ORDERS.get(" ".join(order_by.lower().split()))
    if found is None:
        raise InvalidInput(
            f"order_by {order_by!r} is not supported; use one of {', '.join(QUERY_ORDERS)}"
        )
    return found


def _may_match(wanted: FileQueryFilter, scope: Scope) -> bool:
    """Every file here was uploaded by hand into this project: no data source has any."""
    if wanted.data_source_id is not None or wanted.only_manually_uploaded is False:
        return False
    return wanted.project_id in (None, scope.project_id)


@router.get(
    "/{file_id}", response_model=FileOut, summary="Get a file", operation_id="files_retrieve"
)
async def get_file(
    request: Request,
    file_id: IdPath,
    caller: ProjectCaller,
    expand: Annotated[list[Literal["download_url"]] | None, Query()] = None,
) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        stored = service.get_file(tx, scope, file_id)
        url = presigned(request, caller, scope, stored.id) if expand else None
        return json_response(FileOut.of(stored, url))

    return await caller.in_project(work)


@router.delete(
    "/{file_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a file",
    operation_id="files_delete",
)
async def delete_file(file_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        grace = caller.runtime.settings.blob_grace_seconds
        service.delete_file(tx, scope, caller.runtime.blobs, file_id, grace_seconds=grace)
        return Response(status_code=204)

    return await caller.in_project(work)


@router.get(
    "/{file_id}/content",
    response_model=PresignedURL,
    summary="A signed URL to download the file's bytes",
    operation_id="files_content",
)
async def file_content(
    request: Request,
    file_id: IdPath,
    caller: ProjectCaller,
    expires_at_seconds: Annotated[int | None, Query(ge=1, le=7 * 24 * 3600)] = None,
) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        stored = service.get_file(tx, scope, file_id)
        return json_response(presigned(request, caller, scope, stored.id, expires_at_seconds))

    return await caller.in_project(work)


@router.get(
    "/{file_id}/download",
    name="download_file",
    summary="Download a file's bytes with a signed URL (no API key needed)",
    operation_id="files_download",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        403: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "The stored bytes are missing"},
    },
)
async def download_file(request: Request, file_id: IdPath, link: SignedLink) -> Response:
    runtime = request.app.state.runtime
    if not link.verify(runtime, "download_file", file_id=file_id):
        return error_response(403, INVALID_LINK)

    def load() -> tuple[str, BinaryIO, int]:
        with runtime.db.read() as tx:
            link.require_active(tx)
            stored = store.file_any_project(tx, file_id)
            if stored is None:
                raise NotFound(f"file {file_id!r} not found")
            name, digest = stored.name, stored.content_hash
        try:
            return name, *runtime.blobs.open(digest)
        except ContentMissing:
            raise ContentMissing(f"the bytes of file {file_id!r} are missing") from None

    name, reader, size = await run_in_threadpool(load)
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    # PDFs open in the browser's viewer (the web page links to `#page=N`); anything else is a
    # download, so that an uploaded HTML file never runs as a page of this server.
    inline = "inline" if media_type == "application/pdf" else "attachment"
    disposition = f"{inline}; filename*=UTF-8''{quote(name, safe='')}"
    return stream_blob(reader, size, media_type, {"content-disposition": disposition})
