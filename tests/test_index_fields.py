"""Every field of index create and of directory-file reads either does what it says or is
refused with a 422 naming it: never accepted and ignored. Through the official SDK, both
backends."""

from __future__ import annotations

import httpx
import pytest
from factories import NOTES, LiveServer, Tenant, make_index, wait_for_sync
from llama_cloud import UnprocessableEntityError
from streams import stream_turn

from indexchat.search.embeddings import LOCAL_DIMENSION

# No word of this is in any note (nor a stem of one): only vectors can find anything for it.
NO_SHARED_WORDS = "molten rock erupting mountains"


def stored_vectors(server: LiveServer, index_id: str) -> int:
    with server.runtime.db.read() as tx:
        connection = tx.connection()
        if server.backend == "sqlite":
            sql = f"SELECT count(*) FROM chunk_vectors_{LOCAL_DIMENSION} WHERE index_id = ?"
        else:
            sql = f"SELECT count(embedding) FROM chunk_search_{LOCAL_DIMENSION} WHERE index_id = %s"
        return int(connection.exec_driver_sql(sql, (index_id,)).scalar() or 0)


def test_vector_target_disabled_syncs_no_vectors_and_searches_full_text_only(
    server: LiveServer, tenant: Tenant
) -> None:
    files = {name: text.encode() for name, text in NOTES.items()}
    default, _, _ = make_index(tenant, files)
    disabled, _, _ = make_index(tenant, files, vector_target="DISABLED")
    assert wait_for_sync(tenant.client, default)["chunks"] >= 3
    assert wait_for_sync(tenant.client, disabled)["chunks"] >= 3
    assert stored_vectors(server, default) >= 3
    assert stored_vectors(server, disabled) == 0

    def retrieve(index_id: str, query: str) -> list[str]:
        results = tenant.client.retrieval.retrieve(
            index_id=index_id, query=query, full_text_pipeline_weight=0, vector_pipeline_weight=1
        ).results
        return [r.content for r in results]

    assert "Basaltic" in retrieve(default, NO_SHARED_WORDS)[0]  # vectors answer it
    assert retrieve(disabled, NO_SHARED_WORDS) == []  # full text finds no word of it
    # The vector weight asked for is ignored: full text answers alone.
    found = retrieve(disabled, "sourdough yeast")
    assert len(found) == 1 and "Sourdough" in found[0]

    chat = tenant.client.chat.create(index_ids=[disabled])
    events = stream_turn(
        tenant.client, chat.session_id, index_ids=[disabled], prompt="sourdough wild yeast"
    )
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["result"] and result["result"][0]["file_name"] == "bread.md"
    assert "bread.md" in next(e for e in events if e["type"] == "text")["content"]


def refused(call: object) -> str:
    """The 422's detail as text, for naming the field and value."""
    with pytest.raises(UnprocessableEntityError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.body)


def test_unsupported_products_and_attachment_kinds_are_refused_by_name(tenant: Tenant) -> None:
    client = tenant.client
    docs = client.beta.directories.create(name="docs")
    detail = refused(
        lambda: client.indexes.create(
            source_directory_id=docs.id,
            products=[{"product_config_id": "cfg-7", "product_type": "extract"}],
        )
    )
    assert "products" in detail and "cfg-7" in detail and "extract" in detail
    detail = refused(
        lambda: client.indexes.create(source_directory_id=docs.id, store_attachments=["items"])
    )
    assert "store_attachments" in detail and "items" in detail
    assert list(client.indexes.list()) == []  # nothing was made, not even an output directory
    assert [d.id for d in client.beta.directories.list()] == [docs.id]
    made = client.indexes.create(
        source_directory_id=docs.id, products=[], store_attachments=["screenshots"]
    )
    assert [i.id for i in client.indexes.list()] == [made.id]


def test_directory_files_expand_to_a_download_url_and_refuse_other_fields(
    tenant: Tenant,
) -> None:
    files = tenant.client.beta.directories.files
    docs = tenant.client.beta.directories.create(name="docs")
    placed = files.upload(docs.id, upload_file=("a.txt", b"alpha bytes"))
    assert files.get(placed.id, directory_id=docs.id).download_url is None
    got = files.get(placed.id, directory_id=docs.id, expand=["download_url"])
    listed = list(files.list(docs.id, expand=["download_url"]))
    for entry in (got, listed[0]):
        assert entry.download_url is not None
        assert httpx.get(entry.download_url.url).content == b"alpha bytes"
    for call in (
        lambda: files.get(placed.id, directory_id=docs.id, expand=["parsed_text"]),
        lambda: list(files.list(docs.id, expand=["parsed_text"])),
    ):
        detail = refused(call)
        assert "expand" in detail and "parsed_text" in detail
