"""Group commit of turn events: many turns' events share transactions, a client sees an event
only once it is committed, a failing write fails its own turn and no other, and shutdown
commits what is queued. Against the real database of each backend."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from deployments import database_for
from factories import (
    BACKENDS,
    TURN_NOTES,
    LiveServer,
    Tenant,
    live_server,
    llm_settings,
    synced_index,
)
from fake_llm import FakeLLM, Reply, ToolCall
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from streams import history, stored

from indexchat.domain import new_id
from indexchat.events import Stop, Text
from indexchat.processes import ProcessId
from indexchat.services import turns
from indexchat.services.event_writer import EventWriter, WriterClosed
from indexchat.services.turn_runner import TurnRunner
from indexchat.storage.db import Database
from indexchat.storage.tables import ChatEvent, ChatSession

CONCURRENT = 24


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, FastAPI]]:
    backend: str = request.param
    database_url = database_for(request, backend)
    settings = llm_settings(tmp_path_factory.mktemp(f"gc-{backend}"), database_url, fake.base_url)
    apps: list[FastAPI] = []
    with live_server(settings, backend, extend=apps.append) as running:
        yield running, apps[0]


@pytest.fixture(scope="module")
def notes(served: tuple[LiveServer, FastAPI]) -> tuple[Tenant, str]:
    return synced_index(served[0], TURN_NOTES)


def retrieve_then_answer(body: dict[str, Any]) -> Reply:
    if body["messages"][-1]["role"] == "tool" or not body.get("tools"):
        return Reply(text="The Danube flows through Vienna, Bratislava and Budapest.")
    return Reply(tool_calls=[ToolCall("retrieve", {"query": "Danube"})])


def stored_count(db: Database, session_id: str) -> int:
    with db.read() as tx:
        query = (
            select(func.count()).select_from(ChatEvent).where(ChatEvent.session_id == session_id)
        )
        return int(tx.scalar(query) or 0)


def watch_turn(server: LiveServer, tenant: Tenant, index_id: str, session_id: str) -> list[dict]:
    """Stream one turn; at each stored event the client reads, check the history holds it."""
    events: list[dict] = []
    seen = 0
    url = f"{server.base_url}/api/v1/chat/{session_id}/messages/stream"
    body = {"index_ids": [index_id], "prompt": f"Danube? {session_id}"}
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[len("data:") :])
            events.append(event)
            if event["type"] not in ("text_delta", "thinking_delta"):
                seen += 1
                assert stored_count(server.runtime.db, session_id) >= seen, event["type"]
    return events


def test_concurrent_turns_share_commits_and_each_event_is_committed_before_it_is_sent(
    served: tuple[LiveServer, FastAPI], notes: tuple[Tenant, str], fake: FakeLLM
) -> None:
    server, app = served
    tenant, index_id = notes
    fake.default = retrieve_then_answer
    sessions = [
        tenant.client.chat.create(index_ids=[index_id]).session_id for _ in range(CONCURRENT)
    ]
    runner: TurnRunner = app.state.turns
    before = runner.writer(server.runtime.db).batches

    with ThreadPoolExecutor(CONCURRENT) as pool:
        streams = list(pool.map(lambda s: watch_turn(server, tenant, index_id, s), sessions))

    for session_id, events in zip(sessions, streams, strict=True):
        kinds = [e["type"] for e in stored(events)]
        assert kinds == ["user_input", "tool_call", "tool_result", "text", "stop"], kinds
        assert events[-1]["is_error"] is False
        assert stored(events) == history(tenant.client, session_id)
    # Four events per turn went through the writer; shared transactions took fewer commits.
    commits = runner.writer(server.runtime.db).batches - before
    assert 0 < commits < 4 * CONCURRENT


def start_turns(db: Database, tenant: Tenant, index_id: str, count: int) -> list[turns.TurnPlan]:
    plans = []
    for _ in range(count):
        session_id = tenant.client.chat.create(index_ids=[index_id]).session_id
        with db.write() as tx:
            plan = turns.begin_turn(
                tx,
                tenant.scope,
                session_id,
                owner=ProcessId.of_this_process(),
                index_ids=[index_id],
                prompt=f"question {new_id('q')}",
                require_all_indexes=False,
            )
        plans.append(plan)
    return plans


class HeldWrites:
    """Holds writes to these sessions back (a write transaction locking their rows; on SQLite
    the one write lock) until ``release``."""

    def __init__(self, db: Database, session_ids: list[str]) -> None:
        self._locked = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(db, session_ids))
        self._thread.start()
        assert self._locked.wait(10)

    def _hold(self, db: Database, session_ids: list[str]) -> None:
        with db.write() as tx:
            rows = select(ChatSession.id).where(ChatSession.id.in_(session_ids))
            tx.execute(rows.with_for_update()).all()
            self._locked.set()
            self._release.wait(30)

    def release(self) -> None:
        self._release.set()
        self._thread.join(10)


def test_a_failing_write_fails_its_own_turn_only_and_nothing_shows_before_the_commit(
    served: tuple[LiveServer, FastAPI], notes: tuple[Tenant, str]
) -> None:
    server, _ = served
    db = server.runtime.db
    tenant, index_id = notes
    good, bad, lost = start_turns(db, tenant, index_id, 3)
    with db.write() as tx:  # as if another server had taken the third turn over
        tx.get_one(ChatSession, lost.session_id).turn_id = new_id("turn")
    answer = Text("an answer")

    async def scenario() -> list[Any]:
        writer = EventWriter(db)
        held = HeldWrites(db, [good.session_id, bad.session_id, lost.session_id])
        try:
            waits = [
                asyncio.ensure_future(writer.record(good, good.user_input_seq + 1, answer)),
                # The seq of the turn's user_input again: the database refuses it.
                asyncio.ensure_future(writer.record(bad, bad.user_input_seq, answer)),
                asyncio.ensure_future(writer.record(lost, lost.user_input_seq + 1, answer)),
            ]
            await asyncio.sleep(0.5)
            assert not any(w.done() for w in waits)  # the batch cannot commit yet
            assert stored_count(db, good.session_id) == 1  # only its user_input
        finally:
            held.release()
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
        await writer.close()
        return outcomes

    done, refused, gone = asyncio.run(scenario())
    assert done is False  # stored, no cancel asked for
    assert isinstance(refused, IntegrityError)
    assert isinstance(gone, turns.TurnLost)
    assert [e["type"] for e in history(tenant.client, good.session_id)] == ["user_input", "text"]
    assert [e["type"] for e in history(tenant.client, bad.session_id)] == ["user_input"]
    assert [e["type"] for e in history(tenant.client, lost.session_id)] == ["user_input"]


def test_shutdown_commits_queued_writes_then_refuses_more(
    served: tuple[LiveServer, FastAPI], notes: tuple[Tenant, str]
) -> None:
    server, _ = served
    db = server.runtime.db
    tenant, index_id = notes
    plans = start_turns(db, tenant, index_id, 5)
    stop = Stop()

    async def scenario() -> None:
        writer = EventWriter(db)
        held = HeldWrites(db, [p.session_id for p in plans])
        waits = [asyncio.ensure_future(writer.finish(p, p.user_input_seq + 1, stop)) for p in plans]
        await asyncio.sleep(0.1)
        closing = asyncio.ensure_future(writer.close())
        await asyncio.sleep(0.1)
        held.release()
        await closing
        assert all(w.done() and w.exception() is None for w in waits)
        with pytest.raises(WriterClosed):
            await writer.record(plans[0], plans[0].user_input_seq + 2, stop)

    asyncio.run(scenario())
    for plan in plans:
        assert [e["type"] for e in history(tenant.client, plan.session_id)] == [
            "user_input",
            "stop",
        ]
        assert tenant.client.chat.retrieve(plan.session_id)  # readable, and free for a new turn
    with db.read() as tx:
        running = tx.scalars(
            select(ChatSession.turn_id).where(ChatSession.id.in_([p.session_id for p in plans]))
        ).all()
    assert running == [None] * len(plans)


def test_a_cancel_while_the_stop_commits_still_ends_the_stream_with_it(
    served: tuple[LiveServer, FastAPI], notes: tuple[Tenant, str], fake: FakeLLM
) -> None:
    """What a client leaving, or the check for deleted sessions (which sees the session freed
    by the committed stop), does at the end of a turn: the stop still reaches the stream."""
    server, _ = served
    db = server.runtime.db
    tenant, index_id = notes
    fake.default = Reply(text="")  # no answer: the turn's only write is its stop
    (plan,) = start_turns(db, tenant, index_id, 1)

    async def scenario() -> list[dict]:
        runner = TurnRunner(server.runtime.chat_deps)
        held = HeldWrites(db, [plan.session_id])
        run = runner.start(plan)
        events = asyncio.ensure_future(_collect(run))
        try:
            for _ in range(200):  # until the stop waits for its commit
                if run.stopping:
                    break
                await asyncio.sleep(0.02)
            assert run.stopping and not run.done
            run.cancel("the chat session was deleted")
            await asyncio.sleep(0.1)
        finally:
            held.release()
        streamed = await asyncio.wait_for(events, 20)
        await runner.close()
        return streamed

    streamed = asyncio.run(scenario())
    assert [e["type"] for e in streamed] == ["user_input", "stop"]
    assert streamed == history(tenant.client, plan.session_id)


async def _collect(run: Any) -> list[dict]:
    return [e.to_wire() async for e in run.follow() if e is not None]
