"""Files, directories, directory files and indexes through the official SDK (contract §4-§6)."""

from __future__ import annotations

import httpx
import pytest
from factories import LiveServer, Tenant, count_sessions, make_tenant
from llama_cloud import BadRequestError, ConflictError, NotFoundError, UnprocessableEntityError

from indexchat.services.files import clean_file_name

PDF_BYTES = b"%PDF-1.4\n% a tiny test file\n"


def test_file_upload_get_list_content_and_delete(server: LiveServer, tenant: Tenant) -> None:
    created = tenant.client.files.create(
        file=("report.txt", b"hello world", "text/plain"),
        purpose="user_data",
        external_file_id="ext-1",
    )
    assert created.name == "report.txt" and created.file_type == "txt"
    assert created.project_id == tenant.project_id and created.external_file_id == "ext-1"

    assert tenant.client.files.retrieve(created.id).name == "report.txt"
    assert [f.id for f in tenant.client.files.list()] == [created.id]
    assert [f.id for f in tenant.client.files.list(external_file_id="ext-1")] == [created.id]
    assert list(tenant.client.files.list(file_name="other.txt")) == []

    url = tenant.client.files.content(created.id)
    downloaded = httpx.get(url.url)  # signed: no API key needed
    assert downloaded.status_code == 200 and downloaded.content == b"hello world"
    assert httpx.get(url.url.replace("signature=", "signature=0")).status_code == 403

    tenant.client.files.delete(created.id)
    with pytest.raises(NotFoundError):
        tenant.client.files.retrieve(created.id)


def test_identical_bytes_are_stored_once(server: LiveServer, tenant: Tenant) -> None:
    first = tenant.client.files.create(file=("a.txt", b"same bytes"), purpose="user_data")
    second = tenant.client.files.create(file=("b.txt", b"same bytes"), purpose="user_data")
    assert first.id != second.id
    blobs = list((server.runtime.settings.data_dir / "blobs").rglob("*"))
    digests = [p.name for p in blobs if p.is_file()]
    assert len(digests) == len(set(digests))


def test_file_list_orders_and_pages(tenant: Tenant) -> None:
    names = ["b.txt", "c.txt", "a.txt"]
    made = [tenant.client.files.create(file=(n, n.encode()), purpose="user_data") for n in names]
    by_name = [f.name for f in tenant.client.files.list(order_by="name", page_size=1)]
    assert by_name == sorted(names)
    newest_first = [f.id for f in tenant.client.files.list(order_by="created_at", page_size=2)]
    assert newest_first == [f.id for f in reversed(made)]
    with pytest.raises(UnprocessableEntityError):
        tenant.client.files.list(order_by="size desc")


@pytest.mark.filterwarnings("ignore:Use the GET /files endpoint instead:DeprecationWarning")
def test_file_query_filters_orders_and_pages(server: LiveServer, tenant: Tenant) -> None:
    names = ["b.txt", "c.txt", "a.txt"]
    made = {n: tenant.client.files.create(file=(n, n.encode()), purpose="user_data") for n in names}
    query = tenant.client.files.query  # deprecated in the SDK, still served

    def ids(page: object) -> list[str]:
        return [f.id for f in page.items]  # type: ignore[attr-defined]

    first = query(order_by="name", page_size=2)
    assert [f.name for f in first.items] == ["a.txt", "b.txt"] and first.total_size is None
    rest = query(order_by="name", page_size=2, page_token=first.next_page_token)
    assert [f.name for f in rest.items] == ["c.txt"] and rest.next_page_token is None
    assert ids(query()) == [made[n].id for n in reversed(names)]  # newest first
    wanted = [made["a.txt"].id, made["c.txt"].id]
    assert sorted(ids(query(filter={"file_ids": wanted}))) == sorted(wanted)
    assert ids(query(filter={"file_name": "b.txt"})) == [made["b.txt"].id]
    assert len(query(filter={"only_manually_uploaded": True}).items) == 3
    assert query(filter={"data_source_id": "dsr-1"}).items == []
    assert query(filter={"project_id": "prj-elsewhere"}).items == []
    with pytest.raises(BadRequestError) as refused:
        query(order_by="size desc")
    assert "order_by 'size desc' is not supported" in refused.value.body["detail"]
    # Who is asking is checked first: no key is 401, whatever the body says.
    anonymous = httpx.post(f"{server.base_url}/api/v1/beta/files/query", json={"order_by": ""})
    assert anonymous.status_code == 401


def test_hostile_file_names_are_cleaned(tenant: Tenant) -> None:
    for raw, expected in (
        ("../../etc/passwd", "passwd"),
        ("..\\..\\win.ini", "win.ini"),
    ):
        created = tenant.client.files.create(file=(raw, b"x"), purpose="user_data")
        assert created.name == expected
    # httpx percent-encodes control characters in multipart file names; whatever arrives, the
    # stored name has none.
    created = tenant.client.files.create(file=("bad\x00\x1fname.txt", b"x"), purpose="user_data")
    assert created.name.startswith("bad") and not any(ord(c) < 32 for c in created.name)
    assert clean_file_name("") == clean_file_name("../") == "upload"


def test_directory_file_display_names_are_cleaned_like_file_names(tenant: Tenant) -> None:
    directory = tenant.client.beta.directories.create(name="names")
    stored = tenant.client.files.create(file=("report\u202egpj.exe", b"x"), purpose="user_data")
    assert stored.name == "reportgpj.exe"  # no right-to-left override showing "exe.jpg"
    placed = tenant.client.beta.directories.files.add(
        directory.id, file_id=stored.id, display_name="../../a\r\nb\u202ec.txt"
    )
    assert placed.display_name == "abc.txt"
    renamed = tenant.client.beta.directories.files.update(
        placed.id, directory_id=directory.id, display_name="..\\x\u2066y.md"
    )
    assert renamed.display_name == "xy.md"
    uploaded = tenant.client.beta.directories.files.upload(
        directory.id, upload_file=("u.txt", b"y"), display_name="/docs/./\u202ehr/../a.md"
    )
    assert uploaded.display_name == "docs/hr/a.md"  # a folder upload keeps its folders


def test_upload_over_the_size_limit_is_413(server: LiveServer, tenant: Tenant) -> None:
    limit = server.runtime.settings.max_upload_bytes
    server.runtime.settings.max_upload_bytes = 1000
    try:
        response = httpx.post(
            f"{server.base_url}/api/v1/beta/files",
            files={"file": ("big.bin", b"x" * 1001)},
            data={"purpose": "user_data"},
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        )
    finally:
        server.runtime.settings.max_upload_bytes = limit
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_directories_crud_and_conflicts(tenant: Tenant) -> None:
    beta = tenant.client.beta
    made = beta.directories.create(name="Reports", description="Q3")
    assert (
        made.id.startswith("dir-") and made.type == "user" and made.project_id == tenant.project_id
    )
    assert beta.directories.get(made.id).name == "Reports"

    updated = beta.directories.update(made.id, name="Reports 2026")
    assert updated.name == "Reports 2026" and updated.description == "Q3"  # absent = unchanged
    cleared = beta.directories.update(made.id, description=None)
    assert cleared.description is None and cleared.name == "Reports 2026"

    beta.directories.create(name="Sub", connector_subscription_id="sub-1")
    with pytest.raises(ConflictError) as caught:
        beta.directories.create(name="Again", connector_subscription_id="sub-1")
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.body["detail"]["directory_id"].startswith("dir-")

    names = [d.name for d in beta.directories.list(page_size=1)]
    assert names == ["Reports 2026", "Sub"]
    assert [d.name for d in beta.directories.list(name="Sub")] == ["Sub"]
    beta.directories.delete(made.id)
    with pytest.raises(NotFoundError):
        beta.directories.get(made.id)


def test_directory_files_upload_add_list_update_move_delete(tenant: Tenant) -> None:
    beta = tenant.client.beta
    docs = beta.directories.create(name="Docs")
    archive = beta.directories.create(name="Archive")

    uploaded = beta.directories.files.upload(
        docs.id,
        upload_file=("guide.md", b"# Guide\nhello", "text/markdown"),
        display_name="Guide",
        unique_id="u-1",
        external_file_id="e-1",
        metadata='{"team": "ml", "year": 2026}',
    )
    assert uploaded.id.startswith("dfl-") and uploaded.display_name == "Guide"
    assert uploaded.unique_id == "u-1" and uploaded.metadata == {"team": "ml", "year": 2026}
    assert tenant.client.files.retrieve(uploaded.file_id).name == "guide.md"

    file = tenant.client.files.create(file=("notes.txt", b"notes"), purpose="user_data")
    added = beta.directories.files.add(docs.id, file_id=file.id, metadata={"tags": ["a", "b"]})
    assert added.display_name == "notes.txt" and added.unique_id == "notes.txt"
    with pytest.raises(ConflictError):
        beta.directories.files.add(docs.id, file_id=file.id)  # same unique_id again
    with pytest.raises(NotFoundError):
        beta.directories.files.add(docs.id, file_id="no-such-file")

    listed = [f.id for f in beta.directories.files.list(docs.id, page_size=1)]
    assert listed == [uploaded.id, added.id]
    assert [f.id for f in beta.directories.files.list(docs.id, display_name_contains="GUI")] == [
        uploaded.id
    ]
    assert beta.directories.files.get(added.id, directory_id=docs.id).file_id == file.id

    renamed = beta.directories.files.update(
        added.id, directory_id=docs.id, display_name="Notes", metadata={"k": "v"}
    )
    assert renamed.display_name == "Notes" and renamed.metadata == {"k": "v"}
    moved = beta.directories.files.update(
        added.id, directory_id=docs.id, target_directory_id=archive.id
    )
    assert moved.directory_id == archive.id
    assert [f.id for f in beta.directories.files.list(archive.id)] == [added.id]

    beta.directories.files.delete(uploaded.id, directory_id=docs.id)
    assert list(beta.directories.files.list(docs.id)) == []
    deleted = list(beta.directories.files.list(docs.id, include_deleted=True))
    assert [f.id for f in deleted] == [uploaded.id] and deleted[0].deleted_at is not None


def test_bad_upload_metadata_is_400_and_records_nothing(server: LiveServer, tenant: Tenant) -> None:
    docs = tenant.client.beta.directories.create(name="Docs")
    for bad in ("not json", '["a list"]', '{"nested": {"x": 1}}'):
        with pytest.raises(BadRequestError):
            tenant.client.beta.directories.files.upload(
                docs.id, upload_file=("a.txt", b"x"), metadata=bad
            )
    assert list(tenant.client.files.list()) == []


def test_indexes_create_list_get_delete(tenant: Tenant) -> None:
    docs = tenant.client.beta.directories.create(name="Handbook")
    index = tenant.client.indexes.create(
        source_directory_id=docs.id,
        store_attachments=["screenshots"],
        sync_frequency="manual",
        products=[],
        vector_target="DEFAULT",
    )
    assert index.id.startswith("idx-") and index.name == "Handbook"
    assert index.source_directory_id == docs.id and index.project_id == tenant.project_id
    assert index.export_config_id and index.sync_config_id and index.output_directory_id
    output = tenant.client.beta.directories.get(index.output_directory_id)
    assert output.type == "index"

    got = tenant.client.indexes.get(index.id, expand=["sync_in_progress"])
    assert got.sync_in_progress is False
    assert tenant.client.indexes.get(index.id).sync_in_progress is None
    assert [i.id for i in tenant.client.indexes.list()] == [index.id]
    assert [i.id for i in tenant.client.indexes.list(source_directory_id="dir-other")] == []

    with pytest.raises(ConflictError):  # a directory an index reads from cannot go
        tenant.client.beta.directories.delete(docs.id)
    session = tenant.client.chat.create(index_ids=[index.id])
    assert session.index_ids == [index.id]

    tenant.client.indexes.delete(index.id)
    with pytest.raises(NotFoundError):
        tenant.client.indexes.get(index.id)
    with pytest.raises(NotFoundError):
        tenant.client.beta.directories.get(index.output_directory_id)
    with pytest.raises(NotFoundError):
        tenant.client.chat.create(index_ids=[index.id])


def test_index_over_unknown_directory_is_404(tenant: Tenant) -> None:
    with pytest.raises(NotFoundError):
        tenant.client.indexes.create(source_directory_id="dir-missing")
    with pytest.raises(UnprocessableEntityError):
        tenant.client.indexes.create(source_directory_id="dir-x", store_attachments=["everything"])


def test_nothing_crosses_projects(server: LiveServer, tenant: Tenant) -> None:
    other = make_tenant(server)
    docs = tenant.client.beta.directories.create(name="Mine")
    placed = tenant.client.beta.directories.files.upload(docs.id, upload_file=("a.txt", b"x"))
    index = tenant.client.indexes.create(source_directory_id=docs.id)
    before = count_sessions(server)
    c = other.client
    for call in (
        lambda: c.files.retrieve(placed.file_id),
        lambda: c.files.content(placed.file_id),
        lambda: c.files.delete(placed.file_id),
        lambda: c.beta.directories.get(docs.id),
        lambda: c.beta.directories.update(docs.id, name="x"),
        lambda: c.beta.directories.delete(docs.id),
        lambda: c.beta.directories.files.list(docs.id),
        lambda: c.beta.directories.files.get(placed.id, directory_id=docs.id),
        lambda: c.beta.directories.files.upload(docs.id, upload_file=("b.txt", b"y")),
        lambda: c.beta.directories.files.add(docs.id, file_id=placed.file_id),
        lambda: c.beta.directories.files.delete(placed.id, directory_id=docs.id),
        lambda: c.indexes.get(index.id),
        lambda: c.indexes.delete(index.id),
        lambda: c.indexes.create(source_directory_id=docs.id),
        lambda: c.chat.create(index_ids=[index.id]),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert list(c.files.list()) == [] and list(c.beta.directories.list()) == []
    assert list(c.indexes.list()) == []
    assert (
        tenant.client.beta.directories.files.get(placed.id, directory_id=docs.id).deleted_at is None
    )
    assert count_sessions(server) == before
