"""Retrieval (contract §7): hybrid retrieve, find files, grep a file, read a file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from indexchat.api.deps import ProjectCaller, project_router
from indexchat.api.pagination import PageTokens, next_token, page_after
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
from indexchat.runtime import Runtime
from indexchat.services import retrieval as service
from indexchat.services.retrieval import Hit, HitChunk, HitFile, SearchOptions, filter_matches
from indexchat.storage.blobs import BlobStore

R = TypeVar("R")  # what a Work returns: a wire model, or the response made of one
F = TypeVar("F", bound=Callable[..., Any])

router = project_router("/api/v1/retrieval", "retrieval")
PAGE_DEFAULT, PAGE_MAX = 100, 1000


# A parsed text whose stored bytes are gone answers 409 (sync the index again to restore it).
MISSING_TEXT: dict[int | str, Any] = {
    409: {"model": ErrorBody, "description": "The parsed text is missing"}
}
# A remote embedding server that fails answers 502.
UPSTREAM: dict[int | str, Any] = {
    502: {"model": ErrorBody, "description": "The embedding server failed"}
}


def _post(
    path: str, model: Any, summary: str, responses: dict[int | str, Any] | None = None
) -> Callable[[F], F]:
    """A POST route whose operation id is ``retrieval_<last path segment>``."""
    operation_id = f"retrieval_{path.rsplit('/', 1)[1]}"
    return router.post(
        path, response_model=model, summary=summary, operation_id=operation_id, responses=responses
    )


@_post("/retrieve", RetrievalResults, "Hybrid search (vector + full text) over an index", UPSTREAM)
async def retrieve(body: RetrieveRequest, caller: ProjectCaller) -> Response:
    return await caller.searching(_responding(retrieve_work(body, caller.runtime)), waits=True)


@_post("/files/find", CursorPage[FoundFile], "Find files in an index by name")
async def find(body: FindRequest, caller: ProjectCaller) -> Response:
    return await caller.searching(_responding(find_work(body, caller.page_tokens)))


@_post("/files/grep", CursorPage[GrepMatchOut], "Regex search inside one parsed file", MISSING_TEXT)
async def grep(body: GrepRequest, caller: ProjectCaller) -> Response:
    work = grep_work(body, caller.page_tokens, caller.runtime.blobs)
    return await caller.searching(_responding(work))


@_post("/files/read", ReadResult, "Read a parsed file's text", MISSING_TEXT)
async def read(body: ReadRequest, caller: ProjectCaller) -> Response:
    return await caller.searching(_responding(read_work(body, caller.runtime.blobs)))


# The work of each endpoint, as a function of the request's transaction and project. The MCP
# server runs the same functions, so its tools answer exactly as the API does.
Work = Callable[[Session, Scope], R]


def _responding(work: Work[BaseModel]) -> Work[Response]:
    """Serialised in the same worker thread as the work itself."""
    return lambda tx, scope: json_response(work(tx, scope))


def retrieve_work(body: RetrieveRequest, runtime: Runtime) -> Work[RetrievalResults]:
    options = _options(body)

    def work(tx: Session, scope: Scope) -> RetrievalResults:
        hits = service.retrieve(
            tx,
            scope,
            runtime.search,
            runtime.embedder,
            body.index_id,
            body.query,
            options,
            runtime.reranking,
        )
        return RetrievalResults(results=[_result(h) for h in hits])

    return work


def _result(hit: Hit) -> Result:
    return Result(
        content=hit.chunk.text,
        score=hit.score,
        rerank_score=hit.rerank_score,  # null unless a rerank server ordered the hits
        metadata=hit.file.user_metadata or {},
        static_fields=StaticFields(
            chunk_index=hit.chunk.chunk_index,
            chunk_start_char=hit.chunk.start_char,
            chunk_end_char=hit.chunk.end_char,
            chunk_token_count=hit.chunk.token_count,
            page_range_start=hit.chunk.page_start,
            page_range_end=hit.chunk.page_end,
            parsed_directory_file_id=hit.file.id,
            attachments=[
                AttachmentRef(attachment_name=name, source_id=hit.file.id, type="screenshot")
                for name in hit.attachments
            ],
        ),
    )


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
        text_weight=cast(float, text),  # set on every branch above
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

    def keep(chunk: HitChunk, parsed: HitFile) -> bool:
        checks: list[tuple[Any, ValueFilter | Any]] = [
            (parsed.id, static.parsed_directory_file_id),
            (chunk.page_start, static.page_range_start),
            (chunk.page_end, static.page_range_end),
            (chunk.chunk_index, static.chunk_index),
        ]
        metadata = parsed.user_metadata or {}
        for key, condition in custom.items():
            for bound in condition if isinstance(condition, list) else [condition]:
                checks.append((metadata.get(key), bound))
        return all(f is None or filter_matches(actual, f.operator, f.value) for actual, f in checks)

    return keep


def find_work(body: FindRequest, tokens: PageTokens) -> Work[CursorPage[FoundFile]]:
    def work(tx: Session, scope: Scope) -> CursorPage[FoundFile]:
        listing = f"find:{scope.project_id}:{body.index_id}"
        rows, after = service.find_files(
            tx,
            scope,
            body.index_id,
            file_name=body.file_name,
            file_name_contains=body.file_name_contains,
            after=page_after(tokens, listing, body.page_token, service.FIND_ORDER),
            page_size=body.page_size or PAGE_DEFAULT,
        )
        return CursorPage[FoundFile](
            items=[FoundFile(file_id=f.id, file_name=f.file_name) for f in rows],
            next_page_token=next_token(tokens, listing, after),
        )

    return work


def grep_work(
    body: GrepRequest, tokens: PageTokens, blobs: BlobStore
) -> Work[CursorPage[GrepMatchOut]]:
    def work(tx: Session, scope: Scope) -> CursorPage[GrepMatchOut]:
        listing = f"grep:{scope.project_id}:{body.index_id}:{body.file_id}:{body.pattern}"
        start = 0
        if body.page_token:
            position = tokens.decode(listing, body.page_token)
            if len(position) != 1 or not isinstance(position[0], int):
                raise InvalidPageToken("malformed page_token")
            start = position[0]
        text = service.parsed_text(tx, scope, blobs, body.index_id, body.file_id)
        matches, resume = service.grep(
            text,
            body.pattern,
            context_chars=body.context_chars or 0,
            start_after=start,
            limit=body.page_size or PAGE_DEFAULT,
        )
        return CursorPage[GrepMatchOut](
            items=[
                GrepMatchOut(content=m.content, start_char=m.start_char, end_char=m.end_char)
                for m in matches
            ],
            next_page_token=tokens.encode(listing, [resume]) if resume is not None else None,
        )

    return work


def read_work(body: ReadRequest, blobs: BlobStore) -> Work[ReadResult]:
    def work(tx: Session, scope: Scope) -> ReadResult:
        text = service.parsed_text(tx, scope, blobs, body.index_id, body.file_id)
        end = None if body.max_length is None else body.offset + body.max_length
        return ReadResult(content=text[body.offset : end])

    return work
