"""Cookie sign-ins for the web page: the ``session`` cookie (create, look up, end) and the
cross-site request check. The page routes use all of it; ``api/deps.py`` uses the lookup and the
check, so every API call accepts the cookie as an alternative to a Bearer key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from indexchat.domain import Principal
from indexchat.errors import Forbidden
from indexchat.runtime import Runtime
from indexchat.services import sign_ins, tenancy
from indexchat.storage import tenancy as tenancy_store

T = TypeVar("T")

COOKIE = "session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class PageUser:
    """What a page shows of who is signed in."""

    project_name: str


def cookie_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def principal(tx: Session, token: str) -> Principal:
    """The signed-in browser's principal (one query; an expired or revoked sign-in is refused)."""
    return sign_ins.authenticate(tx, token)


def check_same_origin(request: Request) -> None:
    """Refuse an unsafe request made with the cookie from another site (CSRF).

    Browsers send ``Origin`` with every POST, PUT, PATCH and DELETE (``fetch`` and forms alike);
    ``Referer`` is the fallback for the few that omit it. A request with neither is refused.
    """
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get("origin") or _origin_of(request.headers.get("referer"))
    if sent is None or sent.lower() != own_origin(request):
        raise Forbidden(
            "cross-site request refused: a request signed in with the session cookie must come "
            "from this server's own pages (or send 'Authorization: Bearer <key>')"
        )


def own_origin(request: Request) -> str:
    """This server's origin as the browser sees it. The scheme is the connection's, or a trusted
    proxy's ``X-Forwarded-Proto`` (see ``trusted_proxies``); the host is the ``Host`` header."""
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}".lower()


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def lifetime(runtime: Runtime) -> timedelta:
    return timedelta(days=runtime.settings.session_cookie_days)


async def _write(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """``work`` in one write transaction, off the event loop."""

    def run() -> T:
        with runtime.db.write() as tx:
            return work(tx)

    return await run_in_threadpool(run)


async def sign_in_with_key(runtime: Runtime, api_key: str) -> sign_ins.IssuedSignIn:
    days = lifetime(runtime)
    return await _write(runtime, lambda s: sign_ins.sign_in_with_key(s, api_key, lifetime=days))


async def sign_in_with_link(runtime: Runtime, link_token: str) -> sign_ins.IssuedSignIn:
    days = lifetime(runtime)
    return await _write(runtime, lambda s: sign_ins.sign_in_with_link(s, link_token, lifetime=days))


async def open_page(runtime: Runtime, token: str) -> PageUser:
    """Check the sign-in for a page and make it last its full lifetime from now."""

    def work(tx: Session) -> PageUser:
        found = sign_ins.refresh(tx, token, lifetime=lifetime(runtime))
        scope = tenancy.resolve_scope(tx, found)
        project = tenancy_store.project_by_id(tx, scope.project_id)
        return PageUser(project_name=project.name if project is not None else scope.project_id)

    return await _write(runtime, work)


async def sign_out(runtime: Runtime, token: str) -> None:
    await _write(runtime, lambda s: sign_ins.sign_out(s, token))


def set_cookie(response: Response, request: Request, token: str) -> None:
    """The cookie lasts as long as the sign-in; ``Secure`` when the browser uses https."""
    runtime: Runtime = request.app.state.runtime
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(lifetime(runtime).total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
