"""CPU the model client spends per turn with many turns streaming at once.

    python bench/bench_llm_client.py [--turns 200] [--rounds 3] [--pools 1 8]
    PYTHONPATH=<an older tree>/src python bench/bench_llm_client.py --pools 0

The scripted model of ``bench_chat.py`` runs in its own process. Each turn makes the two model
calls of a chat turn through ``OpenAIChatModel``: the first asks for a tool call, then, after a
pause like a tool's run, the second streams a ~60-word answer. All turns start together. The
figure is this process's CPU time (user + system) per turn, the model process excluded; the
client is built with each ``--pools`` value in turn, rounds interleaved (1 pool is the SDK's
own single pool; 0 builds the client as it comes, which also runs code older than the option).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_chat import ANSWER, QUESTIONS, FakeModelProcess  # noqa: E402

from indexchat.agent.model import TextDelta, ToolRequest  # noqa: E402
from indexchat.agent.openai_chat import OpenAIChatModel  # noqa: E402

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "retrieve",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


async def turn(model: OpenAIChatModel, n: int, pause_s: float) -> bool:
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"[{n}] {QUESTIONS[n % 10]}"}]
    calls = [out async for out in model.stream(messages, TOOLS) if isinstance(out, ToolRequest)]
    await asyncio.sleep(pause_s)  # the tool runs
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c.call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in calls
            ],
        },
        *({"role": "tool", "tool_call_id": c.call_id, "content": "[]"} for c in calls),
    ]
    text = [out.text async for out in model.stream(messages, TOOLS) if isinstance(out, TextDelta)]
    return len(calls) == 1 and "".join(text) == ANSWER


async def phase(base_url: str, pools: int, turns: int, seed: int) -> dict[str, float]:
    options: dict[str, Any] = {"pools": pools} if pools else {}
    model = OpenAIChatModel(model="fake-model", base_url=base_url, api_key="unused", **options)
    pauses = random.Random(seed).choices([0.0, 0.01, 0.02, 0.05], k=turns)
    cpu, wall = time.process_time(), time.perf_counter()
    ok = await asyncio.gather(*(turn(model, n, p) for n, p in enumerate(pauses)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await model._client.close()
    if not all(ok):
        raise RuntimeError(f"{ok.count(False)} turns went wrong")
    return {"cpu_ms_per_turn": cpu * 1000 / turns, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pools", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    model = FakeModelProcess()
    runs: dict[int, list[dict[str, float]]] = {p: [] for p in args.pools}
    try:
        asyncio.run(phase(model.base_url, args.pools[-1], 20, 0))  # warm up
        for r in range(args.rounds):
            for pools in args.pools:
                runs[pools].append(asyncio.run(phase(model.base_url, pools, args.turns, r)))
    finally:
        model.close()
    print(json.dumps(runs))
    print("\n| pools | client CPU per turn, ms (median) | each round | wall s (median) |")
    print("|---|---|---|---|")
    for pools, rs in runs.items():
        cpu = [r["cpu_ms_per_turn"] for r in rs]
        wall = statistics.median(r["wall_s"] for r in rs)
        each = ", ".join(f"{c:.1f}" for c in cpu)
        print(f"| {pools} | {statistics.median(cpu):.1f} | {each} | {wall:.2f} |")


if __name__ == "__main__":
    main()
