"""Does a heavy request stall the others? ``/health`` latency and the gaps between a live chat
stream's events, first with nothing else running (baseline), then while clients make heavy reads.

    python bench/bench_stalls.py [--runs 3] [--seconds 6] [--clients 4] [--history 5000]
        [--files 1000] [--grep-kb 300] [--data-dir DIR]

``indexchat serve`` (SQLite) runs as a subprocess with ``INDEXCHAT_LLM=openai`` pointed at the
scripted model of ``tests/fake_llm.py``, run in a process of its own. Setup makes what the heavy
requests read: a session whose one turn streamed ``--history`` deltas (so as many events), a
share link to it, a directory of ``--files`` small files, and an index over one text file of
``--grep-kb`` KB. ``--data-dir`` keeps that data for the next invocation (setup runs once), so
two trees can be compared on the same data with ``PYTHONPATH=<tree>/src``.

After one pass over the heavy requests (warm-up), each run has two phases of ``--seconds``: one
turn streams a delta every ``DELTA_S`` from the model while a probe sends ``GET /health`` every
``PROBE_INTERVAL_S`` over one kept-alive connection; in the loaded phase ``--clients`` clients
(another process) also loop over ``heavy_requests``. Reported per phase: ``/health``
p50/p99/max, and the p99/max gap between the stream's consecutive events (the model's own pace,
``DELTA_S``, included). Medians over runs.

Writes ``bench/results/stalls-<time>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import common
import httpx
from common import RESULTS, ROOT, machine, pct

DELTA_S = 0.02  # the live turn's model sends a delta this often
PROBE_INTERVAL_S = 0.02
LIVE_PROMPT = "live"
HISTORY_PROMPT = "history"


# --- the scripted model, in its own process ---------------------------------------------------


def serve_fake_llm(history: int, live_deltas: int) -> None:
    """The scripted model until stdin closes: a ``history`` prompt gets ``history`` deltas at
    once, any other a delta every ``DELTA_S``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_llm import FakeLLM, Reply

    def reply(body: dict[str, Any]) -> Reply:
        prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        if prompt == HISTORY_PROMPT:
            return Reply(text=[f"h{i} " for i in range(history)])
        return Reply(text=[f"w{i} " for i in range(live_deltas)], chunk_delay=DELTA_S)

    fake = FakeLLM(default=reply)
    print(fake.base_url, flush=True)
    sys.stdin.read()
    fake.close()


# --- heavy clients, in their own process ------------------------------------------------------


def heavy_requests(targets: dict[str, str]) -> list[tuple[str, str, Any]]:
    """Each heavy read the API offers, on the data setup made."""
    big, directory = targets["big_session"], targets["directory"]
    grep = {"index_id": targets["index"], "file_id": targets["grep_file"], "pattern": r"\w+ \d+"}
    return [
        ("GET", f"/api/v1/chat/{big}", None),
        ("GET", f"/api/v1/chat/{big}/export?format=md", None),
        ("GET", f"/api/v1/chat/{big}/export?format=json", None),
        ("GET", f"/api/v1/chat/{big}/messages/stream?after=0", None),
        ("GET", f"/s/{targets['share_token']}/chat", None),
        ("POST", "/api/v1/retrieval/files/grep", {**grep, "page_size": 1000}),
        ("POST", "/api/v1/retrieval/files/read", {k: grep[k] for k in ("index_id", "file_id")}),
        ("GET", f"/api/v1/beta/directories/{directory}/files?page_size=1000", None),
        ("GET", "/api/v1/beta/files?page_size=1000", None),
        ("GET", "/api/v1/beta/directories?page_size=1000", None),
        ("GET", "/api/v1/chat?page_size=100", None),
        ("GET", "/api/v1/chat/search?q=h1&page_size=100", None),
    ]


async def heavy_load(base: str, key: str, clients: int, targets: dict[str, str]) -> None:
    """``clients`` loops over ``heavy_requests`` until stdin closes; prints counts by status."""
    requests = heavy_requests(targets)
    statuses: dict[str, int] = {}
    done = asyncio.Event()

    async def client(offset: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
            n = offset
            while not done.is_set():
                method, path, body = requests[n % len(requests)]
                n += 1
                answer = await http.request(method, path, json=body)
                statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1

    tasks = [asyncio.create_task(client(i * 3)) for i in range(clients)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    done.set()
    await asyncio.gather(*tasks)
    print(json.dumps(statuses), flush=True)


class Helper:
    """This script run in another role (``--serve-fake-llm``, ``--heavy-load``)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline().strip()
        if not self.first_line:
            raise RuntimeError(f"{args[0]} did not start")

    def close(self) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(timeout=60)
        return out.strip()


# --- the server and its data ------------------------------------------------------------------


class Server(common.Server):
    """``indexchat serve`` on a free port, over SQLite in ``data_dir``, with a client."""

    def __init__(self, data_dir: Path, model_url: str, log: Path) -> None:
        env = {
            **os.environ,
            "INDEXCHAT_DATA_DIR": str(data_dir),
            "INDEXCHAT_LLM": "openai",
            "INDEXCHAT_LLM_BASE_URL": model_url,
            "INDEXCHAT_LLM_MODEL": "fake-model",
            "OPENAI_API_KEY": "unused",
        }
        env.pop("INDEXCHAT_DATABASE_URL", None)
        key_file = data_dir / "bench-stalls-key"
        if not key_file.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(common.create_key(env))
        super().__init__(env, log, key=key_file.read_text().strip(), timeout=180)
        self.http = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=300
        )

    def stop(self) -> None:
        self.http.close()
        super().stop()


def set_up(server: Server, data_dir: Path, files: int, grep_kb: int) -> dict[str, str]:
    """What the heavy requests read; made once per data dir."""
    saved = data_dir / "bench-stalls-targets.json"
    if saved.exists():
        return dict(json.loads(saved.read_text()))
    http = server.http
    t0 = time.perf_counter()
    big = http.post("/api/v1/chat", json={}).json()["session_id"]
    with http.stream(
        "POST",
        f"/api/v1/chat/{big}/messages/stream",
        json={"prompt": HISTORY_PROMPT, "index_ids": []},
    ) as turn:
        turn.raise_for_status()
        for _ in turn.iter_bytes():
            pass
    link = http.post(f"/api/v1/chat/{big}/share-links", json={"shared_access": "read_only"})
    share_token = link.json()["url"].rstrip("/").rsplit("/", 1)[1]
    for _ in range(20):  # a listing of sessions, for the page of 100
        http.post("/api/v1/chat", json={})
    many = http.post("/api/v1/beta/directories", json={"name": "many"}).json()["id"]
    for n in range(files):
        upload = {"upload_file": (f"note-{n:05d}.txt", f"note {n}\n".encode())}
        http.post(f"/api/v1/beta/directories/{many}/files/upload", files=upload).raise_for_status()
    source = http.post("/api/v1/beta/directories", json={"name": "grep"}).json()["id"]
    line = "Line {n} of a long text file that the grep requests scan from start to end.\n"
    text = "".join(line.format(n=n) for n in range(grep_kb * 1024 // len(line)))
    upload = {"upload_file": ("long.txt", text.encode())}
    http.post(f"/api/v1/beta/directories/{source}/files/upload", files=upload).raise_for_status()
    index = http.post("/api/v1/indexes", json={"source_directory_id": source}).json()["id"]
    http.post(f"/api/v1/indexes/{index}/sync").raise_for_status()
    while http.get(f"/api/v1/indexes/{index}?expand=sync_in_progress").json()["sync_in_progress"]:
        time.sleep(0.5)
    found = http.post("/api/v1/retrieval/files/find", json={"index_id": index}).json()["items"]
    targets = {
        "big_session": big,
        "share_token": share_token,
        "directory": many,
        "index": index,
        "grep_file": found[0]["file_id"],
    }
    # Every heavy request must answer 200: a fast 4xx would measure nothing.
    for method, path, body in heavy_requests(targets):
        answer = http.request(method, path, json=body)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    saved.write_text(json.dumps(targets))
    print(f"setup: {time.perf_counter() - t0:.0f}s", flush=True)
    return targets


def warm_up(server: Server, targets: dict[str, str]) -> None:
    """Each heavy request once, before measuring: FastAPI builds a router's route state on the
    first request that reaches it, on the event loop, a one-time stall not measured here."""
    for method, path, body in heavy_requests(targets):
        server.http.request(method, path, json=body).raise_for_status()


# --- measuring --------------------------------------------------------------------------------


async def probe_health(host: str, port: int, stop: asyncio.Event) -> list[float]:
    """``GET /health`` latencies (ms) over one kept-alive connection until ``stop``."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies = []
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(v)
                for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                if k.lower() == b"content-length"
            )
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(PROBE_INTERVAL_S)
    finally:
        writer.close()
    return latencies


async def live_stream(server: Server) -> list[float]:
    """Run one turn on a new session; the arrival time of each SSE event (seconds)."""
    async with httpx.AsyncClient(
        base_url=server.base, headers={"Authorization": f"Bearer {server.key}"}, timeout=300
    ) as http:
        session_id = (await http.post("/api/v1/chat", json={})).json()["session_id"]
        arrivals = []
        path = f"/api/v1/chat/{session_id}/messages/stream"
        async with http.stream("POST", path, json={"prompt": LIVE_PROMPT, "index_ids": []}) as turn:
            turn.raise_for_status()
            async for line in turn.aiter_lines():
                if line.startswith("data:"):
                    arrivals.append(time.perf_counter())
    return arrivals


async def phase(server: Server, load: list[str] | None) -> dict[str, Any]:
    """One stream and the probe; with ``load``, the heavy clients too."""
    heavy = Helper(*load) if load else None
    stop = asyncio.Event()
    probe = asyncio.create_task(probe_health("127.0.0.1", server.port, stop))
    try:
        arrivals = await live_stream(server)
    finally:
        stop.set()
        latencies = await probe
        statuses = json.loads(heavy.close()) if heavy else {}
    gaps = [(b - a) * 1000 for a, b in zip(arrivals[1:-1], arrivals[2:-1], strict=False)]
    return {
        "health_ms": {
            "n": len(latencies),
            "p50": statistics.median(latencies),
            "p99": pct(latencies, 99),
            "max": max(latencies),
        },
        "gap_ms": {"n": len(gaps), "p99": pct(gaps, 99), "max": max(gaps)},
        "heavy_statuses": statuses,
    }


def medians(phases: list[dict[str, Any]], group: str, key: str) -> float:
    return statistics.median(p[group][key] for p in phases)


def report(results: dict[str, Any]) -> None:
    base, loaded = results["baseline"], results["loaded"]
    print(f"\n`{results['command']}` ({len(base)} runs, medians)\n")
    print("| phase | /health p50 ms | /health p99 ms | /health max ms | gap p99 ms | gap max ms |")
    print("|---|---|---|---|---|---|")
    for name, phases in (("baseline", base), (f"{results['clients']} heavy clients", loaded)):
        cells = [medians(phases, "health_ms", k) for k in ("p50", "p99", "max")]
        cells += [medians(phases, "gap_ms", k) for k in ("p99", "max")]
        print(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    added = [lo["gap_ms"]["max"] - b["gap_ms"]["max"] for b, lo in zip(base, loaded, strict=True)]
    print(f"\nadded max gap per run (ms): {', '.join(f'{a:.0f}' for a in added)}")
    print(f"heavy requests answered per run: {[sum(p['heavy_statuses'].values()) for p in loaded]}")
    print(f"statuses: {[p['heavy_statuses'] for p in loaded]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-fake-llm", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--heavy-load", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each phase")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--history", type=int, default=5000, help="events of the big session")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--grep-kb", type=int, default=300)
    parser.add_argument("--data-dir", type=Path, help="keep (and reuse) the seeded data here")
    args = parser.parse_args()
    if args.serve_fake_llm:
        serve_fake_llm(*args.serve_fake_llm)
        return
    if args.heavy_load:
        base, key, clients, targets = args.heavy_load
        asyncio.run(heavy_load(base, key, int(clients), json.loads(targets)))
        return
    command = shlex.join(["python", "bench/bench_stalls.py", *sys.argv[1:]])
    work = Path(tempfile.mkdtemp(prefix="indexchat-bench-stalls-"))
    data_dir = args.data_dir or work / "data"
    live_deltas = int(args.seconds / DELTA_S)
    model = Helper("--serve-fake-llm", str(args.history), str(live_deltas))
    server = Server(data_dir, model.first_line, work / "server.log")
    print(f"server pid {server.proc.pid}", flush=True)
    results: dict[str, Any] = {
        "command": command,
        "clients": args.clients,
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "baseline": [],
        "loaded": [],
    }
    try:
        targets = set_up(server, data_dir, args.files, args.grep_kb)
        load = ["--heavy-load", server.base, server.key, str(args.clients), json.dumps(targets)]
        warm_up(server, targets)
        for run in range(args.runs):
            for name, with_load in (("baseline", None), ("loaded", load)):
                measured = asyncio.run(phase(server, with_load))
                results[name].append(measured)
                print(f"run {run + 1} {name}: {json.dumps(measured)}", flush=True)
    finally:
        server.stop()
        model.close()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"stalls-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    report(results)
    print(f"\nJSON: {out.relative_to(ROOT)}; server log in {work}")


if __name__ == "__main__":
    main()
