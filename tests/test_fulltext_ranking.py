"""Full-text ranking straight through the search stores: BM25's statistics, kept per index.

Runs on each backend; PostgreSQL's statistics tables, kept by triggers, have tests of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from factories import BACKENDS
from sqlalchemy import delete, text

from indexchat.domain import Scope
from indexchat.search.postgres import PostgresSearchStore
from indexchat.search.sqlite import SqliteSearchStore
from indexchat.search.sqlite import text_tables as sqlite_text_tables
from indexchat.search.store import Entry, SearchStore
from indexchat.services import directories, indexes, tenancy
from indexchat.storage.db import Database
from indexchat.storage.migrate import alembic_config, upgrade
from indexchat.storage.tables import Chunk, ParsedFile

DIMENSION = 3  # a table of its own, apart from the running server's
FILLER = "lorem ipsum dolor sit amet consectetur"


@pytest.fixture(scope="module", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, SearchStore]]:
    if request.param == "postgres":
        db = Database(request.getfixturevalue("postgres_url"))
        store: SearchStore = PostgresSearchStore(DIMENSION)
    else:
        db = Database(f"sqlite:///{tmp_path_factory.mktemp('fulltext') / 'db.sqlite'}")
        store = SqliteSearchStore(DIMENSION)
    prepare(db, store)
    yield db, store
    db.dispose()


def prepare(db: Database, store: SearchStore) -> None:
    upgrade(db.engine)
    with db.write() as tx:
        tenancy.ensure_defaults(tx)
        store.ensure_schema(tx.connection())


@pytest.fixture
def postgres(backend: tuple[Database, SearchStore]) -> tuple[Database, SearchStore]:
    if not isinstance(backend[1], PostgresSearchStore):
        pytest.skip("PostgreSQL's own BM25 statistics tables")
    return backend


def make_index(db: Database, store: SearchStore, texts: Sequence[str]) -> tuple[str, list[int]]:
    """A new index (in a new project) holding one chunk per text; (index id, chunk ids)."""
    with db.write() as tx:
        project = tenancy.create_project(tx, f"p-{uuid.uuid4().hex[:8]}")
        scope = Scope(organization_id=project.organization_id, project_id=project.id)
        source = directories.create_directory(tx, scope, name="texts")
        index_id = indexes.create_index(tx, scope, source_directory_id=source.id).id
    return index_id, add_chunks(db, store, index_id, texts)


def add_chunks(db: Database, store: SearchStore, index_id: str, texts: Sequence[str]) -> list[int]:
    with db.write() as tx:
        parsed = ParsedFile(
            id=f"dfl-{uuid.uuid4().hex}",
            index_id=index_id,
            source_file_id=uuid.uuid4().hex,
            file_name="texts.txt",
            content_hash="0" * 64,
            status="parsed",
        )
        tx.add(parsed)
        tx.flush()
        rows = [
            Chunk(
                index_id=index_id,
                parsed_file_id=parsed.id,
                chunk_index=i,
                text=t,
                start_char=0,
                end_char=len(t),
            )
            for i, t in enumerate(texts)
        ]
        tx.add_all(rows)
        tx.flush()
        vector = np.ones(DIMENSION, dtype=np.float32)
        store.add(tx.connection(), [Entry(r.id, index_id, r.text, vector) for r in rows])
        return [r.id for r in rows]


def remove_chunks(
    db: Database, store: SearchStore, index_id: str, chunk_ids: Sequence[int]
) -> None:
    """As a re-sync drops a file's chunks: the store's entries first, then the chunks."""
    with db.write() as tx:
        store.remove(tx.connection(), index_id, chunk_ids)
        tx.execute(delete(Chunk).where(Chunk.id.in_(chunk_ids)))


def search(db: Database, store: SearchStore, index_id: str, query: str) -> list[tuple[int, float]]:
    with db.read() as tx:
        return store.text_search(tx.connection(), index_id, query, 50)


def test_a_rare_word_outweighs_a_common_one(backend) -> None:
    db, store = backend
    # "harbour" is in all chunks but one; "lighthouse" in that one. The chunk that repeats the
    # common word three times must still lose to the one with the rare word once.
    index_id, ids = make_index(
        db,
        store,
        [
            f"harbour harbour harbour {FILLER}",
            f"lighthouse {FILLER} extra",
            *[f"harbour {FILLER} more words {i}" for i in range(8)],
        ],
    )
    hits = search(db, store, index_id, "harbour lighthouse")
    assert hits[0][0] == ids[1]
    assert {i for i, _ in hits} == set(ids)  # any query word will do
    assert hits[0][1] > hits[1][1] > 0


def test_a_shorter_chunk_ranks_above_a_longer_one_with_the_same_count(backend) -> None:
    db, store = backend
    short = f"quasar {FILLER}"
    long = f"quasar {FILLER} " + " ".join(f"word{i}" for i in range(40))
    index_id, ids = make_index(db, store, [long, short, *[FILLER] * 4])
    hits = search(db, store, index_id, "quasar")
    assert [i for i, _ in hits] == [ids[1], ids[0]]
    assert hits[0][1] > hits[1][1]


def test_removing_chunks_updates_the_statistics(backend) -> None:
    db, store = backend
    texts = [
        f"pulsar one {FILLER}",
        f"pulsar two {FILLER}",
        f"pulsar three {FILLER}",
        f"nebula four {FILLER}",
        *[f"comet {FILLER} {i}" for i in range(8)],
    ]
    index_id, ids = make_index(db, store, texts)
    before = dict(search(db, store, index_id, "pulsar"))
    assert set(before) == set(ids[:3])

    remove_chunks(db, store, index_id, ids[:2])  # "pulsar" is now in one chunk of ten: rarer
    after = dict(search(db, store, index_id, "pulsar"))
    assert set(after) == {ids[2]}
    assert after[ids[2]] > before[ids[2]] * 1.2

    remove_chunks(db, store, index_id, [ids[3]])  # the only "nebula" chunk
    assert search(db, store, index_id, "nebula") == []
    assert [i for i, _ in search(db, store, index_id, "nebula pulsar")] == [ids[2]]


def test_results_stay_within_their_index(backend) -> None:
    db, store = backend
    first, first_ids = make_index(db, store, [f"glacier {FILLER}"] * 3)
    second, second_ids = make_index(db, store, [f"glacier moraine {FILLER}"])
    assert {i for i, _ in search(db, store, first, "glacier moraine")} == set(first_ids)
    assert [i for i, _ in search(db, store, second, "glacier moraine")] == second_ids


def test_statistics_are_kept_per_index(backend) -> None:
    db, store = backend
    # Across both indexes "gamma" is common and "delta" rare; within the second it is the other
    # way round, so only the second index's own statistics rank its "gamma" chunk first.
    make_index(db, store, [f"gamma {FILLER} {i}" for i in range(20)])
    index_id, ids = make_index(
        db,
        store,
        [f"delta delta {FILLER}", *[f"delta {FILLER} {i}" for i in range(4)], f"gamma {FILLER}"],
    )
    hits = search(db, store, index_id, "gamma delta")
    assert hits[0][0] == ids[-1]
    assert {i for i, _ in hits} == set(ids)


def test_counts_match_the_entries_after_every_way_of_removing(postgres) -> None:
    db, store = postgres
    assert isinstance(store, PostgresSearchStore)
    a, a_ids = make_index(db, store, [f"alpha beta {FILLER}", "alpha alpha gamma", "beta"])
    b, b_ids = make_index(db, store, [f"alpha {FILLER}", "delta delta delta"])
    more = add_chunks(db, store, a, ["gamma epsilon", "alpha"])
    assert_counts_exact(db, store)

    remove_chunks(db, store, a, [a_ids[0], more[1]])  # through the store
    assert_counts_exact(db, store)
    with db.write() as tx:  # a cascade from the chunks, bypassing the store
        tx.execute(delete(Chunk).where(Chunk.id == b_ids[1]))
    assert_counts_exact(db, store)
    assert search(db, store, b, "delta") == []

    with db.write() as tx:  # a cascade from the index itself
        tx.execute(text("DELETE FROM indexes WHERE id = :id"), {"id": b})
    assert_counts_exact(db, store)
    with db.read() as tx:
        t = f"chunk_search_{DIMENSION}"
        left = tx.execute(
            text(f"SELECT count(*) FROM {t}_stats WHERE index_id = :id"), {"id": b}
        ).scalar()
        assert left == 0
    assert search(db, store, a, "alpha")  # the other index is untouched


def test_counts_are_built_for_entries_made_before_them(postgres) -> None:
    db, store = postgres
    index_id, ids = make_index(db, store, ["basalt lava", "basalt", f"lava {FILLER}"])
    expected = search(db, store, index_id, "basalt lava")
    t = f"chunk_search_{DIMENSION}"
    with db.write() as tx:  # as a database from before BM25 ranking was
        for trigger in ("added", "removed", "unchanged"):
            tx.execute(text(f"DROP TRIGGER {t}_{trigger} ON {t}"))
        tx.execute(text(f"DROP TABLE {t}_postings, {t}_stats"))
    with db.write() as tx:
        store.ensure_schema(tx.connection())
    assert_counts_exact(db, store)
    assert search(db, store, index_id, "basalt lava") == expected
    assert [i for i, _ in expected][:1] == [ids[0]]


def test_entries_cannot_be_updated_behind_the_counts(postgres) -> None:
    db, store = postgres
    index_id, ids = make_index(db, store, ["granite"])
    with pytest.raises(Exception, match="not updated"), db.write() as tx:
        tx.execute(
            text(
                f"UPDATE chunk_search_{DIMENSION} SET terms = to_tsvector('x') WHERE chunk_id = :i"
            ),
            {"i": ids[0]},
        )
    assert [i for i, _ in search(db, store, index_id, "granite")] == ids


def assert_counts_exact(db: Database, store: SearchStore) -> None:
    """The kept statistics equal ones computed afresh from the entries."""
    t = f"chunk_search_{DIMENSION}"
    with db.read() as tx:
        kept = tx.execute(
            text(f"SELECT index_id, chunks, total_length FROM {t}_stats WHERE chunks > 0")
        ).all()
        fresh = tx.execute(
            text(
                f"SELECT index_id, count(*), sum(chunk_search_length(terms)) FROM {t} "
                "GROUP BY index_id"
            )
        ).all()
        assert sorted(map(tuple, kept)) == sorted(map(tuple, fresh))
        kept = tx.execute(
            text(
                f"SELECT s.index_id, p.lexeme, p.chunk_id, p.tf, p.length "
                f"FROM {t}_postings p JOIN {t}_stats s USING (key)"
            )
        ).all()
        fresh = tx.execute(
            text(
                "SELECT c.index_id, u.lexeme, c.chunk_id, array_length(u.positions, 1), "
                f"chunk_search_length(c.terms) FROM {t} c, unnest(c.terms) u"
            )
        ).all()
        assert sorted(map(tuple, kept)) == sorted(map(tuple, fresh))
        orphans = tx.execute(
            text(
                f"SELECT count(*) FROM {t}_postings p "
                f"WHERE NOT EXISTS (SELECT 1 FROM {t}_stats s WHERE s.key = p.key)"
            )
        ).scalar()
        assert orphans == 0


def test_sqlite_databases_with_one_shared_full_text_table_are_split_per_index(
    tmp_path: Path,
) -> None:
    """Revision 0006 moves every index's entries from the old shared FTS5 table into its own."""
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = SqliteSearchStore(DIMENSION)
    prepare(db, store)
    first, first_ids = make_index(db, store, [f"gamma {FILLER} {i}" for i in range(6)])
    second, second_ids = make_index(db, store, [f"delta gamma {FILLER}", f"delta {FILLER}"])
    want = {i: search(db, store, i, "gamma delta") for i in (first, second)}

    def migrate(revision: str) -> None:
        with db.engine.connect() as connection:
            step = command.downgrade if revision != "head" else command.upgrade
            step(alembic_config(connection), revision)
            connection.commit()

    migrate("0005")  # the layout before: one table, filled from the chunks
    with db.read() as tx:
        connection = tx.connection()
        assert sqlite_text_tables(connection) == []
        shared = connection.exec_driver_sql(
            "SELECT rowid FROM chunk_text WHERE chunk_text MATCH 'gamma'"
        ).scalars()
        assert set(shared) == set(first_ids) | {second_ids[0]}
        assert search(db, store, first, "gamma") == []  # per-index tables are gone
    migrate("head")
    with db.read() as tx:
        connection = tx.connection()
        assert not connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'chunk_text'"
        ).first()
        assert len(sqlite_text_tables(connection)) == 2
    assert {i: search(db, store, i, "gamma delta") for i in (first, second)} == want
    assert [i for i, _ in want[second]] == second_ids
    db.dispose()
