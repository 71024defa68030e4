"""Runs chat turns in the server's event loop and lets clients watch them.

A turn runs as its own task, apart from the request that started it: the stream that started
it reads its events, other streams may follow it (resume, ``Follower``: live when the turn runs
in this process, from the database when another one runs it), and a cancel (the starting client
going away, or a cancel request from any server process) stops the model call at once and is
recorded in a ``stop`` event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio
from sqlalchemy.orm import Session

from indexchat.agent.loop import AgentError, Tally, run_agent
from indexchat.agent.model import ChatModel, ModelError
from indexchat.agent.prompts import build_messages
from indexchat.domain import Scope
from indexchat.events import Delta, Event, Stop
from indexchat.processes import ProcessId
from indexchat.search.embeddings import Embedder
from indexchat.search.store import SearchStore
from indexchat.services import turns
from indexchat.services.chat_tools import IndexTools
from indexchat.services.event_writer import EventWriter
from indexchat.services.retrieval import Reranking
from indexchat.storage.blobs import BlobStore
from indexchat.storage.db import Database

log = logging.getLogger("indexchat.turns")


CANCELLED_BY_REQUEST = "the turn was cancelled on request"
CLIENT_GONE = "the client disconnected, so the turn was cancelled"
SHUTTING_DOWN = "the server shut down while the turn was running"

T = TypeVar("T")
# How a follower's client receives a run of events as one piece (SSE frames, for a stream).
Encode = Callable[[Iterable[Event]], bytes]


@dataclass(frozen=True)
class ChatDeps:
    db: Database
    store: SearchStore
    embedder: Embedder
    blobs: BlobStore
    reranking: Reranking | None
    model: ChatModel
    max_model_calls: int


class TurnRun:
    """One running turn: every event it produced so far, in order, and a way to wait for more.
    Each entry is (position in the session history or None for a delta, event)."""

    def __init__(self, plan: turns.TurnPlan) -> None:
        self.plan = plan
        self.events: list[tuple[int | None, Event]] = [(plan.user_input_seq, plan.user_input)]
        self.next_seq = plan.user_input_seq + 1
        self.done = False
        # Set once the turn writes its stop event: from then on nothing may interrupt it, or
        # the stop could be committed and never reach the turn's clients.
        self.stopping = False
        self.cancel_reason: str | None = None
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def publish(self, seq: int | None, event: Event) -> None:
        self.events.append((seq, event))
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def cancel(self, reason: str) -> None:
        if (
            not self.done
            and not self.stopping
            and self.cancel_reason is None
            and self.task is not None
        ):
            self.cancel_reason = reason
            self.task.cancel()

    async def follow(
        self, *, after_seq: int = 0, keepalive_seconds: float | None = None
    ) -> AsyncIterator[Event | None]:
        """Events from the start of the turn (stored ones only past ``after_seq``), then live
        ones until the stop event; ``None`` after each quiet ``keepalive_seconds``."""
        async for batch in self.follow_batches(
            after_seq=after_seq, keepalive_seconds=keepalive_seconds
        ):
            if batch is None:
                yield None
            else:
                for event in batch:
                    yield event

    async def follow_batches(
        self, *, after_seq: int = 0, keepalive_seconds: float | None = None
    ) -> AsyncIterator[list[Event] | None]:
        """As ``follow``, but every event that is there when the reader comes back comes at
        once: a stream writes them to its client in one piece."""
        position, last_seq = 0, 0
        while True:
            batch = []
            while position < len(self.events):
                seq, event = self.events[position]
                position += 1
                if seq is not None:
                    last_seq = seq
                    if seq > after_seq:
                        batch.append(event)
                elif last_seq >= after_seq:  # a delta of the block after the last stored one
                    batch.append(event)
            if batch:
                yield batch
                continue  # more may have come while the batch was written
            if self.done:
                return
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), keepalive_seconds)
            except TimeoutError:
                yield None

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class TurnRunner:
    """Starts turns and keeps the ones running in this process, which ``owner`` names."""

    def __init__(self, deps: Callable[[], ChatDeps], owner: ProcessId | None = None) -> None:
        self._deps = deps
        self.owner = owner or ProcessId.of_this_process()
        self.timings = turns.TIMINGS
        self.running: dict[str, TurnRun] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._writer: EventWriter | None = None

    def close_abandoned(self, db: Database) -> None:
        """Close the turns whose server process is gone (killed, machine lost), each with a
        ``stop`` event: what a server does as it starts."""
        with db.write() as tx:
            closed = turns.close_abandoned_turns(tx, owner=self.owner)
        if closed:
            log.warning("closed %d chat turns whose server had stopped", closed)

    def start(self, plan: turns.TurnPlan) -> TurnRun:
        run = TurnRun(plan)
        self.running[plan.session_id] = run
        run.task = asyncio.create_task(self._run(run), name=f"turn {plan.turn_id}")
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="turn watcher")
        return run

    def cancel_local(self, session_id: str, reason: str = CANCELLED_BY_REQUEST) -> None:
        run = self.running.get(session_id)
        if run is not None:
            run.cancel(reason)

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel every running turn, each recorded as stopped by the shutdown."""
        runs = list(self.running.values())
        for run in runs:
            run.cancel(SHUTTING_DOWN)
        tasks = [r.task for r in runs if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        if self._watcher is not None:
            self._watcher.cancel()
        if self._writer is not None:  # after the turns: their stop events go through it
            await self._writer.close()

    def writer(self, db: Database) -> EventWriter:
        """The one writer of this process's turn events."""
        if self._writer is None:
            self._writer = EventWriter(db)
        return self._writer

    async def _run(self, run: TurnRun) -> None:
        plan = run.plan
        started = time.monotonic()
        tally = Tally()
        error: str | None = None
        db: Database | None = None
        try:
            deps = self._deps()
            db = deps.db
            if plan.require_all_indexes and plan.skipped_index_ids:
                error = (
                    "require_all_indexes is set and these indexes cannot be queried (unknown "
                    f"in this project, or never synced): {', '.join(plan.skipped_index_ids)}"
                )
            else:
                tools = None
                if plan.index_ids:
                    tools = IndexTools(
                        deps.db,
                        deps.store,
                        deps.embedder,
                        deps.blobs,
                        plan.scope,
                        plan.index_ids,
                        reranking=deps.reranking,
                    )
                messages = build_messages(plan.history, plan.prompt, has_tools=tools is not None)
                async for event in run_agent(
                    deps.model,
                    tools,
                    messages,
                    max_model_calls=deps.max_model_calls,
                    tally=tally,
                ):
                    await self._emit(run, deps.db, event)
        except asyncio.CancelledError:
            error = run.cancel_reason or CANCELLED_BY_REQUEST
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        except (ModelError, AgentError) as exc:
            error = str(exc)
        except turns.TurnLost:
            log.info("turn %s lost its session (deleted or taken over)", plan.turn_id)
            run.finish()
            self.running.pop(plan.session_id, None)
            return
        except Exception as exc:
            log.exception("turn %s failed", plan.turn_id)
            error = f"internal error while running the turn ({type(exc).__name__})"
        await self._stop(run, db, error, tally, started)

    async def _emit(self, run: TurnRun, db: Database, event: Event) -> None:
        if isinstance(event, Delta):
            run.publish(None, event)
            return
        seq = run.next_seq
        run.next_seq += 1
        # Published only once committed: a client never sees an event history may lack.
        cancel = await self.writer(db).record(run.plan, seq, event)
        run.publish(seq, event)
        if cancel:
            run.cancel_reason = run.cancel_reason or CANCELLED_BY_REQUEST
            raise asyncio.CancelledError

    async def _stop(
        self, run: TurnRun, db: Database | None, error: str | None, tally: Tally, started: float
    ) -> None:
        plan = run.plan
        run.stopping = True
        usage = tally.usage(duration_ms=round((time.monotonic() - started) * 1000, 3))
        stop = Stop(error, usage, plan.skipped_index_ids)
        seq = run.next_seq
        try:
            await self.writer(db or self._deps().db).finish(plan, seq, stop)
        except turns.TurnLost:
            log.info("turn %s lost its session before it could stop", plan.turn_id)
        except Exception:
            log.exception("could not record the end of turn %s", plan.turn_id)
        run.publish(seq, stop)
        run.finish()
        self.running.pop(plan.session_id, None)

    async def _watch(self) -> None:
        """While turns run here: one query a second for all of them finds cancels asked through
        another process (and deleted sessions); one statement keeps their heartbeats fresh."""
        db = self._deps().db
        last_beat = time.monotonic()
        while self.running:
            await asyncio.sleep(self.timings.cancel_poll_seconds)
            running = {
                sid: run.plan.turn_id
                for sid, run in self.running.items()
                if not run.done and not run.stopping
            }
            if not running:
                continue
            try:
                if time.monotonic() - last_beat >= self.timings.heartbeat_seconds:
                    await anyio.to_thread.run_sync(_write, db, turns.heartbeat, running)
                    last_beat = time.monotonic()
                to_stop = await anyio.to_thread.run_sync(_read, db, turns.turns_to_stop, running)
            except Exception:  # a database hiccup: try again on the next round
                log.exception("could not check running turns")
                continue
            for session_id, why in to_stop.items():
                run = self.running.get(session_id)
                if run is not None and run.plan.turn_id == running[session_id]:
                    lost = "the chat session was deleted"
                    run.cancel(CANCELLED_BY_REQUEST if why == "cancel" else lost)


def _write(db: Database, step: Callable[..., Any], *args: Any) -> Any:
    with db.write() as tx:
        return step(tx, *args)


def _read(db: Database, step: Callable[..., Any], *args: Any) -> Any:
    with db.read() as tx:
        return step(tx, *args)


class Reader(Protocol):
    """Who may read a session's stream: a project's caller, or a share link's viewer."""

    async def in_project(
        self, work: Callable[[Session, Scope], T], *, heavy: bool = False
    ) -> T: ...

    async def writing(self, work: Callable[[Session, Scope], T], *, heavy: bool = False) -> T: ...


@dataclass(frozen=True)
class Replay:
    """Stored events after a point, already encoded by the thread that read them: a long
    history encoded on the event loop would hold up every other stream."""

    encoded: bytes
    last: int  # position of the last event encoded (0: none)
    running: bool
    abandoned: bool

    @classmethod
    def of(cls, since: turns.EventsSince, encode: Encode) -> Replay:
        last = since.events[-1][0] if since.events else 0
        encoded = encode(event for _seq, event in since.events)
        return cls(encoded, last, since.running, since.abandoned)


class Follower:
    """A client following one session's stream (it does not own the turn: leaving cancels
    nothing). It gets the stored events after a point, then the running turn's until its stop:
    live, deltas included, when the turn runs in this process; else read back from the database
    every ``follow_poll_seconds``, stored events only. A turn whose server is gone is closed
    first, so the events end with its ``stop``."""

    def __init__(self, runner: TurnRunner, reader: Reader, session_id: str, encode: Encode) -> None:
        self.runner = runner
        self.reader = reader
        self.session_id = session_id
        self.encode = encode

    async def start(
        self, after: int, replay: Replay | None = None, *, keepalive_seconds: float
    ) -> AsyncIterator[bytes | Event | None]:
        """Read the stored events after ``after`` (``replay``, when the caller read them
        already), so a missing session fails here, before any answer starts; then the stream:
        encoded stored events, live events, and ``None`` after each quiet
        ``keepalive_seconds`` of a live turn."""
        if replay is None or replay.abandoned:
            replay = await self.read(after, heavy=True)
        local = self.runner.running.get(self.session_id)
        return self._stream(replay, local, keepalive_seconds)

    async def read(self, after: int, *, heavy: bool = False) -> Replay:
        """The stored events after ``after``, closing an abandoned turn first. ``heavy``: the
        read may be the whole history."""
        owner, session_id, encode = self.runner.owner, self.session_id, self.encode

        def read(tx: Session, scope: Scope) -> Replay:
            return Replay.of(turns.events_after(tx, scope, session_id, after, owner=owner), encode)

        def close(tx: Session, scope: Scope) -> None:
            turns.close_if_abandoned(tx, scope, session_id, owner=owner)

        replay = await self.reader.in_project(read, heavy=heavy)
        if replay.abandoned:
            await self.reader.writing(close)
            replay = await self.reader.in_project(read, heavy=heavy)
        return replay

    async def _stream(
        self, replay: Replay, local: TurnRun | None, keepalive_seconds: float
    ) -> AsyncIterator[bytes | Event | None]:
        if replay.encoded:
            yield replay.encoded
        if not replay.running:
            return
        if local is not None:  # runs here: follow it live, deltas included
            async for event in local.follow(
                after_seq=replay.last, keepalive_seconds=keepalive_seconds
            ):
                yield event
            return
        last = replay.last
        while True:  # runs in another server process: poll the stored events
            await asyncio.sleep(self.runner.timings.follow_poll_seconds)
            replay = await self.read(last)
            if replay.encoded:
                yield replay.encoded
                last = replay.last
            if not replay.running:
                return
