"""In-memory copies of indexes' vectors: the same answers as the database, never stale."""

from __future__ import annotations

import numpy as np
import pytest
from factories import LiveServer, Tenant, make_index, wait_for_sync

from indexchat.search.vector_cache import VectorCache


def unit_rows(count: int, dimension: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_search_matches_brute_force_and_reloads_on_a_new_version() -> None:
    cache = VectorCache()
    ids, matrix = np.arange(100, 300), unit_rows(200)
    loads = []

    def load() -> tuple[np.ndarray, np.ndarray]:
        loads.append(1)
        return ids, matrix

    query = unit_rows(1, seed=1)[0]
    found = cache.search("idx", "v1", load, query, 10)
    expected = np.argsort(-(matrix @ query))[:10]
    assert [i for i, _ in found] == [int(ids[j]) for j in expected]
    assert found[0][1] == pytest.approx(float(matrix[expected[0]] @ query), abs=1e-6)
    assert cache.search("idx", "v1", load, query, 500) is not None and len(loads) == 1
    assert len(cache.search("idx", "v1", load, query, 500) or []) == 200  # limit past the end
    ids, matrix = np.array([7]), unit_rows(1, seed=2)
    assert cache.search("idx", "v2", load, query, 10) == [
        (7, pytest.approx(float(matrix[0] @ query)))
    ]
    assert len(loads) == 2


def test_budget_evicts_least_recently_used_and_refuses_what_cannot_fit() -> None:
    matrix = unit_rows(100)  # 6,400 bytes of vectors + 800 of ids
    cache = VectorCache(budget_bytes=2 * 7_200)
    loads: list[str] = []

    def loader(key: str):  # noqa: ANN202
        return lambda: (loads.append(key), (np.arange(100), matrix))[1]

    query = matrix[0]
    for key in ("a", "b", "a", "c", "a", "b"):
        cache.search(key, 1, loader(key), query, 3)
    assert loads == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    tiny = VectorCache(budget_bytes=1_000)
    assert tiny.search("big", 1, lambda: (np.arange(100), matrix), query, 3) is None
    empty = VectorCache().search("none", 1, lambda: (np.zeros(0, int), np.zeros((0, 16))), query, 3)
    assert empty == []


def test_retrieval_never_answers_from_a_stale_copy(server: LiveServer, tenant: Tenant) -> None:
    client = tenant.client
    index_id, directory_id, placed = make_index(
        tenant,
        {
            "volcano.md": b"# Volcanoes\n\nBasaltic lava from shield volcanoes flows far.",
            "bread.md": b"# Baking\n\nSourdough bread rises with wild yeast.",
        },
    )
    wait_for_sync(client, index_id)

    def vector_top(query: str) -> str:
        hits = client.retrieval.retrieve(
            index_id=index_id,
            query=query,
            top_k=1,
            full_text_pipeline_weight=0,
            vector_pipeline_weight=1,
        ).results
        return hits[0].content

    assert "lava" in vector_top("molten rock erupting from a mountain")
    # Same file, new content, same number of chunks: the chunk may even get the same id back.
    client.beta.directories.files.delete(placed["volcano.md"], directory_id=directory_id)
    client.beta.directories.files.upload(
        directory_id,
        upload_file=("volcano.md", b"# Glaciers\n\nIce sheets carve valleys as they move."),
    )
    client.indexes.sync(index_id)
    wait_for_sync(client, index_id)
    assert "Ice sheets" in vector_top("molten rock erupting from a mountain ice valleys glacier")
    assert all(
        "lava" not in h.content
        for h in client.retrieval.retrieve(
            index_id=index_id,
            query="lava",
            top_k=5,
            full_text_pipeline_weight=0,
            vector_pipeline_weight=1,
        ).results
    )
