"""Queries for a chat session's stored events (its history, one row per event, numbered by seq).

The session id is resolved within its project by the caller (a locked or fetched session row)
before any of these run, so they take ``session_id`` alone: writing an event is the streaming
path, and a join per row would buy no isolation the caller has not already checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from indexchat.domain import utcnow
from indexchat.events import Event, from_wire
from indexchat.storage.tables import ChatEvent

# A Core INSERT: the ORM's unit of work and statement handling cost more than the statement for
# rows nobody reads back in this transaction.
_INSERT = insert(cast(Table, ChatEvent.__table__))


def append(tx: Session, *, session_id: str, seq: int, event: Event) -> None:
    append_many(tx, [(session_id, seq, event)])


def append_many(tx: Session, rows: Sequence[tuple[str, int, Event]]) -> None:
    """Store events of any sessions in one statement: (session id, seq, event) each."""
    if not rows:
        return
    now = utcnow()
    tx.execute(
        _INSERT,
        [
            {
                "session_id": session_id,
                "seq": seq,
                "type": event.type,
                "payload": event.to_wire(),
                "created_at": now,
            }
            for session_id, seq, event in rows
        ],
    )


def last_seq(tx: Session, *, session_id: str) -> int:
    """The number of the session's newest event; 0 when it has none."""
    last = tx.scalar(
        select(ChatEvent.seq)
        .where(ChatEvent.session_id == session_id)
        .order_by(ChatEvent.seq.desc())
        .limit(1)
    )
    return last or 0


def after(tx: Session, *, session_id: str, after_seq: int) -> list[tuple[int, Event]]:
    """The session's events numbered past ``after_seq``, oldest first, with their numbers."""
    rows = tx.execute(
        select(ChatEvent.seq, ChatEvent.payload)
        .where(ChatEvent.session_id == session_id, ChatEvent.seq > after_seq)
        .order_by(ChatEvent.seq)
    ).all()
    return [(seq, from_wire(payload)) for seq, payload in rows]


def newest_prompts_and_answers(
    tx: Session, *, session_id: str, limit: int
) -> list[tuple[str, str]]:
    """The session's newest ``limit`` events of type ``user_input`` or ``text``, as (type,
    content), oldest first."""
    rows = tx.execute(
        select(ChatEvent.type, ChatEvent.payload)
        .where(ChatEvent.session_id == session_id, ChatEvent.type.in_(("user_input", "text")))
        .order_by(ChatEvent.seq.desc())
        .limit(limit)
    ).all()
    return [(kind, payload["content"]) for kind, payload in reversed(rows)]
