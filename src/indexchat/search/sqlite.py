"""The embedded search store: SQLite FTS5 (BM25) for text, sqlite-vec for vectors.

Each index has a full-text table of its own (``domain.full_text_table``), created by ``add`` on
the index's first entries and dropped by ``drop_index``: BM25's
statistics (how rare a word is, how long chunks are) are then the index's own, so one project's
documents never shift another's rankings, and a search reads no other index's postings nor
joins ``chunks`` to filter them out. Vectors share one sqlite-vec table, partitioned by index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection

from indexchat.domain import full_text_table, vector_table
from indexchat.search.store import Entry, SearchStore, query_terms
from indexchat.search.vector_cache import VectorCache

# Lucene's English stop set. The words of a query are OR'ed, and FTS5 scores every row that
# holds any of them, so these words would make nearly every row a candidate while adding almost
# nothing to BM25 (a word in more than half the rows gets an IDF of ~0 in FTS5).
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


class SqliteSearchStore(SearchStore):
    def __init__(self, dimension: int, cache: VectorCache | None = None) -> None:
        super().__init__(dimension, cache)
        # One vector table per dimension: the embedding model decides it, not a migration.
        self._vectors = vector_table(dimension)

    def ensure_schema(self, connection: Connection) -> None:
        connection.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self._vectors} USING vec0("
            f"index_id text partition key, embedding float[{self.dimension}] "
            "distance_metric=cosine)"
        )

    def add(self, connection: Connection, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        by_index: dict[str, list[Entry]] = defaultdict(list)
        for entry in entries:
            by_index[entry.index_id].append(entry)
        for index_id, own in by_index.items():
            create_text_table(connection, index_id)
            connection.exec_driver_sql(
                f"INSERT INTO {full_text_table(index_id)}(rowid, text) VALUES (?, ?)",
                [(e.chunk_id, e.text) for e in own],
            )
        vectors = [
            (e.chunk_id, e.index_id, _blob(e.embedding)) for e in entries if e.embedding is not None
        ]
        if vectors:
            connection.exec_driver_sql(
                f"INSERT INTO {self._vectors}(rowid, index_id, embedding) VALUES (?, ?, ?)",
                vectors,
            )

    def remove(self, connection: Connection, index_id: str, chunk_ids: Sequence[int]) -> None:
        rows = [(i,) for i in chunk_ids]
        if rows:
            if _has_table(connection, full_text_table(index_id)):
                connection.exec_driver_sql(
                    f"DELETE FROM {full_text_table(index_id)} WHERE rowid = ?", rows
                )
            connection.exec_driver_sql(f"DELETE FROM {self._vectors} WHERE rowid = ?", rows)

    def drop_index(self, connection: Connection, index_id: str) -> None:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {full_text_table(index_id)}")

    def text_search(
        self, connection: Connection, index_id: str, query: str, limit: int
    ) -> list[tuple[int, float]]:
        terms = query_terms(query)
        # A query of stop words only ("to be or not to be") keeps them all.
        terms = [t for t in terms if t not in STOPWORDS] or terms
        table = full_text_table(index_id)
        if not terms or not _has_table(connection, table):  # nothing synced into it yet
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = connection.exec_driver_sql(
            f"SELECT rowid, -bm25({table}) FROM {table} "
            f"WHERE {table} MATCH ? ORDER BY bm25({table}) LIMIT ?",
            (match, limit),
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    def _nearest_query(
        self, index_id: str, query: np.ndarray, limit: int
    ) -> tuple[str, tuple[object, ...]]:
        return (
            f"SELECT rowid, 1.0 - distance FROM {self._vectors} "
            "WHERE embedding MATCH ? AND k = ? AND index_id = ?",
            (_blob(query), limit, index_id),
        )

    def _vectors_of(self, connection: Connection, index_id: str) -> tuple[np.ndarray, np.ndarray]:
        rows = connection.exec_driver_sql(
            f"SELECT rowid, embedding FROM {self._vectors} WHERE index_id = ?", (index_id,)
        ).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return ids, matrix.reshape(len(rows), self.dimension)


def create_text_table(connection: Connection, index_id: str) -> None:
    connection.exec_driver_sql(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {full_text_table(index_id)} USING fts5("
        "text, content='', contentless_delete=1, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )


def text_tables(connection: Connection) -> list[str]:
    """Every index's full-text table in the database."""
    rows = connection.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%' "
        "AND name LIKE 'chunk\\_text\\_%' ESCAPE '\\'"
    )
    return [r[0] for r in rows]


def _has_table(connection: Connection, name: str) -> bool:
    return bool(
        connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).first()
    )


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()
