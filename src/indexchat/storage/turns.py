"""Queries for the running turn a chat session row names: its id, owner process, heartbeat and
cancel flag. Looking a session up takes ``project_id=``; the rest act on sessions the caller
has already found within its project, or, for a server's own running turns, on all of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, select, update
from sqlalchemy.orm import Session

from indexchat.storage.db import database_clock
from indexchat.storage.tables import ChatSession

# Core statements on the table: the ORM's statement handling costs more than these statements.
_SESSIONS = cast(Table, ChatSession.__table__)

# The session columns that name a running turn, as they are when none runs.
NO_TURN: dict[str, Any] = {
    "turn_id": None,
    "turn_heartbeat_at": None,
    "turn_cancel_requested": False,
    "turn_owner_host": None,
    "turn_owner_pid": None,
    "turn_owner_started": None,
}


def lock_session(
    tx: Session, *, project_id: str, session_id: str
) -> tuple[ChatSession, datetime] | None:
    """The session, locked until the transaction ends, and the database clock's time."""
    found = tx.execute(
        select(ChatSession, database_clock(tx))
        .where(ChatSession.id == session_id, ChatSession.project_id == project_id)
        .with_for_update()
    ).first()
    return None if found is None else (found[0], found[1])


def database_now(tx: Session) -> datetime:
    # SELECT of the clock: always one row.
    return cast(datetime, tx.scalar(select(database_clock(tx))))


def touch(tx: Session, *, session_ids: Iterable[str], turn_ids: Iterable[str]) -> dict[str, bool]:
    """Refresh the heartbeat of these running turns in one statement; for each session that
    still runs one of them, whether a cancel was asked for (a session deleted, or whose turn
    was taken over, is left out). Turn ids are unique, so "id in these sessions and turn_id in
    these turns" matches each session only with its own turn."""
    return {
        row[0]: bool(row[1])
        for row in tx.execute(
            update(_SESSIONS)
            .where(_SESSIONS.c.id.in_(set(session_ids)), _SESSIONS.c.turn_id.in_(set(turn_ids)))
            .values(turn_heartbeat_at=database_clock(tx))
            .returning(_SESSIONS.c.id, _SESSIONS.c.turn_cancel_requested)
        )
    }


def beat(tx: Session, running: dict[str, str]) -> None:
    """One heartbeat for all these turns (session id → turn id) in one statement."""
    tx.execute(
        update(ChatSession)
        .where(ChatSession.id.in_(list(running)), ChatSession.turn_id.in_(list(running.values())))
        .values(turn_heartbeat_at=database_clock(tx))
    )


def end_turn(tx: Session, *, session_id: str, job_metadata: dict[str, Any], at: datetime) -> None:
    """Free the session for the next turn, keeping the finished run's metadata."""
    tx.execute(
        update(_SESSIONS)
        .where(_SESSIONS.c.id == session_id)
        .values(**NO_TURN, job_metadata=job_metadata, last_updated_at=at)
    )


def lock_open_turns(tx: Session) -> Sequence[Row[ChatSession, datetime]]:
    """Every session with a turn open, locked, with the database clock's time; rows being
    written to are skipped, since a turn writing has a live process."""
    return tx.execute(
        select(ChatSession, database_clock(tx))
        .where(ChatSession.turn_id.is_not(None))
        .with_for_update(skip_locked=True)
    ).all()


def turn_states(tx: Session, session_ids: list[str]) -> Sequence[Row[str, str | None, bool]]:
    """(session id, running turn id, cancel asked) of each of these sessions that exists."""
    return tx.execute(
        select(ChatSession.id, ChatSession.turn_id, ChatSession.turn_cancel_requested).where(
            ChatSession.id.in_(session_ids)
        )
    ).all()
