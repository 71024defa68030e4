"""The one place where failures become HTTP answers, all shaped ``{"detail": ...}``."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexchat.errors import (
    Conflict,
    Forbidden,
    IndexchatError,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Unauthenticated,
)

log = logging.getLogger("indexchat.api")

STATUS_BY_ERROR: dict[type[IndexchatError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 400,
    LimitExceeded: 413,
    Unauthenticated: 401,
    Forbidden: 403,
}
# The SDK retries 409 six times unless told not to; our conflicts never heal by waiting.
NO_RETRY = {"x-should-retry": "false"}


def error_response(
    status: int, detail: object, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def status_for(error: IndexchatError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def known_error_response(exc: IndexchatError) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 409:
        headers.update(NO_RETRY)
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    return error_response(status, exc.detail, headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(IndexchatError)
    async def _known(_request: Request, exc: IndexchatError) -> JSONResponse:
        return known_error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; list them all.
            allowed = sorted(_allowed_methods(app, request))
            return error_response(405, exc.detail, {"allow": ", ".join(allowed)})
        return await http_exception_handler(request, exc)


def _allowed_methods(app: FastAPI, request: Request) -> set[str]:
    """The methods of the path's routes. Where templates overlap (``/files/query`` is also
    ``/files/{file_id}``), those of the most literal template: the resource the path names."""
    path = request.scope["path"]
    matching = [route for route in _method_table(app) if route[0].match(path)]
    best = max((literal for _, literal, _ in matching), default=0)
    return {m for _, literal, methods in matching if literal == best for m in methods}


_Route = tuple[re.Pattern[str], int, frozenset[str]]  # path pattern, literal segments, methods


def _method_table(app: FastAPI) -> list[_Route]:
    """Each route's path pattern and methods, routers included (built once, on the first 405)."""
    table: list[_Route] | None = getattr(app.state, "method_table", None)
    if table is None:
        table = [
            (
                compile_path(route.path)[0],
                sum(1 for part in route.path.split("/") if part and "{" not in part),
                frozenset(route.methods),
            )
            for route in iter_route_contexts(app.router.routes)
            if route.path and route.methods
        ]
        app.state.method_table = table
    return table


class CatchUnexpected:
    """Answer an unexpected error with a 500 and keep the connection open. (Starlette's handler
    for ``Exception`` re-raises after answering, and uvicorn then closes the connection, so a
    client's next pooled request failed with "Server disconnected".)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise  # half an answer is out: only closing the connection can end it
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            # A retried POST could repeat what already happened (e.g. start a second chat turn).
            headers = NO_RETRY if scope["method"] == "POST" else None
            await error_response(500, "internal server error", headers)(scope, receive, send)
