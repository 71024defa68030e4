"""The PostgreSQL search store: pgvector for vectors, PostgreSQL full text ranked by BM25.

PostgreSQL's own ``ts_rank``/``ts_rank_cd`` know nothing of how rare a word is across an index;
on SciFact they trail BM25 by 10 and 30 nDCG@10 points. So the store keeps an inverted index of
its own beside the ``tsvector`` entries, per index: ``_postings`` (lexeme, chunk, term count,
chunk length) and ``_stats`` (chunk count and total length, and a short key for the postings).
Statement triggers on the entries table maintain both inside the writer's transaction, so every
way an entry goes (``remove``, or a cascade from a deleted chunk or index) keeps them exact.
Writers to one index queue on its ``_stats`` row; postings belong to one chunk, so nobody else
contends for them.

A query reads the postings of its lexemes (a lexeme's df is how many there are) and scores each
chunk in the same statement: Σ idf·tf·(k1+1) / (tf + k1·(1 − b + b·len/avglen)), with
idf = ln(1 + (N − df + 0.5) / (df + 0.5)) as in Lucene. A chunk's length is its count of indexed
words (stop words are not indexed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection

from indexchat.domain import entries_table
from indexchat.search.store import Entry, SearchStore, query_terms
from indexchat.search.vector_cache import VectorCache

K1 = 1.2
B = 0.75


class PostgresSearchStore(SearchStore):
    def __init__(self, dimension: int, cache: VectorCache | None = None) -> None:
        super().__init__(dimension, cache)
        self._table = entries_table(dimension)

    def ensure_schema(self, connection: Connection) -> None:
        t = self._table
        if _table_exists(connection, f"{t}_postings"):  # all of it commits at once
            _allow_missing_embeddings(connection, t)
            return
        # Two processes starting at once must not both create (or backfill) the same things.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (t,))
        if _table_exists(connection, f"{t}_postings"):
            _allow_missing_embeddings(connection, t)
            return
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
        connection.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "chunk_id BIGINT PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE, "
            "index_id VARCHAR(64) NOT NULL, "
            "terms TSVECTOR NOT NULL, "
            f"embedding VECTOR({self.dimension}))"
        )
        connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {t}_terms ON {t} USING GIN (terms)")
        connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {t}_index ON {t} (index_id)")
        for statement in _bm25_schema(t):
            connection.exec_driver_sql(statement)

    def add(self, connection: Connection, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        # One statement, so the counting trigger runs once per batch rather than once per row.
        connection.exec_driver_sql(
            f"INSERT INTO {self._table} (chunk_id, index_id, terms, embedding) "
            "SELECT e.chunk_id, e.index_id, to_tsvector('english', e.text), e.embedding::vector "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
            "AS e(chunk_id, index_id, text, embedding)",
            (
                [e.chunk_id for e in entries],
                [e.index_id for e in entries],
                [e.text for e in entries],
                [None if e.embedding is None else _literal(e.embedding) for e in entries],
            ),
        )

    def remove(self, connection: Connection, index_id: str, chunk_ids: Sequence[int]) -> None:
        if chunk_ids:
            connection.exec_driver_sql(
                f"DELETE FROM {self._table} WHERE chunk_id = ANY(%s)", (list(chunk_ids),)
            )

    def drop_index(self, connection: Connection, index_id: str) -> None:
        """Nothing is left once its entries are removed: statistics go with their postings."""

    def text_search(
        self, connection: Connection, index_id: str, query: str, limit: int
    ) -> list[tuple[int, float]]:
        terms = query_terms(query)
        if not terms:
            return []
        rows = connection.exec_driver_sql(
            self._bm25_sql(), {"words": " ".join(terms), "index": index_id, "limit": limit}
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    def _bm25_sql(self) -> str:
        t = self._table
        # A query lexeme's df is the number of its postings in the index, which are read anyway.
        return (
            "WITH n AS (SELECT key, chunks::float8 AS chunks, "
            "greatest(total_length, 1)::float8 / greatest(chunks, 1) AS avglen "
            f"FROM {t}_stats WHERE index_id = %(index)s) "
            "SELECT chunk_id, sum(ln(1 + (n.chunks - df + 0.5::float8) / (df + 0.5::float8)) "
            f"* tf * {K1 + 1}::float8 / (tf + {K1}::float8 "
            f"* ({1 - B}::float8 + {B}::float8 * length / n.avglen))) AS score "
            "FROM (SELECT p.chunk_id, p.tf::float8 AS tf, p.length::float8 AS length, "
            "(count(*) OVER (PARTITION BY p.lexeme))::float8 AS df "
            f"FROM {t}_postings p JOIN n USING (key) "
            "WHERE p.lexeme = ANY(tsvector_to_array(to_tsvector('english', %(words)s)))) p, n "
            "GROUP BY chunk_id ORDER BY score DESC, chunk_id LIMIT %(limit)s"
        )

    def _nearest_query(
        self, index_id: str, query: np.ndarray, limit: int
    ) -> tuple[str, tuple[object, ...]]:
        return (
            f"SELECT chunk_id, 1 - (embedding <=> %s::vector) FROM {self._table} "
            "WHERE index_id = %s ORDER BY embedding <=> %s::vector LIMIT %s",
            (_literal(query), index_id, _literal(query), limit),
        )

    def _vectors_of(self, connection: Connection, index_id: str) -> tuple[np.ndarray, np.ndarray]:
        rows = connection.exec_driver_sql(
            f"SELECT chunk_id, embedding::text FROM {self._table} WHERE index_id = %s",
            (index_id,),
        ).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.array(
            [np.fromstring(r[1][1:-1], dtype=np.float32, sep=",") for r in rows], dtype=np.float32
        )
        return ids, matrix.reshape(len(rows), self.dimension)


def _allow_missing_embeddings(connection: Connection, table: str) -> None:
    """Entries of indexes without vector search have no embedding; tables made before those
    indexes existed required one."""
    required = connection.exec_driver_sql(
        "SELECT attnotnull FROM pg_catalog.pg_attribute WHERE attrelid = %s::regclass "
        "AND attname = 'embedding'",
        (table,),
    ).scalar()
    if required:
        connection.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN embedding DROP NOT NULL")


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


def _table_exists(connection: Connection, name: str) -> bool:
    """Read from pg_class itself: ``to_regclass`` answers from the backend's catalog cache, which
    keeps "no such table" from before the advisory lock was granted, so the process that waited
    for another one's commit would go on to create the tables again."""
    found = connection.exec_driver_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class "
        "WHERE relname = %s AND relnamespace = current_schema()::regnamespace)",
        (name,),
    )
    return bool(found.scalar())


def _bm25_schema(t: str) -> list[str]:
    """BM25's statistics for the entries table ``t``, kept by triggers (see the module doc)."""
    return _bm25_tables(t) + _bm25_trigger_functions(t) + _bm25_triggers(t) + _bm25_backfill(t)


def _bm25_tables(t: str) -> list[str]:
    """The length function, the per-index statistics and the postings."""
    return [
        "CREATE OR REPLACE FUNCTION chunk_search_length(tsvector) RETURNS integer "
        "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS "
        "$$ SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer "
        "FROM unnest($1) $$",
        # One row per index: its chunk count and total length, and a short key for postings.
        f"CREATE TABLE {t}_stats ("
        "index_id VARCHAR(64) PRIMARY KEY REFERENCES indexes(id) ON DELETE CASCADE, "
        "key BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, "
        "chunks BIGINT NOT NULL, total_length BIGINT NOT NULL)",
        # One row per (index, lexeme, chunk): an inverted index a query reads by its lexemes.
        f"CREATE TABLE {t}_postings ("
        "key BIGINT NOT NULL, lexeme TEXT NOT NULL, chunk_id BIGINT NOT NULL, "
        "tf INTEGER NOT NULL, length INTEGER NOT NULL, "
        "PRIMARY KEY (key, lexeme, chunk_id) INCLUDE (tf, length))",
    ]


def _bm25_trigger_functions(t: str) -> list[str]:
    """What the triggers run: count entries in and out, refuse updates."""
    return [
        f"CREATE OR REPLACE FUNCTION {t}_added() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO {t}_stats AS s (index_id, chunks, total_length) "
        "SELECT index_id, count(*), sum(chunk_search_length(terms)) FROM added "
        "GROUP BY index_id ORDER BY index_id "
        "ON CONFLICT (index_id) DO UPDATE SET chunks = s.chunks + excluded.chunks, "
        "total_length = s.total_length + excluded.total_length; "
        "WITH a AS MATERIALIZED (SELECT chunk_id, index_id, terms, "
        "chunk_search_length(terms) AS length FROM added) "
        f"INSERT INTO {t}_postings (key, lexeme, chunk_id, tf, length) "
        "SELECT s.key, u.lexeme, a.chunk_id, coalesce(array_length(u.positions, 1), 1), a.length "
        f"FROM a JOIN {t}_stats s USING (index_id) CROSS JOIN LATERAL unnest(a.terms) u; "
        "RETURN NULL; END $$",
        f"CREATE OR REPLACE FUNCTION {t}_removed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM 1 FROM {t}_stats WHERE index_id IN (SELECT index_id FROM removed) "
        "ORDER BY index_id FOR UPDATE; "
        f"UPDATE {t}_stats s SET chunks = s.chunks - r.chunks, "
        "total_length = s.total_length - r.total_length "
        "FROM (SELECT index_id, count(*) AS chunks, sum(chunk_search_length(terms)) "
        "AS total_length FROM removed GROUP BY index_id) r WHERE s.index_id = r.index_id; "
        f"DELETE FROM {t}_postings p USING removed r JOIN {t}_stats s USING (index_id) "
        "CROSS JOIN LATERAL unnest(r.terms) u "
        "WHERE p.key = s.key AND p.lexeme = u.lexeme AND p.chunk_id = r.chunk_id; "
        "RETURN NULL; END $$",
        # An index's row may go before its entries do (both cascade from the index): then the
        # entries' trigger finds no key, so the row takes its postings with it.
        f"CREATE OR REPLACE FUNCTION {t}_stats_removed() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN DELETE FROM {t}_postings p USING removed r WHERE p.key = r.key; "
        "RETURN NULL; END $$",
        # Entries are inserted and deleted, never changed: an update would bypass the counts.
        f"CREATE OR REPLACE FUNCTION {t}_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'search entries are replaced, not updated'; END $$",
    ]


def _bm25_triggers(t: str) -> list[str]:
    """Statement triggers on the entries and statistics tables."""
    return [
        f"CREATE OR REPLACE TRIGGER {t}_added AFTER INSERT ON {t} "
        f"REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION {t}_added()",
        f"CREATE OR REPLACE TRIGGER {t}_removed AFTER DELETE ON {t} "
        f"REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION {t}_removed()",
        f"CREATE OR REPLACE TRIGGER {t}_unchanged BEFORE UPDATE ON {t} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {t}_unchanged()",
        f"CREATE OR REPLACE TRIGGER {t}_stats_removed AFTER DELETE ON {t}_stats "
        f"REFERENCING OLD TABLE AS removed FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {t}_stats_removed()",
    ]


def _bm25_backfill(t: str) -> list[str]:
    """Statistics and postings for the entries written before they existed."""
    return [
        # The triggers' locks hold writers off meanwhile.
        f"INSERT INTO {t}_stats (index_id, chunks, total_length) "
        f"SELECT index_id, count(*), sum(chunk_search_length(terms)) FROM {t} GROUP BY index_id",
        f"WITH c AS MATERIALIZED (SELECT chunk_id, index_id, terms, "
        f"chunk_search_length(terms) AS length FROM {t}) "
        f"INSERT INTO {t}_postings (key, lexeme, chunk_id, tf, length) "
        "SELECT s.key, u.lexeme, c.chunk_id, coalesce(array_length(u.positions, 1), 1), c.length "
        f"FROM c JOIN {t}_stats s USING (index_id) CROSS JOIN LATERAL unnest(c.terms) u",
    ]
