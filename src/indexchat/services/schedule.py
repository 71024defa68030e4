"""Scheduled syncs: ``sync_frequency`` ``daily`` and ``on_source_change``.

Each worker runs a scheduler thread, but one per fleet acts at a time: a tick first takes the
``sync-scheduler`` lease in the database, and queues syncs inside that same transaction, so N
workers on one PostgreSQL queue each due sync once.

* ``daily``: due one period (24 h) after the last sync, or after the last sync the scheduler
  queued, or after the index was created.
* ``on_source_change``: due once the source directory has been quiet for the debounce time
  after a change (a file added, updated, moved or deleted bumps the directory's
  ``updated_at``); every change in a burst pushes it back, so a burst gives one sync.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from indexchat.config import Settings
from indexchat.domain import utcnow
from indexchat.services.periodic import Periodic
from indexchat.storage import files, indexes, jobs, leases
from indexchat.storage.db import Database
from indexchat.storage.tables import Index

log = logging.getLogger("indexchat.schedule")

LEASE = "sync-scheduler"


@dataclass(frozen=True)
class Timing:
    tick: timedelta
    debounce: timedelta
    daily: timedelta

    @classmethod
    def of(cls, settings: Settings) -> Timing:
        return cls(
            tick=timedelta(seconds=settings.schedule_tick_seconds),
            debounce=timedelta(seconds=settings.source_change_debounce_seconds),
            daily=timedelta(seconds=settings.daily_sync_seconds),
        )

    @property
    def lease(self) -> timedelta:
        """Long enough to outlast a missed tick or two; a dead holder's lapses after it."""
        return max(self.tick * 3, timedelta(seconds=5))


def next_run(index: Index, source_changed_at: datetime | None, timing: Timing) -> datetime | None:
    """When the scheduler will queue the index's next sync; None if it will not."""
    if index.sync_frequency == "daily":
        marks = (index.last_synced_at, index.last_scheduled_at, index.created_at)
        return max(m for m in marks if m is not None) + timing.daily
    if index.sync_frequency == "on_source_change" and source_changed_at is not None:
        seen = index.schedule_seen_change_at
        if seen is None or source_changed_at > seen:
            return source_changed_at + timing.debounce
    return None


def next_run_of(tx: Session, index: Index, timing: Timing) -> datetime | None:
    if index.sync_frequency == "manual":
        return None
    source = files.directory(
        tx,
        project_id=index.project_id,
        directory_id=index.source_directory_id,
        include_deleted=True,
    )
    return next_run(index, source.updated_at if source else None, timing)


def tick(tx: Session, *, holder: str, timing: Timing) -> list[str]:
    """Queue every due sync, if this holder has the lease; the ids of the indexes queued."""
    if not leases.hold(tx, LEASE, holder=holder, ttl=timing.lease):
        return []
    now = utcnow()
    rows = indexes.scheduled_for_job(tx)
    queued = []
    for index, changed_at in rows:
        due = next_run(index, changed_at, timing)
        if due is None or due > now:
            continue
        if index.sync_frequency == "on_source_change":
            index.schedule_seen_change_at = changed_at
        index.last_scheduled_at = now
        active = jobs.active_for_index(tx, index.id, lock=True)
        if active is not None:  # it may have read the source before this change
            jobs.request_rerun(tx, active)
            continue
        jobs.enqueue(tx, kind="sync", project_id=index.project_id, index_id=index.id)
        queued.append(index.id)
    tx.flush()
    return queued


class Scheduler(Periodic):
    """Ticks on its own thread until stopped."""

    def __init__(self, db: Database, settings: Settings, holder: str) -> None:
        self.db, self.holder, self.timing = db, holder, Timing.of(settings)
        super().__init__(
            "sync-scheduler", self.timing.tick.total_seconds(), log, "scheduling syncs failed"
        )

    def pass_once(self) -> None:
        with self.db.write() as tx:
            queued = tick(tx, holder=self.holder, timing=self.timing)
        if queued:
            log.info("scheduled syncs queued for %s", ", ".join(queued))
