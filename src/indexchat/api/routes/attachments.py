"""Attachments of parsed files, e.g. page screenshots (contract §9)."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from indexchat.api.deps import ProjectCaller
from indexchat.api.errors import error_response
from indexchat.api.responses import json_response
from indexchat.api.schemas.common import CursorPage, ErrorBody
from indexchat.api.schemas.files import PresignedURL, utc
from indexchat.api.schemas.retrieval import AttachmentInfo
from indexchat.api.signing import UrlSigner, expiry_datetime
from indexchat.domain import Scope
from indexchat.errors import NotFound
from indexchat.services import retrieval as service
from indexchat.storage.tables import Attachment

router = APIRouter(
    prefix="/api/v1/beta/attachments",
    tags=["attachments"],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
SourceId = Annotated[
    str,
    Query(
        pattern=r"^[A-Za-z0-9_.:-]{1,200}$",
        description="The parsed file (`source_id` of a retrieval result's attachment), or the "
        "directory file or uploaded file it was parsed from (then its newest parse).",
    ),
]
AttachmentName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_./-]{1,255}$")]


@router.get(
    "",
    response_model=CursorPage[AttachmentInfo],
    summary="List the attachments of a parsed file",
    operation_id="attachments_list",
)
async def list_attachments(caller: ProjectCaller, source_id: SourceId) -> Response:
    def work(session: Session, scope: Scope) -> Response:
        items = [
            AttachmentInfo(name=a.name, size=a.size_bytes, last_modified=utc(a.created_at))
            for a in service.attachments(session, scope, source_id)
        ]
        return json_response(CursorPage[AttachmentInfo](items=items))

    return await caller.in_project(work)


@router.get(
    "/{attachment_name:path}",
    response_model=PresignedURL,
    summary="A signed URL to download an attachment",
    operation_id="attachments_get",
)
async def get_attachment(
    request: Request, attachment_name: AttachmentName, caller: ProjectCaller, source_id: SourceId
) -> Response:
    signer = UrlSigner(caller.runtime.page_token_secret)

    def work(session: Session, scope: Scope) -> Response:
        found = service.attachment(session, scope, source_id, attachment_name)
        expires, signature = signer.sign(f"attachment:{found.id}", 3600)
        url = request.url_for("download_attachment", attachment_id=str(found.id))
        url = url.include_query_params(expires=expires, signature=signature)
        return json_response(PresignedURL(url=str(url), expires_at=expiry_datetime(expires)))

    return await caller.in_project(work)


download_router = APIRouter(prefix="/api/v1/beta/attachment-downloads", tags=["attachments"])


@download_router.get(
    "/{attachment_id}",
    name="download_attachment",
    summary="Download an attachment with a signed URL (no API key needed)",
    operation_id="attachments_download",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
    },
)
async def download_attachment(
    request: Request,
    attachment_id: Annotated[int, Path(ge=1, le=2**62)],
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(max_length=64)],
) -> Response:
    runtime = request.app.state.runtime
    if not UrlSigner(runtime.page_token_secret).verify(
        f"attachment:{attachment_id}", expires, signature
    ):
        return error_response(403, "download link is invalid or has expired")

    def load() -> tuple[str, bytes]:
        with runtime.db.read() as session:
            found = session.scalar(select(Attachment).where(Attachment.id == attachment_id))
            if found is None:
                raise NotFound(f"attachment {attachment_id} not found")
            return found.name, runtime.blobs.get(found.content_hash)

    name, data = await run_in_threadpool(load)
    return Response(data, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")
