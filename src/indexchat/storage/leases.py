"""Leases: a role that one process of a fleet holds at a time, taken over once it lapses."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from indexchat.domain import utcnow
from indexchat.storage.db import rows_touched
from indexchat.storage.tables import Lease


def hold(tx: Session, name: str, *, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease ``name``; False while another holder's is unexpired.

    One conditional UPDATE: on PostgreSQL a second taker waits on the row until the first
    commits, then finds the lease held, so only one of them wins; the row stays locked to the
    end of the caller's transaction, so what the holder does under it is done once.
    """
    now = utcnow()
    touched = rows_touched(
        tx,
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
        .values(holder=holder, expires_at=now + ttl),
    )
    return bool(touched)


def release(tx: Session, name: str, *, holder: str) -> None:
    """Give up the lease ``name`` if ``holder`` has it, so another may take it at once."""
    tx.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(holder=None, expires_at=datetime(1970, 1, 1))
    )
