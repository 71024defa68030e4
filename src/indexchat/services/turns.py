"""Chat turns in the database: start one (binding rules, one at a time per session, the user's
prompt recorded), record each event as it happens, finish with the stop event and the run's job
metadata, cancel, and read events back.

Every step is its own short transaction, so history is complete up to the last event even if
the client goes away or the server dies. One turn runs per session, across all server
processes: the session row names the running turn, and a turn whose heartbeat stopped (its
process died) may be taken over after ``TURN_STALE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from indexchat.agent.prompts import PastTurn, title_from
from indexchat.domain import Scope, new_id, utcnow
from indexchat.errors import Conflict, NotFound
from indexchat.services.sessions import get_session
from indexchat.storage.tables import ChatEvent, ChatSession, SearchIndex

TURN_STALE = timedelta(seconds=90)
NO_USAGE = {"duration_ms": 0.0, "total_input_tokens": None, "total_output_tokens": None, "turns": 0}
# Earlier events read to rebuild the history a turn sends to the model.
HISTORY_EVENTS = 64


class TurnLost(Exception):
    """The session was deleted, or another process took the turn over: stop writing."""


@dataclass(frozen=True)
class TurnPlan:
    session_id: str
    turn_id: str
    scope: Scope
    prompt: str
    index_ids: list[str]  # the indexes this turn queries
    skipped_index_ids: list[str]  # asked for, but unknown here or never synced
    export_config_ids: list[str]
    require_all_indexes: bool
    history: list[PastTurn]
    user_input: dict[str, Any]
    user_input_seq: int


def begin_turn(
    session: Session,
    scope: Scope,
    session_id: str,
    *,
    index_ids: Sequence[str],
    prompt: str,
    require_all_indexes: bool,
    is_retry: bool = False,
) -> TurnPlan:
    now = utcnow()
    chat = session.scalar(
        select(ChatSession)
        .where(ChatSession.id == session_id, ChatSession.project_id == scope.project_id)
        .with_for_update()
    )
    if chat is None:
        raise NotFound(f"chat session {session_id!r} not found")
    requested = list(dict.fromkeys(index_ids))
    if chat.index_ids is None:
        queried = requested
    elif not requested or set(requested) == set(chat.index_ids):
        queried = list(chat.index_ids)
    else:
        raise Conflict(
            f"chat session {session_id!r} is bound to indexes {chat.index_ids}; a turn may not "
            f"ask for {requested}. Start a new session to use other indexes."
        )
    last_seq = (
        session.scalar(
            select(ChatEvent.seq)
            .where(ChatEvent.session_id == chat.id)
            .order_by(ChatEvent.seq.desc())
            .limit(1)
        )
        or 0
    )
    if chat.turn_id is not None:
        if chat.turn_heartbeat_at is not None and chat.turn_heartbeat_at > now - TURN_STALE:
            raise Conflict(
                f"a turn is already running in chat session {session_id!r}; wait for its stop "
                "event or cancel it"
            )
        last_seq += 1  # the process running it died: close that turn in the history
        session.add(_event(chat.id, last_seq, stop_event("the server running this turn stopped")))
    history = _history(session, chat.id)
    if is_retry and history and history[-1].prompt == prompt:
        raise Conflict(
            "this request repeats the session's last prompt and carries a client retry count; "
            "the turn already ran (see GET /api/v1/chat/{session_id})"
        )
    found = {
        i.id: i
        for i in session.scalars(
            select(SearchIndex).where(
                SearchIndex.project_id == scope.project_id, SearchIndex.id.in_(queried)
            )
        )
    }
    usable = [i for i in queried if i in found and found[i].last_synced_at is not None]
    user_input = {"type": "user_input", "content": prompt}
    chat.turn_id = new_id("turn")
    chat.turn_heartbeat_at = now
    chat.turn_cancel_requested = False
    chat.last_updated_at = now
    if chat.generated_title is None:
        chat.generated_title = title_from(prompt)
    session.add(_event(chat.id, last_seq + 1, user_input))
    return TurnPlan(
        session_id=chat.id,
        turn_id=chat.turn_id,
        scope=scope,
        prompt=prompt,
        index_ids=usable,
        skipped_index_ids=[i for i in queried if i not in usable],
        export_config_ids=[found[i].export_config_id for i in usable],
        require_all_indexes=require_all_indexes,
        history=history,
        user_input=user_input,
        user_input_seq=last_seq + 1,
    )


def record_event(session: Session, plan: TurnPlan, seq: int, event: dict[str, Any]) -> bool:
    """Append one event of a running turn; True when a cancel has been asked for."""
    cancel = _touch(session, plan)
    session.add(_event(plan.session_id, seq, event))
    return cancel


def heartbeat(session: Session, running: dict[str, str]) -> None:
    """Tell other processes these turns (session id → turn id) are alive."""
    session.execute(
        update(ChatSession)
        .where(ChatSession.id.in_(list(running)), ChatSession.turn_id.in_(list(running.values())))
        .values(turn_heartbeat_at=utcnow())
    )


def finish_turn(
    session: Session, plan: TurnPlan, seq: int, stop: dict[str, Any], job_metadata: dict[str, Any]
) -> None:
    """Record the stop event and the run's metadata, and free the session for the next turn."""
    _touch(session, plan)
    session.add(_event(plan.session_id, seq, stop))
    session.execute(
        update(ChatSession)
        .where(ChatSession.id == plan.session_id)
        .values(
            turn_id=None,
            turn_heartbeat_at=None,
            turn_cancel_requested=False,
            job_metadata=job_metadata,
            last_updated_at=utcnow(),
        )
    )


def request_cancel(session: Session, scope: Scope, session_id: str) -> ChatSession:
    chat = get_session(session, scope, session_id)
    if not _running(chat, utcnow()):
        raise Conflict(f"no turn is running in chat session {session_id!r}")
    chat.turn_cancel_requested = True
    return chat


@dataclass(frozen=True)
class EventsSince:
    events: list[tuple[int, dict[str, Any]]]  # (position in the history, event)
    running: bool  # a turn is still running: more events will come


def events_after(session: Session, scope: Scope, session_id: str, after: int) -> EventsSince:
    chat = get_session(session, scope, session_id)
    rows = session.execute(
        select(ChatEvent.seq, ChatEvent.payload)
        .where(ChatEvent.session_id == chat.id, ChatEvent.seq > after)
        .order_by(ChatEvent.seq)
    ).all()
    return EventsSince([(seq, payload) for seq, payload in rows], _running(chat, utcnow()))


def stop_event(
    error: str | None,
    *,
    usage: dict[str, Any] | None = None,
    skipped_index_ids: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "type": "stop",
        "is_error": error is not None,
        "error": error,
        "usage": usage
        or {
            "duration_ms": 0.0,
            "total_input_tokens": None,
            "total_output_tokens": None,
            "turns": 0,
        },
        "skipped_index_ids": skipped_index_ids or [],
    }


def _touch(session: Session, plan: TurnPlan) -> bool:
    cancel = session.execute(
        update(ChatSession)
        .where(ChatSession.id == plan.session_id, ChatSession.turn_id == plan.turn_id)
        .values(turn_heartbeat_at=utcnow())
        .returning(ChatSession.turn_cancel_requested)
    ).scalar()
    if cancel is None:
        raise TurnLost(plan.session_id)
    return bool(cancel)


def _running(chat: ChatSession, now: datetime) -> bool:
    beat = chat.turn_heartbeat_at
    return chat.turn_id is not None and beat is not None and beat > now - TURN_STALE


def _event(session_id: str, seq: int, payload: dict[str, Any]) -> ChatEvent:
    return ChatEvent(session_id=session_id, seq=seq, type=payload["type"], payload=payload)


def _history(session: Session, session_id: str) -> list[PastTurn]:
    """Earlier turns as (prompt, answer), oldest first, from the newest events."""
    rows = session.execute(
        select(ChatEvent.type, ChatEvent.payload)
        .where(ChatEvent.session_id == session_id, ChatEvent.type.in_(("user_input", "text")))
        .order_by(ChatEvent.seq.desc())
        .limit(HISTORY_EVENTS)
    ).all()
    turns: list[tuple[str, list[str]]] = []
    for kind, payload in reversed(rows):
        if kind == "user_input":
            turns.append((payload["content"], []))
        elif turns:
            turns[-1][1].append(payload["content"])
    return [PastTurn(prompt, "\n\n".join(answer)) for prompt, answer in turns if answer]


def turns_to_stop(session: Session, running: dict[str, str]) -> dict[str, str]:
    """Of these running turns (session id → turn id), the ones to stop: ``"cancel"`` when a
    cancel was asked for, ``"lost"`` when the session was deleted or the turn taken over."""
    rows = session.execute(
        select(ChatSession.id, ChatSession.turn_id, ChatSession.turn_cancel_requested).where(
            ChatSession.id.in_(list(running))
        )
    ).all()
    found = {row.id: row for row in rows}
    stop = {}
    for session_id, turn_id in running.items():
        row = found.get(session_id)
        if row is None or row.turn_id != turn_id:
            stop[session_id] = "lost"
        elif row.turn_cancel_requested:
            stop[session_id] = "cancel"
    return stop
