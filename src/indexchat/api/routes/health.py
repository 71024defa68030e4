"""Liveness and readiness: answers without an API key."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from indexchat import __version__
from indexchat.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    database: str


@router.get("/health", response_model=Health, summary="Server and database health")
def health(runtime: RuntimeDep) -> Health:
    with runtime.db.read() as tx:
        tx.execute(text("SELECT 1"))
    return Health(status="ok", version=__version__, database=runtime.db.engine.dialect.name)
