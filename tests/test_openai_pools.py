"""The model client's connection pools: requests go to each pool in turn, each pool keeps its
connection alive for the next request, and many streams at once all arrive whole. Against the
scripted model (a real HTTP server on a loopback port)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2
import pytest
from fake_llm import FakeLLM, Reply

from indexchat.agent.model import TextDelta
from indexchat.agent.openai_chat import POOLS, OpenAIChatModel, SpreadPools


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
