"""The search store: full-text and vector entries for chunks, keyed by the chunk's id.

One implementation per database (``sqlite.py``: FTS5 + sqlite-vec; ``postgres.py``: full text
+ pgvector), subclasses of ``SearchStore``. Writes join the caller's transaction (they take its
Connection), so a file's chunks and their search entries commit together.

The store owns its schema, which Alembic does not manage: its shape depends on the embedding
model's dimension, which is known only once the model is chosen. Its names are fixed in
``domain.py`` (``full_text_table``, ``vector_table``, ``entries_table``, and the prefixes the
migration environment skips). What it is made of, and when:

- ``ensure_schema`` creates the tables of the dimension: SQLite's sqlite-vec table; PostgreSQL's
  entries table and, for BM25, its ``_stats`` and ``_postings`` tables and the triggers that keep
  them (see ``postgres.py``). ``Runtime.open`` calls it once per process, before any sync or
  search, so every server and worker has run it; it is safe to run again, and concurrently.
- SQLite's per-index full-text tables are made by ``add`` on an index's first entries and dropped
  by ``drop_index``. Migration 0006, which split one shared table into these, keeps its own
  frozen copy of the naming, as migrations do; a test holds the two equal.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from indexchat.search.vector_cache import VectorCache

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Entry:
    """A chunk's search entry; no ``embedding`` for indexes made with vector search off
    (``vector_target: DISABLED``): they are searched by full text only."""

    chunk_id: int
    index_id: str
    text: str
    embedding: np.ndarray | None


class SearchStore(ABC):
    """The engine that keeps and searches the entries of every index (an index's own settings
    are its row, ``storage.tables.Index``)."""

    def __init__(self, dimension: int, cache: VectorCache | None = None) -> None:
        self.dimension = dimension
        self.cache = cache

    @abstractmethod
    def ensure_schema(self, connection: Connection) -> None: ...

    @abstractmethod
    def add(self, connection: Connection, entries: Sequence[Entry]) -> None: ...

    @abstractmethod
    def remove(self, connection: Connection, index_id: str, chunk_ids: Sequence[int]) -> None:
        """Remove the entries of these chunks of the index."""

    @abstractmethod
    def drop_index(self, connection: Connection, index_id: str) -> None:
        """Drop what the store keeps for an index whose entries are all removed."""

    @abstractmethod
    def text_search(
        self, connection: Connection, index_id: str, query: str, limit: int
    ) -> list[tuple[int, float]]:
        """(chunk id, score), best first; higher scores are better."""

    def vector_search(
        self,
        connection: Connection,
        index_id: str,
        query: np.ndarray,
        limit: int,
        version: Hashable | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity), best first. With the index's ``version`` (anything
        that changes whenever its entries change) the answer may come from the cache."""
        if self.cache is not None and version is not None:
            found = self.cache.search(
                index_id, version, lambda: self._vectors_of(connection, index_id), query, limit
            )
            if found is not None:
                return found
        sql, parameters = self._nearest_query(index_id, query, limit)
        rows = connection.exec_driver_sql(sql, parameters).all()
        return [(int(r[0]), float(r[1])) for r in rows]

    @abstractmethod
    def _nearest_query(
        self, index_id: str, query: np.ndarray, limit: int
    ) -> tuple[str, tuple[object, ...]]:
        """The SQL (and its parameters) of ``vector_search`` answered by the database's own
        vector index: rows of chunk id and cosine similarity, best first."""

    @abstractmethod
    def _vectors_of(self, connection: Connection, index_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The index's chunk ids and their embeddings (one row each), for the cache."""


def query_terms(query: str, limit: int = 64) -> list[str]:
    """The words of a free-text query, deduplicated, in order (no search syntax survives)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:limit]
