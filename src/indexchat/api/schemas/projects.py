"""Wire model of a project (contract §8)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from indexchat.api.schemas.common import from_row
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
        return from_row(cls, project)
