"""The page routes: /, /indexes, /login, /logout, and the static files. They render templates
only; the pages get their data from the JSON API and its event streams, like any other client."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Query, Request
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from indexchat.errors import Unauthenticated
from indexchat.runtime import Runtime
from indexchat.web import auth

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
# No inline script or style anywhere: everything the pages run comes from /static.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # a page names who is signed in
}
_IMMUTABLE = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


@cache
def asset_version() -> str:
    """A hash of every static file: it is part of their URLs, so browsers may cache them
    forever and still fetch new ones after an upgrade (ES module imports are relative, so the
    version must be in the path, not in a query string)."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(STATIC_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def static_url(path: str) -> str:
    return f"/static/{asset_version()}/{path}"


templates = Jinja2Templates(directory=_HERE / "templates")
templates.env.globals["static"] = static_url


class _VersionedStatic(StaticFiles):
    """Static files under a versioned path, cacheable for a year."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = _IMMUTABLE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI) -> None:
    """The page routes, and the static files, compressed (the API's responses are not)."""
    app.include_router(router)
    static = GZipMiddleware(_VersionedStatic(directory=STATIC_DIR), minimum_size=512)
    app.mount(f"/static/{asset_version()}", static, name="static")


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
