"""Queries for chunks. Chunks are reached through an index the caller has already found for its
project (the chunk ids of its search results, or a sync job's index), so they take chunk or
parsed-file ids rather than ``project_id=``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from indexchat.storage.tables import Chunk, ParsedFile


def ids_of_parsed_file(tx: Session, parsed_file_id: str) -> Sequence[int]:
    return tx.scalars(select(Chunk.id).where(Chunk.parsed_file_id == parsed_file_id)).all()


def remove_of_parsed_file(tx: Session, parsed_file_id: str) -> None:
    tx.execute(delete(Chunk).where(Chunk.parsed_file_id == parsed_file_id))


def reader_with_parsed_files(
    columns: Sequence[InstrumentedAttribute[Any]],
) -> Callable[[Session, Sequence[int]], Sequence[Row[Any]]]:
    """A reader of ``columns`` (of chunks and their parsed files) for given chunk ids, read
    without the ORM; the statement is built once, for a hot path."""
    query = select(*columns).join(ParsedFile, ParsedFile.id == Chunk.parsed_file_id)

    def read(tx: Session, chunk_ids: Sequence[int]) -> Sequence[Row[Any]]:
        return tx.execute(query.where(Chunk.id.in_(chunk_ids))).all()

    return read
