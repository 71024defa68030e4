"""Projects the caller's key may reach (contract §8)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from indexchat.api.deps import KeyCaller
from indexchat.api.responses import json_response
from indexchat.api.schemas.common import ErrorBody, IdPath, OptionalIdQuery, OptionalNameQuery
from indexchat.api.schemas.projects import ProjectOut
from indexchat.domain import Principal
from indexchat.services import tenancy

router = APIRouter(
    prefix="/api/v1/projects", tags=["projects"], responses={401: {"model": ErrorBody}}
)


@router.get(
    "",
    response_model=list[ProjectOut],
    summary="List projects or get one by name",
    operation_id="projects_list",
)
async def list_projects(
    caller: KeyCaller,
    organization_id: OptionalIdQuery = None,
    project_name: OptionalNameQuery = None,
) -> Response:
    def work(tx: Session, principal: Principal) -> Response:
        found = tenancy.reachable_projects(
            tx, principal, organization_id=organization_id, name=project_name
        )
        return json_response([ProjectOut.of(p) for p in found])

    return await caller.as_principal(work)


@router.get(
    "/{project_id}",
    response_model=ProjectOut,
    summary="Get a project",
    operation_id="projects_get",
    responses={404: {"model": ErrorBody}},
)
async def get_project(
    project_id: IdPath, caller: KeyCaller, organization_id: OptionalIdQuery = None
) -> Response:
    def work(tx: Session, principal: Principal) -> Response:
        project = tenancy.reachable_project(
            tx, principal, project_id, organization_id=organization_id
        )
        return json_response(ProjectOut.of(project))

    return await caller.as_principal(work)
