"""The durable job queue: enqueue, claim with a lease, report progress, finish, cancel.

A claimed job holds a lease (``locked_until``); a worker that dies stops renewing it and the job
becomes claimable again. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so many workers can
share the queue; SQLite claims inside its single-writer transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select, update
from sqlalchemy.orm import Session

from indexchat.domain import utcnow
from indexchat.storage.db import added, rows_touched
from indexchat.storage.tables import Job

ACTIVE = ("queued", "running")
# A job claimed this often whose worker vanished each time (killed, out of memory) is likely
# what kills them: it is failed rather than handed to the next worker.
MAX_ATTEMPTS = 5
GAVE_UP = f"given up after {MAX_ATTEMPTS} attempts: each one's worker stopped without a word"


def enqueue(tx: Session, *, kind: str, project_id: str, index_id: str | None) -> Job:
    now = utcnow()
    job = Job(
        kind=kind,
        project_id=project_id,
        index_id=index_id,
        status="queued",
        progress={},
        run_after=now,
        created_at=now,
        updated_at=now,
    )
    return added(tx, job)


def active_for_index(tx: Session, index_id: str, *, lock: bool = False) -> Job | None:
    """The index's queued or running job. ``lock`` holds its row (PostgreSQL) until commit, so
    a request made on it cannot slip in between a worker's last look and its finish."""
    query = (
        select(Job)
        .where(Job.index_id == index_id, Job.status.in_(ACTIVE))
        .order_by(Job.id)
        .limit(1)
    )
    if lock and _is_postgres(tx):
        query = query.with_for_update()
    return tx.scalar(query)


def _runnable(now: datetime) -> ColumnElement[bool]:
    return or_(
        (Job.status == "queued") & (Job.run_after <= now),
        (Job.status == "running") & (Job.locked_until < now),
    )


def any_runnable(tx: Session) -> bool:
    """Whether a job may be claimed or given up now: an idle worker asks this in a read
    transaction instead of taking the write lock every poll."""
    return tx.scalar(select(exists().where(_runnable(utcnow())))) is True


def claim(tx: Session, *, worker_id: str, lease: timedelta) -> Job | None:
    """Take the oldest runnable job (queued, or running with an expired lease) of a project
    that has no job running: one project's long sync leaves the other workers to the others.

    (On PostgreSQL two workers claiming at the same instant may each take a job of one
    project; the next claims see both.)"""
    now = utcnow()
    busy = select(Job.project_id).where(Job.status == "running", Job.locked_until >= now)
    query = select(Job).where(_runnable(now), Job.project_id.not_in(busy)).order_by(Job.id).limit(1)
    if _is_postgres(tx):
        query = query.with_for_update(skip_locked=True)
    job = tx.scalar(query)
    if job is None:
        return None
    job.status = "running"
    job.locked_by = worker_id
    job.locked_until = now + lease
    job.attempts += 1
    job.rerun_requested = False  # a fresh pass sees everything anyway
    job.updated_at = now
    tx.flush()
    return job


def give_up_exhausted(tx: Session) -> list[str | None]:
    """Fail the jobs whose lease ran out after their last allowed attempt; their index ids."""
    now = utcnow()
    result = tx.execute(
        update(Job)
        .where(Job.status == "running", Job.locked_until < now, Job.attempts >= MAX_ATTEMPTS)
        .values(status="failed", error=GAVE_UP, finished_at=now, locked_until=None, updated_at=now)
        .returning(Job.index_id)
    )
    return list(result.scalars())


def renew(
    tx: Session,
    job_id: int,
    *,
    worker_id: str,
    lease: timedelta,
    progress: dict[str, Any] | None = None,
) -> bool:
    """Extend the lease (and record progress); False if the job was taken over or finished."""
    now = utcnow()
    values: dict[str, Any] = {"locked_until": now + lease, "updated_at": now}
    if progress is not None:
        values["progress"] = progress
    touched = rows_touched(
        tx,
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker_id, Job.status == "running")
        .values(**values),
    )
    return bool(touched)


def cancel_requested(tx: Session, job_id: int) -> bool:
    return bool(tx.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(
    tx: Session, job_id: int, *, worker_id: str, status: str, error: str | None = None
) -> bool:
    """Record the outcome; False (nothing written) if the job is no longer this worker's."""
    now = utcnow()
    touched = rows_touched(
        tx,
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker_id, Job.status == "running")
        .values(status=status, error=error, finished_at=now, updated_at=now, locked_until=None),
    )
    return bool(touched)


def finish_or_rerun(tx: Session, job_id: int, *, worker_id: str) -> str:
    """A pass of the job succeeded: finish it, or, if it was asked to run again meanwhile,
    clear that request and answer ``"rerun"`` so the worker makes another pass.

    ``"finished"``, ``"rerun"``, or ``"lost"`` when the job is no longer this worker's. The row
    is locked first (PostgreSQL; SQLite has a single writer), so a request either lands
    before this look and gets its pass, or finds the job finished and queues a new one.
    """
    query = select(Job).where(Job.id == job_id, Job.locked_by == worker_id, Job.status == "running")
    if _is_postgres(tx):
        query = query.with_for_update()
    job = tx.scalar(query)
    if job is None:
        return "lost"
    if job.rerun_requested:
        job.rerun_requested = False
        job.updated_at = utcnow()
        tx.flush()
        return "rerun"
    finish(tx, job_id, worker_id=worker_id, status="succeeded")
    return "finished"


def request_rerun(tx: Session, job: Job) -> None:
    """A running job makes one more pass when its current one ends (a queued one has not
    looked yet, so it needs nothing)."""
    if job.status == "running" and not job.rerun_requested:
        job.rerun_requested = True
        job.updated_at = utcnow()
        tx.flush()


def request_cancel(tx: Session, job: Job) -> None:
    """A queued job is cancelled at once; a running one at its next checkpoint."""
    now = utcnow()
    job.cancel_requested = True
    job.updated_at = now
    if job.status == "queued":
        job.status, job.finished_at = "cancelled", now
    tx.flush()


def latest_for_index(tx: Session, index_id: str) -> Job | None:
    return tx.scalar(select(Job).where(Job.index_id == index_id).order_by(Job.id.desc()).limit(1))


def requeue(tx: Session, job_id: int, *, worker_id: str) -> None:
    """Hand a running job back to the queue (its worker is shutting down)."""
    tx.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker_id, Job.status == "running")
        .values(status="queued", locked_by=None, locked_until=None, updated_at=utcnow())
    )


def _is_postgres(tx: Session) -> bool:
    return tx.get_bind().dialect.name == "postgresql"
