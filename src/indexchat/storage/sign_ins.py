"""Queries for browser sign-ins and one-time sign-in links. Never commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.orm import Session

from indexchat.storage.db import rows_touched
from indexchat.storage.tables import ApiKey, SignIn, SignInLink

# Runs on every cookie request: one query, built once, on the plain Core connection. The key's
# revoked_at comes along so that revoking a key ends its sign-ins without a second lookup.
_SIGN_IN_BY_HASH = (
    select(
        SignIn.id,
        SignIn.organization_id,
        SignIn.project_id,
        SignIn.api_key_id,
        SignIn.expires_at,
        ApiKey.revoked_at,
    )
    .outerjoin(ApiKey, ApiKey.id == SignIn.api_key_id)
    .where(SignIn.token_hash == bindparam("token_hash"))
)


# The columns of _SIGN_IN_BY_HASH, in order.
SignInRow = Row[str, str, str | None, str | None, datetime, datetime | None]


def sign_in_by_hash(tx: Session, token_hash: str) -> SignInRow | None:
    return tx.connection().execute(_SIGN_IN_BY_HASH, {"token_hash": token_hash}).first()


def sign_in_is_active(tx: Session, sign_in_id: str, now: datetime) -> bool:
    """Not ended nor expired, and its key (if any) not revoked."""
    row = tx.execute(
        select(SignIn.expires_at, ApiKey.revoked_at)
        .outerjoin(ApiKey, ApiKey.id == SignIn.api_key_id)
        .where(SignIn.id == sign_in_id)
    ).first()
    return row is not None and row.expires_at > now and row.revoked_at is None


def extend(tx: Session, sign_in_id: str, *, now: datetime, expires_at: datetime) -> None:
    tx.execute(
        update(SignIn)
        .where(SignIn.id == sign_in_id)
        .values(last_used_at=now, expires_at=expires_at)
    )


def delete_by_hash(tx: Session, token_hash: str) -> int:
    return rows_touched(tx, delete(SignIn).where(SignIn.token_hash == token_hash))


def delete_for_key(tx: Session, api_key_id: str) -> None:
    tx.execute(delete(SignIn).where(SignIn.api_key_id == api_key_id))


def delete_expired(tx: Session, now: datetime) -> None:
    tx.execute(delete(SignIn).where(SignIn.expires_at <= now))
    tx.execute(delete(SignInLink).where(SignInLink.expires_at <= now))


def take_link(tx: Session, token_hash: str, now: datetime) -> Row[str, str] | None:
    """The link's project, deleting the link: of two browsers racing, one gets it."""
    found = tx.execute(
        select(SignInLink.organization_id, SignInLink.project_id).where(
            SignInLink.token_hash == token_hash, SignInLink.expires_at > now
        )
    ).first()
    if found is None:
        return None
    if rows_touched(tx, delete(SignInLink).where(SignInLink.token_hash == token_hash)) != 1:
        return None
    return found
