"""Annotated dependencies: the runtime, one transaction per request, the caller, the project."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from indexchat.api.pagination import PageTokens
from indexchat.api.schemas.common import OptionalIdQuery
from indexchat.domain import Principal, Scope
from indexchat.runtime import Runtime
from indexchat.services import tenancy

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(
    auto_error=False, description="An indexchat API key (`indexchat keys create`)."
)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db_session(request: Request, runtime: RuntimeDep) -> Iterator[Session]:
    """Reads get a plain transaction, writes an immediate one; committed before the response."""
    opener = runtime.db.read if request.method in _READ_METHODS else runtime.db.write
    with opener() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db_session, scope="function")]


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return tenancy.authenticate(session, credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_scope(
    session: SessionDep,
    principal: PrincipalDep,
    organization_id: OptionalIdQuery = None,
    project_id: OptionalIdQuery = None,
) -> Scope:
    return tenancy.resolve_scope(
        session, principal, organization_id=organization_id, project_id=project_id
    )


ScopeDep = Annotated[Scope, Depends(get_scope)]


def get_page_tokens(runtime: RuntimeDep) -> PageTokens:
    return PageTokens(runtime.page_token_secret)


PageTokensDep = Annotated[PageTokens, Depends(get_page_tokens)]
