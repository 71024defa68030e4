"""Chat sessions (contract §3.1-3.4)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import Query, Response
from sqlalchemy.orm import Session

from indexchat.api.deps import ProjectCaller, heavy_page, project_router
from indexchat.api.responses import json_response
from indexchat.api.schemas.common import CursorPage, IdPath
from indexchat.api.schemas.sessions import (
    ChatSessionFound,
    ChatSessionOut,
    ChatSessionWithEvents,
    CreateChatSession,
)
from indexchat.domain import Scope
from indexchat.errors import InvalidPageToken
from indexchat.services import session_search
from indexchat.services import sessions as service

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
PageSize = Annotated[
    int,
    Query(ge=1, le=PAGE_SIZE_MAX, description=f"Default {PAGE_SIZE_DEFAULT}, max {PAGE_SIZE_MAX}."),
]
PageToken = Annotated[str | None, Query(max_length=1024)]

router = project_router("/api/v1/chat", "chat")
_SESSION_ID_LINK = {"session_id": "$response.body#/session_id"}


@router.post(
    "",
    response_model=ChatSessionOut,
    summary="Create a chat session",
    operation_id="chat_create",
    responses={
        200: {
            "links": {
                name: {"operationId": f"chat_{name}", "parameters": _SESSION_ID_LINK}
                for name in ("retrieve", "get_summary", "delete")
            }
        }
    },
)
async def create_session(body: CreateChatSession, caller: ProjectCaller) -> Response:
    shared_access = body.shared_access or caller.runtime.settings.default_shared_access

    def work(tx: Session, scope: Scope) -> Response:
        chat = service.create_session(
            tx, scope, index_ids=body.index_ids, shared_access=shared_access
        )
        return json_response(ChatSessionOut.of(chat))

    return await caller.in_project(work)


@router.get(
    "",
    response_model=CursorPage[ChatSessionOut],
    summary="List chat sessions, most recently updated first",
    operation_id="chat_list",
)
async def list_sessions(
    caller: ProjectCaller,
    page_size: PageSize = PAGE_SIZE_DEFAULT,
    page_token: PageToken = None,
) -> Response:
    tokens = caller.page_tokens

    def work(tx: Session, scope: Scope) -> Response:
        listing = f"chat:{scope.project_id}"
        after = tokens.decode_keyset(listing, page_token) if page_token else None
        page = service.list_sessions(tx, scope, after=after, page_size=page_size)
        next_token = tokens.encode_keyset(listing, page.next_after) if page.next_after else None
        items = [ChatSessionOut.of(chat) for chat in page.sessions]
        return json_response(CursorPage[ChatSessionOut](items=items, next_page_token=next_token))

    return await caller.in_project(work, heavy=heavy_page(page_size))


MAX_QUERY_CHARS = 500


# Registered before /{session_id}: otherwise "search" would be taken for a session id.
@router.get(
    "/search",
    response_model=CursorPage[ChatSessionFound],
    summary="Search chat sessions by title, prompts and answers, best match first",
    description="An extension. Every word of `q` must match (the last one also as the start "
    "of a word, for search as you type), in the session's title, a prompt or an answer. "
    "Each item is the session with `snippet`, the matching text with each match between "
    "« and », and `event_index`, the position in the session's events where it matched. "
    "Only the caller's project is searched.",
    operation_id="chat_search",
)
async def search_sessions(
    caller: ProjectCaller,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Words.")],
    page_size: PageSize = PAGE_SIZE_DEFAULT,
    page_token: PageToken = None,
) -> Response:
    tokens = caller.page_tokens

    def work(tx: Session, scope: Scope) -> Response:
        # The token names the query: a page of one search cannot continue another.
        listing = f"chat-search:{scope.project_id}:{hashlib.sha256(q.encode()).hexdigest()}"
        after = _search_position(tokens.decode(listing, page_token)) if page_token else None
        page = session_search.search_sessions(tx, scope, q, after=after, page_size=page_size)
        items = [ChatSessionFound.found(f.session, f.snippet, f.event_index) for f in page.items]
        next_token = tokens.encode(listing, list(page.next_after)) if page.next_after else None
        return json_response(CursorPage[ChatSessionFound](items=items, next_page_token=next_token))

    # A full-text search over every session of the project: its cost grows with the project.
    return await caller.in_project(work, heavy=True)


def _search_position(position: list[Any]) -> session_search.Position:
    match position:
        case [int() | float() as score, str() as session_id]:
            return float(score), session_id
    raise InvalidPageToken("malformed page_token")


@router.get(
    "/{session_id}",
    response_model=ChatSessionWithEvents,
    summary="Get a chat session with its event history",
    operation_id="chat_retrieve",
)
async def get_session(session_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        chat = service.get_session(tx, scope, session_id)
        events = service.session_events(tx, scope, session_id)
        return json_response(ChatSessionWithEvents.with_events(chat, events))

    return await caller.in_project(work, heavy=True)  # the whole history, however long


@router.get(
    "/{session_id}/summary",
    response_model=ChatSessionOut,
    summary="Get a chat session summary",
    operation_id="chat_get_summary",
)
async def get_summary(session_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        return json_response(ChatSessionOut.of(service.get_session(tx, scope, session_id)))

    return await caller.in_project(work)


@router.delete(
    "/{session_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a chat session",
    operation_id="chat_delete",
)
async def delete_session(session_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        service.delete_session(tx, scope, session_id)
        return Response(status_code=204)

    return await caller.in_project(work)
