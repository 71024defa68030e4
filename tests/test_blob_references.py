"""The blob store is shared by every project and keeps one copy of equal bytes: deleting a file
must keep bytes any other row names (another tenant's page screenshot, parsed text), and bytes
that did go missing answer a clear error until a sync restores them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from deployments import database_for
from factories import (
    BACKENDS,
    LiveServer,
    Tenant,
    documented_statuses,
    live_server,
    make_tenant,
    parsed_ids,
    synced_pdf_and_note,
    wait_for_sync,
)
from llama_cloud import ConflictError
from sqlalchemy import select

from indexchat.agent.tools import READ_FILE, ToolError
from indexchat.config import Settings
from indexchat.services.backup import blob_path
from indexchat.services.chat_tools import IndexTools
from indexchat.storage.tables import Attachment, ParsedFile, StoredFile


@pytest.fixture(scope="module", params=BACKENDS)
def eager(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[LiveServer]:
    """A server that removes unreferenced bytes at once (no grace period)."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"eager-{backend}")
    (data_dir / "models").symlink_to(model_cache)
    url = database_for(request, backend)
    settings = Settings(data_dir=data_dir, database_url=url, blob_grace_seconds=0)
    with live_server(settings, backend) as running:
        yield running


def screenshot_url(tenant: Tenant, source_id: str) -> str:
    name = next(iter(tenant.client.beta.attachments.list(source_id=source_id))).name
    return tenant.client.beta.attachments.get(name, source_id=source_id).url


def test_deleting_a_copy_of_another_tenants_screenshot_or_text_keeps_theirs(
    eager: LiveServer,
) -> None:
    owner, other = make_tenant(eager), make_tenant(eager)
    index_id = synced_pdf_and_note(owner)
    ids = parsed_ids(owner, index_id)
    url = screenshot_url(owner, ids["fjords.pdf"])
    png = httpx.get(url).content
    assert png.startswith(b"\x89PNG")
    text = owner.client.retrieval.read(index_id=index_id, file_id=ids["bread.md"]).content

    for name, data in (("page_1.png", png), ("bread.md.md", text.encode())):
        copy = other.client.files.create(file=(name, data), purpose="user_data")
        other.client.files.delete(copy.id)

    again = httpx.get(url)
    assert again.status_code == 200 and again.content == png
    assert owner.client.retrieval.read(index_id=index_id, file_id=ids["bread.md"]).content == text


def test_deleting_the_last_reference_removes_the_bytes(eager: LiveServer) -> None:
    tenant = make_tenant(eager)
    made = tenant.client.files.create(file=("solo.txt", b"only here"), purpose="user_data")
    with eager.runtime.db.read() as tx:
        digest = tx.get_one(StoredFile, made.id).content_hash
    assert eager.runtime.blobs.exists(digest)
    tenant.client.files.delete(made.id)
    assert not eager.runtime.blobs.exists(digest)


def _forget(server: LiveServer, digest: str) -> None:
    blob_path(server.runtime.settings.data_dir / "blobs", digest).unlink()


def test_missing_parsed_output_is_a_clear_error_until_a_sync_restores_it(
    eager: LiveServer,
) -> None:
    tenant = make_tenant(eager)
    index_id = synced_pdf_and_note(tenant)
    ids = parsed_ids(tenant, index_id)
    text = tenant.client.retrieval.read(index_id=index_id, file_id=ids["bread.md"]).content
    with eager.runtime.db.read() as tx:
        parsed = tx.get_one(ParsedFile, ids["bread.md"])
        text_hash = parsed.text_hash
        assert text_hash != parsed.content_hash
        screenshot = tx.scalars(
            select(Attachment.content_hash).where(Attachment.source_id == ids["fjords.pdf"])
        ).first()
    assert text_hash and screenshot
    parsed_file = next(f for f in tenant.client.files.list() if f.name == "bread.md.md")
    parsed_url = tenant.client.files.content(parsed_file.id).url
    shot_url = screenshot_url(tenant, ids["fjords.pdf"])
    _forget(eager, text_hash)
    _forget(eager, screenshot)

    with pytest.raises(ConflictError) as caught:
        tenant.client.retrieval.read(index_id=index_id, file_id=ids["bread.md"])
    assert "sync" in json.dumps(caught.value.body)
    with pytest.raises(ConflictError):
        tenant.client.retrieval.grep(index_id=index_id, file_id=ids["bread.md"], pattern="yeast")
    for url in (parsed_url, shot_url):
        answer = httpx.get(url)
        assert answer.status_code == 409 and "missing" in answer.json()["detail"]
    for method, path in (
        ("POST", "/api/v1/retrieval/files/read"),
        ("POST", "/api/v1/retrieval/files/grep"),
        ("GET", "/api/v1/beta/files/{file_id}/download"),
        ("GET", "/api/v1/beta/attachment-downloads/{attachment_id}"),
        ("GET", "/s/{token}/attachments/{source_id}/{attachment_name}"),
    ):
        assert 409 in documented_statuses(eager, method, path), path
    tools = IndexTools(
        db=eager.runtime.db,
        store=eager.runtime.search,
        embedder=eager.runtime.embedder,
        blobs=eager.runtime.blobs,
        scope=tenant.scope,
        index_ids=[index_id],
    )
    with pytest.raises(ToolError, match="sync"):
        anyio.run(tools.call, READ_FILE, {"file_id": ids["bread.md"]})

    tenant.client.indexes.sync(index_id)
    wait_for_sync(tenant.client, index_id)
    ids = parsed_ids(tenant, index_id)
    assert tenant.client.retrieval.read(index_id=index_id, file_id=ids["bread.md"]).content == text
    assert httpx.get(screenshot_url(tenant, ids["fjords.pdf"])).content.startswith(b"\x89PNG")
    parsed_file = next(f for f in tenant.client.files.list() if f.name == "bread.md.md")
    restored = httpx.get(tenant.client.files.content(parsed_file.id).url)
    assert restored.status_code == 200 and restored.content == text.encode()
