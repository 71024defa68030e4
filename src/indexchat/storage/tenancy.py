"""Queries for organizations, projects, API keys and instance secrets. Never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from indexchat.storage.tables import ApiKey, InstanceSecret, Organization, Project


def organization_by_name(tx: Session, name: str) -> Organization | None:
    return tx.scalar(select(Organization).where(Organization.name == name))


def any_organization(tx: Session) -> Organization | None:
    return tx.scalar(select(Organization).limit(1))


def project_by_id(tx: Session, project_id: str) -> Project | None:
    return tx.get(Project, project_id)


def project_by_name(tx: Session, *, organization_id: str, name: str) -> Project | None:
    return tx.scalar(
        select(Project).where(Project.organization_id == organization_id, Project.name == name)
    )


def default_project(tx: Session, *, organization_id: str) -> Project | None:
    return tx.scalar(
        select(Project)
        .where(Project.organization_id == organization_id)
        .order_by(Project.is_default.desc(), Project.created_at, Project.id)
        .limit(1)
    )


def projects(
    tx: Session, *, organization_id: str | None = None, name: str | None = None
) -> Sequence[Project]:
    query = select(Project).order_by(Project.created_at, Project.id)
    if organization_id is not None:
        query = query.where(Project.organization_id == organization_id)
    if name is not None:
        query = query.where(Project.name == name)
    return tx.scalars(query).all()


def organizations(tx: Session) -> Sequence[Organization]:
    return tx.scalars(select(Organization).order_by(Organization.created_at)).all()


# Runs on every request: built once, executed on the plain Core connection (no ORM layer).
_KEY_BY_HASH = select(
    ApiKey.id, ApiKey.key_hash, ApiKey.organization_id, ApiKey.project_id, ApiKey.revoked_at
).where(ApiKey.key_hash == bindparam("key_hash"))


def api_key_by_hash(
    tx: Session, key_hash: str
) -> Row[str, str, str, str | None, datetime | None] | None:
    """The columns authentication needs, as a plain row."""
    return tx.connection().execute(_KEY_BY_HASH, {"key_hash": key_hash}).first()


def api_key_by_id(tx: Session, key_id: str) -> ApiKey | None:
    return tx.get(ApiKey, key_id)


def api_keys(tx: Session) -> Sequence[ApiKey]:
    return tx.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()


def secret(tx: Session, name: str) -> str | None:
    row = tx.get(InstanceSecret, name)
    return row.value if row else None
