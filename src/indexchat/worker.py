"""The job worker: claim a job, run it through its service, record the outcome.

``indexchat serve`` runs one in a thread; ``indexchat worker`` runs one alone. Several can share
one database; each claims a job with a lease that a heartbeat renews while the job runs, so the
job of a worker that died (killed, machine gone) is taken over once its lease runs out, and a
long batch never loses its lease to a live worker.

A worker runs ``worker_threads`` jobs at once, each thread with its own parser process; a
project runs one job at a time (see ``jobs.claim``), so one project's long sync cannot hold
every thread while other projects wait.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from indexchat.ingest.sandbox import ParseSandbox
from indexchat.runtime import Runtime
from indexchat.services.blob_collection import BlobCollector
from indexchat.services.periodic import Periodic
from indexchat.services.schedule import Scheduler
from indexchat.services.sync import SyncCancelled, record_failure, run_sync
from indexchat.storage import jobs

log = logging.getLogger("indexchat.worker")

IDLE_POLL_SECONDS = 0.5
# How often a running parse looks in the database for a cancel (the stop flag is free to read).
CANCEL_POLL_SECONDS = 0.5


class _Stopping(Exception):
    """The worker is shutting down mid-job."""


class _LeaseLost(Exception):
    """Another worker took the job over (this one stalled past its lease)."""


class _Heartbeat:
    """Renews a job's lease every third of it, on its own thread, until stopped."""

    def __init__(self, worker: Worker, job_id: int) -> None:
        self.worker, self.job_id = worker, job_id
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.worker.lease.total_seconds() / 3):
            try:
                worker = self.worker
                with worker.runtime.db.write() as tx:
                    alive = jobs.renew(
                        tx, self.job_id, worker_id=worker.worker_id, lease=worker.lease
                    )
            except Exception:  # a missed beat is retried; the lease has room for two
                log.exception("renewing the lease of job %s failed", self.job_id)
                continue
            if not alive:
                self.lost = True
                return


class Worker:
    def __init__(self, runtime: Runtime, *, lease: timedelta | None = None) -> None:
        self.runtime = runtime
        self.lease = lease or timedelta(seconds=runtime.settings.job_lease_seconds)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="indexchat-worker", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, *, until_idle: bool = False) -> None:
        """Run jobs until ``stop`` is set (or, with ``until_idle``, until none is runnable);
        a long-running worker also schedules syncs and collects unnamed blobs (each when it
        holds the fleet's lease for it)."""
        helpers: list[Periodic] = []
        if not until_idle:
            runtime, settings = self.runtime, self.runtime.settings
            helpers.append(Scheduler(runtime.db, settings, self.worker_id))
            if settings.blob_collect_seconds > 0:
                helpers.append(BlobCollector(runtime.db, runtime.blobs, settings, self.worker_id))
        for helper in helpers:
            helper.start()
        try:
            self._run_jobs(until_idle)
        finally:
            for helper in helpers:
                helper.close()

    def _run_jobs(self, until_idle: bool) -> None:
        count = self.runtime.settings.worker_threads
        others = [
            threading.Thread(
                target=self._job_loop, args=(until_idle,), name=f"indexchat-worker-{n}"
            )
            for n in range(1, count)
        ]
        for thread in others:
            thread.start()
        try:
            self._job_loop(until_idle)
        finally:
            for thread in others:
                thread.join()

    def _job_loop(self, until_idle: bool) -> None:
        with self.runtime.parse_sandbox() as parser:
            while not self.stop.is_set():
                try:
                    worked = self.run_once(parser)
                except Exception:  # keep the loop alive; the job's lease lets it be retried
                    log.exception("worker loop error")
                    worked = False
                if not worked:
                    if until_idle:
                        return
                    self.stop.wait(IDLE_POLL_SECONDS)

    def run_once(self, parser: ParseSandbox | None = None) -> bool:
        """Claim and run one job; False when there was none."""
        if parser is None:
            with self.runtime.parse_sandbox() as own:
                return self.run_once(own)
        with self.runtime.db.read() as tx:
            if not jobs.any_runnable(tx):
                return False
        with self.runtime.db.write() as tx:
            for gone in jobs.give_up_exhausted(tx):
                if gone is not None:
                    record_failure(tx, gone, "failed", jobs.GAVE_UP)
            job = jobs.claim(tx, worker_id=self.worker_id, lease=self.lease)
            if job is None:
                return False
            job_id, kind, index_id, attempt = job.id, job.kind, job.index_id, job.attempts
        log.info("job %s claimed: %s of index %s (attempt %s)", job_id, kind, index_id, attempt)
        started = time.monotonic()
        try:
            if kind != "sync" or index_id is None:
                raise ValueError(f"unknown job kind {kind!r}")
            with _Heartbeat(self, job_id) as heartbeat:
                outcome = "rerun"
                while outcome == "rerun":  # asked to sync again while this pass ran
                    state = run_sync(
                        self.runtime.sync_deps(parser),
                        index_id,
                        self._checkpoint(job_id, heartbeat),
                        self._interrupted(job_id, heartbeat),
                    )
                    with self.runtime.db.write() as tx:
                        outcome = jobs.finish_or_rerun(tx, job_id, worker_id=self.worker_id)
        except _Stopping:
            with self.runtime.db.write() as tx:
                jobs.requeue(tx, job_id, worker_id=self.worker_id)
            log.info("job %s handed back to the queue: worker stopping", job_id)
        except _LeaseLost:
            log.warning("job %s dropped: no longer ours (lease taken over, or deleted)", job_id)
        except SyncCancelled:
            self._finish(job_id, "cancelled", None, index_id)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._finish(job_id, "failed", f"{type(exc).__name__}: {exc}", index_id)
        else:
            log.info(
                "job %s %s: %s files, %s chunks in %.1f s",
                job_id,
                "succeeded" if outcome == "finished" else "succeeded, but no longer ours",
                state.get("files_total"),
                state.get("chunks"),
                time.monotonic() - started,
            )
        return True

    def _checkpoint(self, job_id: int, heartbeat: _Heartbeat) -> Any:
        def checkpoint(progress: dict[str, Any]) -> None:
            with self.runtime.db.write() as tx:
                alive = jobs.renew(
                    tx,
                    job_id,
                    worker_id=self.worker_id,
                    lease=self.lease,
                    progress=dict(progress),
                )
                cancelled = jobs.cancel_requested(tx, job_id)
            if heartbeat.lost or not alive:
                raise _LeaseLost
            if self.stop.is_set():
                raise _Stopping
            if cancelled:
                raise SyncCancelled

        return checkpoint

    def _interrupted(self, job_id: int, heartbeat: _Heartbeat) -> Any:
        """Whether the job should stop now: cheap, so a sync asks it between files and a
        running parse several times a second; the database is read at most every
        CANCEL_POLL_SECONDS."""
        last = {"at": time.monotonic(), "cancelled": False}

        def interrupted() -> bool:
            if self.stop.is_set() or heartbeat.lost or last["cancelled"]:
                return True
            now = time.monotonic()
            if now - last["at"] >= CANCEL_POLL_SECONDS:
                with self.runtime.db.read() as tx:
                    last["cancelled"] = jobs.cancel_requested(tx, job_id)
                last["at"] = now
            return bool(last["cancelled"])

        return interrupted

    def _finish(
        self, job_id: int, status: str, error: str | None, index_id: str | None = None
    ) -> None:
        with self.runtime.db.write() as tx:
            mine = jobs.finish(tx, job_id, worker_id=self.worker_id, status=status, error=error)
            if mine and index_id is not None and status != "succeeded":
                record_failure(tx, index_id, status, error)
        log.info("job %s %s", job_id, status if mine else f"{status}, but no longer ours")
