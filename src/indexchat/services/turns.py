"""Chat turns in the database: start one (binding rules, one at a time per session, the user's
prompt recorded), record each event as it happens, finish with the stop event and the run's job
metadata, cancel, and read events back.

Every step is its own short transaction, so history is complete up to the last event even if
the client goes away or the server dies. One turn runs per session, across all server
processes: the session row names the running turn and the process running it. A turn whose
process is gone (proved on its own machine, or its heartbeat older than ``TIMINGS.stale``) is
closed with a ``stop`` event by the first server that looks at it: when it starts, or when a
client asks for a new turn, a cancel or the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from indexchat.agent.prompts import PastTurn, title_from
from indexchat.domain import Scope, new_id, utcnow
from indexchat.errors import Conflict, NotFound
from indexchat.events import Event, Stop, Text, UserInput
from indexchat.processes import ProcessId
from indexchat.services.session_search import index_texts
from indexchat.services.sessions import get_session
from indexchat.storage import events as stored_events
from indexchat.storage import indexes as stored_indexes
from indexchat.storage import turns as running_turns
from indexchat.storage.tables import ChatSession

log = logging.getLogger("indexchat.turns")


@dataclass(frozen=True)
class TurnTimings:
    """How the processes serving turns keep each other informed.

    ``stale``: a turn whose process cannot be checked from here (it ran on another machine)
    counts as gone once its heartbeat is this old. ``heartbeat_seconds``: how often a process
    refreshes its running turns' heartbeats; ``cancel_poll_seconds``: how often it checks them
    for a cancel asked through another process (the heartbeat rides on that check).
    ``follow_poll_seconds``: how often a client following a turn run by another process reads
    its new events.
    """

    stale: timedelta = timedelta(seconds=10)
    heartbeat_seconds: float = 3.0
    cancel_poll_seconds: float = 1.0
    follow_poll_seconds: float = 0.25

    def __post_init__(self) -> None:
        # Three beats within ``stale``, so one or two missed beats (a slow database) do not
        # lose a live turn.
        if self.stale.total_seconds() < 3 * self.heartbeat_seconds:
            raise ValueError("a turn must go stale only after three missed heartbeats")
        if self.heartbeat_seconds < self.cancel_poll_seconds:
            raise ValueError("heartbeats are sent from the cancel poll: beat no faster than it")


TIMINGS = TurnTimings()
SERVER_STOPPED = "the server running this turn stopped before the turn finished"
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
    user_input: UserInput
    user_input_seq: int


def begin_turn(
    tx: Session,
    scope: Scope,
    session_id: str,
    *,
    owner: ProcessId,
    index_ids: Sequence[str],
    prompt: str,
    require_all_indexes: bool,
    is_retry: bool = False,
) -> TurnPlan:
    """Start a turn run by ``owner`` (this process). A turn still running answers 409; one
    whose process is gone is closed first."""
    chat, clock = _locked(tx, scope, session_id)
    queried = _queried_indexes(chat, index_ids)
    _close_stale_turn(tx, chat, clock, owner=owner)
    history = _history(tx, chat.id)
    if is_retry:
        _refuse_repeated_prompt(history, prompt)
    indexes = _resolve_indexes(tx, scope, queried)
    user_input, seq = _record_prompt(tx, scope, chat, clock, owner=owner, prompt=prompt)
    assert chat.turn_id is not None
    return TurnPlan(
        session_id=chat.id,
        turn_id=chat.turn_id,
        scope=scope,
        prompt=prompt,
        index_ids=indexes.usable,
        skipped_index_ids=indexes.skipped,
        export_config_ids=indexes.export_config_ids,
        require_all_indexes=require_all_indexes,
        history=history,
        user_input=user_input,
        user_input_seq=seq,
    )


def _close_stale_turn(tx: Session, chat: ChatSession, clock: datetime, *, owner: ProcessId) -> None:
    """Refuse a new turn while one runs; close an open turn whose process is gone."""
    if chat.turn_id is None:
        return
    if _owner_alive(owner, chat, clock):
        raise Conflict(
            f"a turn is already running in chat session {chat.id!r}; wait for its stop "
            "event or cancel it"
        )
    _close_abandoned(tx, chat)


def _refuse_repeated_prompt(history: list[PastTurn], prompt: str) -> None:
    """A client's retry of a request whose turn already ran must not run it twice."""
    if history and history[-1].prompt == prompt:
        raise Conflict(
            "this request repeats the session's last prompt and carries a client retry count; "
            "the turn already ran (see GET /api/v1/chat/{session_id})"
        )


@dataclass(frozen=True)
class _IndexSet:
    usable: list[str]  # known in the project and synced at least once
    skipped: list[str]
    export_config_ids: list[str]  # of the usable ones


def _resolve_indexes(tx: Session, scope: Scope, queried: list[str]) -> _IndexSet:
    found = stored_indexes.sync_states(tx, project_id=scope.project_id, index_ids=queried)
    usable = [i for i in queried if i in found and found[i].last_synced_at is not None]
    return _IndexSet(
        usable=usable,
        skipped=[i for i in queried if i not in usable],
        export_config_ids=[found[i].export_config_id for i in usable],
    )


def _record_prompt(
    tx: Session,
    scope: Scope,
    chat: ChatSession,
    clock: datetime,
    *,
    owner: ProcessId,
    prompt: str,
) -> tuple[UserInput, int]:
    """Mark the (locked) session as running a new turn owned by ``owner`` and store the
    prompt, searchable, as its ``user_input`` event; the event and its number."""
    seq = stored_events.last_seq(tx, session_id=chat.id) + 1
    chat.turn_id = new_id("turn")
    chat.turn_heartbeat_at = clock
    chat.turn_cancel_requested = False
    chat.turn_owner_host, chat.turn_owner_pid = owner.host, owner.pid
    chat.turn_owner_started = owner.started
    chat.last_updated_at = utcnow()
    searchable = [(seq, "prompt", prompt)]
    if chat.generated_title is None:
        chat.generated_title = title_from(prompt)
        searchable.append((seq, "title", chat.generated_title))
    user_input = UserInput(prompt)
    stored_events.append(tx, session_id=chat.id, seq=seq, event=user_input)
    index_texts(tx, project_id=scope.project_id, session_id=chat.id, texts=searchable)
    return user_input, seq


def _queried_indexes(chat: ChatSession, index_ids: Sequence[str]) -> list[str]:
    """The indexes a turn asking for ``index_ids`` queries: a bound session's own (asked for
    again, in any order, or not at all), else the ones asked for."""
    requested = list(dict.fromkeys(index_ids))
    if chat.index_ids is None:
        return requested
    if not requested or set(requested) == set(chat.index_ids):
        return list(chat.index_ids)
    raise Conflict(
        f"chat session {chat.id!r} is bound to indexes {chat.index_ids}; a turn may not "
        f"ask for {requested}. Start a new session to use other indexes."
    )


def record_event(tx: Session, plan: TurnPlan, seq: int, event: Event) -> bool:
    """Append one event of a running turn; True when a cancel has been asked for."""
    return _outcome(record_events(tx, [EventWrite(plan, seq, event)])[0])


@dataclass(frozen=True)
class EventWrite:
    """One stored event of a running turn; its ``stop`` also records the run's job metadata
    and frees the session for the next turn."""

    plan: TurnPlan
    seq: int
    event: Event


def record_events(tx: Session, writes: Sequence[EventWrite]) -> list[bool | TurnLost]:
    """Append events of running turns, of many turns at once: one statement checks every turn
    (still the session's? a cancel asked for?) and refreshes its heartbeat, one inserts every
    event. For each write: True when its turn should cancel, or ``TurnLost`` (nothing stored).
    Answer texts become searchable (whole, as the ``text`` event holds them)."""
    cancels = running_turns.touch(
        tx,
        session_ids=[w.plan.session_id for w in writes],
        turn_ids=[w.plan.turn_id for w in writes],
    )
    kept = [w for w in writes if w.plan.session_id in cancels]
    now = utcnow()
    stored_events.append_many(tx, [(w.plan.session_id, w.seq, w.event) for w in kept])
    for w in kept:
        if isinstance(w.event, Text):
            index_texts(
                tx,
                project_id=w.plan.scope.project_id,
                session_id=w.plan.session_id,
                texts=[(w.seq, "answer", w.event.content)],
            )
        elif isinstance(w.event, Stop):
            metadata = job_metadata(w.event, w.plan.export_config_ids)
            running_turns.end_turn(tx, session_id=w.plan.session_id, job_metadata=metadata, at=now)
    return [
        cancels[w.plan.session_id] if w.plan.session_id in cancels else TurnLost(w.plan.session_id)
        for w in writes
    ]


def _outcome(outcome: bool | TurnLost) -> bool:
    if isinstance(outcome, TurnLost):
        raise outcome
    return outcome


def heartbeat(tx: Session, running: dict[str, str]) -> None:
    """Tell other processes these turns (session id → turn id) are alive."""
    running_turns.beat(tx, running)


def finish_turn(tx: Session, plan: TurnPlan, seq: int, stop: Stop) -> None:
    """Record the stop event and the run's metadata, and free the session for the next turn."""
    _outcome(record_events(tx, [EventWrite(plan, seq, stop)])[0])


def job_metadata(stop: Stop, export_config_ids: list[str] | None) -> dict[str, Any]:
    """The session's ``job_metadata`` after a turn: its usage, outcome and export configs."""
    return {
        **stop.usage.to_wire(),
        "is_error": stop.is_error,
        "error": stop.error,
        "export_config_ids": export_config_ids,
    }


def request_cancel(tx: Session, scope: Scope, session_id: str, *, owner: ProcessId) -> ChatSession:
    """Ask the running turn to stop; a turn whose process is gone is closed at once."""
    chat, clock = _locked(tx, scope, session_id)
    if chat.turn_id is None:
        raise Conflict(f"no turn is running in chat session {session_id!r}")
    if _owner_alive(owner, chat, clock):
        chat.turn_cancel_requested = True
    else:
        _close_abandoned(tx, chat)
    return chat


@dataclass(frozen=True)
class EventsSince:
    events: list[tuple[int, Event]]  # (position in the history, event)
    running: bool  # a turn is still running: more events will come
    abandoned: bool = False  # a turn is open but its process is gone: close it, then read again


def events_after(
    tx: Session, scope: Scope, session_id: str, after: int, *, owner: ProcessId
) -> EventsSince:
    chat = get_session(tx, scope, session_id)
    events = stored_events.after(tx, session_id=chat.id, after_seq=after)
    if chat.turn_id is None:
        return EventsSince(events, running=False)
    alive = _owner_alive(owner, chat, lambda: running_turns.database_now(tx))
    return EventsSince(events, running=alive, abandoned=not alive)


def close_if_abandoned(tx: Session, scope: Scope, session_id: str, *, owner: ProcessId) -> None:
    """Close the session's turn with a ``stop`` event if its process is gone."""
    chat, clock = _locked(tx, scope, session_id)
    if chat.turn_id is not None and not _owner_alive(owner, chat, clock):
        _close_abandoned(tx, chat)


def close_abandoned_turns(tx: Session, *, owner: ProcessId) -> int:
    """Close every turn whose process is gone (what a starting server does); how many."""
    closed = 0
    for chat, clock in running_turns.lock_open_turns(tx):
        if not _owner_alive(owner, chat, clock):
            _close_abandoned(tx, chat)
            closed += 1
    return closed


def _locked(tx: Session, scope: Scope, session_id: str) -> tuple[ChatSession, datetime]:
    """The session, locked until the transaction ends, and the database clock's time."""
    found = running_turns.lock_session(tx, project_id=scope.project_id, session_id=session_id)
    if found is None:
        raise NotFound(f"chat session {session_id!r} not found")
    return found


def _owner_alive(
    owner: ProcessId, chat: ChatSession, clock: datetime | Callable[[], datetime]
) -> bool:
    """Whether the process running the session's turn still runs: checked directly when it ran
    on this machine, else told by its heartbeat (``clock``: now, or how to read it)."""
    if chat.turn_owner_host is not None and chat.turn_owner_pid is not None:
        recorded = ProcessId(chat.turn_owner_host, chat.turn_owner_pid, chat.turn_owner_started)
        verdict = owner.is_alive(recorded)
        if verdict is not None:
            return verdict
    beat = chat.turn_heartbeat_at
    now = clock() if callable(clock) else clock
    return beat is not None and beat > now - TIMINGS.stale


def _close_abandoned(tx: Session, chat: ChatSession) -> None:
    """End a turn whose process is gone, as its process would have: a ``stop`` event saying
    so, the run's metadata, and the session free for the next turn. ``chat`` is locked."""
    log.info("closing turn %s of chat session %s: its server stopped", chat.turn_id, chat.id)
    stop = Stop(SERVER_STOPPED)
    seq = stored_events.last_seq(tx, session_id=chat.id) + 1
    stored_events.append(tx, session_id=chat.id, seq=seq, event=stop)
    for column, value in running_turns.NO_TURN.items():
        setattr(chat, column, value)
    chat.job_metadata = job_metadata(stop, None)
    chat.last_updated_at = utcnow()
    tx.flush()


def _history(tx: Session, session_id: str) -> list[PastTurn]:
    """Earlier turns as (prompt, answer), oldest first, from the newest events."""
    rows = stored_events.newest_prompts_and_answers(tx, session_id=session_id, limit=HISTORY_EVENTS)
    turns: list[tuple[str, list[str]]] = []
    for kind, content in rows:
        if kind == "user_input":
            turns.append((content, []))
        elif turns:
            turns[-1][1].append(content)
    return [PastTurn(prompt, "\n\n".join(answer)) for prompt, answer in turns if answer]


def turns_to_stop(tx: Session, running: dict[str, str]) -> dict[str, str]:
    """Of these running turns (session id → turn id), the ones to stop: ``"cancel"`` when a
    cancel was asked for, ``"lost"`` when the session was deleted or the turn taken over."""
    found = {row.id: row for row in running_turns.turn_states(tx, list(running))}
    stop = {}
    for session_id, turn_id in running.items():
        row = found.get(session_id)
        if row is None or row.turn_id != turn_id:
            stop[session_id] = "lost"
        elif row.turn_cancel_requested:
            stop[session_id] = "cancel"
    return stop
