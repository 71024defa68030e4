"""Collect blobs that no row names: bytes left by a file deleted within its grace period, an
upload whose row never committed (a crash between storing the bytes and inserting the row),
parsed text and screenshots of a sync that was replaced.

The blob store is shared by every project, so a blob goes only when no column of
``storage/blob_refs.py`` names it, in any project, and it is older than the grace period (an
upload of the same bytes restarts it). One worker of a fleet collects at a time: it holds the
``blob-collector`` lease in the database, renewed after each batch.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from indexchat.config import Settings
from indexchat.services.periodic import Periodic
from indexchat.storage import leases
from indexchat.storage.blob_refs import referenced_among
from indexchat.storage.blobs import BlobStore
from indexchat.storage.db import Database

log = logging.getLogger("indexchat.blobs")

LEASE = "blob-collector"
BATCH = 500
LEASE_TTL = timedelta(minutes=5)  # renewed every batch; a dead holder's lapses after it
PARTIAL_WRITE_SECONDS = 3600.0


@dataclass(frozen=True)
class Collected:
    examined: int  # blobs older than the grace period
    removed: int
    partial_writes: int  # leftovers of writes that never finished


def collect(
    db: Database,
    blobs: BlobStore,
    *,
    grace_seconds: float,
    holder: str,
    stopping: Callable[[], bool] = lambda: False,
) -> Collected | None:
    """Remove the blobs older than ``grace_seconds`` that no row names; None when another
    process holds the lease (it is collecting now). ``stopping`` is asked between batches."""
    if not _hold(db, holder):
        return None
    examined = removed = 0
    try:
        candidates = blobs.older_than(grace_seconds)
        while batch := list(itertools.islice(candidates, BATCH)):
            examined += len(batch)
            # Read just before deleting: a row committed since names its blob, and the put()
            # before it restarted the grace period, which delete_if_stale checks once more.
            with db.read() as tx:
                named = referenced_among(tx, batch)
            for digest in batch:
                if digest not in named and blobs.delete_if_stale(
                    digest, grace_seconds=grace_seconds
                ):
                    removed += 1
            if stopping():
                break
            if not _hold(db, holder):
                log.warning("blob collection stopped: the lease went to another process")
                break
        # A write under way is younger than this; one a killed process left is not.
        partial = blobs.remove_partial_writes(max(grace_seconds, PARTIAL_WRITE_SECONDS))
    finally:
        with db.write() as tx:
            leases.release(tx, LEASE, holder=holder)
    return Collected(examined=examined, removed=removed, partial_writes=partial)


def _hold(db: Database, holder: str) -> bool:
    with db.write() as tx:
        return leases.hold(tx, LEASE, holder=holder, ttl=LEASE_TTL)


class BlobCollector(Periodic):
    """Collects every ``blob_collect_seconds`` on its own thread until stopped."""

    def __init__(self, db: Database, blobs: BlobStore, settings: Settings, holder: str) -> None:
        interval = settings.blob_collect_seconds
        super().__init__("blob-collector", interval, log, "collecting unnamed blobs failed")
        self.db, self.blobs, self.holder = db, blobs, holder
        self.interval, self.grace = interval, settings.blob_grace_seconds

    def pass_once(self) -> None:
        done = collect(
            self.db,
            self.blobs,
            grace_seconds=self.grace,
            holder=self.holder,
            stopping=self.stopping,
        )
        if done is not None and (done.removed or done.partial_writes):
            log.info(
                "removed %s unnamed blobs of %s old enough, and %s unfinished writes",
                done.removed,
                done.examined,
                done.partial_writes,
            )
