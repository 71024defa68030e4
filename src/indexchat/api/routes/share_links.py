"""Share links of a chat session (extension): create, list, revoke. Only callers of the
session's project reach them; the token is in the created link's `url`, once."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy.orm import Session

from indexchat.api.deps import ProjectCaller, project_router
from indexchat.api.responses import json_response
from indexchat.api.schemas.common import CursorPage, IdPath
from indexchat.api.schemas.share_links import CreatedShareLink, CreateShareLink, ShareLinkOut
from indexchat.domain import Scope, utcnow
from indexchat.services import share_links as service

router = project_router("/api/v1/chat/{session_id}/share-links", "share links")


def share_url(request: Request, token: str) -> str:
    return str(request.url_for("shared_page", token=token))


@router.post(
    "",
    response_model=CreatedShareLink,
    summary="Create a share link to a chat session (extension)",
    operation_id="chat_share_links_create",
)
async def create_link(
    session_id: IdPath, body: CreateShareLink, caller: ProjectCaller, request: Request
) -> Response:
    expires_in = (
        timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds is not None else None
    )

    def work(tx: Session, scope: Scope) -> Response:
        issued = service.create_link(
            tx, scope, session_id, shared_access=body.shared_access, expires_in=expires_in
        )
        out = ShareLinkOut.of(issued.link, utcnow())
        created = CreatedShareLink(**out.model_dump(), url=share_url(request, issued.token))
        return json_response(created)

    return await caller.in_project(work)


@router.get(
    "",
    response_model=CursorPage[ShareLinkOut],
    summary="List a chat session's share links, newest first (extension)",
    operation_id="chat_share_links_list",
)
async def list_links(session_id: IdPath, caller: ProjectCaller) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        now = utcnow()
        items = [ShareLinkOut.of(link, now) for link in service.list_links(tx, scope, session_id)]
        return json_response(CursorPage[ShareLinkOut](items=items))

    return await caller.in_project(work)


@router.delete(
    "/{link_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke a share link (extension)",
    operation_id="chat_share_links_delete",
)
async def revoke_link(session_id: IdPath, link_id: IdPath, caller: ProjectCaller) -> Response:
    """The link, and every copy its viewers started, stop working at once."""

    def work(tx: Session, scope: Scope) -> Response:
        service.revoke_link(tx, scope, session_id, link_id)
        return Response(status_code=204)

    return await caller.in_project(work)
