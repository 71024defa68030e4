"""sync_frequency: the worker's scheduler queues syncs for daily and on_source_change indexes,
one per fleet. A server with a fast clock (short tick, debounce and day) on each backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from deployments import fresh_postgres_database, wait_until
from factories import BACKENDS, LiveServer, Tenant, live_server, make_tenant
from sqlalchemy import func, select

from indexchat.config import Settings
from indexchat.runtime import Runtime
from indexchat.services import schedule
from indexchat.storage.tables import Job
from indexchat.worker import Worker

FAST = {"schedule_tick_seconds": 0.2, "source_change_debounce_seconds": 3.0}


def fast_settings(
    tmp: Path, request: pytest.FixtureRequest, backend: str, **more: float
) -> Settings:
    url = None
    if backend == "postgres":
        url = fresh_postgres_database(request.getfixturevalue("postgres_url"))
    return Settings(data_dir=tmp, database_url=url, **{**FAST, **more})  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=BACKENDS)
def fast_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    backend: str = request.param
    settings = fast_settings(
        tmp_path_factory.mktemp(f"sched-{backend}"), request, backend, daily_sync_seconds=3
    )
    with live_server(settings, backend) as running:
        yield running


def sync_jobs(server: LiveServer, index_id: str) -> list[Job]:
    with server.runtime.db.read() as tx:
        return list(tx.scalars(select(Job).where(Job.index_id == index_id).order_by(Job.id)))


def synced_files(tenant: Tenant, index_id: str, files: int) -> dict:
    def done() -> dict | None:
        got = tenant.client.indexes.get(index_id, expand=["sync_in_progress"])
        state = got.metadata
        if not got.sync_in_progress and state.get("files_total") == files:
            return state
        return None

    return wait_until(done, f"{files} files synced", timeout=120)


def test_on_source_change_syncs_once_per_burst_of_changes(fast_server: LiveServer) -> None:
    tenant = make_tenant(fast_server)
    client = tenant.client
    docs = client.beta.directories.create(name="followed")
    index = client.indexes.create(source_directory_id=docs.id, sync_frequency="on_source_change")
    # A new index catches up with its source once it has been quiet for the debounce time.
    assert index.metadata["next_scheduled_sync_at"] is not None
    placed = [
        client.beta.directories.files.upload(
            docs.id, upload_file=(f"n{i}.txt", f"note {i}".encode())
        )
        for i in range(6)
    ]
    pending = client.indexes.get(index.id).metadata["next_scheduled_sync_at"]
    assert pending is not None and datetime.fromisoformat(pending).tzinfo is not None
    assert synced_files(tenant, index.id, 6)["files_parsed"] == 6
    assert len(sync_jobs(fast_server, index.id)) == 1  # six uploads, one sync
    assert client.indexes.get(index.id).metadata["next_scheduled_sync_at"] is None

    client.beta.directories.files.delete(placed[0].id, directory_id=docs.id)
    assert synced_files(tenant, index.id, 5)["files_parsed"] == 5
    time.sleep(1)  # a tick or more with nothing new: no further sync
    assert len(sync_jobs(fast_server, index.id)) == 2


def test_daily_syncs_a_period_after_the_last_sync_and_manual_never(
    fast_server: LiveServer,
) -> None:
    tenant = make_tenant(fast_server)
    client = tenant.client
    docs = client.beta.directories.create(name="daily")
    client.beta.directories.files.upload(docs.id, upload_file=("d.txt", b"daily note"))
    daily = client.indexes.create(source_directory_id=docs.id, sync_frequency="daily")
    manual = client.indexes.create(source_directory_id=docs.id)
    due = datetime.fromisoformat(daily.metadata["next_scheduled_sync_at"])
    assert 2.5 <= (due - daily.created_at).total_seconds() <= 3.5  # the fast "day" of 3 s
    assert "next_scheduled_sync_at" not in manual.metadata
    synced_files(tenant, daily.id, 1)
    first = client.indexes.get(daily.id)
    assert first.last_synced_at is not None
    after = datetime.fromisoformat(first.metadata["next_scheduled_sync_at"])
    assert after > first.last_synced_at
    wait_until(lambda: len(sync_jobs(fast_server, daily.id)) >= 2, "the next day's sync", 30)
    assert sync_jobs(fast_server, manual.id) == []


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL not among the test backends")
def test_two_workers_on_postgres_schedule_each_sync_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = fast_settings(tmp_path, request, "postgres", schedule_tick_seconds=0.05)
    runtimes = [Runtime.open(settings), Runtime.open(settings)]
    server = LiveServer(base_url="", runtime=runtimes[0], backend="postgres")
    tenant = make_tenant(server)
    from indexchat.services import directories, indexes

    with runtimes[0].db.write() as tx:
        index_ids = []
        for n in range(5):
            source = directories.create_directory(tx, tenant.scope, name=f"src {n}")
            index_ids.append(
                indexes.create_index(
                    tx,
                    tenant.scope,
                    source_directory_id=source.id,
                    sync_frequency="on_source_change",
                ).id
            )
    # Two worker instances, each with its own engine, race for the lease for a while; their job
    # loops do not run, so every queued sync stays in the table to be counted.
    timing = schedule.Timing.of(settings)
    workers = [Worker(r) for r in runtimes]
    stop = threading.Event()
    queued: list[str] = []

    def race(worker: Worker) -> None:
        while not stop.is_set():
            with worker.runtime.db.write() as tx:
                queued.extend(schedule.tick(tx, holder=worker.worker_id, timing=timing))

    threads = [threading.Thread(target=race, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    time.sleep(FAST["source_change_debounce_seconds"] + 2)
    stop.set()
    for t in threads:
        t.join()
    try:
        assert sorted(queued) == sorted(index_ids)
        with runtimes[1].db.read() as tx:
            counts = tx.execute(
                select(Job.index_id, func.count())
                .where(Job.index_id.in_(index_ids))
                .group_by(Job.index_id)
            ).all()
        assert dict(counts) == {i: 1 for i in index_ids}
    finally:
        for r in runtimes:
            r.close()
