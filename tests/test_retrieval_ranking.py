"""Hybrid ranking: score fusion (pure), stop words in SQLite full text, and the retrieve service
on a real SQLite store (rows loaded only for what is returned; threshold, filters, top_k)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import event

from indexchat.domain import Scope
from indexchat.search.fusion import convex, normalise_distribution
from indexchat.search.sqlite import SqliteSearchStore
from indexchat.search.store import Entry
from indexchat.services import directories, indexes, retrieval, tenancy
from indexchat.storage.db import Database
from indexchat.storage.migrate import upgrade
from indexchat.storage.tables import Chunk, ParsedFile

DIMENSION = 5  # a vector table of its own


class AxisEmbedder:
    """Queries embed onto one axis, so vector similarity is known in advance."""

    dimension = DIMENSION
    model_name = "axis"

    def embed_query(self, text: str) -> np.ndarray:
        vector = np.zeros(DIMENSION, dtype=np.float32)
        vector[0] = 1.0
        return vector


def test_one_outlier_does_not_squash_its_list() -> None:
    text = [(1, 40.0), (2, 5.0), (3, 4.5), (4, 4.0), (5, 3.5), (6, 3.0)]
    # Min-max would press the runner-up (5.0) against 0, next to the outlier's 1.
    spread = normalise_distribution(text)
    assert 0.3 < spread[2] < 0.5 < spread[1]
    assert list(spread) == [1, 2, 3, 4, 5, 6]
    assert normalise_distribution([(7, 2.0), (8, 2.0)]) == {7: 1.0, 8: 1.0}
    assert normalise_distribution([]) == {}


def test_fusion_weights_and_missing_candidates() -> None:
    text = [(1, 40.0), (2, 6.0), (3, 5.9), (4, 1.0)]
    vector = [(3, 0.9), (4, 0.5), (5, 0.1)]
    only_text = convex(text, vector, text_weight=1.0, vector_weight=0.0)
    assert [i for i, _ in only_text][:4] == [1, 2, 3, 4] and dict(only_text)[5] == 0.0
    only_vector = convex(text, vector, text_weight=0.0, vector_weight=1.0)
    assert [i for i, _ in only_vector][:3] == [3, 4, 5]
    both = dict(convex(text, vector, text_weight=0.5, vector_weight=0.5))
    spread_t, spread_v = normalise_distribution(text), normalise_distribution(vector)
    assert both[3] == pytest.approx((spread_t[3] + spread_v[3]) / 2)
    assert both[5] == pytest.approx(spread_v[5] / 2)  # missing from full text: 0 there


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('ranking') / 'db.sqlite'}")
    upgrade(database.engine)
    with database.write() as tx:
        tenancy.ensure_defaults(tx)
        SqliteSearchStore(DIMENSION).ensure_schema(tx.connection())
    yield database
    database.dispose()


def make_index(db: Database, texts: list[str]) -> tuple[Scope, str, list[int]]:
    """An index of one file per text, one chunk each; chunk i's vector is i away from axis 0."""
    store = SqliteSearchStore(DIMENSION)
    with db.write() as tx:
        project = tenancy.create_project(tx, f"p-{uuid.uuid4().hex[:8]}")
        scope = Scope(organization_id=project.organization_id, project_id=project.id)
        source = directories.create_directory(tx, scope, name="texts")
        index_id = indexes.create_index(tx, scope, source_directory_id=source.id).id
        chunks = []
        for i, text in enumerate(texts):
            parsed = ParsedFile(
                id=f"dfl-{uuid.uuid4().hex}",
                index_id=index_id,
                source_file_id=uuid.uuid4().hex,
                file_name=f"{i}.txt",
                content_hash="0" * 64,
                status="parsed",
                user_metadata={"n": i},
            )
            tx.add(parsed)
            tx.flush()
            chunk = Chunk(
                index_id=index_id,
                parsed_file_id=parsed.id,
                chunk_index=0,
                text=text,
                start_char=0,
                end_char=len(text),
            )
            tx.add(chunk)
            chunks.append(chunk)
        tx.flush()
        entries = []
        for i, chunk in enumerate(chunks):
            vector = np.zeros(DIMENSION, dtype=np.float32)
            vector[0], vector[1] = 1.0, 0.1 * i
            entries.append(Entry(chunk.id, index_id, chunk.text, vector / np.linalg.norm(vector)))
        store.add(tx.connection(), entries)
        return scope, index_id, [c.id for c in chunks]


def test_stop_words_do_not_make_every_chunk_a_candidate(db: Database) -> None:
    store = SqliteSearchStore(DIMENSION)
    _, index_id, ids = make_index(
        db, ["the tide and the moon", "the bread of the baker", "a volcano of the north"]
    )
    with db.read() as tx:
        hits = store.text_search(tx.connection(), index_id, "the moon of the tides", 10)
        assert [i for i, _ in hits] == [ids[0]]  # "the" and "of" alone match nothing
        only_stop = store.text_search(tx.connection(), index_id, "of the", 10)
        assert {i for i, _ in only_stop} == set(ids)  # stop words only: kept


def test_retrieve_reads_only_the_rows_it_returns(db: Database) -> None:
    texts = [f"harbour lighthouse note {i}" for i in range(60)]
    scope, index_id, ids = make_index(db, texts)
    store, embedder = SqliteSearchStore(DIMENSION), AxisEmbedder()
    statements: list[tuple] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if "FROM chunks JOIN index_files" in statement:
            statements.append(tuple(parameters))

    event.listen(db.engine, "after_cursor_execute", record)
    try:
        with db.read() as tx:
            hits = retrieval.retrieve(
                tx, scope, store, embedder, index_id, "harbour",
                retrieval.SearchOptions(top_k=8),
            )  # fmt: skip
    finally:
        event.remove(db.engine, "after_cursor_execute", record)
    assert len(hits) == 8
    assert [h.chunk.id for h in hits] == ids[:8]  # same text score: the vector decides
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # 60 candidates, one batch of the 8 wanted read (the ids are bound as parameters).
    assert len(statements) == 1 and len(statements[0]) == 8

    with db.read() as tx:
        kept = retrieval.retrieve(
            tx, scope, store, embedder, index_id, "harbour",
            retrieval.SearchOptions(top_k=5, keep=lambda _c, f: f.user_metadata["n"] % 7 == 0),
        )  # fmt: skip
        assert [h.file.user_metadata["n"] for h in kept] == [0, 7, 14, 21, 28]
        cut = hits[3].score
        above = retrieval.retrieve(
            tx, scope, store, embedder, index_id, "harbour",
            retrieval.SearchOptions(top_k=50, score_threshold=cut),
        )  # fmt: skip
        assert [h.chunk.id for h in above] == ids[:4]
        shallow = retrieval.retrieve(
            tx, scope, store, embedder, index_id, "harbour",
            retrieval.SearchOptions(top_k=50, candidates=10),
        )  # fmt: skip
        assert len(shallow) == 10
