"""Queries for chat sessions and their events. Every query takes ``project_id=``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, tuple_
from sqlalchemy.orm import Session

from indexchat.storage.db import rows_touched
from indexchat.storage.tables import ChatEvent, ChatSession, Index

_INSERT = insert(ChatSession)


def add(tx: Session, chat: ChatSession) -> None:
    """Insert a new session row (a plain Core insert: creating sessions is a hot path)."""
    tx.connection().execute(
        _INSERT,
        {
            "id": chat.id,
            "project_id": chat.project_id,
            "index_ids": chat.index_ids,
            "shared_access": chat.shared_access,
            "generated_title": chat.generated_title,
            "job_metadata": chat.job_metadata,
            "metadata": chat.session_metadata,
            "created_at": chat.created_at,
            "last_updated_at": chat.last_updated_at,
        },
    )


def get(tx: Session, *, project_id: str, session_id: str) -> ChatSession | None:
    return tx.scalar(
        select(ChatSession).where(
            ChatSession.id == session_id, ChatSession.project_id == project_id
        )
    )


# The columns of a listed session (its summary).
_LISTED = (
    ChatSession.id,
    ChatSession.last_updated_at,
    ChatSession.shared_access,
    ChatSession.generated_title,
    ChatSession.index_ids,
    ChatSession.job_metadata,
)
# The hottest read: built once, executed on the plain Core connection, returning plain rows.
_NEWEST_FIRST = (
    select(*_LISTED)
    .where(ChatSession.project_id == bindparam("project_id"))
    .order_by(ChatSession.last_updated_at.desc(), ChatSession.id.desc())
    .limit(bindparam("limit"))
)
# A row-value comparison: SQLite and PostgreSQL both turn it into an index range, so a deep
# page costs what the first one does.
_NEWEST_FIRST_AFTER = _NEWEST_FIRST.where(
    tuple_(ChatSession.last_updated_at, ChatSession.id)
    < tuple_(
        bindparam("after_moment", type_=ChatSession.last_updated_at.type), bindparam("after_id")
    )
)


def page(
    tx: Session,
    *,
    project_id: str,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """Sessions newest first, strictly after the keyset position ``after``."""
    params: dict[str, object] = {"project_id": project_id, "limit": limit}
    if after is None:
        return tx.connection().execute(_NEWEST_FIRST, params).all()
    params["after_moment"], params["after_id"] = after
    return tx.connection().execute(_NEWEST_FIRST_AFTER, params).all()


def remove(tx: Session, *, project_id: str, session_id: str) -> bool:
    touched = rows_touched(
        tx,
        delete(ChatSession).where(
            ChatSession.id == session_id, ChatSession.project_id == project_id
        ),
    )
    return bool(touched)


def events(tx: Session, *, session_id: str) -> Sequence[ChatEvent]:
    return tx.scalars(
        select(ChatEvent).where(ChatEvent.session_id == session_id).order_by(ChatEvent.seq)
    ).all()


def existing_index_ids(tx: Session, *, project_id: str, index_ids: Iterable[str]) -> set[str]:
    wanted = list(index_ids)
    if not wanted:
        return set()
    return set(
        tx.scalars(select(Index.id).where(Index.project_id == project_id, Index.id.in_(wanted)))
    )


# Session rows for ids another query chose (search results). Looked up by primary key alone:
# with the project in the WHERE clause SQLite walks the project's index instead.
_BY_IDS = select(ChatSession.project_id, *_LISTED).where(
    ChatSession.id.in_(bindparam("ids", expanding=True))
)


def by_ids(tx: Session, *, project_id: str, ids: Sequence[str]) -> dict[str, Row[Any]]:
    if not ids:
        return {}
    rows = tx.connection().execute(_BY_IDS, {"ids": list(ids)})
    return {row.id: row for row in rows if row.project_id == project_id}
