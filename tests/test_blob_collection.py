"""Blobs no row names are collected once older than the grace period, on both backends and
across tenants; blobs a row names never are."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from deployments import database_for
from factories import (
    BACKENDS,
    NOTE,
    LiveServer,
    live_server,
    make_tenant,
    parsed_ids,
    synced_pdf_and_note,
)
from sqlalchemy import delete, select

from indexchat.config import Settings
from indexchat.services.backup import blob_path
from indexchat.services.blob_collection import LEASE, collect
from indexchat.storage import leases
from indexchat.storage.blobs import LocalBlobStore
from indexchat.storage.tables import Attachment, ParsedFile, StoredFile

HOUR = 3600.0


@pytest.fixture(scope="module", params=BACKENDS)
def quiet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[LiveServer]:
    """A server whose worker never collects on its own: the tests call ``collect``."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"collect-{backend}")
    (data_dir / "models").symlink_to(model_cache)
    url = database_for(request, backend)
    settings = Settings(data_dir=data_dir, database_url=url, blob_collect_seconds=0)
    with live_server(settings, backend) as running:
        yield running


def age_every_blob(server: LiveServer, seconds: float) -> None:
    """Make every stored blob look ``seconds`` old, so only the rows naming it can keep it."""
    then = time.time() - seconds
    for folder, _, names in os.walk(server.runtime.settings.data_dir / "blobs"):
        for name in names:
            os.utime(os.path.join(folder, name), (then, then))


def stored_digest(server: LiveServer, file_id: str) -> str:
    with server.runtime.db.read() as tx:
        return tx.get_one(StoredFile, file_id).content_hash


def test_unnamed_blobs_go_after_the_grace_period_and_named_ones_stay(quiet: LiveServer) -> None:
    blobs, db = quiet.runtime.blobs, quiet.runtime.db
    owner, other = make_tenant(quiet), make_tenant(quiet)
    index_id = synced_pdf_and_note(owner)  # an upload, its parsed text, page screenshots
    ids = parsed_ids(owner, index_id)
    # The same bytes in two tenants: the owner's row goes, the other's keeps them.
    shared = b"the same bytes, uploaded by two tenants"
    mine = owner.client.files.create(file=("shared.txt", shared), purpose="user_data")
    other.client.files.create(file=("shared.txt", shared), purpose="user_data")
    owner.client.files.delete(mine.id)
    # A crash between storing the bytes and inserting their row.
    crashed = blobs.put(b"stored, then the process died before its row was written")
    # An upload whose row is gone without the API (deleted by hand, a restored database).
    lost = owner.client.files.create(file=("lost.txt", b"its row vanished"), purpose="user_data")
    lost_digest = stored_digest(quiet, lost.id)
    with db.write() as tx:
        tx.execute(delete(StoredFile).where(StoredFile.id == lost.id))
    # A deleted file whose bytes were kept for their grace period at delete time.
    gone = owner.client.files.create(
        file=("gone.txt", b"deleted within grace"), purpose="user_data"
    )
    gone_digest = stored_digest(quiet, gone.id)
    owner.client.files.delete(gone.id)
    assert blobs.exists(gone_digest)

    with db.read() as tx:
        named = set(tx.scalars(select(StoredFile.content_hash)))
        texts = select(ParsedFile.text_hash).where(ParsedFile.text_hash.is_not(None))
        named |= {digest for digest in tx.scalars(texts) if digest}
        named |= set(tx.scalars(select(Attachment.content_hash)))
    assert len(named) >= 5
    orphans = {crashed, lost_digest, gone_digest}

    # Young: nothing goes, named or not.
    kept = collect(db, blobs, grace_seconds=HOUR, holder="test")
    assert kept is not None and kept.removed == 0
    assert all(blobs.exists(d) for d in orphans | named)

    age_every_blob(quiet, 2 * HOUR)
    done = collect(db, blobs, grace_seconds=HOUR, holder="test")
    assert done is not None and done.removed >= len(orphans)
    assert not any(blobs.exists(d) for d in orphans)
    assert all(blobs.exists(d) for d in named), "a blob a row names was collected"
    # Everything still reads: the other tenant's copy, the parsed text, the screenshots.
    [copy] = [f for f in other.client.files.list() if f.name == "shared.txt"]
    assert blobs.get(stored_digest(quiet, copy.id)) == shared
    text = owner.client.retrieval.read(index_id=index_id, file_id=ids["bread.md"]).content
    assert "wild yeast" in text and NOTE.startswith(b"# Sourdough")
    again = collect(db, blobs, grace_seconds=HOUR, holder="test")
    assert again is not None and again.removed == 0


def test_a_write_that_never_finished_is_swept(quiet: LiveServer) -> None:
    root = quiet.runtime.settings.data_dir / "blobs"
    root.mkdir(parents=True, exist_ok=True)
    left, fresh = root / ".deadbeef.tmp", root / ".cafe.tmp"
    left.write_bytes(b"half of a blob")
    fresh.write_bytes(b"a write under way")
    then = time.time() - 2 * HOUR
    os.utime(left, (then, then))
    done = collect(quiet.runtime.db, quiet.runtime.blobs, grace_seconds=HOUR, holder="test")
    assert done is not None and done.partial_writes == 1
    assert not left.exists() and fresh.exists()
    fresh.unlink()


def test_one_process_of_a_fleet_collects_at_a_time(quiet: LiveServer) -> None:
    db, blobs = quiet.runtime.db, quiet.runtime.blobs
    orphan = blobs.put(b"an orphan the other process will collect")
    age_every_blob(quiet, 2 * HOUR)
    with db.write() as tx:
        assert leases.hold(tx, LEASE, holder="elsewhere", ttl=timedelta(minutes=1))
    try:
        assert collect(db, blobs, grace_seconds=HOUR, holder="here") is None
        assert blobs.exists(orphan)
    finally:
        with db.write() as tx:
            leases.release(tx, LEASE, holder="elsewhere")
    done = collect(db, blobs, grace_seconds=HOUR, holder="here")
    assert done is not None and not blobs.exists(orphan)


def test_a_put_racing_the_collector_keeps_its_blob(quiet: LiveServer) -> None:
    blobs = quiet.runtime.blobs
    digest = blobs.put(b"named again just as it was judged unnamed")
    path = blob_path(quiet.runtime.settings.data_dir / "blobs", digest)
    then = time.time() - 2 * HOUR
    os.utime(path, (then, then))
    assert blobs.put(b"named again just as it was judged unnamed") == digest  # refreshes it
    assert not blobs.delete_if_stale(digest, grace_seconds=HOUR)
    assert blobs.exists(digest)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_worker_collects_periodically(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, model_cache: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(model_cache)
    url = database_for(request, backend)
    settings = Settings(
        data_dir=data_dir, database_url=url, blob_collect_seconds=0.2, blob_grace_seconds=HOUR
    )
    with live_server(settings, backend) as running:
        tenant = make_tenant(running)
        kept = tenant.client.files.create(file=("kept.txt", b"named"), purpose="user_data")
        orphan = running.runtime.blobs.put(b"nobody names this")
        age_every_blob(running, 2 * HOUR)
        deadline = time.monotonic() + 15
        while running.runtime.blobs.exists(orphan):
            assert time.monotonic() < deadline, "the worker did not collect the orphan"
            time.sleep(0.1)
        assert running.runtime.blobs.exists(stored_digest(running, kept.id))


def test_the_cli_collects_once(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from indexchat.cli import app
    from indexchat.runtime import Runtime

    data_dir = tmp_path / "data"
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        orphan = runtime.blobs.put(b"left behind")
        young = runtime.blobs.put(b"just written")
        path = blob_path(data_dir / "blobs", orphan)
        then = time.time() - 2 * HOUR
        os.utime(path, (then, then))
    finally:
        runtime.close()
    result = CliRunner().invoke(app, ["collect-blobs", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "Removed 1 unnamed blobs of 1" in result.output
    blobs = LocalBlobStore(data_dir / "blobs")
    assert not blobs.exists(orphan) and blobs.exists(young)
