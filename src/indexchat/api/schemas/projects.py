"""Wire model of a project (contract §8)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from indexchat.storage.tables import Project


class ProjectOut(BaseModel):
    id: str
    name: str
    organization_id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    is_default: bool = False

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        return cls(
            id=project.id,
            name=project.name,
            organization_id=project.organization_id,
            created_at=project.created_at.replace(tzinfo=UTC),
            updated_at=project.updated_at.replace(tzinfo=UTC),
            is_default=project.is_default,
        )
