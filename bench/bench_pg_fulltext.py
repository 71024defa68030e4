"""Full-text ranking on SciFact, straight through the search stores (no server, no embeddings).

    python bench/bench_pg_fulltext.py [--limit-docs N] [--repeat R]

Starts a PostgreSQL (``pgserver``) in a temporary directory, cuts every SciFact document (title,
blank line, abstract, parsed as a ``.txt`` file) into chunks exactly as index sync does, and
stores them through ``PostgresSearchStore`` (random vectors) and ``SqliteSearchStore`` beside it.
Then runs the 300 test queries through ``text_search`` (top 100) for each ranking: PostgreSQL's
``ts_rank`` and ``ts_rank_cd``, our BM25 on PostgreSQL, and SQLite FTS5's BM25. The rankings take
turns query by query, so machine noise hits them alike. Quality is nDCG@10 and recall@100 per
document (a document ranks where its best chunk does), as BEIR computes it; latency is one
``text_search`` call inside an open read transaction.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
from common import load_scifact, ndcg_at, pct, recall_at
from sqlalchemy import Connection, func, select

from indexchat.domain import Scope
from indexchat.ingest.chunking import chunk
from indexchat.ingest.parsers import parse
from indexchat.search.postgres import PostgresSearchStore
from indexchat.search.sqlite import SqliteSearchStore
from indexchat.search.store import Entry, SearchStore, query_terms
from indexchat.services import directories, indexes, tenancy
from indexchat.storage.db import Database
from indexchat.storage.migrate import upgrade
from indexchat.storage.tables import Chunk, ParsedFile

DIMENSION = 384
BATCH_DOCS = 200


class TsRankStore(PostgresSearchStore):
    """The store ranking text matches by PostgreSQL's own ``ts_rank`` or ``ts_rank_cd``, to
    compare against BM25 (the store's entries already hold the ``tsvector`` these rank)."""

    def __init__(self, dimension: int, ranking: Literal["ts_rank", "ts_rank_cd"]) -> None:
        super().__init__(dimension)
        self.ranking = ranking

    def text_search(
        self, connection: Connection, index_id: str, query: str, limit: int
    ) -> list[tuple[int, float]]:
        terms = query_terms(query)
        if not terms:
            return []
        rows = connection.exec_driver_sql(
            f"SELECT chunk_id, {self.ranking}(terms, q) AS score "
            f"FROM {self._table}, to_tsquery('english', %(words)s) q "
            "WHERE index_id = %(index)s AND terms @@ q "
            "ORDER BY score DESC, chunk_id LIMIT %(limit)s",
            {
                "words": " | ".join(tsquery_word(t) for t in terms),
                "index": index_id,
                "limit": limit,
            },
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows]


def tsquery_word(term: str) -> str:
    # Quoted lexeme: any characters are literal inside to_tsquery.
    return "'" + term.replace("'", "''").replace("\\", "\\\\") + "'"


def build(db: Database, store: SearchStore, corpus: dict[str, str]) -> tuple[str, dict, float]:
    """An index holding the corpus's chunks; (index id, chunk id → doc id, seconds to store)."""
    upgrade(db.engine)
    with db.write() as tx:
        tenancy.ensure_defaults(tx)
        project = tenancy.create_project(tx, "bench", organization="bench")
        scope = Scope(organization_id=project.organization_id, project_id=project.id)
        source = directories.create_directory(tx, scope, name="scifact")
        index_id = indexes.create_index(tx, scope, source_directory_id=source.id).id
        store.ensure_schema(tx.connection())
    owner: dict[int, str] = {}
    # Random unit vectors: as large and as incompressible in a row as real embeddings.
    rng = np.random.default_rng(0)
    elapsed = 0.0
    docs = list(corpus.items())
    for start in range(0, len(docs), BATCH_DOCS):
        with db.write() as tx:
            entries = []
            for doc_id, text in docs[start : start + BATCH_DOCS]:
                parsed = ParsedFile(
                    id=f"dfl-{doc_id}",
                    index_id=index_id,
                    source_file_id=doc_id,
                    file_name=f"{doc_id}.txt",
                    content_hash=doc_id,
                    status="parsed",
                )
                tx.add(parsed)
                tx.flush()
                pieces = chunk(parse(text.encode(), f"{doc_id}.txt"))
                rows = [
                    Chunk(
                        index_id=index_id,
                        parsed_file_id=parsed.id,
                        chunk_index=c.index,
                        text=c.text,
                        start_char=c.start_char,
                        end_char=c.end_char,
                        page_start=c.page_start,
                        page_end=c.page_end,
                        heading_path=c.heading_path,
                    )
                    for c in pieces
                ]
                tx.add_all(rows)
                tx.flush()
                for row in rows:
                    owner[row.id] = doc_id
                    vector = rng.standard_normal(DIMENSION).astype(np.float32)
                    entries.append(
                        Entry(row.id, index_id, row.text, vector / np.linalg.norm(vector))
                    )
            t = time.perf_counter()
            store.add(tx.connection(), entries)
            elapsed += time.perf_counter() - t
    with db.read() as tx:
        assert tx.scalar(select(func.count()).select_from(Chunk)) == len(owner)
    return index_id, owner, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1, help="passes over the queries")
    args = parser.parse_args()
    corpus, queries, qrels = load_scifact(args.limit_docs)
    work = Path(tempfile.mkdtemp(prefix="indexchat-ftbench-"))
    import pgserver

    pg = pgserver.get_server(work / "pg", cleanup_mode="stop")
    pg.psql("CREATE DATABASE bench;")
    pg_db = Database(f"postgresql+psycopg://postgres@/bench?host={work / 'pg'}")
    sqlite_db = Database(f"sqlite:///{work / 'bench.db'}")
    try:
        pg_index, pg_owner, pg_load = build(pg_db, PostgresSearchStore(DIMENSION), corpus)
        lite_index, lite_owner, lite_load = build(sqlite_db, SqliteSearchStore(DIMENSION), corpus)
        print(
            f"docs {len(corpus)}, chunks {len(pg_owner)}; storing took "
            f"{pg_load:.1f} s on PostgreSQL (BM25 counts included), {lite_load:.1f} s on SQLite",
            flush=True,
        )
        runs: dict[str, tuple[Database, SearchStore, str, dict[int, str]]] = {
            "PostgreSQL ts_rank": (
                pg_db,
                TsRankStore(DIMENSION, "ts_rank"),
                pg_index,
                pg_owner,
            ),
            "PostgreSQL ts_rank_cd (before)": (
                pg_db,
                TsRankStore(DIMENSION, "ts_rank_cd"),
                pg_index,
                pg_owner,
            ),
            "PostgreSQL BM25 (now)": (pg_db, PostgresSearchStore(DIMENSION), pg_index, pg_owner),
            "SQLite FTS5 BM25": (sqlite_db, SqliteSearchStore(DIMENSION), lite_index, lite_owner),
        }
        measure(runs, queries, qrels, args.repeat)
    finally:
        pg_db.dispose()
        sqlite_db.dispose()
        pg.cleanup()


def measure(runs: dict, queries: dict[str, str], qrels: dict, repeat: int) -> None:
    ndcgs: dict[str, list[float]] = {label: [] for label in runs}
    recalls: dict[str, list[float]] = {label: [] for label in runs}
    latencies: dict[str, list[float]] = {label: [] for label in runs}
    labels = list(runs)
    for label in labels:  # warm caches and plans
        for text in list(queries.values())[:20]:
            search(runs[label], text)
    for n in range(repeat):
        for i, (qid, text) in enumerate(queries.items()):
            shift = (i + n) % len(labels)
            for label in labels[shift:] + labels[:shift]:
                ranked, ms = search(runs[label], text)
                latencies[label].append(ms)
                if n == 0:
                    ndcgs[label].append(ndcg_at(ranked, qrels[qid]))
                    recalls[label].append(recall_at(ranked, qrels[qid]))
    base = statistics.median(latencies["SQLite FTS5 BM25"])
    print(f"\n## Full-text ranking on SciFact ({len(queries)} test queries, top 100)\n")
    print("| ranking | nDCG@10 | recall@100 | p50 ms | p99 ms | p50 vs SQLite |")
    print("|---|---|---|---|---|---|")
    for label in labels:
        lat = sorted(latencies[label])
        p50, p99 = statistics.median(lat), pct(lat, 99)
        print(
            f"| {label} | {statistics.mean(ndcgs[label]):.4f} | "
            f"{statistics.mean(recalls[label]):.4f} | {p50:.1f} | {p99:.1f} | {p50 / base:.2f}× |"
        )
    print(
        f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def search(run: tuple[Database, SearchStore, str, dict[int, str]], text: str) -> tuple[list, float]:
    db, store, index_id, owner = run
    with db.read() as tx:
        connection = tx.connection()
        t = time.perf_counter()
        hits = store.text_search(connection, index_id, text, 100)
        ms = (time.perf_counter() - t) * 1000
    return list(dict.fromkeys(owner[chunk_id] for chunk_id, _ in hits)), ms


if __name__ == "__main__":
    main()
