"""Indexes: the searchable collections that chat sessions bind to."""

from __future__ import annotations

from sqlalchemy.orm import Session

from indexchat.domain import Scope, new_id, utcnow
from indexchat.storage.tables import SearchIndex


def register_index(
    session: Session, scope: Scope, *, name: str, description: str | None = None
) -> SearchIndex:
    """Record an index in the project. The sync pipeline that fills it lives elsewhere."""
    now = utcnow()
    index = SearchIndex(
        id=new_id("idx"),
        project_id=scope.project_id,
        name=name,
        description=description,
        created_at=now,
        updated_at=now,
    )
    session.add(index)
    session.flush()
    return index
