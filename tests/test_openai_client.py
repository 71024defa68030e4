"""The model client's transport and stream reading: requests go to each connection pool in
turn, a streamed reply leaves its connection alive for the next request, many streams at once
all arrive whole, and server-sent events are read the same however the body is cut into
pieces. Against the scripted model (a real HTTP server on a loopback port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from fake_llm import FakeLLM, Reply

from indexchat.agent.model import TextDelta
from indexchat.agent.openai_chat import POOLS, OpenAIChatModel, SpreadPools, _event_data


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


def test_requests_go_to_each_pool_in_turn_and_reuse_its_connection(fake: FakeLLM) -> None:
    async def run() -> tuple[list[list[int]], list[int]]:
        transport = SpreadPools()
        async with httpx2.AsyncClient(transport=transport) as client:
            for _ in range(2 * POOLS):
                response = await client.get(f"{fake.base_url}/models")
                assert response.status_code == 200 and response.json()["data"]
            held = [
                [c.info().count("Request Count: 2") for c in pool._pool.connections]
                for pool in transport._pools
            ]
        return held, [len(pool._pool.connections) for pool in transport._pools]

    held, after_close = asyncio.run(run())
    # Every pool served two of the requests over one kept-alive connection.
    assert held == [[1]] * POOLS
    assert after_close == [0] * POOLS


def test_many_concurrent_streams_each_arrive_whole(fake: FakeLLM) -> None:
    streams = 6 * POOLS
    fake.reset(default=lambda body: Reply(text=f"answer to {body['messages'][-1]['content']}"))

    async def one(model: OpenAIChatModel, n: int) -> str:
        parts = []
        async for out in model.stream([{"role": "user", "content": f"question {n}"}], []):
            if isinstance(out, TextDelta):
                parts.append(out.text)
        return "".join(parts)

    async def run() -> list[str]:
        model = OpenAIChatModel(model="fake-model", base_url=fake.base_url, api_key="sk-test")
        return await asyncio.gather(*(one(model, n) for n in range(streams)))

    try:
        answers = asyncio.run(run())
    finally:
        fake.reset()
    assert answers == [f"answer to question {n}" for n in range(streams)]


def test_a_streamed_reply_leaves_its_connection_for_the_next_request(fake: FakeLLM) -> None:
    async def run() -> list[str]:
        model = OpenAIChatModel(model="fake-model", base_url=fake.base_url, pools=1)
        for _ in range(3):
            async for _out in model.stream([{"role": "user", "content": "hi"}], []):
                pass
        (pool,) = model._client._client._transport._pools  # type: ignore[attr-defined]
        infos = [c.info() for c in pool._pool.connections]
        await model._client.close()
        return infos

    infos = asyncio.run(run())
    assert len(infos) == 1 and "Request Count: 3" in infos[0], infos


BODY = (
    b'data: {"a": 1}\n\n'
    b'data: {"b": 2}\r\n\r\n'
    b": a comment\n\n"
    b"event: note\nid: 7\ndata: line one\ndata:line two\n\n"
    b"data: [DONE]\n\n"
)


def test_events_read_alike_however_the_body_is_cut() -> None:
    async def pieces(parts: list[bytes]) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    async def read(parts: list[bytes]) -> list[bytes]:
        return [data async for data in _event_data(pieces(parts))]

    whole = asyncio.run(read([BODY]))
    assert whole == [b'{"a": 1}', b'{"b": 2}', b"line one\nline two", b"[DONE]"]
    for i in range(len(BODY) + 1):
        for j in range(i, len(BODY) + 1, 3):
            assert asyncio.run(read([BODY[:i], BODY[i:j], BODY[j:]])) == whole, (i, j)
    # CR alone ends a line too, and a last event needs no blank line after it.
    assert asyncio.run(read([b"data: x\r", b"data: y\r\r", b"data: end"])) == [b"x\ny", b"end"]
