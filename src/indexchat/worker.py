"""The job worker: claim a job, run it through its service, record the outcome.

``indexchat serve`` runs one in a thread; ``indexchat worker`` runs one alone. Several can share
one PostgreSQL database; each claims with a lease and renews it while working, so a job whose
worker died is picked up again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from indexchat.runtime import Runtime
from indexchat.services.sync import SyncCancelled, record_failure, run_sync
from indexchat.storage import jobs

log = logging.getLogger("indexchat.worker")

LEASE = timedelta(seconds=60)
IDLE_POLL_SECONDS = 0.5


class _Stopping(Exception):
    """The worker is shutting down mid-job."""


class Worker:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
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

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # keep the loop alive; the job's lease lets it be retried
                log.exception("worker loop error")
                worked = False
            if not worked:
                self.stop.wait(IDLE_POLL_SECONDS)

    def run_once(self) -> bool:
        """Claim and run one job; False when there was none."""
        with self.runtime.db.write() as session:
            job = jobs.claim(session, worker_id=self.worker_id, lease=LEASE)
            if job is None:
                return False
            job_id, kind, index_id = job.id, job.kind, job.index_id
        log.info("job %s (%s) for %s started", job_id, kind, index_id)
        try:
            if kind != "sync" or index_id is None:
                raise ValueError(f"unknown job kind {kind!r}")
            run_sync(self.runtime.sync_deps(), index_id, self._checkpoint(job_id))
        except _Stopping:
            with self.runtime.db.write() as session:
                jobs.requeue(session, job_id)  # the next worker to start carries on
            log.info("job %s handed back: worker stopping", job_id)
        except SyncCancelled:
            self._finish(job_id, "cancelled", None, index_id)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._finish(job_id, "failed", f"{type(exc).__name__}: {exc}", index_id)
        else:
            self._finish(job_id, "succeeded", None)
        return True

    def _checkpoint(self, job_id: int) -> Any:
        def checkpoint(progress: dict[str, Any]) -> None:
            with self.runtime.db.write() as session:
                alive = jobs.renew(
                    session, job_id, worker_id=self.worker_id, lease=LEASE, progress=dict(progress)
                )
                cancelled = jobs.cancel_requested(session, job_id)
            if self.stop.is_set():
                raise _Stopping
            if not alive or cancelled:
                raise SyncCancelled

        return checkpoint

    def _finish(
        self, job_id: int, status: str, error: str | None, index_id: str | None = None
    ) -> None:
        with self.runtime.db.write() as session:
            jobs.finish(session, job_id, status=status, error=error)
            if index_id is not None and status != "succeeded":
                record_failure(session, index_id, status, error)
        log.info("job %s %s", job_id, status)
