"""Attachments of parsed files, e.g. page screenshots (contract §9)."""

from __future__ import annotations

import mimetypes
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from indexchat.api.deps import ProjectCaller, project_router
from indexchat.api.errors import error_response
from indexchat.api.responses import json_response, stream_blob
from indexchat.api.schemas.common import CursorPage, ErrorBody
from indexchat.api.schemas.files import PresignedURL, utc
from indexchat.api.schemas.retrieval import AttachmentInfo
from indexchat.api.signing import INVALID_LINK, SignedLink, signed_link
from indexchat.domain import Scope
from indexchat.errors import ContentMissing
from indexchat.services import retrieval as service

router = project_router("/api/v1/beta/attachments", "attachments")
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
    def work(tx: Session, scope: Scope) -> Response:
        items = [
            AttachmentInfo(name=a.name, size=a.size_bytes, last_modified=utc(a.created_at))
            for a in service.attachments(tx, scope, source_id)
        ]
        return json_response(CursorPage[AttachmentInfo](items=items))

    return await caller.in_project(work, heavy=True)  # every attachment of the file: unbounded


@router.get(
    "/{attachment_name:path}",
    response_model=PresignedURL,
    summary="A signed URL to download an attachment",
    operation_id="attachments_get",
)
async def get_attachment(
    request: Request, attachment_name: AttachmentName, caller: ProjectCaller, source_id: SourceId
) -> Response:
    lifetime = caller.runtime.settings.download_link_seconds

    def work(tx: Session, scope: Scope) -> Response:
        found = service.attachment(tx, scope, source_id, attachment_name)
        url = signed_link(
            request,
            caller.runtime,
            scope,
            "download_attachment",
            lifetime,
            attachment_id=str(found.id),
        )
        return json_response(url)

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
        409: {"model": ErrorBody, "description": "The stored bytes are missing"},
    },
)
async def download_attachment(
    request: Request, attachment_id: Annotated[int, Path(ge=1, le=2**62)], link: SignedLink
) -> Response:
    runtime = request.app.state.runtime
    if not link.verify(runtime, "download_attachment", attachment_id=str(attachment_id)):
        return error_response(403, INVALID_LINK)

    def load() -> tuple[str, BinaryIO, int]:
        with runtime.db.read() as tx:
            link.require_active(tx)
            found = service.attachment_for_download(tx, attachment_id)
            name, digest = found.name, found.content_hash
        try:
            return name, *runtime.blobs.open(digest)
        except ContentMissing:
            raise ContentMissing(
                f"attachment {name!r} is missing: sync its index again to restore it"
            ) from None

    name, reader, size = await run_in_threadpool(load)
    return stream_blob(reader, size, mimetypes.guess_type(name)[0] or "application/octet-stream")
