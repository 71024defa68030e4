"""Chat sessions (contract §3.1-3.4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from indexchat.api.deps import PageTokensDep, RuntimeDep, ScopeDep, SessionDep
from indexchat.api.schemas.common import CursorPage, ErrorBody, IdPath
from indexchat.api.schemas.sessions import ChatSessionOut, ChatSessionWithEvents, CreateChatSession
from indexchat.services import sessions as service

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100

router = APIRouter(
    prefix="/api/v1/chat",
    tags=["chat"],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)


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
def create_session(
    body: CreateChatSession, scope: ScopeDep, session: SessionDep, runtime: RuntimeDep
) -> ChatSessionOut:
    chat = service.create_session(
        session,
        scope,
        index_ids=body.index_ids,
        shared_access=body.shared_access or runtime.settings.default_shared_access,
    )
    return ChatSessionOut.of(chat)


@router.get(
    "",
    response_model=CursorPage[ChatSessionOut],
    summary="List chat sessions, most recently updated first",
    operation_id="chat_list",
    responses={400: {"model": ErrorBody}},
)
def list_sessions(
    scope: ScopeDep,
    session: SessionDep,
    tokens: PageTokensDep,
    page_size: Annotated[
        int,
        Query(
            ge=1, le=PAGE_SIZE_MAX, description=f"Default {PAGE_SIZE_DEFAULT}, max {PAGE_SIZE_MAX}."
        ),
    ] = PAGE_SIZE_DEFAULT,
    page_token: Annotated[str | None, Query(max_length=1024)] = None,
) -> CursorPage[ChatSessionOut]:
    listing = f"chat:{scope.project_id}"
    after = tokens.decode_keyset(listing, page_token) if page_token else None
    page = service.list_sessions(session, scope, after=after, page_size=page_size)
    return CursorPage[ChatSessionOut](
        items=[ChatSessionOut.of(chat) for chat in page.sessions],
        next_page_token=(
            tokens.encode_keyset(listing, page.next_after) if page.next_after else None
        ),
    )


@router.get(
    "/{session_id}",
    response_model=ChatSessionWithEvents,
    summary="Get a chat session with its event history",
    operation_id="chat_retrieve",
)
def get_session(session_id: IdPath, scope: ScopeDep, session: SessionDep) -> ChatSessionWithEvents:
    chat = service.get_session(session, scope, session_id)
    events = service.session_events(session, scope, session_id)
    return ChatSessionWithEvents.with_events(chat, events)


@router.get(
    "/{session_id}/summary",
    response_model=ChatSessionOut,
    summary="Get a chat session summary",
    operation_id="chat_get_summary",
)
def get_summary(session_id: IdPath, scope: ScopeDep, session: SessionDep) -> ChatSessionOut:
    return ChatSessionOut.of(service.get_session(session, scope, session_id))


@router.delete(
    "/{session_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a chat session",
    operation_id="chat_delete",
)
def delete_session(session_id: IdPath, scope: ScopeDep, session: SessionDep) -> Response:
    service.delete_session(session, scope, session_id)
    return Response(status_code=204)
