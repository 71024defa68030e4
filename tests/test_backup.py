"""``indexchat backup`` taken while a server runs turns and a sync, restored into a fresh data
dir and served again: everything committed before the backup is there, nothing the source never
committed is, and the restored deployment searches, serves files and finishes the sync."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deployments import (
    FILES,
    INDEXCHAT,
    Deployment,
    assert_indexed_once,
    assert_store_matches_tables,
    make_index,
    marker,
    note,
    start_sync,
    wait_for_progress,
    wait_for_sync,
    wait_until,
)
from sqlalchemy import select
from streams import stream_turn

from indexchat.storage.blobs import LocalBlobStore
from indexchat.storage.db import Database
from indexchat.storage.snapshots import referenced_blobs
from indexchat.storage.tables import ChatEvent, ChatSession, Chunk, Index, StoredFile

READY_FILES = range(1000, 1012)
BUSY_FILES = range(FILES)

Snapshot = dict[str, dict]


def fresh_data_dir(path: Path, model_cache: Path) -> Path:
    path.mkdir()
    (path / "models").symlink_to(model_cache)
    return path


@pytest.fixture
def source(tmp_path: Path, model_cache: Path) -> Iterator[Deployment]:
    deployment = Deployment(fresh_data_dir(tmp_path / "data", model_cache), None)
    yield deployment
    deployment.close()


def committed(db: Database) -> Snapshot:
    """What a database holds: each session's events, files with their bytes' address, indexes,
    chunks."""
    with db.read() as tx:
        events: dict[str, list] = {s: [] for s in tx.scalars(select(ChatSession.id))}
        for session_id, payload in tx.execute(
            select(ChatEvent.session_id, ChatEvent.payload).order_by(ChatEvent.seq)
        ):
            events[session_id].append(payload)
        return {
            "sessions": events,
            "files": dict(tx.execute(select(StoredFile.id, StoredFile.content_hash)).all()),
            "indexes": {i: i for i in tx.scalars(select(Index.id))},
            "chunks": {c: c for c in tx.scalars(select(Chunk.id))},
        }


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INDEXCHAT, *args], env=env, capture_output=True, text=True, timeout=300)


def keep_chatting(
    deployment: Deployment, index_id: str, stop: threading.Event
) -> tuple[threading.Thread, list[int]]:
    """Turns, one after another until ``stop``, in a thread; the list counts them."""
    done: list[int] = []

    def chat() -> None:
        client = deployment.client
        while not stop.is_set():
            chat = client.chat.create(index_ids=[index_id])
            stream_turn(client, chat.session_id, index_ids=[index_id], prompt=marker(1003))
            done.append(1)

    thread = threading.Thread(target=chat, daemon=True)
    thread.start()
    return thread, done


def test_backup_while_serving_restores_every_committed_thing(
    source: Deployment, tmp_path: Path, model_cache: Path
) -> None:
    server = source.serve(job_lease_seconds=3)
    client = source.client
    ready = make_index(client, READY_FILES, name="ready")
    start_sync(source, ready)
    wait_for_sync(source, ready)
    for i in READY_FILES[:3]:
        chat = client.chat.create(index_ids=[ready])
        stream_turn(client, chat.session_id, index_ids=[ready], prompt=f"Where is {marker(i)}?")
    before = committed(source.db)

    busy = make_index(client, BUSY_FILES, name="busy")
    start_sync(source, busy)
    wait_for_progress(source, busy, FILES)
    stop = threading.Event()
    chatting, turns = keep_chatting(source, ready, stop)
    wait_until(lambda: len(turns) >= 1, "a turn under way")
    backup_dir = tmp_path / "backup"
    backed_up = run("backup", str(backup_dir), env=source.env())
    stop.set()
    chatting.join(60)
    assert backed_up.returncode == 0, backed_up.stderr
    after = committed(source.db)
    assert source.job(busy).status == "running", "the sync ended before the backup"
    server.send_signal(signal.SIGKILL)
    server.wait(10)

    restored_dir = fresh_data_dir(tmp_path / "restored", model_cache)
    restored_run = run(
        "restore", str(backup_dir), env={**source.env(), "INDEXCHAT_DATA_DIR": str(restored_dir)}
    )
    assert restored_run.returncode == 0, restored_run.stderr
    restored = Deployment(restored_dir, None)
    try:
        got = committed(restored.db)
        assert_between(before, got, after)
        blobs = LocalBlobStore(restored_dir / "blobs")
        assert all(blobs.exists(d) for d in referenced_blobs(restored_dir / "indexchat.db"))

        restored.api_key = source.api_key  # the keys came along
        restored.serve("serve-restored", job_lease_seconds=3)
        assert_serves(restored, ready, before)
        wait_for_sync(restored, busy)
        assert_indexed_once(restored, busy, BUSY_FILES)
        assert_store_matches_tables(restored)
    finally:
        restored.close()


def assert_between(before: Snapshot, got: Snapshot, after: Snapshot) -> None:
    """Everything of ``before`` is in ``got``; everything in ``got`` the source also has (a
    session's events a prefix of its events in the source)."""
    for kind in ("files", "indexes", "chunks"):
        assert before[kind].items() <= got[kind].items() <= after[kind].items(), kind
    for session_id, events in before["sessions"].items():
        assert got["sessions"][session_id] == events
    for session_id, events in got["sessions"].items():
        assert events == after["sessions"][session_id][: len(events)]


def assert_serves(restored: Deployment, ready: str, before: Snapshot) -> None:
    client = restored.client
    listed = {s.session_id for s in client.chat.list()}
    assert set(before["sessions"]) <= listed
    for session_id, events in before["sessions"].items():
        assert len(client.chat.retrieve(session_id).events) == len(events)
    for i in (READY_FILES[0], READY_FILES[-1]):
        results = client.retrieval.retrieve(index_id=ready, query=marker(i), top_k=3).results
        assert marker(i) in results[0].content
    file_id = next(iter(before["files"]))
    downloaded = httpx.get(client.files.content(file_id).url)
    assert downloaded.content in {note(i) for i in READY_FILES}


def test_restore_leaves_a_data_dir_with_data_alone(tmp_path: Path, source: Deployment) -> None:
    backup_dir = tmp_path / "backup"
    assert run("backup", str(backup_dir), env=source.env()).returncode == 0
    database = source.data_dir / "indexchat.db"
    stamp = database.stat().st_mtime_ns

    refused = run("restore", str(backup_dir), env=source.env())
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert database.stat().st_mtime_ns == stamp

    again = run("backup", str(backup_dir), env=source.env())
    # The console wraps a message at its width; a long temporary path moves the break.
    assert again.returncode == 1 and "not empty" in " ".join(again.stderr.split())
    source.db.dispose()
    forced = run("restore", str(backup_dir), "--force", env=source.env())
    assert forced.returncode == 0, forced.stderr


def test_backup_of_postgres_points_to_pg_dump(tmp_path: Path) -> None:
    env = {"INDEXCHAT_DATA_DIR": str(tmp_path), "PATH": "/usr/bin"}
    for command in ("backup", "restore"):
        refused = run(
            command, str(tmp_path / "b"), "--database-url", "postgresql+psycopg://u@/db", env=env
        )
        assert refused.returncode == 1 and "pg_dump" in refused.stderr, refused.stderr
