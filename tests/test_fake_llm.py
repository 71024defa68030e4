"""The scripted chat model server, driven by the official openai SDK, sync and async."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fake_llm import FakeLLM, Reply, ToolCall
from openai import AsyncOpenAI, OpenAI

MESSAGES: list[Any] = [{"role": "user", "content": "What does aspirin do?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the indexes.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def _client(fake: FakeLLM, timeout: float = 10.0) -> OpenAI:
    return OpenAI(base_url=fake.base_url, api_key="test-key", timeout=timeout, max_retries=0)


def _stream(client: OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model="fake-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        **kwargs,
    )


def test_text_streams_in_pieces_that_join_back(fake: FakeLLM) -> None:
    text = "Aspirin inhibits\nplatelet aggregation.  It lowers heart attack risk."
    fake.script(Reply(text=text))
    chunks = list(_stream(_client(fake)))
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(deltas) > 3
    assert "".join(deltas) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].model == "fake-model"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}


def test_reasoning_arrives_in_either_field_before_the_text(fake: FakeLLM) -> None:
    fake.script(
        Reply(reasoning="Think about platelets.", text="Blood thins."),
        Reply(reasoning=["Think", " again."], reasoning_field="reasoning", text="Still thins."),
    )
    client = _client(fake)
    for field, reasoning, text in [
        ("reasoning_content", "Think about platelets.", "Blood thins."),
        ("reasoning", "Think again.", "Still thins."),
    ]:
        order: list[str] = []
        thoughts, answer = "", ""
        for chunk in _stream(client):
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if piece := (delta.model_extra or {}).get(field):
                thoughts += piece
                order.append("reasoning")
            if delta.content:
                answer += delta.content
                order.append("text")
        assert (thoughts, answer) == (reasoning, text)
        assert order.index("text") > len(order) - order[::-1].index("reasoning") - 1


def test_tool_call_arguments_reassemble_to_json(fake: FakeLLM) -> None:
    fake.script(
        Reply(
            tool_calls=[
                ToolCall("search", {"query": "aspirin platelet aggregation", "top_k": 5}),
                ToolCall("read", '{"file_id": "f1", "page": ', id="call_given"),  # invalid JSON
            ]
        )
    )
    calls: dict[int, dict[str, str]] = {}
    fragments_per_call: dict[int, int] = {}
    finish = None
    for chunk in _stream(_client(fake), tools=TOOLS):
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            if delta.function:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
            fragments_per_call[delta.index] = fragments_per_call.get(delta.index, 0) + 1
    assert finish == "tool_calls"
    assert calls[0]["name"] == "search" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {
        "query": "aspirin platelet aggregation",
        "top_k": 5,
    }
    assert fragments_per_call[0] > 2  # streamed in pieces, not in one delta
    assert calls[1] == {
        "id": "call_given",
        "name": "read",
        "arguments": '{"file_id": "f1", "page": ',
    }


def test_usage_comes_last_only_when_asked_for(fake: FakeLLM) -> None:
    fake.script(Reply(text="ok", usage=(120, 30)), Reply(text="ok"))
    client = _client(fake)
    chunks = list(_stream(client))
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.total_tokens) == (120, 150)
    assert all(c.usage is None for c in chunks[:-1])
    plain = client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    assert all(c.choices and c.usage is None for c in plain)


def test_requests_are_recorded_with_messages_and_tools(fake: FakeLLM) -> None:
    client = _client(fake)
    list(_stream(client, tools=TOOLS))
    messages = [*MESSAGES, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "?"}]
    client.chat.completions.create(model="other-model", messages=messages)
    first, second = fake.requests
    assert first["messages"] == MESSAGES and first["tools"] == TOOLS and first["stream"] is True
    assert second["messages"] == messages and second["model"] == "other-model"
    assert "stream" not in second


def test_non_streamed_call_gets_one_completion(fake: FakeLLM) -> None:
    fake.script(Reply(text="Blood thins.", tool_calls=[ToolCall("search", {"query": "x"})]))
    completion = _client(fake).chat.completions.create(model="fake-model", messages=MESSAGES)
    message = completion.choices[0].message
    assert message.content == "Blood thins."
    assert message.tool_calls and json.loads(message.tool_calls[0].function.arguments) == {  # type: ignore[union-attr]
        "query": "x"
    }
    assert completion.choices[0].finish_reason == "tool_calls"


def test_script_runs_out_into_the_default_and_callables_see_the_request(fake: FakeLLM) -> None:
    fake.default = lambda body: Reply(text=f"echo {body['messages'][-1]['content']}")
    fake.script(Reply(text="first"))
    client = _client(fake)
    answers = [
        client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
        for _ in range(2)
    ]
    assert answers == ["first", "echo What does aspirin do?"]


def test_on_served_sees_each_call_with_the_time_its_whole_stream_took() -> None:
    served: list[tuple[str, float]] = []
    slow = Reply(text=["a ", "b ", "c"], chunk_delay=0.05)
    with FakeLLM(default=slow, on_served=lambda b, s: served.append((b["model"], s))) as fake:
        list(_stream(_client(fake)))
        _client(fake).chat.completions.create(model="other", messages=MESSAGES)
    assert [model for model, _ in served] == ["fake-model", "other"]
    # Every frame of the stream was written before the call counted as served.
    assert served[0][1] >= 0.05 * 5 and served[1][1] >= 0


def test_models_are_listed(fake: FakeLLM) -> None:
    assert [m.id for m in _client(fake).models.list()] == ["fake-model"]


@pytest.mark.parametrize(
    ("fault", "error"),
    [("http_500", openai.InternalServerError), ("http_429", openai.RateLimitError)],
)
def test_error_status_raises_on_create(fake: FakeLLM, fault: Any, error: type[Exception]) -> None:
    fake.script(Reply(fault=fault))
    with pytest.raises(error) as raised:
        _stream(_client(fake))
    assert isinstance(raised.value, openai.APIStatusError)
    assert raised.value.body["message"]  # type: ignore[index]


def test_hang_times_out(fake: FakeLLM) -> None:
    fake.script(Reply(fault="hang"))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        _stream(_client(fake, timeout=0.3))
    assert time.monotonic() - started < 3


# Faults after the status line surface while iterating, not from create(): these are the
# exception classes a chat model client has to catch there. A frame that is not JSON escapes
# the SDK unwrapped.
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("stall", openai.APITimeoutError),
        ("malformed", json.JSONDecodeError),
        ("cut", openai.APIConnectionError),
        ("stream_error", openai.APIError),
    ],
)
def test_mid_stream_fault_raises_while_iterating(
    fake: FakeLLM, fault: Any, error: type[Exception]
) -> None:
    fake.script(Reply(text="one two three four five", fault=fault))
    stream = _stream(_client(fake, timeout=0.3))  # the status line is 200: no error yet
    received: list[str] = []
    with pytest.raises(error):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert received and "five" not in "".join(received)
    assert fake.completed == 0


def test_async_faults_match_sync(fake: FakeLLM) -> None:
    async def run(fault: Any) -> type[BaseException]:
        fake.script(Reply(text="one two three", fault=fault))
        client = AsyncOpenAI(base_url=fake.base_url, api_key="k", timeout=0.3, max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model="fake-model", messages=MESSAGES, stream=True
            )
            async for _ in stream:
                pass
        except Exception as exc:
            return type(exc)
        finally:
            await client.close()
        raise AssertionError(f"{fault} raised nothing")

    async def main() -> list[type[BaseException]]:
        return [await run(f) for f in ("http_500", "hang", "stall", "malformed", "cut")]

    assert asyncio.run(main()) == [
        openai.InternalServerError,
        openai.APITimeoutError,
        openai.APITimeoutError,
        json.JSONDecodeError,
        openai.APIConnectionError,
    ]


def test_fifty_concurrent_async_streams_all_complete(fake: FakeLLM) -> None:
    fake.default = lambda body: Reply(
        text=f"answer to {body['messages'][0]['content']}", chunk_delay=0.02
    )

    async def one(client: AsyncOpenAI, n: int) -> str:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": f"question {n}"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def main() -> list[str]:
        async with AsyncOpenAI(
            base_url=fake.base_url, api_key="k", timeout=30, max_retries=0
        ) as client:
            return await asyncio.gather(*(one(client, n) for n in range(50)))

    answers = asyncio.run(main())
    assert answers == [f"answer to question {n}" for n in range(50)]
    assert fake.completed == 50 and len(fake.requests) == 50
    assert fake.peak_streams >= 10  # served side by side, not one after another


def test_client_leaving_a_slow_stream_is_noticed(fake: FakeLLM) -> None:
    fake.script(Reply(text=[f"w{n} " for n in range(200)], chunk_delay=0.02))
    stream = _stream(_client(fake))
    for n, _ in enumerate(stream):
        if n == 3:
            break
    stream.close()
    assert fake.disconnected.wait(5)
    assert fake.disconnects == 1 and fake.completed == 0
