"""Chat turns (contract §3.7) streamed as Server-Sent Events, and three extensions: follow or
resume a turn's stream, cancel a running turn, export a transcript."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol, TypeVar

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from indexchat.api import sse
from indexchat.api.deps import ProjectCaller
from indexchat.api.responses import json_response
from indexchat.api.schemas.common import MAX_INT32, ErrorBody, IdPath
from indexchat.api.schemas.sessions import ChatSessionOut, ChatSessionWithEvents
from indexchat.api.schemas.turns import TurnRequest
from indexchat.domain import Scope
from indexchat.events import from_wire
from indexchat.services import sessions, transcripts, turns
from indexchat.services.turn_runner import CLIENT_GONE, TurnRun, TurnRunner

T = TypeVar("T")


class ScopedCaller(Protocol):
    """Who may read a session's stream: a project's caller, or a share link's viewer."""

    async def in_project(
        self, work: Callable[[Session, Scope], T], *, heavy: bool = False
    ) -> T: ...

    async def writing(self, work: Callable[[Session, Scope], T], *, heavy: bool = False) -> T: ...


@dataclass(frozen=True)
class Replay:
    """Stored events after a point, already framed as SSE by the thread that read them: a long
    history framed on the event loop would hold up every other stream."""

    frames: bytes
    last: int  # position of the last event framed (0: none)
    running: bool
    abandoned: bool

    @classmethod
    def of(cls, since: turns.EventsSince) -> Replay:
        last = since.events[-1][0] if since.events else 0
        framed = sse.frames(event for _seq, event in since.events)
        return cls(framed, last, since.running, since.abandoned)


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
    caller: ScopedCaller,
    runner: TurnRunner,
    session_id: str,
    after: int,
    replay: Replay | None = None,
) -> Response:
    """The stored events of a session after ``after`` (``replay``, when the caller read them
    already), then its running turn's, as SSE."""
    if replay is None or replay.abandoned:
        replay = await _events_after(caller, runner, session_id, after, heavy=True)
    local = runner.running.get(session_id)
    return sse.EventStreamResponse(
        _follow(caller, runner, session_id, replay, local), headers=sse.HEADERS
    )


async def _follow(
    caller: ScopedCaller,
    runner: TurnRunner,
    session_id: str,
    replay: Replay,
    local: TurnRun | None,
) -> AsyncIterator[bytes]:
    if replay.frames:
        yield replay.frames
    if not replay.running:
        return
    if local is not None:  # runs here: follow it live, deltas included
        live = local.follow(after_seq=replay.last, keepalive_seconds=sse.KEEPALIVE_SECONDS)
        async for chunk in sse.encode(live):
            yield chunk
        return
    last = replay.last
    while True:  # runs in another server process: poll the stored events
        await asyncio.sleep(runner.timings.follow_poll_seconds)
        replay = await _events_after(caller, runner, session_id, last)
        if replay.frames:
            yield replay.frames
            last = replay.last
        if not replay.running:
            return


async def _events_after(
    caller: ScopedCaller, runner: TurnRunner, session_id: str, after: int, *, heavy: bool = False
) -> Replay:
    """The stored events after ``after``. A turn whose server is gone is closed first, so the
    events end with its ``stop``. ``heavy``: the read may be the whole history."""
    owner = runner.owner

    def read(tx: Session, scope: Scope) -> Replay:
        return Replay.of(turns.events_after(tx, scope, session_id, after, owner=owner))

    def close(tx: Session, scope: Scope) -> None:
        turns.close_if_abandoned(tx, scope, session_id, owner=owner)

    replay = await caller.in_project(read, heavy=heavy)
    if replay.abandoned:
        await caller.writing(close)
        replay = await caller.in_project(read, heavy=heavy)
    return replay


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
