"""create_app(settings): the FastAPI application with its lifespan, routers and handlers."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from fastapi import FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from indexchat import __version__
from indexchat.api import errors, mcp
from indexchat.api.routes import (
    attachments,
    chat_turns,
    directories,
    docs,
    files,
    health,
    indexes,
    projects,
    retrieval,
    sessions,
    share_links,
    shared,
)
from indexchat.api.schemas.common import ErrorBody
from indexchat.config import Settings
from indexchat.runtime import Runtime
from indexchat.services.turn_runner import TurnRunner
from indexchat.web import routes as web
from indexchat.worker import Worker

DESCRIPTION = """Self-hosted LlamaCloud Chat API. Authenticate with `Authorization: Bearer <key>`;
create a key with `indexchat keys create`. The web page's `session` cookie (`/login`) works too.
Every resource call takes optional `organization_id` / `project_id` query parameters and defaults
to the key's project."""


def app_from_environment() -> FastAPI:
    """The app of one of several server processes (``indexchat serve --workers N``)."""
    return create_app(Settings())


def create_app(
    settings: Settings,
    runtime: Runtime | None = None,
    on_start: Callable[[Runtime], None] | None = None,
) -> FastAPI:
    """Build the app. A given ``runtime`` is used as is (and left open) instead of opening one;
    ``on_start`` runs once the runtime is open, before the server takes requests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = Runtime.open(settings) if owned else runtime
        # Loads the model and freezes start-up objects out of full GC passes (see warm_up).
        threading.Thread(target=app.state.runtime.warm_up, name="warm-up", daemon=True).start()
        worker = Worker(app.state.runtime) if settings.run_worker else None
        if worker is not None:
            worker.start()
        app.state.turns = TurnRunner(app.state.runtime.chat_deps)
        await run_in_threadpool(app.state.turns.close_abandoned, app.state.runtime.db)
        if on_start is not None:
            on_start(app.state.runtime)
        try:
            async with mcp.serving(app):
                yield
        finally:
            await app.state.turns.close()
            if worker is not None:
                await run_in_threadpool(worker.close)
            if owned:
                app.state.runtime.close()

    app = FastAPI(
        title="indexchat",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package by routes/docs.py, not from a CDN
        redoc_url=None,
        responses={
            400: {"model": ErrorBody, "description": "Malformed request"},
            413: {"model": ErrorBody, "description": "Request body too large"},
        },
    )
    errors.install(app)
    routers = (health, projects, sessions, share_links, shared, chat_turns, indexes)
    routers += (directories, files, retrieval)
    for module in (*routers, attachments):
        app.include_router(module.router)
    app.include_router(attachments.download_router)
    docs.install(app)
    app.router.add_route(mcp.PATH, mcp.Endpoint(), include_in_schema=False)
    web.install(app)
    app.add_middleware(JsonBodyLimit, max_bytes=settings.max_json_body_bytes)
    app.add_middleware(SingleValuedQuery, repeatable=REPEATABLE_QUERY_PARAMS)
    if settings.trusted_proxies.strip():
        # Outermost, so that everything inside sees the scheme the browser used.
        trusted = [h.strip() for h in settings.trusted_proxies.split(",") if h.strip()]
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
    return app


# Query parameters that are arrays in the API (sent repeated: ?expand=a&expand=b).
REPEATABLE_QUERY_PARAMS = frozenset({"expand", "file_ids", "types"})


class SingleValuedQuery:
    """Refuse a scalar query parameter given twice (422) instead of silently keeping one."""

    def __init__(self, app: ASGIApp, repeatable: frozenset[str]) -> None:
        self.app = app
        self.repeatable = repeatable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            names = [k for k, _ in parse_qsl(scope["query_string"].decode("latin-1"), True)]
            repeated = {n for n in names if names.count(n) > 1} - self.repeatable
            if repeated:
                # Shaped like FastAPI's own validation errors.
                detail = [
                    {
                        "type": "repeated_parameter",
                        "loc": ["query", name],
                        "msg": "a single value is expected; the parameter was given more than once",
                    }
                    for name in sorted(repeated)
                ]
                await _send_json(send, 422, detail)
                return
        await self.app(scope, receive, send)


class JsonBodyLimit:
    """Refuse JSON bodies above a size with 413, before anything reads them into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(send, self.max_bytes)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                # FastAPI passes HTTPException through its body parsing untouched.
                raise HTTPException(413, _too_large_detail(self.max_bytes))
            return message

        await self.app(scope, counting_receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type") or ""
    return "json" in content_type.lower()


def _too_large_detail(limit: int) -> str:
    return f"request body larger than {limit} bytes"


async def _too_large(send: Send, limit: int) -> None:
    await _send_json(send, 413, _too_large_detail(limit))


async def _send_json(send: Send, status: int, detail: object) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
