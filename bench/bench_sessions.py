"""Sessions API throughput/latency vs a bare FastAPI endpoint, and deep-page cost.

    python bench/bench_sessions.py [--backend sqlite|postgres] [--duration 5] [--repeats 3]
                                   [--deep-sessions 1000000] [--rate-limit 0]

Needs `wrk` (Debian package) for the load. Both servers run the same way (one uvicorn process,
same log level) and are loaded by the same wrk settings, one after the other, in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from common import BIN, HERE, create_key, free_port, medians_of, pct, start_postgres, wait_healthy


def wrk(
    url: str, connections: int, duration: int, headers: dict[str, str], script: Path | None
) -> dict[str, float]:
    cmd = [
        "wrk",
        "-t",
        str(min(connections, 2)),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--latency",
    ]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if script:
        cmd += ["-s", str(script)]
    done = subprocess.run(cmd + [url], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed on {url}: {done.stdout}{done.stderr}")
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def _latency(out: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deep-sessions", type=int, default=1_000_000)
    # The load comes from one key, far past any per-key allowance: off unless asked for (a
    # huge allowance measures what checking it costs).
    parser.add_argument("--rate-limit", type=int, default=0, help="requests per minute per key")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="indexchat-bench-"))
    env = {
        **os.environ,
        "INDEXCHAT_DATA_DIR": str(work / "data"),
        "INDEXCHAT_RATE_LIMIT_REQUESTS": str(args.rate_limit),
        "INDEXCHAT_RATE_LIMIT_BURST": str(max(args.rate_limit, 1)),
    }
    if args.backend == "postgres":
        env["INDEXCHAT_DATABASE_URL"] = start_postgres(work)
    key = create_key(env)
    ours_port, bare_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [BIN / "indexchat", "serve", "--port", str(ours_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [BIN / "uvicorn", "bare_app:app", "--port", str(bare_port), "--log-level", "info"],
            cwd=HERE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        ours, bare = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{bare_port}"
        wait_healthy(f"{ours}/health", procs[0], timeout=60)
        wait_healthy(f"{bare}/bare", procs[1], timeout=60)
        auth = {"Authorization": f"Bearer {key}"}
        for _ in range(100):
            httpx.post(f"{ours}/api/v1/chat", json={}, headers=auth).raise_for_status()
        post_script = work / "post.lua"
        post_script.write_text(
            'wrk.method = "POST"\nwrk.body = "{}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )

        results = {}
        for connections in (1, 8, 32):
            for name, url, headers, script in (
                ("list", f"{ours}/api/v1/chat?page_size=20", auth, None),
                ("bare GET", f"{bare}/bare", {}, None),
                ("create", f"{ours}/api/v1/chat", auth, post_script),
                ("bare POST", f"{bare}/bare", {}, post_script),
            ):
                runs = [
                    wrk(url, connections, args.duration, headers, script)
                    for _ in range(args.repeats)
                ]
                results[(name, connections)] = medians_of(runs)
                print(name, connections, results[(name, connections)], flush=True)

        print(
            f"\n## Throughput ({args.backend}; "
            f"median of {args.repeats} x {args.duration}s wrk runs)\n"
        )
        print("| clients | endpoint | req/s | p50 ms | p99 ms | baseline req/s | ratio |")
        print("|---|---|---|---|---|---|---|")
        for connections in (1, 8, 32):
            for name, baseline in (("list", "bare GET"), ("create", "bare POST")):
                r, b = results[(name, connections)], results[(baseline, connections)]
                assert r["errors"] == 0, (name, connections, r)
                print(
                    f"| {connections} | {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                    f"| {b['rps']:.0f} | {r['rps'] / b['rps']:.2f} |"
                )

        if args.deep_sessions:
            print_deep_pages(ours, env, args.backend, args.deep_sessions)
        print(
            f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}"
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)


def print_deep_pages(ours: str, env: dict[str, str], backend: str, sessions: int) -> None:
    deep = deep_page(ours, env, sessions)
    print(f"\n## Page depth ({backend}; {sessions:,} sessions in one project)\n")
    print("| page | median ms | p99 ms |")
    print("|---|---|---|")
    for label, (median, p99) in deep.items():
        print(f"| {label} | {median:.2f} | {p99:.2f} |")
    first, deepest = deep["page 1"][0], deep["after token #10,000"][0]
    print(f"\nratio deep / first: {deepest / first:.2f}")


def deep_page(base_url: str, env: dict[str, str], count: int) -> dict[str, tuple[float, float]]:
    """Fill a fresh project with ``count`` sessions, then time page 1 against the page that the
    10,000th next_page_token (page size 20) opens."""
    from sqlalchemy import insert, select

    from indexchat.api.pagination import PageTokens
    from indexchat.config import Settings
    from indexchat.runtime import open_database
    from indexchat.services import tenancy
    from indexchat.storage.tables import ChatSession

    settings = Settings(
        data_dir=env["INDEXCHAT_DATA_DIR"], database_url=env.get("INDEXCHAT_DATABASE_URL")
    )
    db = open_database(settings)
    name = f"deep-{uuid.uuid4().hex[:6]}"
    with db.write() as tx:
        project = tenancy.create_project(tx, name)
        key = tenancy.create_key(tx, project=name).secret
        secret = tenancy.instance_keys(tx).for_purpose("page-token")
    start, t0 = datetime(2026, 1, 1), time.perf_counter()
    batch = 20_000
    for offset in range(0, count, batch):
        rows = [
            {
                "id": f"ses-{uuid.uuid4()}",
                "project_id": project.id,
                "index_ids": None,
                "shared_access": "read_only",
                "created_at": start + timedelta(milliseconds=i),
                "last_updated_at": start + timedelta(milliseconds=i),
            }
            for i in range(offset, min(offset + batch, count))
        ]
        with db.write() as tx:
            tx.execute(insert(ChatSession), rows)
    print(f"inserted {count:,} sessions in {time.perf_counter() - t0:.1f}s", flush=True)
    page_size, token_number = 20, 10_000
    with db.read() as tx:  # the keyset of the last row on page #10,000 (bench-side only)
        row = tx.execute(
            select(ChatSession.last_updated_at, ChatSession.id)
            .where(ChatSession.project_id == project.id)
            .order_by(ChatSession.last_updated_at.desc(), ChatSession.id.desc())
            .offset(page_size * token_number - 1)
            .limit(1)
        ).one()
    db.dispose()
    token = PageTokens(secret).encode_keyset(f"chat:{project.id}", (row[0], row[1]))
    out = {}
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as client:
        for label, params in (
            ("page 1", {"page_size": page_size}),
            ("after token #10,000", {"page_size": page_size, "page_token": token}),
        ):
            timings = []
            for _ in range(300):
                t = time.perf_counter()
                response = client.get(f"{base_url}/api/v1/chat", params=params)
                timings.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200 and len(response.json()["items"]) == page_size
            timings.sort()
            out[label] = (statistics.median(timings[20:]), pct(timings, 99))
    return out


if __name__ == "__main__":
    main()
