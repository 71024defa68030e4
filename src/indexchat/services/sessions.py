"""Chat sessions: create, list, read, delete. The index set locks after the first message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row
from sqlalchemy.orm import Session

from indexchat.domain import Scope, new_id, utcnow
from indexchat.errors import NotFound, must_exist
from indexchat.storage import sessions as store
from indexchat.storage.tables import ChatEvent, ChatSession

SharedAccess = Literal["query", "read_only"]
Keyset = tuple[datetime, str]


@dataclass(frozen=True)
class SessionPage:
    sessions: Sequence[ChatSession | Row[Any]]
    # Where the next page starts; None on the last page.
    next_after: Keyset | None


def create_session(
    tx: Session,
    scope: Scope,
    *,
    index_ids: list[str] | None,
    shared_access: SharedAccess,
) -> ChatSession:
    if index_ids is not None:
        index_ids = list(dict.fromkeys(index_ids))  # drop repeats, keep the caller's order
        known = store.existing_index_ids(tx, project_id=scope.project_id, index_ids=index_ids)
        missing = [i for i in index_ids if i not in known]
        if missing:
            raise NotFound(f"index {missing[0]!r} not found")
    now = utcnow()
    chat = ChatSession(
        id=new_id("ses"),
        project_id=scope.project_id,
        index_ids=index_ids,
        shared_access=shared_access,
        created_at=now,
        last_updated_at=now,
    )
    store.add(tx, chat)
    return chat


def get_session(tx: Session, scope: Scope, session_id: str) -> ChatSession:
    return must_exist(
        store.get(tx, project_id=scope.project_id, session_id=session_id),
        f"chat session {session_id!r}",
    )


def session_events(tx: Session, scope: Scope, session_id: str) -> Sequence[ChatEvent]:
    get_session(tx, scope, session_id)
    return store.events(tx, session_id=session_id)


def list_sessions(
    tx: Session, scope: Scope, *, after: Keyset | None, page_size: int
) -> SessionPage:
    """One page, newest ``last_updated_at`` first (keyset: no OFFSET, so depth is free)."""
    rows = store.page(tx, project_id=scope.project_id, after=after, limit=page_size + 1)
    if len(rows) <= page_size:
        return SessionPage(sessions=rows, next_after=None)
    last = rows[page_size - 1]
    return SessionPage(sessions=rows[:page_size], next_after=(last.last_updated_at, last.id))


def delete_session(tx: Session, scope: Scope, session_id: str) -> None:
    if not store.remove(tx, project_id=scope.project_id, session_id=session_id):
        raise NotFound(f"chat session {session_id!r} not found")
