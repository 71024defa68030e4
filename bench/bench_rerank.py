"""What reranking adds to a retrieve: the same queries with and without the rerank server.

    python bench/bench_rerank.py [--rounds 300] [--top-k 10]

``indexchat serve`` runs as a subprocess with ``INDEXCHAT_RERANK_URL`` pointed at the scripted
rerank server (``tests/fake_rerank.py``, scoring by length so that it answers at once) in a
process of its own, over an index of real documents from ``shared/data/docs`` (the IRS 1040-NR
instructions, the TraceMonkey paper, the DB2 Redpaper, the docling README, the Wikipedia duck
page). Each round asks one query twice over the same keep-alive connection, in alternating
order: with the default ``rerank`` (the best 40 hybrid candidates, the default depth, go to
the rerank server) and with ``rerank: {"enabled": false}``, the baseline. Added latency is the
median of the per-round differences; the ratio is the median with over the median without.

Writes ``bench/results/rerank-<time>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from bench_chat import build_index
from common import BIN, RESULTS, ROOT, Server, free_port, pct

# shared/ sits beside the clone (or beside the folder of worktrees).
DOCS = (
    next(
        (d for d in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if d.is_dir()),
        ROOT.parent / "shared",
    )
    / "data"
    / "docs"
)
FILES = [
    "i1040nr.pdf",
    "tracemonkey.pdf",
    "redp5110_sampled.pdf",
    "docling-README.md",
    "wiki_duck.html",
]
QUERIES = [
    "Who must file Form 1040-NR?",
    "How is the standard deduction for nonresident aliens computed?",
    "What is a trace tree and how does it grow?",
    "How does TraceMonkey handle type-unstable loops?",
    "What is row and column access control in DB2?",
    "How are column masks defined?",
    "Which document formats can docling convert?",
    "Where do ducks live?",
    "How do ducks feed?",
    "What tax treaty benefits can a student claim?",
]


def serve_fake_rerank(port: int) -> None:
    """The rerank server's own process: serves until terminated."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_rerank import FakeReranker

    # Scored by length alone, so the server answers at once: what is measured is the cost of
    # the rerank step to indexchat (40 passages out and back, 30 more rows read), not a model's.
    FakeReranker(port=port, score=lambda _query, document: -len(document))
    while True:
        time.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--serve-fake-rerank", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake_rerank:
        serve_fake_rerank(args.serve_fake_rerank)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-rerank-"))
    rerank_port = free_port()
    fake = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake-rerank", str(rerank_port)],
        stdout=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "INDEXCHAT_DATA_DIR": str(work / "data"),
        "INDEXCHAT_RERANK_URL": f"http://127.0.0.1:{rerank_port}/v1/rerank",
        "INDEXCHAT_RERANK_MODEL": "fake-overlap",
    }
    server = Server(env, work / "server.log")
    try:
        results = measure(server, args)
    finally:
        server.stop()
        fake.terminate()
        fake.wait()
    report(results, args)


def measure(server: Server, args: argparse.Namespace) -> dict[str, object]:
    files = {name: (DOCS / name).read_bytes() for name in FILES}
    index_id, sync_s = build_index(server.sdk(), files)
    chunks = server.sdk().indexes.get(index_id).metadata.get("chunks")
    with_ms: list[float] = []
    without_ms: list[float] = []
    reranked = 0
    with httpx.Client(
        base_url=server.base, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
    ) as client:

        def retrieve(query: str, rerank: bool) -> tuple[float, dict]:
            body = {"index_id": index_id, "query": query, "top_k": args.top_k}
            if not rerank:
                body["rerank"] = {"enabled": False}
            t0 = time.perf_counter()
            response = client.post("/api/v1/retrieval/retrieve", json=body)
            elapsed = (time.perf_counter() - t0) * 1000
            response.raise_for_status()
            return elapsed, response.json()

        for query in QUERIES:  # warm-up: model loaded, vectors cached, connections open
            retrieve(query, True)
            retrieve(query, False)
        for round_number in range(args.rounds):
            query = QUERIES[round_number % len(QUERIES)]
            order = (True, False) if round_number % 2 == 0 else (False, True)
            for rerank in order:
                elapsed, answer = retrieve(query, rerank)
                (with_ms if rerank else without_ms).append(elapsed)
                if rerank:
                    reranked += all(r["rerank_score"] is not None for r in answer["results"])
    return {
        "chunks": chunks,
        "sync_s": sync_s,
        "with_ms": with_ms,
        "without_ms": without_ms,
        "reranked_answers": reranked,
        "problems": server.problems(),
    }


def report(results: dict, args: argparse.Namespace) -> None:
    with_ms, without_ms = results["with_ms"], results["without_ms"]
    added = [a - b for a, b in zip(with_ms, without_ms, strict=True)]
    rows = {
        "retrieve with rerank (40 candidates)": with_ms,
        "retrieve without rerank (baseline)": without_ms,
        "added per retrieve (paired difference)": added,
    }
    command = "python bench/bench_rerank.py " + shlex.join(sys.argv[1:])
    print(
        f"\n`{command.strip()}` on {platform.node()} ({os.cpu_count()} cores), "
        f"{datetime.now():%Y-%m-%d %H:%M}; {results['chunks']} chunks, "
        f"{args.rounds} rounds, top_k {args.top_k}\n"
    )
    print("| | median ms | p90 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for label, values in rows.items():
        print(
            f"| {label} | {statistics.median(values):.2f} | {pct(values, 90):.2f} | "
            f"{pct(values, 99):.2f} |"
        )
    ratio = statistics.median(with_ms) / statistics.median(without_ms)
    print(
        f"\nratio with / without (medians): {ratio:.2f}x; answers with every rerank_score "
        f"set: {results['reranked_answers']}/{args.rounds}; server log: {results['problems']}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"rerank-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"command": command, "top_k": args.top_k, **results}, indent=1))
    print(f"JSON: {out.relative_to(ROOT)}; binaries from {BIN}")


if __name__ == "__main__":
    main()
