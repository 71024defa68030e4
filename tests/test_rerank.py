"""Reranking through a rerank server: a scripted one speaking the common ``/rerank`` protocol
over real HTTP reorders the hybrid candidates of the retrieval API and of the chat agent's
``retrieve`` tool; its faults fall back to the hybrid order with a warning."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from factories import LiveServer, Tenant, live_server, make_index, synced_index, wait_for_sync
from fake_rerank import FakeReranker, overlap_score

from indexchat.config import Settings

CANDIDATES = 4
RERANK_KEY = "rk-test"
QUERY = "is it yeast"
# Hybrid search puts the note about yeast first (full text drops "is" and "it" as stop words);
# the rerank server counts every word of the query, so the saying that repeats "is it" wins.
NOTES = {
    "saying.md": "What is it? It is what it is.",
    "yeast.md": "Yeast ferments sugar into carbon dioxide and alcohol.",
    "chatter.md": "What does the cat do? What the dog does, I do not know.",
    "oven.md": "A bread oven bakes loaves once the yeast has risen.",
    "crumbs.md": "Bread crumbs coat fish before frying.",
    "tides.md": "Tides follow the moon: two high waters a day on most coasts.",
    "owls.md": "Owls hunt at night and hear prey under the snow.",
    "glass.md": "Soda-lime glass is sand, soda ash and limestone melted together.",
    "bakery.md": "The bakery sells bread, cakes and pastries every morning.",
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeReranker]:
    with FakeReranker(api_key=RERANK_KEY) as reranker:
        yield reranker


@pytest.fixture(autouse=True)
def fresh_script(fake: FakeReranker) -> None:
    fake.reset()


@pytest.fixture(scope="module")
def rerank_server(server: LiveServer, fake: FakeReranker) -> Iterator[LiveServer]:
    """A second server of the same deployment (data dir and database), with a rerank server."""
    base = server.runtime.settings
    settings = Settings(
        data_dir=base.data_dir,
        database_url=base.database_url,
        rerank_url=fake.url,
        rerank_model="fake-rerank",
        rerank_api_key=RERANK_KEY,
        rerank_candidates=CANDIDATES,
        rerank_timeout_seconds=1.0,
    )
    with live_server(settings, server.backend) as running:
        yield running


@pytest.fixture(scope="module")
def notes(rerank_server: LiveServer) -> tuple[Tenant, str]:
    return synced_index(rerank_server, NOTES)


def contents(results: list) -> list[str]:
    return [r.content for r in results]


def test_rerank_server_orders_the_results(notes: tuple[Tenant, str], fake: FakeReranker) -> None:
    tenant, index_id = notes
    retrieve = tenant.client.retrieval.retrieve
    hybrid = retrieve(index_id=index_id, query=QUERY, top_k=3, rerank={"enabled": False}).results
    assert fake.requests == []  # rerank.enabled: false never calls the server
    assert all(r.rerank_score is None for r in hybrid)
    assert "ferments" in hybrid[0].content

    reranked = retrieve(index_id=index_id, query=QUERY, top_k=3).results
    (sent,) = fake.requests
    assert sent["model"] == "fake-rerank" and sent["query"] == QUERY and sent["top_n"] == 3
    # The best CANDIDATES hybrid hits went to the server, in the hybrid order.
    hybrid_deeper = retrieve(
        index_id=index_id, query=QUERY, top_k=CANDIDATES, rerank={"enabled": False}
    )
    assert sent["documents"] == contents(hybrid_deeper.results)
    expected = sorted(sent["documents"], key=lambda d: -overlap_score(QUERY, d))[:3]
    assert contents(reranked) == expected
    assert "What is it?" in reranked[0].content and contents(reranked) != contents(hybrid)
    scores = [r.rerank_score for r in reranked]
    assert scores == [pytest.approx(overlap_score(QUERY, d)) for d in expected]
    assert scores == sorted(scores, reverse=True)
    # score stays the hybrid score of the same chunk.
    hybrid_scores = {r.content: r.score for r in hybrid_deeper.results}
    assert [r.score for r in reranked] == [hybrid_scores[c] for c in contents(reranked)]


def test_top_n_and_the_candidate_depth(notes: tuple[Tenant, str], fake: FakeReranker) -> None:
    tenant, index_id = notes
    retrieve = tenant.client.retrieval.retrieve
    cut = retrieve(index_id=index_id, query=QUERY, top_k=5, rerank={"top_n": 2}).results
    assert len(cut) == 2 and all(r.rerank_score is not None for r in cut)
    assert fake.requests[-1]["top_n"] == 2 and len(fake.requests[-1]["documents"]) == CANDIDATES
    # top_k above the configured depth: every hit returned was reranked.
    deep = retrieve(index_id=index_id, query=QUERY, top_k=6).results
    assert len(fake.requests[-1]["documents"]) == 6
    assert len(deep) == 6 and all(r.rerank_score is not None for r in deep)
    assert [r.rerank_score for r in deep] == sorted((r.rerank_score for r in deep), reverse=True)


@pytest.mark.parametrize("fault", ["http_500", "hang", "garbage", "bad_index"])
def test_a_rerank_fault_keeps_the_hybrid_order(
    notes: tuple[Tenant, str], fake: FakeReranker, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    tenant, index_id = notes
    retrieve = tenant.client.retrieval.retrieve
    hybrid = retrieve(index_id=index_id, query=QUERY, top_k=3, rerank={"enabled": False}).results
    fake.script(fault)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="indexchat.retrieval"):
        degraded = retrieve(index_id=index_id, query=QUERY, top_k=3).results
    assert len(fake.requests) == 1
    assert contents(degraded) == contents(hybrid)
    assert all(r.rerank_score is None for r in degraded)
    warnings = [r.getMessage() for r in caplog.records if r.name == "indexchat.retrieval"]
    assert len(warnings) == 1 and "hybrid order" in warnings[0], warnings


def test_the_chat_retrieve_tool_is_reranked(notes: tuple[Tenant, str], fake: FakeReranker) -> None:
    tenant, index_id = notes
    session = tenant.client.chat.create(index_ids=[index_id])
    with tenant.client.chat.with_streaming_response.stream(
        session.session_id, index_ids=[index_id], prompt=QUERY
    ) as response:
        response.read()
    events = tenant.client.chat.retrieve(session.session_id).events
    (result,) = [e for e in events if e.type == "tool_result" and e.name == "retrieve"]
    hits = result.result
    (sent,) = fake.requests
    assert sent["query"] == QUERY
    expected = sorted(sent["documents"], key=lambda d: -overlap_score(QUERY, d))
    assert [h["content"] for h in hits] == expected[: len(hits)]
    assert "What is it?" in hits[0]["content"]
    scores = [h["rerank_score"] for h in hits]
    assert None not in scores and scores == sorted(scores, reverse=True)


def test_without_a_rerank_server_rerank_score_stays_null(tenant: Tenant) -> None:
    index_id, _, _ = make_index(tenant, {"oven.md": NOTES["oven.md"].encode()})
    wait_for_sync(tenant.client, index_id)
    results = tenant.client.retrieval.retrieve(index_id=index_id, query=QUERY).results
    assert len(results) == 1 and results[0].rerank_score is None
