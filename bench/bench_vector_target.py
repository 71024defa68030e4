"""SciFact sync time of an index with vector search off (``vector_target: DISABLED``) next to
the default, and what full text alone then retrieves.

    python bench/bench_vector_target.py [--backend sqlite|postgres] [--limit-docs N] [--rounds R]

Starts `indexchat serve` on a fresh data dir, uploads the SciFact documents once into one
directory (as bench_scifact.py does), warms the model up on a one-document index, then for each
round creates one index of each kind over that directory and times its sync: from the sync
request until the index is searchable with every document. The kinds alternate within a round
(DEFAULT first in odd rounds) so drift on a shared machine falls on both. Then the 300 test
queries run once against the last index of each kind with the default request (hybrid weights):
nDCG@10 and recall@100 as in bench_scifact.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import SCIFACT, create_key, free_port, load_scifact, ndcg_at, recall_at, serve, stop
from llama_cloud import LlamaCloud

KINDS = ("DEFAULT", "DISABLED")


def synced_seconds(client: LlamaCloud, directory_id: str, kind: str) -> tuple[str, float]:
    index = client.indexes.create(source_directory_id=directory_id, vector_target=kind)
    t0 = time.perf_counter()
    client.indexes.sync(index.id)
    while client.indexes.get(index.id, expand=["sync_in_progress"]).sync_in_progress:
        time.sleep(0.2)
    return index.id, time.perf_counter() - t0


def quality(client: LlamaCloud, index_id: str, queries: dict, qrels: dict) -> tuple[float, float]:
    names = {
        f.file_id: f.file_name.removesuffix(".txt")
        for f in client.retrieval.find(index_id=index_id, page_size=1000)
    }
    ndcgs, recalls = [], []
    for qid, text in queries.items():
        results = client.retrieval.retrieve(index_id=index_id, query=text, top_k=100).results
        ranked = list(
            dict.fromkeys(names[r.static_fields.parsed_directory_file_id] for r in results)
        )
        ndcgs.append(ndcg_at(ranked, qrels[qid]))
        recalls.append(recall_at(ranked, qrels[qid]))
    return statistics.fmean(ndcgs), statistics.fmean(recalls)


def server_env(work: Path, backend: str) -> dict[str, str]:
    env = {**os.environ, "INDEXCHAT_DATA_DIR": str(work / "data")}
    if backend == "postgres":
        import pgserver

        pg = pgserver.get_server(work / "pg", cleanup_mode="stop")
        pg.psql("CREATE DATABASE scifact;")
        env["INDEXCHAT_DATABASE_URL"] = f"postgresql+psycopg://postgres@/scifact?host={work / 'pg'}"
    return env


def upload_all(client: LlamaCloud, corpus: dict[str, str]) -> str:
    directory = client.beta.directories.create(name="scifact")
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda item: client.beta.directories.files.upload(
                    directory.id, upload_file=(f"{item[0]}.txt", item[1].encode())
                ),
                corpus.items(),
            )
        )
    return directory.id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--data", type=Path, default=SCIFACT, help="the SciFact folder")
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    corpus, queries, qrels = load_scifact(args.limit_docs, args.data)
    work = Path(tempfile.mkdtemp(prefix="indexchat-vector-target-"))
    env = server_env(work, args.backend)
    key = create_key(env)
    port = free_port()
    server = serve(env, port)
    try:
        client = LlamaCloud(
            api_key=key, base_url=f"http://127.0.0.1:{port}", max_retries=0, timeout=300
        )
        warm = client.beta.directories.create(name="warm-up")
        client.beta.directories.files.upload(warm.id, upload_file=("w.txt", b"warm up"))
        synced_seconds(client, warm.id, "DEFAULT")  # exports the model once: not a sync's cost
        directory_id = upload_all(client, corpus)
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        last: dict[str, str] = {}
        for round_ in range(args.rounds):
            for kind in KINDS if round_ % 2 == 0 else reversed(KINDS):
                last[kind], seconds = synced_seconds(client, directory_id, kind)
                times[kind].append(seconds)
                print(f"round {round_ + 1} {kind}: {seconds:.1f} s", flush=True)
        state = client.indexes.get(last["DISABLED"]).metadata
        print(f"docs {len(corpus)}, chunks {state['chunks']}, backend {args.backend}")
        print("| vector_target | sync s (median) | each round | nDCG@10 | recall@100 |")
        print("|---|---|---|---|---|")
        for kind in KINDS:
            ndcg, recall = quality(client, last[kind], queries, qrels)
            runs = ", ".join(f"{t:.1f}" for t in times[kind])
            median = statistics.median(times[kind])
            print(f"| {kind} | {median:.1f} | {runs} | {ndcg:.4f} | {recall:.4f} |")
        ratio = statistics.median(times["DEFAULT"]) / statistics.median(times["DISABLED"])
        print(f"DISABLED syncs {ratio:.1f}x faster (medians)")
    finally:
        stop(server)


if __name__ == "__main__":
    main()
