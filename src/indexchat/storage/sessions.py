"""Queries for chat sessions and their events. Every query takes ``project_id=``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from indexchat.storage.tables import ChatEvent, ChatSession, SearchIndex


def get(session: Session, *, project_id: str, session_id: str) -> ChatSession | None:
    return session.scalar(
        select(ChatSession).where(
            ChatSession.id == session_id, ChatSession.project_id == project_id
        )
    )


def page(
    session: Session,
    *,
    project_id: str,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[ChatSession]:
    """Sessions newest first, strictly after the keyset position ``after``."""
    query = select(ChatSession).where(ChatSession.project_id == project_id)
    if after is not None:
        moment, session_id = after
        # A row-value comparison: both SQLite and PostgreSQL turn it into an index range,
        # so a deep page costs the same as the first.
        query = query.where(
            tuple_(ChatSession.last_updated_at, ChatSession.id) < tuple_(moment, session_id)
        )
    query = query.order_by(ChatSession.last_updated_at.desc(), ChatSession.id.desc())
    return session.scalars(query.limit(limit)).all()


def remove(session: Session, *, project_id: str, session_id: str) -> bool:
    result = session.execute(
        delete(ChatSession).where(
            ChatSession.id == session_id, ChatSession.project_id == project_id
        )
    )
    return bool(result.rowcount)


def events(session: Session, *, session_id: str) -> Sequence[ChatEvent]:
    return session.scalars(
        select(ChatEvent).where(ChatEvent.session_id == session_id).order_by(ChatEvent.seq)
    ).all()


def existing_index_ids(session: Session, *, project_id: str, index_ids: Iterable[str]) -> set[str]:
    wanted = list(index_ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(SearchIndex.id).where(
                SearchIndex.project_id == project_id, SearchIndex.id.in_(wanted)
            )
        )
    )
