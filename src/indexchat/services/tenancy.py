"""Organizations, projects and API keys.

Keys are random, shown once, stored only as a SHA-256 hash and compared in constant time. A key
belongs to one project, or (created without ``--project``) to a whole organization.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from indexchat.domain import Keys, Principal, Scope, new_id, utcnow
from indexchat.errors import Conflict, InvalidInput, NotFound, Unauthenticated, must_exist
from indexchat.storage import sign_ins as sign_in_store
from indexchat.storage import tenancy as store
from indexchat.storage.db import added
from indexchat.storage.tables import ApiKey, InstanceSecret, Organization, Project

DEFAULT_ORGANIZATION = "Default"
DEFAULT_PROJECT = "Default"
KEY_PREFIX = "llx-"
PAGE_TOKEN_SECRET = "page_token_signing_key"


@dataclass(frozen=True)
class IssuedKey:
    """A new API key: ``secret`` is shown to the user once and never stored."""

    key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_defaults(tx: Session) -> None:
    """A fresh database gets a default organization and project, and its signing secret."""
    if store.any_organization(tx) is None:
        org = Organization(id=str(uuid.uuid4()), name=DEFAULT_ORGANIZATION)
        tx.add(org)
        tx.flush()
        tx.add(
            Project(
                id=str(uuid.uuid4()), organization_id=org.id, name=DEFAULT_PROJECT, is_default=True
            )
        )
    if store.secret(tx, PAGE_TOKEN_SECRET) is None:
        tx.add(InstanceSecret(name=PAGE_TOKEN_SECRET, value=secrets.token_hex(32)))
    tx.flush()


def instance_keys(tx: Session) -> Keys:
    """The keys derived from the instance secret (stored under its historical name)."""
    value = store.secret(tx, PAGE_TOKEN_SECRET)
    if value is None:
        raise RuntimeError("database not initialised: run migrations and ensure_defaults first")
    return Keys(bytes.fromhex(value))


def organization_named(tx: Session, name: str | None) -> Organization:
    return must_exist(
        store.organization_by_name(tx, name or DEFAULT_ORGANIZATION), f"organization {name!r}"
    )


def create_project(tx: Session, name: str, *, organization: str | None = None) -> Project:
    """Create a project, and its organization if that is new."""
    name = _clean_name(name, "project")
    org_name = _clean_name(organization or DEFAULT_ORGANIZATION, "organization")
    org = store.organization_by_name(tx, org_name)
    if org is None:
        org = Organization(id=str(uuid.uuid4()), name=org_name)
        tx.add(org)
        tx.flush()
    if store.project_by_name(tx, organization_id=org.id, name=name) is not None:
        raise Conflict(f"project {name!r} already exists in organization {org_name!r}")
    first = store.default_project(tx, organization_id=org.id) is None
    project = Project(id=str(uuid.uuid4()), organization_id=org.id, name=name, is_default=first)
    return added(tx, project)


def create_key(
    tx: Session,
    *,
    project: str | None = None,
    organization: str | None = None,
    name: str | None = None,
) -> IssuedKey:
    """Issue a key for one project (by name), or for a whole organization when ``project`` is None
    and ``organization`` is given. With neither, the key is for the default project."""
    org = organization_named(tx, organization)
    project_id: str | None
    if project is not None:
        found = store.project_by_name(tx, organization_id=org.id, name=project)
        if found is None:
            raise NotFound(f"project {project!r} not found in organization {org.name!r}")
        project_id = found.id
    elif organization is not None:
        project_id = None
    else:
        default = store.default_project(tx, organization_id=org.id)
        if default is None:
            raise NotFound(f"organization {org.name!r} has no project")
        project_id = default.id
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"),
        organization_id=org.id,
        project_id=project_id,
        name=name,
        key_hash=hash_key(secret),
        key_prefix=secret[:10],
    )
    tx.add(key)
    tx.flush()
    return IssuedKey(key=key, secret=secret)


def revoke_key(tx: Session, key_id: str) -> ApiKey:
    key = must_exist(store.api_key_by_id(tx, key_id), f"API key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        sign_in_store.delete_for_key(tx, key.id)  # the browsers signed in with it
        tx.flush()
    return key


def list_keys(tx: Session) -> Sequence[ApiKey]:
    return store.api_keys(tx)


def list_all_projects(tx: Session) -> list[tuple[Project, Organization]]:
    orgs = {org.id: org for org in store.organizations(tx)}
    return [(p, orgs[p.organization_id]) for p in store.projects(tx)]


def authenticate(tx: Session, secret: str | None) -> Principal:
    if not secret:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    digest = hash_key(secret)
    key = store.api_key_by_hash(tx, digest)
    # The lookup is by hash; the constant-time compare keeps the final check timing-flat too.
    if key is None or not hmac.compare_digest(key.key_hash, digest) or key.revoked_at:
        raise Unauthenticated("invalid or revoked API key")
    return Principal(key_id=key.id, organization_id=key.organization_id, project_id=key.project_id)


def credential_is_active(tx: Session, credential: str) -> bool:
    """Whether the key or sign-in named by ``Principal.credential`` still works."""
    kind, _, ident = credential.partition(":")
    if kind == "key":
        key = store.api_key_by_id(tx, ident)
        return key is not None and key.revoked_at is None
    if kind == "sign-in":
        return sign_in_store.sign_in_is_active(tx, ident, utcnow())
    return False


def resolve_scope(
    tx: Session,
    principal: Principal,
    *,
    organization_id: str | None = None,
    project_id: str | None = None,
) -> Scope:
    """The project a request works in. Ids the key may not reach are reported as not found."""
    if organization_id is not None and organization_id != principal.organization_id:
        raise NotFound(f"organization {organization_id!r} not found")
    org_id = principal.organization_id
    if project_id is None:
        project_id = principal.project_id
        if project_id is None:
            default = store.default_project(tx, organization_id=org_id)
            if default is None:
                raise NotFound("the organization has no project")
            project_id = default.id
        return Scope(org_id, project_id, principal.credential)
    if principal.project_id is not None and project_id != principal.project_id:
        raise NotFound(f"project {project_id!r} not found")
    project = store.project_by_id(tx, project_id)
    if project is None or project.organization_id != org_id:
        raise NotFound(f"project {project_id!r} not found")
    return Scope(org_id, project_id, principal.credential)


def reachable_projects(
    tx: Session,
    principal: Principal,
    *,
    organization_id: str | None = None,
    name: str | None = None,
) -> Sequence[Project]:
    if organization_id is not None and organization_id != principal.organization_id:
        return []
    found = store.projects(tx, organization_id=principal.organization_id, name=name)
    if principal.project_id is not None:
        return [p for p in found if p.id == principal.project_id]
    return found


def reachable_project(
    tx: Session, principal: Principal, project_id: str, *, organization_id: str | None = None
) -> Project:
    scope = resolve_scope(tx, principal, organization_id=organization_id, project_id=project_id)
    project = store.project_by_id(tx, scope.project_id)
    if project is None:  # deleted between the two reads
        raise NotFound(f"project {project_id!r} not found")
    return project


def _clean_name(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > 200 or any(ord(c) < 32 for c in value):
        raise InvalidInput(f"{what} name must be 1-200 printable characters")
    return value
