"""Index syncs as durable jobs, across real processes: restart, cancel, separate workers.

Every test starts ``indexchat serve`` / ``indexchat worker`` as subprocesses on a fresh data dir
(and, on PostgreSQL, a fresh database), drives them with the official SDK, and checks the
outcome both through the API and in the database: each file's chunk exactly once, in the tables
and in the search store.
"""

from __future__ import annotations

import signal
import socket
from datetime import timedelta

from deployments import (
    FILES,
    Deployment,
    assert_indexed_once,
    assert_store_matches_tables,
    indexed_markers,
    make_index,
    note,
    start_sync,
    wait_for_progress,
    wait_for_sync,
)
from llama_cloud import LlamaCloud

from indexchat.services import tenancy
from indexchat.services.sync import BATCH_FILES
from indexchat.storage import jobs
from indexchat.storage.tables import Job


def worker_pid(job: Job) -> int:
    assert job.locked_by is not None
    host, pid, _ = job.locked_by.split(":")
    assert host == socket.gethostname()
    return int(pid)


def test_sync_survives_a_killed_server(deployment: Deployment) -> None:
    """SIGKILL mid-sync: no hand-back; the next server takes the job over once its lease ends."""
    files = range(FILES)
    server = deployment.serve(job_lease_seconds=3)
    index_id = make_index(deployment.client, files)
    job_id = start_sync(deployment, index_id)
    wait_for_progress(deployment, index_id, FILES)
    server.send_signal(signal.SIGKILL)
    server.wait(10)
    killed = deployment.job(index_id)
    assert (killed.id, killed.status, killed.attempts) == (job_id, "running", 1)
    markers, _ = indexed_markers(deployment.db, index_id)
    assert 0 < len(markers) < FILES and len(set(markers)) == len(markers)

    restarted = deployment.serve("serve-again", job_lease_seconds=3)
    wait_for_sync(deployment, index_id)
    done = deployment.job(index_id)
    assert (done.id, done.status, done.attempts) == (job_id, "succeeded", 2)
    assert worker_pid(done) == restarted.pid
    assert_indexed_once(deployment, index_id, files)
    assert_store_matches_tables(deployment)


def test_sync_stopped_gracefully_is_handed_back_at_once(deployment: Deployment) -> None:
    """SIGTERM mid-sync: the job goes back to the queue, so a long lease does not delay it."""
    files = range(FILES)
    server = deployment.serve(job_lease_seconds=600)
    index_id = make_index(deployment.client, files)
    job_id = start_sync(deployment, index_id)
    wait_for_progress(deployment, index_id, FILES)
    server.send_signal(signal.SIGTERM)
    assert server.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises it once shut down
    assert "Application shutdown complete" in deployment.log("serve")
    stopped = deployment.job(index_id)
    assert (stopped.status, stopped.locked_by, stopped.attempts) == ("queued", None, 1)
    assert BATCH_FILES <= stopped.progress["files_done"] < FILES

    deployment.serve("serve-again", job_lease_seconds=600)
    wait_for_sync(deployment, index_id, timeout=120)
    done = deployment.job(index_id)
    assert (done.id, done.status, done.attempts) == (job_id, "succeeded", 2)
    assert_indexed_once(deployment, index_id, files)
    assert_store_matches_tables(deployment)


def test_cancel_stops_a_running_sync_and_the_next_sync_finishes(
    deployment: Deployment,
) -> None:
    files = range(FILES)
    deployment.serve()
    client = deployment.client
    index_id = make_index(client, files)
    job_id = start_sync(deployment, index_id)
    wait_for_progress(deployment, index_id, FILES)
    assert client.indexes.cancel_sync(index_id)["status"] == "cancelling"

    metadata = wait_for_sync(deployment, index_id, timeout=60)
    cancelled = deployment.job(index_id)
    assert (cancelled.id, cancelled.status) == (job_id, "cancelled")
    assert metadata["last_sync_status"] == "cancelled"
    markers, _ = indexed_markers(deployment.db, index_id)
    assert BATCH_FILES <= len(markers) < FILES  # whole batches kept, the rest left to do
    assert len(markers) == cancelled.progress["files_done"]

    assert start_sync(deployment, index_id) != job_id
    metadata = wait_for_sync(deployment, index_id)
    assert metadata["last_sync_status"] == "succeeded"
    again = deployment.job(index_id)
    assert again.status == "succeeded" and again.progress["files_total"] == FILES - len(markers)
    assert_indexed_once(deployment, index_id, files)
    assert_store_matches_tables(deployment)


def test_sync_asked_for_while_running_makes_another_pass(deployment: Deployment) -> None:
    """Files added during a sync, then a sync asked for: the running job picks them up."""
    first, added = range(FILES), range(FILES, FILES + 10)
    deployment.serve()
    client = deployment.client
    index_id = make_index(client, first)
    job_id = start_sync(deployment, index_id)
    wait_for_progress(deployment, index_id, FILES)
    running = client.indexes.get(index_id, expand=["sync_in_progress"])
    progress = running.metadata["sync_progress"]
    assert running.sync_in_progress and progress["status"] == "running"
    assert progress["files_total"] == FILES and BATCH_FILES <= progress["files_done"] <= FILES

    directory_id = running.source_directory_id
    for i in added:
        client.beta.directories.files.upload(
            directory_id, upload_file=(f"note-{i:04d}.txt", note(i))
        )
    again = client.indexes.sync(index_id)
    assert (again["status"], again["job_id"]) == ("already_running", job_id)

    wait_for_sync(deployment, index_id)
    done = deployment.job(index_id)
    assert (done.id, done.status, done.attempts) == (job_id, "succeeded", 1)
    assert done.progress["files_total"] == len(added)  # the second pass: only the new files
    assert "sync_progress" not in client.indexes.get(index_id, expand=["sync_in_progress"]).metadata
    assert_indexed_once(deployment, index_id, range(FILES + 10))
    assert_store_matches_tables(deployment)


def test_rerun_requests_are_decided_with_the_finish(deployment: Deployment) -> None:
    """A request lands either before the worker's last look (another pass) or after the job
    finished (then it is no longer active, and a new job is queued)."""
    deployment.serve(run_worker=False)  # no worker: this test plays it
    index = deployment.client.indexes.get(make_index(deployment.client, range(1)))
    index_id = index.id
    with deployment.db.write() as tx:
        job = jobs.enqueue(tx, kind="sync", project_id=index.project_id, index_id=index_id)
        claimed = jobs.claim(tx, worker_id="w", lease=timedelta(seconds=60))
        assert claimed is not None and claimed.id == job.id
    with deployment.db.write() as tx:
        active = jobs.active_for_index(tx, index_id, lock=True)
        assert active is not None
        jobs.request_rerun(tx, active)
    with deployment.db.write() as tx:
        assert jobs.finish_or_rerun(tx, job.id, worker_id="other") == "lost"
        assert jobs.finish_or_rerun(tx, job.id, worker_id="w") == "rerun"
    with deployment.db.write() as tx:
        assert jobs.finish_or_rerun(tx, job.id, worker_id="w") == "finished"
    with deployment.db.read() as tx:
        assert jobs.active_for_index(tx, index_id) is None
        finished = tx.get(Job, job.id)
        assert finished is not None
        assert (finished.status, finished.rerun_requested) == ("succeeded", False)


def test_worker_command_runs_syncs_for_a_server_without_worker(deployment: Deployment) -> None:
    """`indexchat worker` does the work; SIGTERM hands the job back; --exit-when-idle ends it."""
    files = range(FILES)
    first = deployment.worker("worker-1")  # starts while the server does
    server = deployment.serve(run_worker="false")
    index_id = make_index(deployment.client, files)
    deployment.wait_ready("worker-1", first)
    job_id = start_sync(deployment, index_id)
    wait_for_progress(deployment, index_id, FILES)
    assert worker_pid(deployment.job(index_id)) == first.pid
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    assert deployment.job(index_id).status == "queued"
    log = deployment.log("worker-1")
    assert f"job {job_id} claimed" in log and f"job {job_id} handed back" in log

    second = deployment.worker("worker-2", "--exit-when-idle")
    deployment.wait_ready("worker-2", second)
    assert second.wait(120) == 0  # left on its own once the queue is empty
    assert f"job {job_id} succeeded" in deployment.log("worker-2")
    done = deployment.job(index_id)
    assert (done.status, done.attempts, worker_pid(done)) == ("succeeded", 2, second.pid)
    assert server.poll() is None
    assert_indexed_once(deployment, index_id, files)
    assert_store_matches_tables(deployment)


def test_two_workers_share_the_queue(deployment: Deployment) -> None:
    """Two worker processes (one job at a time each), two syncs of two projects: each job runs
    once, on one worker, and both complete."""
    workers = [deployment.worker(f"worker-{n}", worker_threads=1) for n in (1, 2)]
    deployment.serve(run_worker="false")
    with deployment.db.write() as tx:
        tenancy.create_project(tx, "other")
        other_key = tenancy.create_key(tx, project="other").secret
    clients = {
        "a": deployment.client,
        "b": LlamaCloud(api_key=other_key, base_url=deployment.base_url, max_retries=0),
    }
    half = FILES // 2
    parts = {"a": range(half), "b": range(half, 2 * half)}
    index_ids = {name: make_index(clients[name], part, name) for name, part in parts.items()}
    for n, worker in enumerate(workers, 1):
        deployment.wait_ready(f"worker-{n}", worker)
    job_ids = {
        name: start_sync(deployment, index_id, clients[name])
        for name, index_id in index_ids.items()
    }
    for name, index_id in index_ids.items():
        wait_for_sync(deployment, index_id, client=clients[name])

    ran = {name: deployment.job(index_id) for name, index_id in index_ids.items()}
    assert {name: j.id for name, j in ran.items()} == job_ids
    assert {(j.status, j.attempts) for j in ran.values()} == {("succeeded", 1)}
    assert {worker_pid(j) for j in ran.values()} == {w.pid for w in workers}
    logs = deployment.log("worker-1") + deployment.log("worker-2")
    for job_id in job_ids.values():
        assert logs.count(f"job {job_id} claimed") == 1
    for name, index_id in index_ids.items():
        assert_indexed_once(deployment, index_id, parts[name], clients[name])
    assert_store_matches_tables(deployment)
