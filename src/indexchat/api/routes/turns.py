"""Chat turns (contract §3.7) streamed as Server-Sent Events, and three extensions: follow or
resume a turn's stream, cancel a running turn, export a transcript."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from indexchat.api import sse
from indexchat.api.deps import ProjectCaller
from indexchat.api.responses import json_response
from indexchat.api.schemas.common import MAX_INT32, ErrorBody, IdPath
from indexchat.api.schemas.sessions import ChatSessionOut, ChatSessionWithEvents
from indexchat.api.schemas.turns import TurnRequest
from indexchat.domain import Scope
from indexchat.events import Event, from_wire
from indexchat.services import sessions, transcripts, turns
from indexchat.services.turn_runner import (
    CLIENT_GONE,
    Follower,
    Reader,
    Replay,
    TurnRun,
    TurnRunner,
)

router = APIRouter(
    prefix="/api/v1/chat",
    tags=["chat"],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
_EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: `event: <type>` and `data: <JSON event>` per event, "
        "ending with one `stop` event.",
        "content": {"text/event-stream": {"schema": sse.EVENT_SCHEMA}},
    },
}


def runner_of(request: Request) -> TurnRunner:
    runner: TurnRunner = request.app.state.turns
    return runner


@router.post(
    "/{session_id}/messages/stream",
    response_class=Response,  # error answers stay documented as JSON
    summary="Run one chat turn, streamed as Server-Sent Events",
    operation_id="chat_stream",
    responses={**_EVENT_STREAM, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def stream_turn(
    session_id: IdPath, body: TurnRequest, caller: ProjectCaller, request: Request
) -> Response:
    """Runs the agent over the turn's indexes. Checks (unknown session, index set differing
    from the bound one, a turn already running) answer 404/409 before streaming starts; a
    failure after that ends the stream with a `stop` event whose `is_error` is true."""
    retried = request.headers.get("x-stainless-retry-count", "0").strip() not in ("", "0")

    runner = runner_of(request)

    def begin(tx: Session, scope: Scope) -> turns.TurnPlan:
        return turns.begin_turn(
            tx,
            scope,
            session_id,
            owner=runner.owner,
            index_ids=body.index_ids,
            prompt=body.prompt,
            require_all_indexes=body.require_all_indexes,
            is_retry=retried,
        )

    plan = await caller.in_project(begin)
    run = runner.start(plan)
    stream = owned_stream(run, cancel_on_leave=not body.continue_on_disconnect)
    return sse.EventStreamResponse(stream, headers=sse.HEADERS)


async def owned_stream(run: TurnRun, *, cancel_on_leave: bool) -> AsyncIterator[bytes]:
    """The starting client's stream: if it goes away, the turn is cancelled (and says so),
    unless the client asked for the turn to go on without it."""
    try:
        live = run.follow_batches(keepalive_seconds=sse.KEEPALIVE_SECONDS)
        async for chunk in sse.encode_batches(live):
            yield chunk
    finally:
        if cancel_on_leave:
            run.cancel(CLIENT_GONE)


@router.get(
    "/{session_id}/messages/stream",
    response_class=Response,  # error answers stay documented as JSON
    summary="Follow or resume a chat session's stream (extension)",
    operation_id="chat_stream_follow",
    responses=_EVENT_STREAM,
)
async def follow_turn(
    session_id: IdPath,
    caller: ProjectCaller,
    request: Request,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_INT32,
            description="Events the client already has: the stream starts with history event "
            "number after+1 (events are numbered from 1, as in `GET /api/v1/chat/{id}`).",
        ),
    ] = 0,
) -> Response:
    """Replays the stored events after `after`, then follows the running turn, if any, until its
    `stop` event. Leaving this stream does not cancel the turn."""
    return await follow_response(caller, runner_of(request), session_id, after)


async def follow_response(
    reader: Reader,
    runner: TurnRunner,
    session_id: str,
    after: int,
    replay: Replay | None = None,
) -> Response:
    """The stored events of a session after ``after`` (``replay``, when the caller read them
    already), then its running turn's, as SSE."""
    follower = Follower(runner, reader, session_id, sse.frames)
    followed = await follower.start(after, replay, keepalive_seconds=sse.KEEPALIVE_SECONDS)
    return sse.EventStreamResponse(_framed(followed), headers=sse.HEADERS)


async def _framed(followed: AsyncIterator[bytes | Event | None]) -> AsyncIterator[bytes]:
    """What a follower gets, as SSE: encoded stored events as they are, a live event framed, a
    keep-alive comment for each quiet spell."""
    async for item in followed:
        if item is None:
            yield sse.KEEPALIVE
        elif isinstance(item, bytes):
            yield item
        else:
            yield sse.frame(item)


@router.post(
    "/{session_id}/messages/cancel",
    response_model=ChatSessionOut,
    summary="Cancel the running chat turn (extension)",
    operation_id="chat_cancel",
    responses={409: {"model": ErrorBody}},
)
async def cancel_turn(session_id: IdPath, caller: ProjectCaller, request: Request) -> Response:
    """The turn stops at once and ends with a `stop` event saying it was cancelled (a turn whose
    server stopped is closed with a `stop` saying so). 409 when no turn is running."""

    runner = runner_of(request)

    def work(tx: Session, scope: Scope) -> Response:
        chat = turns.request_cancel(tx, scope, session_id, owner=runner.owner)
        return json_response(ChatSessionOut.of(chat))

    answer = await caller.in_project(work)
    runner.cancel_local(session_id)
    return answer


@router.get(
    "/{session_id}/export",
    summary="Export a chat transcript as Markdown or JSON (extension)",
    operation_id="chat_export",
    responses={
        200: {
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                # A reference, not the model's own JSON schema: that one's "#/$defs/…"
                # references do not resolve inside the OpenAPI document.
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ChatSessionWithEvents"}
                },
            }
        }
    },
)
async def export_transcript(
    session_id: IdPath,
    caller: ProjectCaller,
    format: Annotated[Literal["md", "json"], Query(description="md or json")] = "md",
) -> Response:
    def work(tx: Session, scope: Scope) -> Response:
        chat = sessions.get_session(tx, scope, session_id)
        events = sessions.session_events(tx, scope, session_id)
        if format == "json":
            answer = json_response(ChatSessionWithEvents.with_events(chat, events))
            answer.headers["content-disposition"] = f'attachment; filename="{chat.id}.json"'
            return answer
        return Response(
            transcripts.markdown(chat, [from_wire(e.payload) for e in events]),
            media_type="text/markdown; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{chat.id}.md"'},
        )

    return await caller.in_project(work, heavy=True)
