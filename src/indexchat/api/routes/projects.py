"""Projects the caller's key may reach (contract §8)."""

from __future__ import annotations

from fastapi import APIRouter

from indexchat.api.deps import PrincipalDep, SessionDep
from indexchat.api.schemas.common import ErrorBody, IdPath, OptionalIdQuery, OptionalNameQuery
from indexchat.api.schemas.projects import ProjectOut
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
def list_projects(
    principal: PrincipalDep,
    session: SessionDep,
    organization_id: OptionalIdQuery = None,
    project_name: OptionalNameQuery = None,
) -> list[ProjectOut]:
    found = tenancy.reachable_projects(
        session, principal, organization_id=organization_id, name=project_name
    )
    return [ProjectOut.of(p) for p in found]


@router.get(
    "/{project_id}",
    response_model=ProjectOut,
    summary="Get a project",
    operation_id="projects_get",
    responses={404: {"model": ErrorBody}},
)
def get_project(
    project_id: IdPath,
    principal: PrincipalDep,
    session: SessionDep,
    organization_id: OptionalIdQuery = None,
) -> ProjectOut:
    project = tenancy.reachable_project(
        session, principal, project_id, organization_id=organization_id
    )
    return ProjectOut.of(project)
