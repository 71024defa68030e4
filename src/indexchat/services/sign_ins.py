"""Browser sign-ins (the ``session`` cookie): made with an API key or a one-time link, looked up
by the cookie's hash, ended by signing out, by expiry, or by revoking the key they were made with.

A sign-in made from a link has no key behind it: it holds the link's project directly, so it
works before any key exists, and revoking keys leaves it alone (it ends by signing out or expiry).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from indexchat.domain import Principal, new_id, utcnow
from indexchat.errors import NotFound, Unauthenticated
from indexchat.services import tenancy
from indexchat.services.tenancy import hash_key
from indexchat.storage import sign_ins as store
from indexchat.storage import tenancy as tenancy_store
from indexchat.storage.tables import SignIn, SignInLink

LINK_LIFETIME = timedelta(minutes=10)
_TOKEN_BYTES = 32  # 256 bits


@dataclass(frozen=True)
class IssuedSignIn:
    """A new sign-in: ``token`` is the cookie's value, never stored."""

    token: str
    expires_at: datetime


def sign_in_with_key(tx: Session, secret: str, *, lifetime: timedelta) -> IssuedSignIn:
    principal = tenancy.authenticate(tx, secret)
    return _issue(tx, principal, lifetime)


def create_link(
    tx: Session,
    *,
    organization: str | None = None,
    project: str | None = None,
    lifetime: timedelta = LINK_LIFETIME,
) -> str:
    """A one-time sign-in token for a project (by name; the organization's default project
    when None) of an organization (the default one when None)."""
    org = tenancy.organization_named(tx, organization)
    found = (
        tenancy_store.project_by_name(tx, organization_id=org.id, name=project)
        if project is not None
        else tenancy_store.default_project(tx, organization_id=org.id)
    )
    if found is None:
        raise NotFound(f"project {project!r} not found in organization {org.name!r}")
    now = utcnow()
    store.delete_expired(tx, now)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    tx.add(
        SignInLink(
            token_hash=hash_key(token),
            organization_id=org.id,
            project_id=found.id,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    tx.flush()
    return token


def sign_in_with_link(tx: Session, token: str, *, lifetime: timedelta) -> IssuedSignIn:
    link = store.take_link(tx, hash_key(token), utcnow()) if token else None
    if link is None:
        raise Unauthenticated("this sign-in link has expired or was already used")
    principal = Principal(
        key_id=None, organization_id=link.organization_id, project_id=link.project_id
    )
    return _issue(tx, principal, lifetime)


def authenticate(tx: Session, token: str) -> Principal:
    """The principal of a signed-in browser: one query, the key's revocation included."""
    return _principal(_lookup(tx, token))


def refresh(tx: Session, token: str, *, lifetime: timedelta) -> Principal:
    """Like ``authenticate``, and the sign-in lasts ``lifetime`` from now (a page was opened)."""
    row = _lookup(tx, token)
    now = utcnow()
    store.extend(tx, row.id, now=now, expires_at=now + lifetime)
    return _principal(row)


def sign_out(tx: Session, token: str) -> None:
    """End the sign-in, if there is one (signing out twice is not an error)."""
    if token:
        store.delete_by_hash(tx, hash_key(token))


def _lookup(tx: Session, token: str) -> store.SignInRow:
    row = store.sign_in_by_hash(tx, hash_key(token)) if token else None
    if row is None or row.expires_at <= utcnow() or row.revoked_at is not None:
        raise Unauthenticated("not signed in, or the sign-in has expired: sign in again")
    return row


def _principal(row: store.SignInRow) -> Principal:
    return Principal(
        key_id=row.api_key_id,
        organization_id=row.organization_id,
        project_id=row.project_id,
        sign_in_id=row.id,
    )


def _issue(tx: Session, principal: Principal, lifetime: timedelta) -> IssuedSignIn:
    now = utcnow()
    store.delete_expired(tx, now)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    tx.add(
        SignIn(
            id=new_id("sgn"),
            token_hash=hash_key(token),
            organization_id=principal.organization_id,
            project_id=principal.project_id,
            api_key_id=principal.key_id,
            created_at=now,
            last_used_at=now,
            expires_at=now + lifetime,
        )
    )
    tx.flush()
    return IssuedSignIn(token=token, expires_at=now + lifetime)
