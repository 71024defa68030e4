"""Liveness and readiness: answers without an API key."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from indexchat import __version__
from indexchat.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    database: str


@router.get("/health", response_model=Health, summary="Server and database health")
def health(runtime: RuntimeDep) -> Health:
    runtime.db.ping()
    return Health(status="ok", version=__version__, database=runtime.db.engine.dialect.name)
