"""Chat turns over HTTP: server overhead per turn, time to first event, many concurrent streams,
and extractive answers on SciFact.

    python bench/bench_chat.py [--turns 200] [--concurrent 200] [--files 20] [--also-httpx]
        [--scifact-data-dir DIR | --scifact-limit-docs N] [--scifact-queries 50]

A scripted OpenAI-compatible model (``tests/fake_llm.py``) runs in its own process and answers
at once: the first call of a turn asks for a ``retrieve`` tool call with the prompt, the call
after the tool result answers with text. ``indexchat serve`` runs as a subprocess with
``INDEXCHAT_LLM=openai`` pointed at it, over a small index synced through the official SDK.
The model process turns Nagle's algorithm off on its sockets, as real model servers do.

- overhead per turn = (request written -> ``stop`` event read) minus the time the model process
  spent serving that turn's model calls (measured in the model process, per request handler);
- time to first event = request written -> first ``data:`` line;
- baseline, interleaved with the turns over the same connection: ``GET /health`` and
  ``GET /api/v1/chat/{id}/summary``;
- concurrent: ``--concurrent`` sessions, one turn each, all started together, each on its own
  connection (timed from before connecting); errors are non-200 answers, broken streams, a
  missing ``stop`` or a ``stop`` with ``is_error``.

The load generator is a small asyncio HTTP/1.1 client (it writes the request and reads the
chunked SSE body itself); ``--also-httpx`` runs the concurrent phase a second time through an
``httpx.AsyncClient`` with an unlimited pool, for comparison.

SciFact (optional, ``INDEXCHAT_LLM=extractive``): ``--scifact-data-dir DIR`` takes a folder
where ``bench/bench_scifact.py --data-dir DIR`` synced SciFact (SQLite) and works on a copy of
it, so DIR is left as it was; ``--scifact-limit-docs N`` instead ingests the first N documents
plus those relevant to the queries asked (minutes of CPU for large N).

Writes ``bench/results/chat-<time>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from common import RESULTS, ROOT, Server, load_scifact, machine, summary

TURN_TIMEOUT_S = 300  # a turn still running after this counts as an error

TOPICS = [
    ("rivers", "The Danube flows through Vienna, Bratislava, Budapest and Belgrade."),
    ("cats", "Domestic cats sleep for twelve to sixteen hours a day."),
    ("tea", "Green tea is steamed or pan-fired soon after picking to stop oxidation."),
    ("bridges", "Suspension bridges hang their deck from cables slung between towers."),
    ("bees", "A honey bee colony has one queen, thousands of workers and some drones."),
    ("glass", "Soda-lime glass is made from sand, soda ash and limestone melted together."),
    ("tides", "Tides rise and fall twice a day, pulled mostly by the Moon's gravity."),
    ("bread", "Sourdough rises with wild yeast and lactic acid bacteria from a starter."),
    ("volcanoes", "Shield volcanoes build gentle slopes from runny basaltic lava flows."),
    ("owls", "Owls hunt at night and hear prey rustling under snow or leaves."),
]
QUESTIONS = [
    "Which cities does the Danube flow through?",
    "How long do cats sleep each day?",
    "Why is green tea steamed after picking?",
    "How does a suspension bridge hold its deck?",
    "Who lives in a honey bee colony?",
    "What is soda-lime glass made from?",
    "What causes the tides?",
    "What makes sourdough rise?",
    "How do shield volcanoes get their shape?",
    "How do owls find prey at night?",
]
ANSWER = (
    "According to the retrieved passages, the answer is stated directly in the notes: the "
    "relevant file describes it in one sentence, and no other file contradicts it. In short, "
    "the passage quoted above answers the question, and the other results are about unrelated "
    "topics such as rivers, cats, tea, bridges and bees."
)  # about 60 words: 60 text_delta events


# --- the scripted model, in its own process ---------------------------------------------------


def serve_fake_llm() -> None:
    """Run the scripted model until stdin closes. Prints its base URL; on each ``dump`` line read
    from stdin prints (and resets) the seconds spent serving each prompt's model calls."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_llm import FakeLLM, Reply, ToolCall

    served: dict[str, float] = defaultdict(float)  # prompt -> seconds inside the handler
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def prompt_of(body: dict[str, Any]) -> str:
        return str(next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user"))

    def reply(body: dict[str, Any]) -> Reply:
        prompt = prompt_of(body)
        if body["messages"][-1]["role"] == "user" and body.get("tools"):
            return Reply(tool_calls=[ToolCall("retrieve", {"query": prompt, "top_k": 4})])
        return Reply(text=ANSWER)

    def timed(body: dict[str, Any], seconds: float) -> None:
        prompt = prompt_of(body)
        with lock:
            served[prompt] += seconds
            calls[prompt] += 1

    fake = FakeLLM(default=reply, on_served=timed)
    print(fake.base_url, flush=True)
    for line in sys.stdin:
        if line.strip() == "dump":
            with lock:
                out = {
                    "served_s": dict(served),
                    "calls": dict(calls),
                    "peak_streams": fake.peak_streams,
                    "completed": fake.completed,
                    "disconnects": fake.disconnects,
                }
                served.clear()
                calls.clear()
                fake.peak_streams = 0
            print(json.dumps(out), flush=True)
    fake.close()


class FakeModelProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake-llm"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url:
            raise RuntimeError("the scripted model did not start")

    def dump(self) -> dict[str, Any]:
        """What the model process did since the last dump."""
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=15)


# --- the load generator: a small HTTP/1.1 client ----------------------------------------------


@dataclass
class Result:
    status: int = 0
    body: bytes = b""
    started: float = 0.0  # perf_counter when the request was written (or connecting began)
    first_data: float | None = None
    stop_at: float | None = None
    stop: dict[str, Any] | None = None
    events: int = 0
    marks: dict[str, float] = field(default_factory=dict)  # event type -> first arrival
    error: str | None = None

    @property
    def ttfe_ms(self) -> float | None:
        return None if self.first_data is None else (self.first_data - self.started) * 1000

    @property
    def total_ms(self) -> float | None:
        return None if self.stop_at is None else (self.stop_at - self.started) * 1000

    def failure(self) -> str | None:
        if self.error:
            return self.error
        if self.status != 200:
            return f"HTTP {self.status}: {self.body[:200]!r}"
        if self.stop is None:
            return "stream ended without a stop event"
        if self.stop.get("is_error"):
            return f"stop is_error: {str(self.stop.get('error'))[:200]}"
        return None


@dataclass
class Conn:
    """One keep-alive connection; reconnects when the server closes it."""

    host: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except ConnectionError:
                pass
            self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: Any = None, result: Result | None = None
    ) -> Result:
        """Send one request and read the whole answer. ``data:`` lines of an SSE answer are
        timed as they arrive; the JSON of the ``stop`` event is kept."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        result = result or Result()
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        if not result.started:
            result.started = time.perf_counter()
        await self.writer.drain()
        reader = self.reader
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        result.status = int(status_line.split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        if headers.get("transfer-encoding") == "chunked":
            await self._read_chunked(reader, result)
        else:
            result.body = await reader.readexactly(int(headers.get("content-length", 0)))
        result.stop_at = time.perf_counter()
        if headers.get("connection") == "close":
            await self.close()
        return result

    async def call(self, method: str, path: str, body: Any = None) -> Result:
        """``request``, with a broken connection recorded as the result's error (and dropped,
        so the next call reconnects)."""
        result = Result()
        try:
            await asyncio.wait_for(self.request(method, path, body, result), TURN_TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            await self.close()
        return result

    async def _read_chunked(self, reader: asyncio.StreamReader, result: Result) -> None:
        pending = b""
        event = b""
        body = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()  # the empty line after the last chunk (no trailers)
                break
            data = (await reader.readexactly(size + 2))[:-2]
            body.append(data)
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.startswith(b"event:"):
                    event = line[6:].strip()
                elif line.startswith(b"data:"):
                    result.events += 1
                    now = time.perf_counter()
                    if result.first_data is None:
                        result.first_data = now
                    result.marks.setdefault(event.decode(), now)
                    if event == b"stop":
                        result.stop = json.loads(line[5:])
        result.body = b"".join(body) if result.status != 200 else b""


async def turn_on_new_connection(host: str, port: int, key: str, path: str, body: Any) -> Result:
    """One turn as a fresh client would run it: connect, send, read to the end."""
    result = Result(started=time.perf_counter())
    conn = Conn(host, port, {"Authorization": f"Bearer {key}"})
    try:
        await asyncio.wait_for(conn.request("POST", path, body, result), TURN_TIMEOUT_S)
    except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        await conn.close()
    return result


async def turn_over_httpx(client: httpx.AsyncClient, path: str, body: Any) -> Result:
    result = Result(started=time.perf_counter())
    event = ""
    try:
        async with client.stream("POST", path, json=body) as response:
            result.status = response.status_code
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    result.events += 1
                    now = time.perf_counter()
                    if result.first_data is None:
                        result.first_data = now
                    result.marks.setdefault(event, now)
                    if event == "stop":
                        result.stop = json.loads(line[5:])
        result.stop_at = time.perf_counter()
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


# --- figures ------------------------------------------------------------------------------------


# Where a turn's time goes, between the arrivals of its events (client side).
STAGES = [
    ("request written → user_input", None, "user_input"),
    ("user_input → tool_call (model call 1)", "user_input", "tool_call"),
    ("tool_call → tool_result (retrieve)", "tool_call", "tool_result"),
    ("tool_result → first text_delta (model call 2)", "tool_result", "text_delta"),
    ("first text_delta → text (answer streamed)", "text_delta", "text"),
    ("text → stop", "text", "stop"),
]


def stages(results: list[Result]) -> dict[str, dict[str, float]]:
    out = {}
    for label, start, end in STAGES:
        spans = [
            (r.marks[end] - (r.marks[start] if start else r.started)) * 1000
            for r in results
            if end in r.marks and (start is None or start in r.marks)
        ]
        out[label] = summary(spans)
    return out


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by the server, the model process and this load generator."""

    def __init__(self, server: Server, model: FakeModelProcess | None) -> None:
        self.pids = {"server": server.proc.pid}
        if model is not None:
            self.pids["model"] = model.proc.pid
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        now = {name: cpu_s(pid) for name, pid in self.pids.items()}
        now["load generator"] = time.process_time()
        return now

    def used(self) -> dict[str, float]:
        end = self._now()
        return {name: end[name] - self.start[name] for name in end}


# --- servers ------------------------------------------------------------------------------------


def build_index(client: Any, files: dict[str, bytes]) -> tuple[str, float]:
    """Upload ``files`` into a new directory, index and sync it; the index id and sync seconds."""
    directory = client.beta.directories.create(name=f"bench-{int(time.time())}")
    for name, data in files.items():
        client.beta.directories.files.upload(directory.id, upload_file=(name, data))
    index = client.indexes.create(source_directory_id=directory.id)
    t0 = time.perf_counter()
    client.indexes.sync(index.id)
    while client.indexes.get(index.id, expand=["sync_in_progress"]).sync_in_progress:
        time.sleep(0.2)
    return index.id, time.perf_counter() - t0


async def create_sessions(conn: Conn, index_id: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        r = await conn.request("POST", "/api/v1/chat", {"index_ids": [index_id]})
        assert r.status in (200, 201), (r.status, r.body)
        ids.append(json.loads(r.body)["session_id"])
    return ids


# --- phases -------------------------------------------------------------------------------------


async def sequential(
    server: Server, index_id: str, prompts: list[str], model: FakeModelProcess | None, warmup: int
) -> dict[str, Any]:
    """Turns one after another over one keep-alive connection, each in a fresh session, with the
    baseline requests interleaved: health, summary, turn, health, summary, turn…"""
    conn = Conn("127.0.0.1", server.port, {"Authorization": f"Bearer {server.key}"})
    sessions = await create_sessions(conn, index_id, len(prompts) + warmup)
    for n in range(warmup):  # loads the embedding model for queries, fills caches
        r = await conn.request(
            "POST",
            f"/api/v1/chat/{sessions[n]}/messages/stream",
            {"index_ids": [index_id], "prompt": f"warm-up {n}: {QUESTIONS[0]}"},
        )
        assert r.failure() is None, r.failure()
    if model is not None:
        model.dump()
    baselines: dict[str, list[float]] = {"health": [], "summary": [], "retrieve": []}
    baseline_errors: Counter[str] = Counter()
    turns = []
    meter = CpuMeter(server, model)
    for session_id, prompt in zip(sessions[warmup:], prompts, strict=True):
        for name, method, path, body in (
            ("health", "GET", "/health", None),
            ("summary", "GET", f"/api/v1/chat/{session_id}/summary", None),
            (
                "retrieve",
                "POST",
                "/api/v1/retrieval/retrieve",
                {"index_id": index_id, "query": prompt, "top_k": 4},
            ),
        ):
            r = await conn.call(method, path, body)
            if r.error or r.status != 200:
                baseline_errors[f"{name}: {r.error or r.status} {r.body[:120]!r}"] += 1
            else:
                baselines[name].append(r.total_ms)
        t = await conn.call(
            "POST",
            f"/api/v1/chat/{session_id}/messages/stream",
            {"index_ids": [index_id], "prompt": prompt},
        )
        turns.append((prompt, t))
    cpu = meter.used()
    await conn.close()
    failures = Counter(f for _, t in turns if (f := t.failure()))
    served = model.dump()["served_s"] if model is not None else {}
    ok = [(p, t) for p, t in turns if t.failure() is None]
    model_ms = [served.get(p, 0.0) * 1000 for p, _ in ok]
    out = {
        "turns": len(turns),
        "errors": sum(failures.values()),
        "error_kinds": dict(failures),
        "turn_ms": summary([t.total_ms for _, t in ok]),
        "ttfe_ms": summary([t.ttfe_ms for _, t in ok]),
        "server_duration_ms": summary([t.stop["usage"]["duration_ms"] for _, t in ok]),
        "events_per_turn": statistics.median(t.events for _, t in ok) if ok else 0,
        "health_ms": summary(baselines["health"]),
        "summary_ms": summary(baselines["summary"]),
        "retrieve_ms": summary(baselines["retrieve"]),
        "baseline_errors": dict(baseline_errors),
        "cpu_s_incl_baselines": cpu,
        "stages_ms": stages([t for _, t in ok]),
    }
    if model is not None:
        out["model_ms"] = summary(model_ms)
        out["overhead_ms"] = summary(
            [t.total_ms - m for (_, t), m in zip(ok, model_ms, strict=True)]
        )
        out["prompts_seen_by_model"] = len(served)
    return out


async def concurrent(
    server: Server, index_id: str, count: int, model: FakeModelProcess, client: str
) -> dict[str, Any]:
    """``count`` turns in ``count`` fresh sessions, all started at once."""
    conn = Conn("127.0.0.1", server.port, {"Authorization": f"Bearer {server.key}"})
    sessions = await create_sessions(conn, index_id, count)
    await conn.close()
    model.dump()
    bodies = [
        {"index_ids": [index_id], "prompt": f"[{client} {n}] {QUESTIONS[n % len(QUESTIONS)]}"}
        for n in range(count)
    ]
    paths = [f"/api/v1/chat/{s}/messages/stream" for s in sessions]
    meter = CpuMeter(server, model)
    t0 = time.perf_counter()
    if client == "raw":
        results = await asyncio.gather(
            *(
                turn_on_new_connection("127.0.0.1", server.port, server.key, p, b)
                for p, b in zip(paths, bodies, strict=True)
            )
        )
    else:
        async with httpx.AsyncClient(
            base_url=server.base,
            headers={"Authorization": f"Bearer {server.key}"},
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            timeout=TURN_TIMEOUT_S,
        ) as http:
            results = await asyncio.gather(
                *(turn_over_httpx(http, p, b) for p, b in zip(paths, bodies, strict=True))
            )
    wall = time.perf_counter() - t0
    cpu = meter.used()
    failures = Counter(f for r in results if (f := r.failure()))
    ok = [r for r in results if r.failure() is None]
    seen = model.dump()
    return {
        "client": client,
        "turns": count,
        "errors": sum(failures.values()),
        "error_kinds": dict(failures),
        "wall_s": wall,
        "turns_per_s": count / wall,
        "cpu_ms_per_turn": {name: s * 1000 / count for name, s in cpu.items()},
        "server_cpu_share": cpu["server"] / wall,  # 1.0 = one core busy the whole time
        "ttfe_ms": summary([r.ttfe_ms for r in results if r.ttfe_ms is not None]),
        "turn_ms": summary([r.total_ms for r in ok]),
        "server_duration_ms": summary([r.stop["usage"]["duration_ms"] for r in ok]),
        "model_ms_per_turn": summary([s * 1000 for s in seen["served_s"].values()]),
        "model_peak_streams": seen["peak_streams"],
        "stages_ms": stages(ok),
    }


def scifact_queries(limit: int) -> tuple[list[str], set[str], dict[str, str]]:
    """The first ``limit`` SciFact test queries, the documents relevant to them, and the corpus."""
    corpus, texts, relevant = load_scifact()
    chosen = list(relevant)[:limit]
    return [texts[q] for q in chosen], {d for q in chosen for d in relevant[q]}, corpus


def scifact_phase(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    queries, needed, scifact = scifact_queries(args.scifact_queries)
    env = {
        **os.environ,
        "INDEXCHAT_LLM": "extractive",
        "INDEXCHAT_EMBEDDINGS": args.embeddings,
    }
    env.pop("INDEXCHAT_DATABASE_URL", None)
    if args.scifact_data_dir:
        source = args.scifact_data_dir / "data"
        if not (source / "indexchat.db").exists():
            raise SystemExit(f"no SQLite SciFact data in {source}")
        copy = work / "scifact"
        shutil.copytree(source, copy)  # turns add sessions; the reused folder stays as it was
        env["INDEXCHAT_DATA_DIR"] = str(copy)
        server = Server(env, work / "server-scifact.log")
        index_id = next(iter(server.sdk().indexes.list())).id
        docs, sync_s = None, None
    else:
        env["INDEXCHAT_DATA_DIR"] = str(work / "scifact")
        corpus = {
            f"{doc_id}.txt": text.encode()
            for n, (doc_id, text) in enumerate(scifact.items())
            if n < args.scifact_limit_docs or doc_id in needed
        }
        server = Server(env, work / "server-scifact.log")
        print(f"scifact: ingesting {len(corpus)} documents…", flush=True)
        index_id, sync_s = build_index(server.sdk(), corpus)
        docs = len(corpus)
    try:
        out = asyncio.run(sequential(server, index_id, queries, None, warmup=3))
        out.update(docs=docs, sync_s=sync_s, reused=str(args.scifact_data_dir or ""))
        out["server_log"] = server.problems()
        return out
    finally:
        server.stop()


# --- report -------------------------------------------------------------------------------------


def fmt(stats: dict[str, float], key: str) -> str:
    return f"{stats[key]:.1f}" if stats.get("n") else "–"


def ratio(a: dict[str, float], b: dict[str, float]) -> str:
    return f"{a['p50'] / b['p50']:.1f}×" if a.get("n") and b.get("n") else "–"


def cpu_line(cpu: dict[str, float], phase: dict[str, Any]) -> str:
    return ", ".join(f"{name} {s * 1000 / phase['turns']:.0f} ms" for name, s in cpu.items())


def report(results: dict[str, Any], command: str) -> None:
    seq = results["sequential"]
    print(f"\n## Chat turns (SQLite, {results['files']} files; scripted model answering at once)\n")
    print(f"`{command}`\n")
    print("| measure | n | p50 ms | p99 ms | goal |")
    print("|---|---|---|---|---|")
    rows = [
        ("server overhead per turn (turn − model time)", seq["overhead_ms"], "p50 ≤ 100"),
        ("turn, request written → stop", seq["turn_ms"], ""),
        ("  of which model process serving", seq["model_ms"], ""),
        ("  server's own usage.duration_ms", seq["server_duration_ms"], ""),
        ("time to first event", seq["ttfe_ms"], "≤ 50"),
        ("baseline: GET /health", seq["health_ms"], ""),
        ("baseline: GET /api/v1/chat/{id}/summary", seq["summary_ms"], ""),
        ("baseline: POST /api/v1/retrieval/retrieve (same query)", seq["retrieve_ms"], ""),
    ]
    for label, stats, goal in rows:
        print(
            f"| {label} | {stats.get('n', 0)} | {fmt(stats, 'p50')} | {fmt(stats, 'p99')} "
            f"| {goal} |"
        )
    over = seq["overhead_ms"]
    print(
        f"\nratios of medians: overhead / health {ratio(over, seq['health_ms'])}, "
        f"overhead / summary {ratio(over, seq['summary_ms'])}, overhead / retrieve "
        f"{ratio(over, seq['retrieve_ms'])}; {seq['events_per_turn']:.0f} SSE events per turn; "
        f"sequential turn errors {seq['errors']} {seq['error_kinds'] or ''}"
    )
    for kind, n in seq["baseline_errors"].items():
        print(f"- baseline request failed {n} ×: {kind}")
    print(f"\nCPU per turn, baselines included: {cpu_line(seq['cpu_s_incl_baselines'], seq)}")
    print("\nWhere a sequential turn's time goes (between event arrivals at the client):\n")
    print("| stage | p50 ms | p99 ms |")
    print("|---|---|---|")
    for label, stats in seq["stages_ms"].items():
        print(f"| {label} | {fmt(stats, 'p50')} | {fmt(stats, 'p99')} |")
    for conc in results["concurrent"]:
        print(
            f"\n### {conc['turns']} concurrent streaming turns ({conc['client']} asyncio client, "
            f"one connection per turn)\n"
        )
        print(
            "| errors | wall s | turns/s | TTFE p50 ms | TTFE p99 ms | turn p50 ms "
            "| turn p99 ms | model ms/turn p50 | model peak streams |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print(
            f"| {conc['errors']} | {conc['wall_s']:.2f} | {conc['turns_per_s']:.1f} "
            f"| {fmt(conc['ttfe_ms'], 'p50')} | {fmt(conc['ttfe_ms'], 'p99')} "
            f"| {fmt(conc['turn_ms'], 'p50')} | {fmt(conc['turn_ms'], 'p99')} "
            f"| {fmt(conc['model_ms_per_turn'], 'p50')} | {conc['model_peak_streams']} |"
        )
        for kind, n in conc["error_kinds"].items():
            print(f"- {n} × {kind}")
        cpu = ", ".join(f"{name} {ms:.0f} ms" for name, ms in conc["cpu_ms_per_turn"].items())
        print(
            f"\nCPU per turn: {cpu}; the server process kept "
            f"{conc['server_cpu_share']:.0%} of one core busy over the wall time"
        )
        print("\n| stage | p50 ms | p99 ms |")
        print("|---|---|---|")
        for label, stats in conc["stages_ms"].items():
            label = label.replace("request written", "connect")
            print(f"| {label} | {fmt(stats, 'p50')} | {fmt(stats, 'p99')} |")
    print(f"\nserver log: {results['server_log']}")
    sci = results.get("scifact")
    if sci:
        source = f"reused {sci['reused']}" if sci["reused"] else f"{sci['docs']} documents ingested"
        print(f"\n### SciFact, extractive answers ({source})\n")
        print("| measure | n | p50 ms | p99 ms |")
        print("|---|---|---|---|")
        for label, key in (
            ("turn, request written → stop", "turn_ms"),
            ("time to first event", "ttfe_ms"),
            ("server's usage.duration_ms", "server_duration_ms"),
            ("baseline: GET /health", "health_ms"),
            ("baseline: POST /api/v1/retrieval/retrieve (same query)", "retrieve_ms"),
        ):
            stats = sci[key]
            print(f"| {label} | {stats.get('n', 0)} | {fmt(stats, 'p50')} | {fmt(stats, 'p99')} |")
        print(
            f"\nerrors {sci['errors']}; CPU per turn, baselines included: "
            f"{cpu_line(sci['cpu_s_incl_baselines'], sci)}; server log: {sci['server_log']}"
        )
    print(
        f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-fake-llm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--turns", type=int, default=200, help="sequential turns timed")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=200, help="0 skips this phase")
    parser.add_argument("--also-httpx", action="store_true", help="repeat it through httpx")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--embeddings", default=os.environ.get("INDEXCHAT_EMBEDDINGS", "local"))
    sci = parser.add_mutually_exclusive_group()
    sci.add_argument("--scifact-data-dir", type=Path, help="a bench_scifact.py --data-dir")
    sci.add_argument("--scifact-limit-docs", type=int, help="ingest this many documents")
    parser.add_argument("--scifact-queries", type=int, default=50)
    args = parser.parse_args()
    if args.serve_fake_llm:
        serve_fake_llm()
        return
    command = shlex.join(["python", "bench/bench_chat.py", *sys.argv[1:]])
    work = Path(tempfile.mkdtemp(prefix="indexchat-bench-chat-"))
    results: dict[str, Any] = {
        "command": command,
        "files": args.files,
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
    }
    model = FakeModelProcess()
    server = None
    try:
        env = {
            **os.environ,
            "INDEXCHAT_DATA_DIR": str(work / "data"),
            "INDEXCHAT_EMBEDDINGS": args.embeddings,
            "INDEXCHAT_LLM": "openai",
            "INDEXCHAT_LLM_BASE_URL": model.base_url,
            "INDEXCHAT_LLM_MODEL": "fake-model",
            "OPENAI_API_KEY": "unused",
        }
        env.pop("INDEXCHAT_DATABASE_URL", None)
        server = Server(env, work / "server.log")
        files = {
            f"{name}-{n}.txt": f"Note {n} about {name}.\n\n{text}\n".encode()
            for n in range(math.ceil(args.files / len(TOPICS)))
            for name, text in TOPICS
        }
        files = dict(list(files.items())[: args.files])
        index_id, sync_s = build_index(server.sdk(), files)
        results["sync_s"] = sync_s
        print(f"index of {len(files)} files synced in {sync_s:.1f}s", flush=True)
        prompts = [f"[{n}] {QUESTIONS[n % len(QUESTIONS)]}" for n in range(args.turns)]
        results["sequential"] = asyncio.run(
            sequential(server, index_id, prompts, model, args.warmup)
        )
        print("sequential:", json.dumps(results["sequential"]), flush=True)
        results["concurrent"] = []
        clients = ["raw", "httpx"] if args.also_httpx else ["raw"]
        for client in clients if args.concurrent else []:
            phase = asyncio.run(concurrent(server, index_id, args.concurrent, model, client))
            results["concurrent"].append(phase)
            print("concurrent:", json.dumps(phase), flush=True)
        results["server_log"] = server.problems()
    finally:
        if server is not None:
            server.stop()
        model.close()
    if args.scifact_data_dir or args.scifact_limit_docs:
        results["scifact"] = scifact_phase(args, work)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"chat-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    report(results, command)
    print(f"\nJSON: {out.relative_to(ROOT)}; server logs in {work}")


if __name__ == "__main__":
    main()
