"""Indexes (contract §4): create over a directory, list, get, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, Response
from sqlalchemy.orm import Session

from indexchat.api.deps import ProjectCaller, heavy_page, project_router
from indexchat.api.pagination import next_token, page_after
from indexchat.api.responses import json_response, json_response_of
from indexchat.api.schemas.common import CursorPage, ErrorBody, IdPath
from indexchat.api.schemas.indexes import CreateIndex, IndexOut
from indexchat.domain import Scope
from indexchat.services import indexes as service
from indexchat.services.schedule import Timing, next_run_of

router = project_router("/api/v1/indexes", "indexes")
PAGE_DEFAULT, PAGE_MAX = 20, 100


@router.post("", response_model=IndexOut, summary="Create an index", operation_id="indexes_create")
async def create_index(body: CreateIndex, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        index = service.create_index(
            tx,
            scope,
            source_directory_id=body.source_directory_id,
            name=body.name,
            description=body.description,
            products=[p.model_dump() for p in body.products] if body.products else None,
            store_attachments=list(body.store_attachments or ()),
            sync_frequency=body.sync_frequency,
            vector_target=body.vector_target,
        )
        return json_response(IndexOut.of(index, next_sync_at=next_run_of(tx, index, timing)))

    timing = Timing.of(caller.runtime.settings)
    return await caller.in_project(work)


@router.get(
    "", response_model=CursorPage[IndexOut], summary="List indexes", operation_id="indexes_list"
)
async def list_indexes(
    caller: ProjectCaller,
    page_size: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT,
    page_token: Annotated[str | None, Query(max_length=1024)] = None,
    source_directory_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    tokens = caller.page_tokens
    timing = Timing.of(caller.runtime.settings)

    def work(tx: Session, scope: Scope) -> Response:
        listing = f"indexes:{scope.project_id}"
        rows, after = service.list_indexes(
            tx,
            scope,
            after=page_after(tokens, listing, page_token, service.INDEX_ORDER),
            page_size=page_size,
            source_directory_id=source_directory_id,
        )
        return json_response(
            CursorPage[IndexOut](
                items=[IndexOut.of(i, next_sync_at=next_run_of(tx, i, timing)) for i in rows],
                next_page_token=next_token(tokens, listing, after),
            )
        )

    return await caller.in_project(work, heavy=heavy_page(page_size))


@router.get(
    "/{index_id}", response_model=IndexOut, summary="Get an index", operation_id="indexes_get"
)
async def get_index(
    index_id: IdPath,
    caller: ProjectCaller,
    expand: Annotated[list[Literal["sync_in_progress"]] | None, Query()] = None,
) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        index = service.get_index(tx, scope, index_id)
        next_sync_at = next_run_of(tx, index, timing)
        if not expand:
            return json_response(IndexOut.of(index, next_sync_at=next_sync_at))
        progress = service.sync_progress(tx, index.id)
        return json_response(IndexOut.of(index, progress is not None, progress, next_sync_at))

    timing = Timing.of(caller.runtime.settings)
    return await caller.in_project(work)


@router.delete(
    "/{index_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an index",
    operation_id="indexes_delete",
)
async def delete_index(index_id: IdPath, caller: ProjectCaller) -> Response:
    store = caller.runtime.search

    def work(tx: Session, scope: Scope) -> Response:
        service.delete_index(tx, scope, index_id, store)
        return Response(status_code=204)

    return await caller.in_project(work)


@router.post(
    "/{index_id}/sync",
    summary="Sync and export: parse new or changed files, drop removed ones (in the background)",
    operation_id="indexes_sync",
)
async def sync_index(index_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        return json_response_of(service.start_sync(tx, scope, index_id))

    return await caller.in_project(work)


@router.post(
    "/{index_id}/sync/cancel",
    summary="Cancel the running sync (409 when none runs)",
    operation_id="indexes_cancel_sync",
    responses={409: {"model": ErrorBody}},
)
async def cancel_sync(index_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        return json_response_of(service.cancel_sync(tx, scope, index_id))

    return await caller.in_project(work)
