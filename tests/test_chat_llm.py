"""Chat turns answered by an OpenAI-compatible model: a scripted fake speaking the Chat
Completions streaming protocol over real HTTP drives the ``openai`` provider. Tool calls,
reasoning, usage, history, the limit on model calls, one turn at a time, cancel and follow,
client disconnects, and every fault a provider can throw at us."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from deployments import fresh_postgres_database
from factories import (
    BACKENDS,
    MAX_CALLS,
    TIMEOUT,
    TURN_NOTES,
    LiveServer,
    Tenant,
    free_port,
    live_server,
    llm_settings,
    make_index,
    make_tenant,
    synced_index,
    wait_for_sync,
)
from fake_llm import FakeLLM, Reply, ToolCall, slow_reply
from llama_cloud import ConflictError
from streams import (
    cancel_while_following,
    follow,
    history,
    read_until,
    stored,
    stream_turn,
)

from indexchat.agent.loop import TOOL_RESULT_CHARS


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture(autouse=True)
def fresh_script(fake: FakeLLM) -> None:
    fake.reset()  # nothing left queued by an earlier test


@pytest.fixture(scope="module", params=BACKENDS)
def llm_server(
    request: pytest.FixtureRequest, fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    backend: str = request.param
    # A database of its own: a server sharing another's would run that one's sync jobs, without
    # the blobs they name (each test server has its own data dir).
    database_url = (
        fresh_postgres_database(request.getfixturevalue("postgres_url"))
        if backend == "postgres"
        else None
    )
    settings = llm_settings(tmp_path_factory.mktemp(f"llm-{backend}"), database_url, fake.base_url)
    with live_server(settings, backend) as running:
        yield running


@pytest.fixture(scope="module")
def notes(llm_server: LiveServer) -> tuple[Tenant, str]:
    return synced_index(llm_server, TURN_NOTES)


def search_then_answer(answer: str = "The Danube flows through Vienna [rivers.md].") -> Any:
    """A model that retrieves first, then answers once it has a tool result."""

    def reply(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool" or not body.get("tools"):
            return Reply(text=answer, usage=(300, 20))
        return Reply(
            reasoning="The user asks about a river; search first.",
            tool_calls=[ToolCall("retrieve", {"query": "Danube cities"})],
            usage=(100, 10),
        )

    return reply


def test_a_turn_with_reasoning_tool_calls_and_usage(
    notes: tuple[Tenant, str], fake: FakeLLM
) -> None:
    tenant, index_id = notes
    fake.default = search_then_answer()
    chat = tenant.client.chat.create(index_ids=[index_id])
    seen = len(fake.requests)
    events = stream_turn(tenant.client, chat.session_id, index_ids=[index_id], prompt="Danube?")

    kinds = [e["type"] for e in stored(events)]
    assert kinds == ["user_input", "thinking", "tool_call", "tool_result", "text", "stop"]
    thinking = "".join(e["content"] for e in events if e["type"] == "thinking_delta")
    assert thinking == "The user asks about a river; search first."
    assert [e["type"] for e in events].index("thinking_delta") < [e["type"] for e in events].index(
        "thinking"
    )
    call, result = (e for e in events if e["type"] in ("tool_call", "tool_result"))
    assert call["arguments"] == {"query": "Danube cities"} and call["call_id"] == result["call_id"]
    assert result["result"][0]["file_name"] == "rivers.md"
    assert "".join(e["content"] for e in events if e["type"] == "text_delta") == (
        "The Danube flows through Vienna [rivers.md]."
    )
    stop = events[-1]
    assert stop["is_error"] is False
    assert stop["usage"]["total_input_tokens"] == 400  # the server's own counts, summed
    assert stop["usage"]["total_output_tokens"] == 30
    assert stop["usage"]["turns"] == 2

    first, second = fake.requests[seen:]
    assert first["model"] == "fake-model" and first["stream"] is True
    assert {t["function"]["name"] for t in first["tools"]} == {
        "retrieve",
        "find_files",
        "grep_file",
        "read_file",
    }
    assert first["messages"][0]["role"] == "system"
    assert first["messages"][-1] == {"role": "user", "content": "Danube?"}
    assistant, tool = second["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "retrieve"
    assert tool["role"] == "tool" and tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert "Vienna, Bratislava and Budapest" in tool["content"]
    assert stored(events) == history(tenant.client, chat.session_id)


def test_earlier_turns_reach_the_model(notes: tuple[Tenant, str], fake: FakeLLM) -> None:
    tenant, index_id = notes
    chat = tenant.client.chat.create(index_ids=[index_id])
    fake.default = search_then_answer("First answer: Vienna.")
    stream_turn(tenant.client, chat.session_id, index_ids=[index_id], prompt="First question?")
    fake.default = search_then_answer("Second answer.")
    stream_turn(tenant.client, chat.session_id, index_ids=[index_id], prompt="And then?")
    messages = fake.requests[-1]["messages"]
    said = [(m["role"], m.get("content")) for m in messages if m["role"] in ("user", "assistant")]
    assert said[:3] == [
        ("user", "First question?"),
        ("assistant", "First answer: Vienna."),
        ("user", "And then?"),
    ]


def test_the_last_allowed_model_call_gets_no_tools(
    notes: tuple[Tenant, str], fake: FakeLLM
) -> None:
    tenant, index_id = notes

    def keeps_searching(body: dict[str, Any]) -> Reply:
        if not body.get("tools"):
            return Reply(text="Enough searching: Vienna.")
        return Reply(tool_calls=[ToolCall("retrieve", {"query": "more"})])

    fake.default = keeps_searching
    chat = tenant.client.chat.create()
    seen = len(fake.requests)
    events = stream_turn(tenant.client, chat.session_id, index_ids=[index_id], prompt="Loop?")
    assert events[-1]["is_error"] is False and events[-1]["usage"]["turns"] == MAX_CALLS
    assert [e["type"] for e in stored(events)].count("tool_call") == MAX_CALLS - 1
    assert len(fake.requests) - seen == MAX_CALLS and "tools" not in fake.requests[-1]
    assert stored(events)[-2] == {"type": "text", "content": "Enough searching: Vienna."}


def test_a_long_tool_result_reaches_the_model_trimmed_and_valid(
    llm_server: LiveServer, fake: FakeLLM
) -> None:
    tenant = make_tenant(llm_server)
    text = "".join(f"Line {n}: the log goes on.\n" for n in range(1_500))
    index_id, _, _ = make_index(tenant, {"long.txt": text.encode()})
    wait_for_sync(tenant.client, index_id)

    def find_then_read(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "user":
            return Reply(tool_calls=[ToolCall("find_files", {"name": "long"})])
        found = json.loads(last["content"])
        if isinstance(found, list):
            read = {"file_id": found[0]["file_id"], "max_length": 20_000}
            return Reply(tool_calls=[ToolCall("read_file", read)])
        return Reply(text="Read it.")

    fake.default = find_then_read
    chat = tenant.client.chat.create(index_ids=[index_id])
    events = stream_turn(tenant.client, chat.session_id, index_ids=[index_id], prompt="Read it")
    assert events[-1]["is_error"] is False, events[-1]
    full = next(e for e in events if e["type"] == "tool_result" and e["name"] == "read_file")
    assert len(full["result"]["content"]) == 20_000  # the event keeps the whole result
    content = fake.requests[-1]["messages"][-1]["content"]
    assert len(content) <= TOOL_RESULT_CHARS
    sent = json.loads(content)  # valid JSON, every field there, the text cut and saying so
    assert {k: v for k, v in sent.items() if k != "content"} == {
        k: v for k, v in full["result"].items() if k != "content"
    }
    kept, cut = sent["content"].split(" …[")
    assert full["result"]["content"].startswith(kept)
    assert cut == f"{20_000 - len(kept):,} more characters]"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(fault="http_500"), "answered HTTP 500"),
        (Reply(fault="http_429"), "answered HTTP 429"),
        (Reply(fault="hang"), f"did not answer within {TIMEOUT:g} s"),
        (Reply(text="partial answer", fault="stall"), f"did not answer within {TIMEOUT:g} s"),
        (Reply(text="partial answer", fault="malformed"), "malformed reply"),
        (Reply(text="partial answer", fault="cut"), "language model"),
        (Reply(text="partial answer", fault="stream_error"), "malformed reply"),
        (Reply(tool_calls=[ToolCall("retrieve", '{"query": ')]), "not valid JSON"),
        (Reply(tool_calls=[ToolCall("retrieve", '["a list"]')]), "not an object"),
        (Reply(tool_calls=[ToolCall("retrieve", {"top_k": 3})]), "query: Field required"),
        (Reply(tool_calls=[ToolCall("delete_everything", {})]), "unknown tool"),
        (Reply(tool_calls=[ToolCall("read_file", {"file_id": "dfl-nope"})]), "no file"),
        (
            Reply(tool_calls=[ToolCall("grep_file", {"file_id": "dfl-x", "pattern": "("})]),
            "no file",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_faults_end_the_turn_with_an_error_and_the_session_goes_on(
    notes: tuple[Tenant, str], fake: FakeLLM, reply: Reply, message: str
) -> None:
    tenant, index_id = notes
    chat = tenant.client.chat.create(index_ids=[index_id])
    fake.script(reply)
    events = stream_turn(tenant.client, chat.session_id, index_ids=[index_id], prompt="Danube?")
    stop = events[-1]
    assert stop["type"] == "stop" and stop["is_error"] is True
    assert message in stop["error"], stop["error"]
    assert [e["type"] for e in events].count("stop") == 1
    metadata = tenant.client.chat.get_summary(chat.session_id).job_metadata
    assert metadata is not None and metadata.is_error is True and metadata.error == stop["error"]
    assert history(tenant.client, chat.session_id)[-1] == stop
    # The next turn works.
    fake.script(Reply(text="Recovered."))
    after = stream_turn(tenant.client, chat.session_id, index_ids=[index_id], prompt="Again?")
    assert after[-1]["is_error"] is False and stored(after)[-2]["content"] == "Recovered."


def test_a_refused_connection_ends_the_turn_with_an_error(tmp_path: Any, fake: FakeLLM) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with live_server(llm_settings(tmp_path, None, closed), "sqlite") as server:
        tenant = make_tenant(server)
        chat = tenant.client.chat.create()
        events = stream_turn(tenant.client, chat.session_id, index_ids=[], prompt="Hello?")
    assert [e["type"] for e in events] == ["user_input", "stop"]
    assert events[-1]["is_error"] and "cannot reach the language model" in events[-1]["error"]


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_client_disconnect_cancels_the_model_call(notes: tuple[Tenant, str], fake: FakeLLM) -> None:
    tenant, _ = notes
    chat = tenant.client.chat.create()
    fake.disconnected.clear()
    fake.script(slow_reply())
    with tenant.client.chat.with_streaming_response.stream(
        chat.session_id, index_ids=[], prompt="Tell me a long story."
    ) as response:
        read_until(response.iter_lines(), "text_delta")
    assert fake.disconnected.wait(5), "the model call went on after the client left"
    wait_for(lambda: history(tenant.client, chat.session_id)[-1]["type"] == "stop")
    stop = history(tenant.client, chat.session_id)[-1]
    assert stop["is_error"] is True and "client disconnected" in stop["error"]
    fake.script(Reply(text="Short one."))
    after = stream_turn(tenant.client, chat.session_id, index_ids=[], prompt="Short?")
    assert after[-1]["is_error"] is False


def test_a_turn_asked_to_continue_outlives_its_client(
    notes: tuple[Tenant, str], fake: FakeLLM
) -> None:
    """What the web page asks for, so that reloading it does not cancel the answer."""
    tenant, _ = notes
    chat = tenant.client.chat.create()
    fake.disconnected.clear()
    fake.script(Reply(text=[f"word{i} " for i in range(30)], chunk_delay=0.05))
    with tenant.client.chat.with_streaming_response.stream(
        chat.session_id,
        index_ids=[],
        prompt="Tell me a story.",
        extra_body={"continue_on_disconnect": True},
    ) as response:
        seen = read_until(response.iter_lines(), "text_delta")
    rest = follow(tenant.client, chat.session_id)  # from the start: history, then the live turn
    assert not fake.disconnected.is_set(), "the model call was cancelled with the client"
    stop = rest[-1]
    assert stop["type"] == "stop" and stop["is_error"] is False, stop
    assert seen[0]["type"] == "user_input" and rest[0] == seen[0]
    answer = next(e["content"] for e in rest if e["type"] == "text")
    assert answer == "".join(f"word{i} " for i in range(30))


def test_one_turn_at_a_time_cancel_and_follow(notes: tuple[Tenant, str], fake: FakeLLM) -> None:
    tenant, _ = notes
    client = tenant.client
    chat = client.chat.create()
    fake.script(slow_reply())
    with client.chat.with_streaming_response.stream(
        chat.session_id, index_ids=[], prompt="Long answer please."
    ) as response:
        lines = response.iter_lines()
        first = read_until(lines, "text_delta")
        # A second turn, and an SDK retry of this one, are refused while it runs.
        with pytest.raises(ConflictError) as caught:
            client.chat.stream(chat.session_id, index_ids=[], prompt="Another question")
        assert caught.value.response.headers["x-should-retry"] == "false"
        rest, followed = cancel_while_following(client, chat.session_id, lines)
    events = first + rest
    stop = events[-1]
    assert stop["type"] == "stop" and stop["is_error"] and "cancelled on request" in stop["error"]
    assert len([e for e in events if e["type"] == "text_delta"]) < 100
    assert followed[0]["type"] == "user_input" and followed[-1] == stop
    assert stored(followed) == history(client, chat.session_id)
    fake.script(Reply(text="Fine."))
    assert (
        stream_turn(client, chat.session_id, index_ids=[], prompt="Next?")[-1]["is_error"] is False
    )


def test_a_retried_request_does_not_run_the_turn_twice(
    notes: tuple[Tenant, str], fake: FakeLLM
) -> None:
    tenant, _ = notes
    chat = tenant.client.chat.create()
    stream_turn(tenant.client, chat.session_id, index_ids=[], prompt="Only once")
    # What the SDK sends when it retries a request whose answer it did not get.
    with pytest.raises(ConflictError):
        tenant.client.chat.stream(
            chat.session_id,
            index_ids=[],
            prompt="Only once",
            extra_headers={"x-stainless-retry-count": "1"},
        )
    # A new request with the same words is a new turn.
    stream_turn(tenant.client, chat.session_id, index_ids=[], prompt="Only once")
    assert [e["type"] for e in history(tenant.client, chat.session_id)].count("user_input") == 2


def test_another_server_of_the_fleet_can_follow_and_cancel_a_turn(
    request: pytest.FixtureRequest, tmp_path: Any, fake: FakeLLM
) -> None:
    if "postgres" not in BACKENDS:
        pytest.skip("a fleet shares one PostgreSQL database")
    url = fresh_postgres_database(request.getfixturevalue("postgres_url"))  # this fleet's own
    with (
        live_server(llm_settings(tmp_path / "a", url, fake.base_url), "postgres") as server_a,
        live_server(llm_settings(tmp_path / "b", url, fake.base_url), "postgres") as server_b,
    ):
        tenant = make_tenant(server_a)
        on_b = server_b.sdk(tenant.api_key)
        chat = tenant.client.chat.create()
        fake.script(slow_reply())
        with tenant.client.chat.with_streaming_response.stream(
            chat.session_id, index_ids=[], prompt="Long answer please."
        ) as response:
            lines = response.iter_lines()
            read_until(lines, "text_delta")
            with pytest.raises(ConflictError):  # one turn at a time, whichever server asks
                on_b.chat.stream(chat.session_id, index_ids=[], prompt="Meanwhile?")
            started = time.monotonic()
            rest, followed = cancel_while_following(on_b, chat.session_id, lines)
            assert time.monotonic() - started < 5
    assert rest[-1]["type"] == "stop" and "cancelled on request" in rest[-1]["error"]
    assert followed and followed[0]["type"] == "user_input" and followed[-1] == rest[-1]
    assert followed == stored(followed)  # polled from the database: complete events only
