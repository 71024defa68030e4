"""Request dependencies, and the one worker-thread hop each request makes.

Dependencies here are ``async`` and do no I/O: they only collect what the request says (key,
``organization_id`` / ``project_id``). All database work of a request - authenticate, pick the
project, run the use case, commit, serialise - happens in one unit (``Caller.in_project`` /
``Caller.as_principal``), in a single call to the thread pool. On small requests a thread hop
costs more than the queries themselves (measured: ~0.3-1 ms per hop on a 2-core VM against
~0.6 ms of work for a page of 20 sessions), so we make at most one. On SQLite we make none when
nothing would wait: reads in WAL mode never wait on a lock, and a write runs inline only when no
other writer of this process holds the write lock (otherwise it queues in a worker thread).

Inline work holds the event loop, and with it every other request and every live event stream,
for as long as it runs. So only small, bounded work runs inline: work whose size depends on the
data (a session's whole history, a transcript, a page of hundreds of rows, a file's text) is
``heavy`` and always runs in a worker thread, serialisation included. A route that can tell
from the request how much it will read says so with ``heavy_page``.

A worker thread still needs the GIL, and the event loop takes it back only when the holder lets
go: at the end of the switch interval, if the holder runs at that moment, and only to whichever
waiting thread the OS wakes. With several heavy reads in flight the loop queued behind all of
them for every callback it ran. So heavy work runs ``HEAVY_AT_ONCE`` at a time per event loop
(``run_heavy``), and the server lowers the switch interval (``serving.favour_the_event_loop``):
the loop then waits on at most one other thread, for a short while, each time it wants the GIL.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from indexchat.api import guards
from indexchat.api.pagination import PageTokens
from indexchat.api.schemas.common import ErrorBody, OptionalIdQuery
from indexchat.domain import Principal, Scope
from indexchat.runtime import Runtime
from indexchat.services import tenancy
from indexchat.storage.db import WouldBlock
from indexchat.web import auth

T = TypeVar("T")

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The largest page of rows worth serving on the event loop: bigger pages go to a worker thread.
INLINE_PAGE_MAX = 50
# Heavy work in flight at once per event loop; more queue, so the loop competes with one thread.
HEAVY_AT_ONCE = 1
# Per event loop: tests run several servers, each on a loop of its own, in one process.
_heavy_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)
_bearer = HTTPBearer(
    auto_error=False, description="An indexchat API key (`indexchat keys create`)."
)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def single_form_values(request: Request) -> None:
    """Refuse (422, naming the field) a multipart field sent more than once. A form sends a
    list as the same field repeated, and every field of our forms holds one value: unchecked,
    the form would keep the last value of a list that JSON would have refused."""
    form = await request.form()  # the form the route's own fields came from, parsed once
    counts = Counter(name for name, _ in form.multi_items())
    repeated = sorted(name for name, times in counts.items() if times > 1)
    if repeated:
        raise RequestValidationError([guards.repeated_error("body", name) for name in repeated])


# For the ``dependencies`` of a route whose body is a form.
SingleFormValues = Depends(single_form_values)


@dataclass(frozen=True)
class Caller:
    """Who is calling and which project they ask for; not yet checked. The credential is an
    API key or, from the web page, a sign-in cookie's token (never both)."""

    runtime: Runtime
    api_key: str | None
    sign_in_token: str | None
    organization_id: str | None
    project_id: str | None
    write: bool
    # Already checked for this request (guards.CredentialsFirst), or None: check it.
    principal: Principal | None = None

    @property
    def page_tokens(self) -> PageTokens:
        return PageTokens(self.runtime.page_token_secret)

    async def in_project(self, work: Callable[[Session, Scope], T], *, heavy: bool = False) -> T:
        """Run ``work`` in one transaction, in the project the caller may reach. ``heavy``:
        work whose cost grows with the data it reads, run in a worker thread."""
        return await self._dispatch(work, True, heavy)

    async def searching(self, work: Callable[[Session, Scope], T], *, waits: bool = False) -> T:
        """Like ``in_project`` for a read-only POST that computes (embeds, searches): a read
        transaction, always in a worker thread so the event loop stays free. ``waits``: work
        that mostly waits without the GIL (on an embedding or rerank service, in the embedding
        model's native code) does not take turns with the heavy reads, whom it would only
        hold up."""
        caller = replace(self, write=False)
        return await caller._dispatch(work, True, heavy=True, takes_turns=not waits)

    async def reading(self, work: Callable[[Session, Scope], T], *, heavy: bool = False) -> T:
        """Like ``in_project``, in a read transaction (a check before a write, say)."""
        return await replace(self, write=False)._dispatch(work, True, heavy)

    async def writing(self, work: Callable[[Session, Scope], T], *, heavy: bool = False) -> T:
        """Like ``in_project``, in a write transaction (a read request that must repair)."""
        return await replace(self, write=True)._dispatch(work, True, heavy)

    async def check(self) -> Scope:
        """Authenticate and pick the project, before accepting anything costly (an upload)."""
        return await self.reading(lambda _tx, scope: scope)

    async def authenticated(self) -> Principal:
        """The caller's principal, checked in a read transaction."""
        return await replace(self, write=False)._dispatch(lambda _tx, who: who, False)

    async def as_principal(self, work: Callable[[Session, Principal], T]) -> T:
        """Run ``work`` in one transaction with the authenticated key (no project picked)."""
        return await self._dispatch(work, False)

    async def _dispatch(
        self,
        work: Callable[[Session, Any], T],
        scoped: bool,
        heavy: bool = False,
        takes_turns: bool = True,
    ) -> T:
        if self.runtime.db.is_sqlite and not heavy:
            try:  # on the event loop, unless it would have to wait for another writer
                return self._run(work, scoped, wait=False)
            except WouldBlock:
                pass
        if heavy and takes_turns:
            return await run_heavy(self._run, work, scoped)
        return await run_in_threadpool(self._run, work, scoped)

    def _run(self, work: Callable[[Session, Any], T], scoped: bool, wait: bool = True) -> T:
        db = self.runtime.db
        with db.write(wait=wait) if self.write else db.read() as tx:
            principal = self.principal or (
                auth.principal(tx, self.sign_in_token)
                if self.sign_in_token is not None
                else tenancy.authenticate(tx, self.api_key)
            )
            if not scoped:
                return work(tx, principal)
            scope = tenancy.resolve_scope(
                tx,
                principal,
                organization_id=self.organization_id,
                project_id=self.project_id,
            )
            return work(tx, scope)


async def run_heavy(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in a worker thread, after the heavy work in flight before it."""
    loop = asyncio.get_running_loop()
    limiter = _heavy_limiters.get(loop)
    if limiter is None:
        limiter = _heavy_limiters[loop] = anyio.CapacityLimiter(HEAVY_AT_ONCE)
    return await anyio.to_thread.run_sync(functools.partial(call, *args), limiter=limiter)


def heavy_page(page_size: int) -> bool:
    """Whether a page of ``page_size`` rows is too big to build on the event loop."""
    return page_size > INLINE_PAGE_MAX


def _caller(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    organization_id: str | None = None,
    project_id: str | None = None,
) -> Caller:
    # The web page's session cookie, unless a Bearer key is sent (it wins). Writes made with the
    # cookie must come from this server's own pages. (Read here rather than declared as a
    # security scheme, so that the API's OpenAPI document stays the SDKs'.)
    cookie = auth.cookie_token(request) if credentials is None else None
    if cookie is not None:
        auth.check_same_origin(request)
    return Caller(
        runtime=request.app.state.runtime,
        api_key=credentials.credentials if credentials else None,
        sign_in_token=cookie,
        organization_id=organization_id,
        project_id=project_id,
        write=request.method not in _READ_METHODS,
        principal=guards.principal_of(request),
    )


async def authenticate_first(request: Request) -> Principal:
    """For ``guards.CredentialsFirst``: the principal of the request's credential (cookie or
    key, chosen as for every route), checked before the request's body is read."""
    return await _caller(request, await _bearer(request)).authenticated()


async def caller_of(request: Request) -> Caller:
    """The caller of a request served outside FastAPI's routing (the MCP endpoint): the same
    credentials and ``organization_id`` / ``project_id`` query parameters a route reads."""
    query = request.query_params
    return _caller(
        request, await _bearer(request), query.get("organization_id"), query.get("project_id")
    )


# One flat dependency per kind of route: FastAPI's per-dependency cost is a visible share of a
# small request, so these do not nest.
async def get_key_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return _caller(request, credentials)


async def get_project_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    organization_id: OptionalIdQuery = None,
    project_id: OptionalIdQuery = None,
) -> Caller:
    return _caller(request, credentials, organization_id, project_id)


# For routes that work inside one project (takes organization_id / project_id query params).
ProjectCaller = Annotated[Caller, Depends(get_project_caller)]
# For routes that only need the authenticated key.
KeyCaller = Annotated[Caller, Depends(get_key_caller)]


def project_router(prefix: str, tag: str) -> APIRouter:
    """A router of routes a ``ProjectCaller`` calls: each may answer 401 (no credential) and
    404 (no such object in the caller's project) with an ErrorBody."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
    )
