"""Every field of index create and of directory-file reads either does what it says or is
refused with a 422 naming it: never accepted and ignored. Through the official SDK, both
backends."""

from __future__ import annotations

from conftest import LiveServer, Tenant
from test_chat_turns import stream_turn
from test_sync_retrieval import NOTES, make_index, wait_for_sync

from indexchat.search.embeddings import LOCAL_DIMENSION

# No word of this is in any note (nor a stem of one): only vectors can find anything for it.
NO_SHARED_WORDS = "molten rock erupting mountains"


def stored_vectors(server: LiveServer, index_id: str) -> int:
    with server.runtime.db.read() as session:
        connection = session.connection()
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
