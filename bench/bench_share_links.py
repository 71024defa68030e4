"""What a share link's viewer costs the server, against the owner's own reads in the same run.

    python bench/bench_share_links.py [--backend sqlite|postgres] [--requests 500] [--repeats 3]

One `indexchat serve` process; one client, one request at a time. The viewer's page polls the
follow stream every 2 s while no turn runs, so the idle poll's latency says how many watching
viewers one server process carries.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from common import create_key, free_port, pct, serve, start_postgres, stop

TURNS = 5


def timed(client: httpx.Client, url: str, count: int) -> tuple[float, float]:
    for _ in range(50):  # warm-up
        client.get(url).raise_for_status()
    timings = []
    for _ in range(count):
        t = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.text
    timings.sort()
    return statistics.median(timings), pct(timings, 99)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="indexchat-bench-share-"))
    env = {**os.environ, "INDEXCHAT_DATA_DIR": str(work / "data")}
    if args.backend == "postgres":
        env["INDEXCHAT_DATABASE_URL"] = start_postgres(work)
    key = create_key(env)
    port = free_port()
    proc = serve(env, port, timeout=60)
    base = f"http://127.0.0.1:{port}"
    try:
        owner = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        chat = owner.post("/api/v1/chat", json={"shared_access": "query"}).json()["session_id"]
        for n in range(TURNS):
            body = {"index_ids": [], "prompt": f"Question number {n}?"}
            owner.post(f"/api/v1/chat/{chat}/messages/stream", json=body).raise_for_status()
        url = owner.post(f"/api/v1/chat/{chat}/share-links", json={}).json()["url"]
        token = url.rsplit("/s/", 1)[1]
        events = len(owner.get(f"/api/v1/chat/{chat}").json()["events"])
        viewer = httpx.Client(base_url=base, timeout=60)
        rows = [
            (
                "session with events",
                owner,
                f"/api/v1/chat/{chat}",
                viewer,
                f"/s/{token}/chat",
            ),
            (
                "idle follow poll",
                owner,
                f"/api/v1/chat/{chat}/messages/stream?after={events}",
                viewer,
                f"/s/{token}/chat/messages/stream?after={events}",
            ),
        ]
        print(
            f"\n## Share-link viewer ({args.backend}; {events} events, {args.requests} requests)\n"
        )
        print("| read | owner p50 ms | owner p99 ms | viewer p50 ms | viewer p99 ms | ratio p50 |")
        print("|---|---|---|---|---|---|")
        for label, a, a_url, b, b_url in rows:
            runs = [
                (*timed(a, a_url, args.requests), *timed(b, b_url, args.requests))
                for _ in range(args.repeats)
            ]
            o50, o99, v50, v99 = (statistics.median(r[i] for r in runs) for i in range(4))
            print(f"| {label} | {o50:.2f} | {o99:.2f} | {v50:.2f} | {v99:.2f} | {v50 / o50:.2f} |")
        print(
            f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}"
        )
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
