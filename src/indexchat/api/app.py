"""create_app(settings): the FastAPI application with its lifespan, routers and handlers."""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import ModuleType

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from indexchat import __version__
from indexchat.api import errors, mcp
from indexchat.api.deps import authenticate_first
from indexchat.api.guards import BodyLimit, CredentialsFirst, QueryRules, RateLimit
from indexchat.api.routes import (
    attachments,
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
    turns,
)
from indexchat.api.schemas.common import ErrorBody
from indexchat.api.serving import favour_the_event_loop
from indexchat.config import Settings
from indexchat.runtime import Runtime
from indexchat.services.rate_limits import RateLimiter
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
    app = FastAPI(
        title="indexchat",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(settings, runtime, on_start),
        docs_url=None,  # served from the package by routes/docs.py, not from a CDN
        redoc_url=None,
        responses={
            400: {"model": ErrorBody, "description": "Malformed request"},
            413: {"model": ErrorBody, "description": "Request body too large"},
            414: {"model": ErrorBody, "description": "Request URL too long"},
            429: {
                "model": ErrorBody,
                "description": "Too many requests with this credential; retry after the "
                "seconds the retry-after header says",
            },
            431: {"model": ErrorBody, "description": "Request headers too large"},
        },
    )
    errors.install(app)
    _add_routes(app)
    _add_middleware(app, settings)
    return app


def _lifespan(
    settings: Settings, runtime: Runtime | None, on_start: Callable[[Runtime], None] | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open the runtime (unless given), the worker and the turn runner; close them after."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        favour_the_event_loop()
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
            await app.state.runtime.release_chat_model()
            if worker is not None:
                await run_in_threadpool(worker.close)
            if owned:
                app.state.runtime.close()

    return lifespan


def _add_routes(app: FastAPI) -> None:
    """The API's routers, the docs, the MCP endpoint and the web page."""
    routers: tuple[ModuleType, ...] = (health, projects, sessions, share_links, shared)
    routers += (turns, indexes, directories, files, retrieval)
    for module in (*routers, attachments):
        app.include_router(module.router)
    app.include_router(attachments.download_router)
    docs.install(app)
    # An ASGI app, which Route serves as is; add_route's type names only request handlers.
    app.router.add_route(mcp.PATH, mcp.Endpoint(), include_in_schema=False)  # type: ignore[arg-type]
    web.install(app)


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # Each added one wraps the ones before: the body's size is checked last, the credential
    # before it, its rate before that, and an unexpected error anywhere inside still answers 500.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_json_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_paths=UPLOAD_PATHS,
    )
    # (The MCP endpoint checks credentials itself before reading, answering in MCP's terms.)
    app.add_middleware(CredentialsFirst, authenticate=authenticate_first, prefixes=("/api/",))
    if settings.rate_limit_requests:  # before the credential is looked up in the database
        limiter = RateLimiter(
            settings.rate_limit_requests,
            settings.rate_limit_window_seconds,
            burst=settings.rate_limit_burst,
        )
        app.add_middleware(RateLimit, limiter=limiter, prefixes=("/api/", mcp.PATH))
    app.add_middleware(QueryRules, repeatable=REPEATABLE_QUERY_PARAMS)
    app.add_middleware(errors.CatchUnexpected)
    if settings.trusted_proxies.strip():
        # Outermost, so that everything inside sees the scheme the browser used.
        trusted = [h.strip() for h in settings.trusted_proxies.split(",") if h.strip()]
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)


# Query parameters that are arrays in the API (sent repeated: ?expand=a&expand=b).
REPEATABLE_QUERY_PARAMS = frozenset({"expand", "file_ids", "types"})
# The routes whose body is a file (multipart): they take up to max_upload_bytes.
UPLOAD_PATHS = re.compile(r"^/api/v1/beta/(files|directories/[^/]+/files/upload)/?$")
