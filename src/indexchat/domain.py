"""Small frozen values that cross layers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

T = TypeVar("T")


def new_id(prefix: str) -> str:
    """A public id in the LlamaCloud style, e.g. ``ses-3f0c…``."""
    return f"{prefix}-{uuid.uuid4()}"


def utcnow() -> datetime:
    """Naive UTC with microseconds: what the database stores and the wire shows."""
    return datetime.now(UTC).replace(tzinfo=None)


def wire_timestamp(moment: datetime) -> str:
    """``2026-04-22T12:34:41.342245`` (naive UTC in, always six fractional digits out)."""
    return moment.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key (or browser sign-in) and the projects it may reach."""

    key_id: str | None  # None: a browser signed in with a one-time link, not with a key
    organization_id: str
    project_id: str | None  # None: the key reaches every project of its organization


@dataclass(frozen=True)
class Scope:
    """The one project a request works in, after checking the principal may reach it."""

    organization_id: str
    project_id: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str | None
