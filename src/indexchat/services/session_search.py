"""Search a project's chat sessions by their titles, prompts and answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from indexchat.domain import Scope
from indexchat.search import session_text
from indexchat.storage import session_texts
from indexchat.storage import sessions as store

Position = tuple[float, str]  # (score, session id) of the last result of a page


@dataclass(frozen=True)
class Found:
    session: Row[Any]
    snippet: str
    event_index: int  # position in the session's events


@dataclass(frozen=True)
class FoundPage:
    items: Sequence[Found]
    next_after: Position | None


def search_sessions(
    tx: Session, scope: Scope, query: str, *, after: Position | None, page_size: int
) -> FoundPage:
    """One page of the sessions whose texts match ``query``, best first."""
    connection = tx.connection()
    hits = session_text.search(
        connection, scope.project_id, query, after=after, limit=page_size + 1
    )
    more = len(hits) > page_size
    hits = hits[:page_size]
    rows = store.by_ids(tx, project_id=scope.project_id, ids=[h.session_id for h in hits])
    marked = session_text.snippets(connection, query, [h.text_id for h in hits])
    items = [
        Found(rows[h.session_id], marked.get(h.text_id, ""), h.seq - 1)
        for h in hits
        if h.session_id in rows
    ]
    last = hits[-1] if more else None
    return FoundPage(items, (last.score, last.session_id) if last else None)


def index_texts(
    tx: Session, *, project_id: str, session_id: str, texts: Sequence[tuple[int, str, str]]
) -> None:
    """Make (seq, kind, text) of a session searchable, in the caller's transaction."""
    session_texts.add(tx, project_id=project_id, session_id=session_id, texts=texts)
