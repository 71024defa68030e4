"""The search store: full-text and vector entries for chunks, keyed by the chunk's id.

One implementation per database (``sqlite.py``: FTS5 + sqlite-vec; ``postgres.py``: full text
+ pgvector), behind this protocol. Writes join the caller's transaction (they take its
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
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import Connection

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Entry:
    """A chunk's search entry; no ``embedding`` for indexes made with vector search off
    (``vector_target: DISABLED``): they are searched by full text only."""

    chunk_id: int
    index_id: str
    text: str
    embedding: np.ndarray | None


class SearchStore(Protocol):
    """The engine that keeps and searches the entries of every index (an index's own settings
    are its row, ``storage.tables.Index``)."""

    dimension: int

    def ensure_schema(self, connection: Connection) -> None: ...

    def add(self, connection: Connection, entries: Sequence[Entry]) -> None: ...

    def remove(self, connection: Connection, index_id: str, chunk_ids: Sequence[int]) -> None:
        """Remove the entries of these chunks of the index."""

    def drop_index(self, connection: Connection, index_id: str) -> None:
        """Drop what the store keeps for an index whose entries are all removed."""

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
        that changes whenever its entries change) a store may answer from memory."""


def query_terms(query: str, limit: int = 64) -> list[str]:
    """The words of a free-text query, deduplicated, in order (no search syntax survives)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:limit]
