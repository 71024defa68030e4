"""The MCP server at ``/mcp`` (streamable HTTP), answering from the server's own services.

Stateless: every HTTP request carries its credentials and is authenticated like an API call
(``caller_of``, the same ``Caller`` the routes use), in the project its ``organization_id`` /
``project_id`` query parameters pick. A request that would answer 401 or 404 in the API gets
the same answer here, before any MCP message is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INVALID_REQUEST
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from indexchat import __version__
from indexchat.api.deps import Caller, caller_of
from indexchat.api.errors import known_error_response
from indexchat.api.routes.retrieval import find_work, grep_work, read_work, retrieve_work
from indexchat.api.schemas.indexes import IndexOut
from indexchat.api.schemas.retrieval import FindRequest, GrepRequest, ReadRequest, RetrieveRequest
from indexchat.domain import Scope as ProjectScope
from indexchat.errors import IndexchatError
from indexchat.events import Delta
from indexchat.mcp.server import Context, build_server
from indexchat.mcp.tools import Answer, Json
from indexchat.services import indexes, sessions, turns
from indexchat.services.turn_runner import CLIENT_GONE, TurnRunner

PATH = "/mcp"
_LIST_PAGE = 100


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[None]:
    """Runs the MCP session manager for as long as the app serves."""
    manager = StreamableHTTPSessionManager(
        build_server(_backend_of, version=__version__), stateless=True, json_response=True
    )
    app.state.mcp = manager
    async with manager.run():
        yield


class Endpoint:
    """The ASGI app at ``/mcp`` (a class, so that starlette hands it the raw ASGI call)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await (await caller_of(request)).check()
        except IndexchatError as exc:
            await _refusal(exc)(scope, receive, send)
            return
        manager: StreamableHTTPSessionManager = request.app.state.mcp
        await manager.handle_request(scope, receive, send)


def _refusal(exc: IndexchatError) -> Response:
    """The API's answer (status, headers, ``detail``) that is also a JSON-RPC error, so MCP
    clients show the reason rather than a bare status."""
    response = known_error_response(exc)
    error = {"code": INVALID_REQUEST, "message": str(exc.detail)}
    body = {"jsonrpc": "2.0", "id": None, "error": error, "detail": exc.detail}
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return JSONResponse(body, status_code=response.status_code, headers=headers)


async def _backend_of(ctx: Context) -> ServiceBackend:
    request = cast(Request, ctx.request)  # served at /mcp: always over HTTP
    return ServiceBackend(await caller_of(request), request.app.state.turns)


class ServiceBackend:
    """The tools' API calls, run by the same functions the routes run."""

    def __init__(self, caller: Caller, runner: TurnRunner) -> None:
        self.caller = caller
        self.runner = runner

    async def list_indexes(self) -> list[Json]:
        return await self.caller.reading(_all_indexes, heavy=True)  # every page of them

    async def retrieve(self, body: Json) -> Json:
        work = retrieve_work(RetrieveRequest.model_validate(body), self.caller.runtime)
        return await self.caller.searching(_dumping(work), waits=True)

    async def find(self, body: Json) -> Json:
        work = find_work(FindRequest.model_validate(body), self.caller.page_tokens)
        return await self.caller.searching(_dumping(work))

    async def grep(self, body: Json) -> Json:
        request = GrepRequest.model_validate(body)
        work = grep_work(request, self.caller.page_tokens, self.caller.runtime.blobs)
        return await self.caller.searching(_dumping(work))

    async def read(self, body: Json) -> Json:
        work = read_work(ReadRequest.model_validate(body), self.caller.runtime.blobs)
        return await self.caller.searching(_dumping(work))

    async def ask(self, prompt: str, index_ids: list[str], session_id: str | None) -> Answer:
        shared_access = self.caller.runtime.settings.default_shared_access

        def begin(tx: Session, scope: ProjectScope) -> turns.TurnPlan:
            chat_id = session_id
            if chat_id is None:
                chat = sessions.create_session(
                    tx, scope, index_ids=index_ids, shared_access=shared_access
                )
                chat_id = chat.id
            return turns.begin_turn(
                tx,
                scope,
                chat_id,
                owner=self.runner.owner,
                index_ids=index_ids,
                prompt=prompt,
                require_all_indexes=True,
            )

        plan = await self.caller.in_project(begin)
        run = self.runner.start(plan)
        try:  # a client that leaves (or a cancelled call) cancels the turn, as a stream does
            followed = [e async for e in run.follow() if e is not None]
            events = [e.to_wire() for e in followed if not isinstance(e, Delta)]
        finally:
            run.cancel(CLIENT_GONE)
        return Answer(plan.session_id, events)


def _all_indexes(tx: Session, scope: ProjectScope) -> list[Json]:
    found: list[Json] = []
    after: list[Any] | None = None
    while True:
        rows, after = indexes.list_indexes(tx, scope, after=after, page_size=_LIST_PAGE)
        found += [IndexOut.of(index).model_dump(mode="json") for index in rows]
        if after is None:
            return found


def _dumping(
    work: Callable[[Session, ProjectScope], BaseModel],
) -> Callable[[Session, ProjectScope], Json]:
    """The work, its answer dumped in the same worker thread (a page of matches is big)."""
    return lambda tx, scope: work(tx, scope).model_dump(mode="json")
