"""Retrieval (contract §7): hybrid retrieve, find files, grep a file, read a file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from indexchat.api.deps import ProjectCaller
from indexchat.api.pagination import next_token, page_after
from indexchat.api.responses import json_response
from indexchat.api.schemas.common import CursorPage, ErrorBody
from indexchat.api.schemas.retrieval import (
    AttachmentRef,
    FindRequest,
    FoundFile,
    GrepMatchOut,
    GrepRequest,
    ReadRequest,
    ReadResult,
    Result,
    RetrievalResults,
    RetrieveRequest,
    StaticFields,
    StaticFilters,
    ValueFilter,
)
from indexchat.domain import Scope
from indexchat.errors import InvalidPageToken
from indexchat.services import retrieval as service
from indexchat.services.retrieval import HitChunk, HitFile, SearchOptions, filter_matches

router = APIRouter(
    prefix="/api/v1/retrieval",
    tags=["retrieval"],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
PAGE_DEFAULT, PAGE_MAX = 100, 1000


@router.post(
    "/retrieve",
    response_model=RetrievalResults,
    summary="Hybrid search (vector + full text) over an index",
    operation_id="retrieval_retrieve",
)
async def retrieve(body: RetrieveRequest, caller: ProjectCaller) -> Response:
    options = _options(body)
    runtime = caller.runtime

    def work(session: Session, scope: Scope) -> Response:
        hits = service.retrieve(
            session,
            scope,
            runtime.search,
            runtime.embedder,
            body.index_id,
            body.query,
            options,
            runtime.reranking,
        )
        results = [
            Result(
                content=h.chunk.text,
                score=h.score,
                rerank_score=h.rerank_score,  # null unless a rerank server ordered the hits
                metadata=h.file.user_metadata or {},
                static_fields=StaticFields(
                    chunk_index=h.chunk.chunk_index,
                    chunk_start_char=h.chunk.start_char,
                    chunk_end_char=h.chunk.end_char,
                    chunk_token_count=h.chunk.token_count,
                    page_range_start=h.chunk.page_start,
                    page_range_end=h.chunk.page_end,
                    parsed_directory_file_id=h.file.id,
                    attachments=[
                        AttachmentRef(attachment_name=name, source_id=h.file.id, type="screenshot")
                        for name in h.attachments
                    ],
                ),
            )
            for h in hits
        ]
        return json_response(RetrievalResults(results=results))

    return await caller.searching(work)


def _options(body: RetrieveRequest) -> SearchOptions:
    vector = body.vector_pipeline_weight
    text = body.full_text_pipeline_weight
    if vector is None and text is None:
        vector, text = service.DEFAULT_VECTOR_WEIGHT, 1 - service.DEFAULT_VECTOR_WEIGHT
    elif vector is None:
        vector = 1 - (text or 0)
    elif text is None:
        text = 1 - vector
    return SearchOptions(
        top_k=min(body.top_k or service.DEFAULT_TOP_K, service.TOP_K_MAX),
        vector_weight=vector,
        text_weight=text,
        score_threshold=body.score_threshold,
        rerank=body.rerank.enabled,
        rerank_top_n=body.rerank.top_n if body.rerank.enabled else None,
        keep=_filter(body),
        candidates=body.num_candidates,
    )


def _filter(body: RetrieveRequest) -> Any:
    static = body.static_filters or StaticFilters()
    custom = {k: v for k, v in (body.custom_filters or {}).items() if v is not None}
    if not custom and static == StaticFilters():
        return None

    def keep(chunk: HitChunk, indexed: HitFile) -> bool:
        checks: list[tuple[Any, ValueFilter | Any]] = [
            (indexed.id, static.parsed_directory_file_id),
            (chunk.page_start, static.page_range_start),
            (chunk.page_end, static.page_range_end),
            (chunk.chunk_index, static.chunk_index),
        ]
        metadata = indexed.user_metadata or {}
        for key, condition in custom.items():
            for bound in condition if isinstance(condition, list) else [condition]:
                checks.append((metadata.get(key), bound))
        return all(f is None or filter_matches(actual, f.operator, f.value) for actual, f in checks)

    return keep


@router.post(
    "/files/find",
    response_model=CursorPage[FoundFile],
    summary="Find files in an index by name",
    operation_id="retrieval_find",
)
async def find(body: FindRequest, caller: ProjectCaller) -> Response:
    tokens = caller.page_tokens

    def work(session: Session, scope: Scope) -> Response:
        listing = f"find:{scope.project_id}:{body.index_id}"
        rows, after = service.find_files(
            session,
            scope,
            body.index_id,
            file_name=body.file_name,
            file_name_contains=body.file_name_contains,
            after=page_after(tokens, listing, body.page_token, service.FIND_ORDER),
            page_size=body.page_size or PAGE_DEFAULT,
        )
        return json_response(
            CursorPage[FoundFile](
                items=[FoundFile(file_id=f.id, file_name=f.file_name) for f in rows],
                next_page_token=next_token(tokens, listing, after),
            )
        )

    return await caller.searching(work)


@router.post(
    "/files/grep",
    response_model=CursorPage[GrepMatchOut],
    summary="Regex search inside one parsed file",
    operation_id="retrieval_grep",
)
async def grep(body: GrepRequest, caller: ProjectCaller) -> Response:
    tokens = caller.page_tokens
    blobs = caller.runtime.blobs

    def work(session: Session, scope: Scope) -> Response:
        listing = f"grep:{scope.project_id}:{body.index_id}:{body.file_id}:{body.pattern}"
        start = 0
        if body.page_token:
            position = tokens.decode(listing, body.page_token)
            if len(position) != 1 or not isinstance(position[0], int):
                raise InvalidPageToken("malformed page_token")
            start = position[0]
        text = service.parsed_text(session, scope, blobs, body.index_id, body.file_id)
        matches, resume = service.grep(
            text,
            body.pattern,
            context_chars=body.context_chars or 0,
            start_after=start,
            limit=body.page_size or PAGE_DEFAULT,
        )
        return json_response(
            CursorPage[GrepMatchOut](
                items=[
                    GrepMatchOut(content=m.content, start_char=m.start_char, end_char=m.end_char)
                    for m in matches
                ],
                next_page_token=tokens.encode(listing, [resume]) if resume is not None else None,
            )
        )

    return await caller.searching(work)


@router.post(
    "/files/read",
    response_model=ReadResult,
    summary="Read a parsed file's text",
    operation_id="retrieval_read",
)
async def read(body: ReadRequest, caller: ProjectCaller) -> Response:
    blobs = caller.runtime.blobs

    def work(session: Session, scope: Scope) -> Response:
        text = service.parsed_text(session, scope, blobs, body.index_id, body.file_id)
        end = None if body.max_length is None else body.offset + body.max_length
        return json_response(ReadResult(content=text[body.offset : end]))

    return await caller.searching(work)
