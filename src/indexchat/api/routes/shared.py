"""What a share link's holder may do, without signing in (extension): read the shared session
and follow it live, fetch the attachments its events cite, and, through a `query` link, ask in
their own copy (a fork, kept by the `share_viewer` cookie). Nothing else is reachable: a token
opens exactly one session, and every URL a viewer uses lives under its link's `/s/{token}/`
(outside `/api/`, whose requests all need a key or a sign-in). Unknown, revoked and expired
tokens all answer the same 404, and an address that keeps trying them gets 429 for a while."""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from indexchat.api import sse
from indexchat.api.deps import run_heavy
from indexchat.api.responses import json_response, stream_blob
from indexchat.api.routes.attachments import AttachmentName
from indexchat.api.routes.turns import follow_response, owned_stream, runner_of
from indexchat.api.schemas.common import MAX_INT32, ErrorBody, IdPath
from indexchat.api.schemas.sessions import ChatSessionWithEvents
from indexchat.api.schemas.share_links import SharedChat, SharedTurnRequest
from indexchat.domain import Scope
from indexchat.errors import NotFound
from indexchat.runtime import Runtime
from indexchat.services import sessions, share_links, turns
from indexchat.services.share_links import SharedView
from indexchat.services.turn_runner import Replay
from indexchat.web import auth

T = TypeVar("T")
VIEWER_COOKIE = "share_viewer"
_VIEWER_COOKIE_SECONDS = 365 * 86400

router = APIRouter(
    prefix="/s/{token}",
    tags=["share links"],
    responses={404: {"model": ErrorBody}, 429: {"model": ErrorBody}},
)
Token = Annotated[str, Path(max_length=200, description="The token of a share link's URL.")]
After = Annotated[int, Query(ge=0, le=MAX_INT32, description="Events the client already has.")]


@dataclass(frozen=True)
class Viewer:
    """A share link's holder: every call checks the token again, so a revoked link stops a
    viewer mid-stream too."""

    runtime: Runtime
    token: str
    address: str
    viewer_token: str | None
    write: bool = False

    async def shared(self, work: Callable[[Session, SharedView], T], *, heavy: bool = False) -> T:
        """``heavy``: work that grows with the data (a whole history), run in a worker thread
        as for ``Caller.in_project``."""
        if self.runtime.db.is_sqlite and not self.write and not heavy:
            return self._run(work)  # a read in WAL mode never waits: no thread hop
        if heavy:
            return await run_heavy(self._run, work)
        return await run_in_threadpool(self._run, work)

    async def in_project(self, work: Callable[[Session, Scope], T], *, heavy: bool = False) -> T:
        return await self.shared(lambda tx, view: work(tx, view.scope), heavy=heavy)

    async def writing(self, work: Callable[[Session, Scope], T], *, heavy: bool = False) -> T:
        return await replace(self, write=True).in_project(work, heavy=heavy)

    def _run(self, work: Callable[[Session, SharedView], T]) -> T:
        db = self.runtime.db
        with db.write() if self.write else db.read() as tx:
            view = share_links.open_guarded(
                tx, self.token, address=self.address, limiter=self.runtime.share_failures
            )
            return work(tx, view)


def _viewer(request: Request, token: str, *, write: bool = False) -> Viewer:
    return Viewer(
        runtime=request.app.state.runtime,
        token=token,
        address=request.client.host if request.client else "",
        viewer_token=request.cookies.get(VIEWER_COOKIE) or None,
        write=write,
    )


@router.get(
    "/chat",
    response_model=SharedChat,
    summary="Read a shared chat session, and the viewer's own copy if any (extension)",
    operation_id="shared_retrieve",
)
async def get_shared(token: Token, request: Request) -> Response:
    viewer = _viewer(request, token)

    def work(tx: Session, view: SharedView) -> Response:
        chat = sessions.get_session(tx, view.scope, view.link.session_id)
        events = sessions.session_events(tx, view.scope, chat.id)
        fork_id = share_links.viewer_fork(tx, view, viewer.viewer_token)
        fork = None
        if fork_id is not None:
            own = sessions.get_session(tx, view.scope, fork_id)
            own_events = sessions.session_events(tx, view.scope, fork_id)
            fork = ChatSessionWithEvents.with_events(own, own_events)
        return json_response(
            SharedChat(
                shared_access=view.link.shared_access,  # type: ignore[arg-type]
                session=ChatSessionWithEvents.with_events(chat, events),
                fork=fork,
            )
        )

    return await viewer.shared(work, heavy=True)


@router.get(
    "/chat/messages/stream",
    response_class=Response,
    summary="Follow a shared chat session's stream (extension)",
    operation_id="shared_stream_follow",
)
async def follow_shared(token: Token, request: Request, after: After = 0) -> Response:
    viewer = _viewer(request, token)

    runner = runner_of(request)

    def read(tx: Session, view: SharedView) -> tuple[str, Replay]:
        found = view.link.session_id
        since = turns.events_after(tx, view.scope, found, after, owner=runner.owner)
        return found, Replay.of(since, sse.frames)

    session_id, replay = await viewer.shared(read, heavy=True)  # one transaction for an idle poll
    return await follow_response(viewer, runner, session_id, after, replay)


@router.get(
    "/fork/messages/stream",
    response_class=Response,
    summary="Follow the viewer's own copy of a shared chat (extension)",
    operation_id="shared_fork_stream_follow",
)
async def follow_fork(token: Token, request: Request, after: After = 0) -> Response:
    viewer = _viewer(request, token)

    def fork_id(tx: Session, view: SharedView) -> str:
        found = share_links.viewer_fork(tx, view, viewer.viewer_token)
        if found is None:
            raise NotFound("this browser has not asked anything through this share link")
        return found

    session_id = await viewer.shared(fork_id)
    return await follow_response(viewer, runner_of(request), session_id, after)


@router.post(
    "/chat/messages/stream",
    response_class=Response,
    summary="Ask through a `query` share link, in the viewer's own copy (extension)",
    operation_id="shared_stream",
    responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def ask_shared(token: Token, body: SharedTurnRequest, request: Request) -> Response:
    """The first question copies the shared history into a new session of the owner's project
    (metadata `forked_from`) that belongs to this browser; the shared session never changes.
    403 on a `read_only` link; 429 with Retry-After past the link's hourly allowance."""
    viewer = _viewer(request, token, write=True)
    if viewer.viewer_token is not None:
        auth.check_same_origin(request)  # the cookie may only ask from this server's pages
    viewer_token = viewer.viewer_token or secrets.token_urlsafe(share_links.TOKEN_BYTES)
    runner = runner_of(request)
    per_hour = viewer.runtime.settings.share_link_turns_per_hour

    def begin(tx: Session, view: SharedView) -> turns.TurnPlan:
        fork_id = share_links.fork_for_turn(tx, view, viewer_token, turns_per_hour=per_hour)
        return turns.begin_turn(
            tx,
            view.scope,
            fork_id,
            owner=runner.owner,
            index_ids=[],
            prompt=body.prompt,
            require_all_indexes=False,
        )

    plan = await viewer.shared(begin)
    run = runner.start(plan)
    response = sse.EventStreamResponse(
        owned_stream(run, cancel_on_leave=False), headers=sse.HEADERS
    )
    if viewer.viewer_token is None:
        _set_viewer_cookie(response, request, viewer_token)
    return response


def _set_viewer_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        VIEWER_COOKIE,
        token,
        max_age=_VIEWER_COOKIE_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


@router.get(
    "/attachments/{source_id}/{attachment_name:path}",
    response_class=Response,
    summary="Download an attachment the shared chat cites (extension)",
    operation_id="shared_attachment",
    responses={
        200: {"content": {"image/png": {}}},
        409: {"model": ErrorBody, "description": "The stored bytes are missing"},
    },
)
async def shared_attachment(
    token: Token, source_id: IdPath, attachment_name: AttachmentName, request: Request
) -> Response:
    viewer = _viewer(request, token)

    def load(tx: Session, view: SharedView) -> tuple[str, str]:
        found = share_links.cited_attachment(
            tx, view, viewer.viewer_token, source_id, attachment_name
        )
        return found.name, found.content_hash

    name, digest = await viewer.shared(load)
    reader, size = await run_in_threadpool(viewer.runtime.blobs.open, digest)
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return stream_blob(reader, size, media, {"cache-control": "private, max-age=300"})
