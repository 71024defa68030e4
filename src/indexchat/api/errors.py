"""The one place where failures become HTTP answers, all shaped ``{"detail": ...}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # A retried POST could repeat what already happened (e.g. start a second chat turn).
        headers = NO_RETRY if request.method == "POST" else None
        return error_response(500, "internal server error", headers)


def _allowed_methods(app: FastAPI, request: Request) -> set[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return methods
