"""Chat turns whose server dies mid-stream, across real ``indexchat serve`` processes: killed
with SIGKILL while the scripted model is still streaming, a turn is closed with a ``stop`` event
when its server restarts, or by any other server of the fleet that a client asks to follow,
cancel or start a turn; and a server never closes the live turn of another one.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from deployments import Deployment, wait_until
from fake_llm import FakeLLM, Reply, slow_reply
from llama_cloud import ConflictError, LlamaCloud
from sqlalchemy import update
from streams import cancel_while_following, follow, history, read_until, stored, stream_turn

from indexchat.services.turns import TIMINGS
from indexchat.storage.sessions import events as stored_events
from indexchat.storage.tables import ChatSession

SERVER_STOPPED = "the server running this turn stopped"
# A restarted server that cannot check the dead server's process takes its turns over by then.
TAKEOVER_SECONDS = 15


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


def serve(deployment: Deployment, fake: FakeLLM, name: str) -> tuple[Any, LlamaCloud]:
    """Start ``indexchat serve`` answering with the scripted model; the process and a client."""
    process = deployment.serve(
        name, llm="openai", llm_model="fake-model", llm_base_url=fake.base_url, llm_api_key="sk"
    )
    return process, deployment.client


def kill(process: Any) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def assert_closed_by_stop(client: LlamaCloud, session_id: str) -> dict:
    events = history(client, session_id)
    assert [e["type"] for e in events] == ["user_input", "stop"], events
    stop = events[-1]
    assert stop["is_error"] is True and SERVER_STOPPED in stop["error"]
    metadata = client.chat.get_summary(session_id).job_metadata
    assert metadata is not None and metadata.is_error is True and metadata.error == stop["error"]
    return stop


def assert_new_turn_runs(client: LlamaCloud, fake: FakeLLM, session_id: str) -> None:
    fake.script(Reply(text="Back again."))
    events = stream_turn(client, session_id, index_ids=[], prompt="Are you there?")
    assert events[-1]["is_error"] is False and stored(events)[-2]["content"] == "Back again."
    kinds = [e["type"] for e in history(client, session_id)]
    assert kinds == ["user_input", "stop", "user_input", "text", "stop"]


def held_stream(client: LlamaCloud, session_id: str) -> Any:
    """A turn's own stream, to hold open until the server dies: leaving it cancels the turn."""
    return client.chat.with_streaming_response.stream(
        session_id, index_ids=[], prompt="Tell me a story.", timeout=10
    )


def killed_mid_turn(deployment: Deployment, fake: FakeLLM) -> str:
    """A session whose turn was streaming when its server was killed."""
    server, client = serve(deployment, fake, "serve-killed")
    chat = client.chat.create()
    fake.script(slow_reply(words=400))
    with held_stream(client, chat.session_id) as response:
        lines = response.iter_lines()  # kept: a dropped iterator closes the connection
        read_until(lines, "text_delta")
        kill(server)
    assert [e["type"] for e in history_in_db(deployment, chat.session_id)] == ["user_input"]
    return chat.session_id


def test_a_killed_turn_is_closed_when_its_server_restarts(
    deployment: Deployment, fake: FakeLLM
) -> None:
    session_id = killed_mid_turn(deployment, fake)
    _, client = serve(deployment, fake, "serve-restarted")
    # Closed as the server started, before any client asked about it.
    assert_closed_by_stop(client, session_id)
    assert_new_turn_runs(client, fake, session_id)


def test_another_server_closes_a_killed_turn_on_follow_and_on_cancel(
    deployment: Deployment, fake: FakeLLM
) -> None:
    _, on_b = serve(deployment, fake, "serve-b")  # started first: its start-up sees no turn
    server_a, on_a = serve(deployment, fake, "serve-a")
    followed, cancelled = on_a.chat.create(), on_a.chat.create()
    fake.script(slow_reply(words=400), slow_reply(words=400))
    with (
        held_stream(on_a, followed.session_id) as first,
        held_stream(on_a, cancelled.session_id) as second,
    ):
        lines = first.iter_lines(), second.iter_lines()
        for each in lines:
            read_until(each, "text_delta")
        kill(server_a)

    started = time.monotonic()
    events = follow(on_b, followed.session_id)
    assert time.monotonic() - started < 5
    assert [e["type"] for e in events] == ["user_input", "stop"]
    assert assert_closed_by_stop(on_b, followed.session_id) == events[-1]

    answer = on_b.post(f"/api/v1/chat/{cancelled.session_id}/messages/cancel", cast_to=object)
    assert answer["session_id"] == cancelled.session_id
    assert_closed_by_stop(on_b, cancelled.session_id)
    with pytest.raises(ConflictError):  # nothing runs any more
        on_b.post(f"/api/v1/chat/{cancelled.session_id}/messages/cancel", cast_to=object)

    assert_new_turn_runs(on_b, fake, followed.session_id)
    assert_new_turn_runs(on_b, fake, cancelled.session_id)


def test_a_killed_turn_of_another_machine_is_taken_over_within_seconds(
    deployment: Deployment, fake: FakeLLM
) -> None:
    session_id = killed_mid_turn(deployment, fake)
    # As if it had run on another machine: its pid says nothing here, only its heartbeat.
    mark_as_remote(deployment, session_id)

    _, client = serve(deployment, fake, "serve-restarted")
    restarted = time.monotonic()
    fake.reset(Reply(text="Back again."))

    def new_turn() -> list[dict] | None:
        try:
            return stream_turn(client, session_id, index_ids=[], prompt="Are you there?")
        except ConflictError:
            assert time.monotonic() - restarted < 2 * TAKEOVER_SECONDS, "never taken over"
            time.sleep(0.25)
            return None

    events = wait_until(new_turn, "the new turn to be accepted", timeout=2 * TAKEOVER_SECONDS)
    assert time.monotonic() - restarted < TAKEOVER_SECONDS
    assert events[-1]["is_error"] is False
    kinds = [e["type"] for e in history(client, session_id)]
    assert kinds == ["user_input", "stop", "user_input", "text", "stop"]
    assert SERVER_STOPPED in history(client, session_id)[1]["error"]


def test_a_live_turn_of_another_server_is_left_alone(deployment: Deployment, fake: FakeLLM) -> None:
    _, on_a = serve(deployment, fake, "serve-a")
    chat = on_a.chat.create()
    fake.script(slow_reply(words=600))  # a minute: longer than anything below
    with held_stream(on_a, chat.session_id) as response:
        lines = response.iter_lines()
        first = read_until(lines, "text_delta")
        _, on_b = serve(deployment, fake, "serve-b")  # its start-up finds A's turn alive
        with pytest.raises(ConflictError):
            on_b.chat.stream(chat.session_id, index_ids=[], prompt="Meanwhile?")
        # Only A's heartbeat speaks for the turn now; it keeps B off for longer than staleness.
        mark_as_remote(deployment, chat.session_id)
        until = time.monotonic() + TIMINGS.stale.total_seconds() + 3
        while time.monotonic() < until:
            with pytest.raises(ConflictError):
                on_b.chat.stream(chat.session_id, index_ids=[], prompt="Meanwhile?")
            time.sleep(1)
        rest, followed = cancel_while_following(on_b, chat.session_id, lines)
    stop = rest[-1]
    assert stop["type"] == "stop" and "cancelled on request" in stop["error"], stop
    assert followed[-1] == stop and stored(followed) == history(on_b, chat.session_id)
    assert [e["type"] for e in stored(first + rest)] == ["user_input", "stop"]
    # A streamed all along: one word every 0.1 s, far past the point a stale turn is taken.
    assert len([e for e in first + rest if e["type"] == "text_delta"]) > 10 * (
        TIMINGS.stale.total_seconds() + 3
    )


def mark_as_remote(deployment: Deployment, session_id: str) -> None:
    with deployment.db.write() as tx:
        tx.execute(
            update(ChatSession)
            .where(ChatSession.id == session_id)
            .values(turn_owner_host="another-machine")
        )


def history_in_db(deployment: Deployment, session_id: str) -> list[dict]:
    with deployment.db.read() as tx:
        return [e.payload for e in stored_events(tx, session_id=session_id)]
