"""Index sync and retrieval end to end through the official SDK, on a real search store."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from factories import (
    NOTES,
    LiveServer,
    Tenant,
    make_index,
    make_tenant,
    wait_for_sync,
)
from llama_cloud import BadRequestError, ConflictError, NotFoundError

from indexchat.services.retrieval import grep


@pytest.fixture
def notes_index(tenant: Tenant) -> tuple[str, str, dict]:
    index_id, directory_id, placed = make_index(tenant, {k: v.encode() for k, v in NOTES.items()})
    state = wait_for_sync(tenant.client, index_id)
    assert state["files_parsed"] == 3 and state["files_failed"] == 0 and state["chunks"] >= 3
    return index_id, directory_id, placed


def test_retrieve_ranks_the_relevant_chunk_first(tenant: Tenant, notes_index) -> None:
    index_id, _, _ = notes_index
    for query, expected in (
        ("lava flows from volcanoes", "Basaltic"),
        ("wild yeast sourdough", "Sourdough"),
        ("moon and high water", "Tides"),
    ):
        results = tenant.client.retrieval.retrieve(index_id=index_id, query=query, top_k=2).results
        assert expected in results[0].content, (query, [r.content for r in results])
        assert results[0].score >= results[-1].score
        fields = results[0].static_fields
        assert fields.parsed_directory_file_id.startswith("dfl-") and fields.page_range_start == 1
        assert fields.chunk_end_char > fields.chunk_start_char


def test_retrieve_weights_filters_and_threshold(tenant: Tenant, notes_index) -> None:
    index_id, _, _ = notes_index
    retrieve = tenant.client.retrieval.retrieve
    text_only = retrieve(
        index_id=index_id, query="sourdough", full_text_pipeline_weight=1, vector_pipeline_weight=0
    ).results
    assert len(text_only) == 1 and "Sourdough" in text_only[0].content  # only one has the word
    filtered = retrieve(
        index_id=index_id,
        query="nature",
        top_k=5,
        custom_filters={"topic": {"operator": "eq", "value": "tides"}},
    ).results
    assert [r.metadata["topic"] for r in filtered] == ["tides"]
    excluded = retrieve(
        index_id=index_id,
        query="nature",
        top_k=5,
        custom_filters={"topic": {"operator": "nin", "value": ["tides", "bread"]}},
    ).results
    assert {r.metadata["topic"] for r in excluded} == {"volcano"}
    file_id = filtered[0].static_fields.parsed_directory_file_id
    by_file = retrieve(
        index_id=index_id,
        query="anything",
        top_k=5,
        static_filters={"parsed_directory_file_id": {"operator": "eq", "value": file_id}},
    ).results
    assert {r.static_fields.parsed_directory_file_id for r in by_file} == {file_id}
    assert retrieve(index_id=index_id, query="volcano", score_threshold=1.01).results == []
    assert len(retrieve(index_id=index_id, query="the", top_k=10_000).results) <= 500


def test_find_grep_read(tenant: Tenant, notes_index) -> None:
    index_id, _, _ = notes_index
    found = list(tenant.client.retrieval.find(index_id=index_id, file_name_contains="BREAD"))
    assert [f.file_name for f in found] == ["bread.md"]
    assert [
        f.file_name for f in tenant.client.retrieval.find(index_id=index_id, page_size=1)
    ] == sorted(NOTES)
    file_id = found[0].file_id
    matches = list(
        tenant.client.retrieval.grep(
            index_id=index_id, file_id=file_id, pattern=r"\b\w+ yeast", context_chars=5
        )
    )
    assert [m.content for m in matches] == ["with wild yeast and "]
    text = tenant.client.retrieval.read(index_id=index_id, file_id=file_id).content
    assert text[matches[0].start_char : matches[0].end_char] == "wild yeast"
    assert (
        tenant.client.retrieval.read(
            index_id=index_id, file_id=file_id, offset=2, max_length=6
        ).content
        == text[2:8]
    )


def test_grep_steps_over_empty_matches_and_pages_on() -> None:
    """A pattern that can match nothing matches at every offset, once each, and the next page
    starts where the last one stopped."""
    matches, after = grep("ab", "x*", context_chars=0, start_after=0, limit=2)
    assert [(m.start_char, m.end_char) for m in matches] == [(0, 0), (1, 1)]
    assert after == 2
    rest, after = grep("ab", "x*", context_chars=0, start_after=2, limit=2)
    assert [(m.start_char, m.end_char) for m in rest] == [(2, 2)] and after is None


def test_catastrophic_regex_is_400_and_server_stays_up(server: LiveServer, tenant: Tenant) -> None:
    index_id, _, _ = make_index(tenant, {"a.txt": ("a" * 5000 + "!").encode()})
    wait_for_sync(tenant.client, index_id)
    file_id = next(iter(tenant.client.retrieval.find(index_id=index_id))).file_id
    started = time.monotonic()
    with pytest.raises(BadRequestError) as caught:
        tenant.client.retrieval.grep(index_id=index_id, file_id=file_id, pattern=r"^(a|aa)+$")
    assert time.monotonic() - started < 10
    assert "longer than" in caught.value.body["detail"]
    with pytest.raises(BadRequestError):
        tenant.client.retrieval.grep(index_id=index_id, file_id=file_id, pattern="(unclosed")
    assert httpx.get(f"{server.base_url}/health").status_code == 200


def test_resync_touches_only_changed_files(tenant: Tenant, notes_index) -> None:
    index_id, directory_id, placed = notes_index
    client = tenant.client
    before = {f.file_name: f.file_id for f in client.retrieval.find(index_id=index_id)}
    client.beta.directories.files.delete(placed["tides.txt"], directory_id=directory_id)
    client.beta.directories.files.upload(
        directory_id, upload_file=("comets.md", b"Comets have icy tails.")
    )
    client.indexes.sync(index_id)
    state = wait_for_sync(client, index_id)
    after = {f.file_name: f.file_id for f in client.retrieval.find(index_id=index_id)}
    assert set(after) == {"volcano.md", "bread.md", "comets.md"}
    assert after["volcano.md"] == before["volcano.md"] and after["bread.md"] == before["bread.md"]
    assert state["files_total"] == 3
    hits = client.retrieval.retrieve(
        index_id=index_id, query="moon tides high water", top_k=5
    ).results
    assert all("Tides" not in h.content for h in hits)


def test_cancel_without_a_running_sync_is_409_without_retries(tenant: Tenant, notes_index) -> None:
    index_id, _, _ = notes_index
    started = time.monotonic()
    with pytest.raises(ConflictError) as caught:
        tenant.client.indexes.cancel_sync(index_id)
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert time.monotonic() - started < 2


def test_real_documents_parse_or_fail_with_reason(tenant: Tenant, docs: Path) -> None:
    names = [
        "tracemonkey.pdf",
        "invalid.pdf",
        "libreoffice-writer-password.pdf",
        "word_sample.docx",
        "loremipsum-flat.pdf",
    ]
    index_id, directory_id, placed = make_index(
        tenant, {n: (docs / n).read_bytes() for n in names}, store_attachments=["screenshots"]
    )
    state = wait_for_sync(tenant.client, index_id)
    failed = {f["file_name"]: f["error"] for f in state["failed_files"]}
    assert set(failed) == {"invalid.pdf", "libreoffice-writer-password.pdf", "loremipsum-flat.pdf"}
    assert "encrypted" in failed["libreoffice-writer-password.pdf"]
    assert state["files_parsed"] == 2
    hits = tenant.client.retrieval.retrieve(
        index_id=index_id, query="trace trees tracing JIT", top_k=3
    ).results
    assert hits and hits[0].static_fields.attachments
    attachment = hits[0].static_fields.attachments[0]
    url = tenant.client.beta.attachments.get(
        attachment.attachment_name, source_id=attachment.source_id
    )
    png = httpx.get(url.url)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    listed = [a.name for a in tenant.client.beta.attachments.list(source_id=attachment.source_id)]
    # One screenshot per page of tracemonkey.pdf, in page order (page_2 before page_10).
    assert listed == [f"screenshots/page_{page}.png" for page in range(1, 15)]
    # The directory file and the uploaded file it holds name the same parsed file.
    directory_file = tenant.client.beta.directories.files.get(
        placed["tracemonkey.pdf"], directory_id=directory_id
    )
    for source_id in (directory_file.id, directory_file.file_id):
        assert [a.name for a in tenant.client.beta.attachments.list(source_id=source_id)] == listed
        assert tenant.client.beta.attachments.get(listed[9], source_id=source_id).url


def test_no_retrieval_call_reaches_another_project(
    server: LiveServer, tenant: Tenant, notes_index
) -> None:
    index_id, _, _ = notes_index
    file_id = next(iter(tenant.client.retrieval.find(index_id=index_id))).file_id
    other = make_tenant(server).client
    for call in (
        lambda: other.retrieval.retrieve(index_id=index_id, query="volcano"),
        lambda: other.retrieval.find(index_id=index_id),
        lambda: other.retrieval.grep(index_id=index_id, file_id=file_id, pattern="a"),
        lambda: other.retrieval.read(index_id=index_id, file_id=file_id),
        lambda: other.indexes.sync(index_id),
        lambda: other.indexes.cancel_sync(index_id),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert list(other.beta.attachments.list(source_id=file_id)) == []  # scoped: nothing shows
