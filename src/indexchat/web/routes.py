"""The page routes: /, /indexes, /login, /logout, and the static files. They render templates
only; the pages get their data from the JSON API and its event streams, like any other client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from indexchat.errors import NotFound, RateLimited, Unauthenticated
from indexchat.runtime import Runtime
from indexchat.services import sessions, share_links
from indexchat.web import auth
from indexchat.web.assets import assets

# No inline script or style anywhere: everything the pages run comes from /static.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # a page names who is signed in
}

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["static"] = lambda path: assets().url(path)


def install(app: FastAPI) -> None:
    assets()  # read and compress the static files now, not on a browser's first visit
    app.include_router(router)


@router.get("/static/{version}/{path:path}")
async def static_file(request: Request, version: str, path: str) -> Response:
    return assets().response(version, path, request.headers.get("accept-encoding", ""))


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers=SECURITY_HEADERS
    )


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def _local_path(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


async def _page(request: Request, template: str, page: str) -> Response:
    token = auth.cookie_token(request)
    try:
        if token is None:
            raise Unauthenticated("not signed in")
        user = await auth.open_page(_runtime(request), token)
    except Unauthenticated:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return _redirect(f"/login?next={quote(target, safe='/')}")
    response = _render(request, template, page=page, user=user)
    auth.set_cookie(response, request, token)  # the sign-in slides: it lasts from now
    return response


@router.get("/")
async def chat_page(request: Request) -> Response:
    return await _page(request, "chat.html", "chat")


@router.get("/indexes")
async def indexes_page(request: Request) -> Response:
    return await _page(request, "indexes.html", "indexes")


@router.get("/s/{token}", name="shared_page")
async def shared_page(request: Request, token: str) -> Response:
    """A shared chat, for anyone holding the link; every way a link can fail looks the same."""
    runtime = _runtime(request)
    address = request.client.host if request.client else ""

    def look_up() -> tuple[str, str | None]:
        with runtime.db.read() as tx:
            view = share_links.open_guarded(
                tx, token, address=address, limiter=runtime.share_failures
            )
            chat = sessions.get_session(tx, view.scope, view.link.session_id)
            return view.link.shared_access, chat.generated_title

    try:
        access, title = await run_in_threadpool(look_up)
    except NotFound:
        return _render(
            request,
            "shared_missing.html",
            404,
            page="shared-missing",
            heading="This link does not work",
            message="The chat it pointed to is not shared any more, the link has expired, or "
            "it was copied incompletely. Ask whoever sent it for a new one.",
        )
    except RateLimited as exc:
        answer = _render(
            request,
            "shared_missing.html",
            429,
            page="shared-missing",
            heading="Too many attempts",
            message=f"Too many links that do not work were opened from here. Try again in "
            f"{exc.retry_after_seconds} seconds.",
        )
        answer.headers["retry-after"] = str(exc.retry_after_seconds)
        return answer
    answer = _render(request, "shared.html", page="shared", shared_access=access, title=title)
    answer.headers["x-robots-tag"] = "noindex"  # a link handed to some, not to search engines
    return answer


@router.get("/login")
async def login_page(
    request: Request,
    token: Annotated[str | None, Query(max_length=200)] = None,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """The sign-in form; with ``token`` (the link ``indexchat serve`` prints), signs in at once."""
    if token is None:
        return _render(request, "login.html", page="login", next=_local_path(next))
    try:
        issued = await auth.sign_in_with_link(_runtime(request), token)
    except Unauthenticated as exc:
        return _render(request, "login.html", 400, page="login", next="/", error=exc.message)
    response = _redirect(_local_path(next))
    auth.set_cookie(response, request, issued.token)
    return response


@router.post("/login")
async def sign_in(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    auth.check_same_origin(request)
    try:
        issued = await auth.sign_in_with_key(_runtime(request), api_key.strip())
    except Unauthenticated:
        error = "That API key is not valid, or it was revoked."
        return _render(request, "login.html", 401, page="login", next=next, error=error)
    response = _redirect(_local_path(next))
    auth.set_cookie(response, request, issued.token)
    return response


@router.post("/logout")
async def sign_out(request: Request) -> Response:
    auth.check_same_origin(request)
    token = auth.cookie_token(request)
    if token is not None:
        await auth.sign_out(_runtime(request), token)
    response = _redirect("/login")
    auth.clear_cookie(response, request)
    return response
