"""The PostgreSQL search store: pgvector for vectors, PostgreSQL full text for words.

Text ranking uses ``ts_rank_cd`` over an English ``tsvector``; a BM25 ranking is planned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection

from indexchat.search.store import Entry, query_terms


class PostgresSearchStore:
    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._table = f"chunk_search_{dimension}"

    def ensure_schema(self, connection: Connection) -> None:
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
        connection.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            "chunk_id BIGINT PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE, "
            "index_id VARCHAR(64) NOT NULL, "
            "terms TSVECTOR NOT NULL, "
            f"embedding VECTOR({self.dimension}) NOT NULL)"
        )
        connection.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {self._table}_terms ON {self._table} USING GIN (terms)"
        )
        connection.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {self._table}_index ON {self._table} (index_id)"
        )

    def add(self, connection: Connection, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        connection.exec_driver_sql(
            f"INSERT INTO {self._table} (chunk_id, index_id, terms, embedding) "
            "VALUES (%s, %s, to_tsvector('english', %s), %s::vector)",
            [(e.chunk_id, e.index_id, e.text, _literal(e.embedding)) for e in entries],
        )

    def remove(self, connection: Connection, chunk_ids: Sequence[int]) -> None:
        if chunk_ids:
            connection.exec_driver_sql(
                f"DELETE FROM {self._table} WHERE chunk_id = ANY(%s)", (list(chunk_ids),)
            )

    def text_search(
        self, connection: Connection, index_id: str, query: str, limit: int
    ) -> list[tuple[int, float]]:
        terms = query_terms(query)
        if not terms:
            return []
        rows = connection.exec_driver_sql(
            "SELECT chunk_id, ts_rank_cd(terms, q) AS score "
            f"FROM {self._table}, to_tsquery('english', %s) q "
            "WHERE index_id = %s AND terms @@ q ORDER BY score DESC LIMIT %s",
            (" | ".join(_tsquery_word(t) for t in terms), index_id, limit),
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    def vector_search(
        self, connection: Connection, index_id: str, query: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        rows = connection.exec_driver_sql(
            f"SELECT chunk_id, 1 - (embedding <=> %s::vector) FROM {self._table} "
            "WHERE index_id = %s ORDER BY embedding <=> %s::vector LIMIT %s",
            (_literal(query), index_id, _literal(query), limit),
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows]


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


def _tsquery_word(term: str) -> str:
    # Quoted lexeme: any characters are literal inside to_tsquery.
    return "'" + term.replace("'", "''").replace("\\", "\\\\") + "'"
