"""Files that would take the server's memory: each fails alone with a reason, quickly, and the
server never holds an upload or an oversized file whole (bench/bench_memory.py measures it)."""

from __future__ import annotations

import hashlib
import io
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from factories import (
    LiveServer,
    failures,
    live_server,
    make_tenant,
    sync_and_wait,
    upload_index,
)
from hostile_files import MB, deep_html, docx_bomb, many_page_pdf, xlsx_bomb

from indexchat.config import Settings
from indexchat.ingest.parsers import ParseError, parse
from indexchat.services.backup import blob_path
from indexchat.storage.blobs import LocalBlobStore
from indexchat.storage.tables import StoredFile


def test_a_pdf_of_100000_pages_fails_on_its_page_count() -> None:
    pdf = many_page_pdf(100_000)
    started = time.monotonic()
    with pytest.raises(ParseError, match=r"too many pages \(100000; the limit is 5000\)"):
        parse(pdf, "pages.pdf")
    assert time.monotonic() - started < 5
    assert parse(many_page_pdf(3), "three.pdf").page_count == 3  # the generator makes real PDFs


def test_html_a_million_elements_deep_is_read_as_plain_text() -> None:
    parse(b"<p>warm</p>", "warm.html")
    started = time.monotonic()
    assert parse(deep_html(1_000_000), "deep.html").pages[0].text == "deep text"
    assert time.monotonic() - started < 8  # ~2 s here; a tree that deep would take minutes


@pytest.mark.parametrize(("make", "name"), [(docx_bomb, "bomb.docx"), (xlsx_bomb, "bomb.xlsx")])
def test_office_zip_bombs_are_refused_before_parsing(
    make: Callable[[int], bytes], name: str
) -> None:
    bomb = make(300 * MB)
    assert len(bomb) < 5 * MB
    started = time.monotonic()
    with pytest.raises(ParseError, match="possible zip bomb"):
        parse(bomb, name)
    assert time.monotonic() - started < 2


def test_a_large_write_is_stored_in_pieces(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    data = b"0123456789abcdef" * (4 * MB)  # 64 MB
    source = io.BytesIO(data)
    tracemalloc.start()
    try:
        digest, size = blobs.put_file(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert peak < 4 * MB, f"{peak / MB:.1f} MB held while storing 64 MB"
    assert blobs.get(digest) == data
    # The same bytes again: one copy, its grace period restarted, no temporary file left.
    assert blobs.put_file(io.BytesIO(data)) == (digest, size)
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [digest[:2]]


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[LiveServer]:
    """A server that parses files up to 1 MB (and takes uploads up to 100 MB)."""
    data_dir = tmp_path_factory.mktemp("roomy")
    (data_dir / "models").symlink_to(model_cache)
    settings = Settings(data_dir=data_dir, parse_max_bytes=MB)
    with live_server(settings, "sqlite") as running:
        yield running


def test_an_upload_keeps_its_bytes_and_digest(roomy: LiveServer) -> None:
    tenant = make_tenant(roomy)
    data = bytes(range(256)) * (12 * 4096)  # 12 MB: stored from the spooled file in pieces
    made = tenant.client.files.create(file=("blob.bin", data), purpose="user_data")
    with roomy.runtime.db.read() as tx:
        stored = tx.get_one(StoredFile, made.id)
    assert stored.content_hash == hashlib.sha256(data).hexdigest()
    assert stored.size_bytes == len(data)
    assert roomy.runtime.blobs.get(stored.content_hash) == data


def test_a_file_over_the_parse_size_limit_fails_without_being_read(roomy: LiveServer) -> None:
    tenant = make_tenant(roomy)
    large = b"A line of plain text to index.\n" * (2 * MB // 31 + 1)
    index_id = upload_index(tenant.client, {"large.txt": large, "note.txt": b"zq0002x note"})
    # Its bytes are gone: were the sync to read them, it would say so instead.
    blob_path(roomy.runtime.settings.data_dir / "blobs", hashlib.sha256(large).hexdigest()).unlink()
    metadata = sync_and_wait(tenant.client, index_id)
    assert failures(metadata) == {"large.txt": "file too large (2 MB; the limit is 1 MB)"}
    assert metadata["files_parsed"] == 1
