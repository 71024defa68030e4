"""Small frozen values that cross layers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime


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
    sign_in_id: str | None = None  # the browser sign-in, when the call came with the cookie

    @property
    def credential(self) -> str | None:
        """What revocation ends: the key (a sign-in made with a key ends with it), else the
        sign-in. Signed download links carry it and stop working when it ends."""
        if self.key_id is not None:
            return f"key:{self.key_id}"
        if self.sign_in_id is not None:
            return f"sign-in:{self.sign_in_id}"
        return None


@dataclass(frozen=True)
class Scope:
    """The one project a request works in, after checking the principal may reach it."""

    organization_id: str
    project_id: str
    credential: str | None = None  # of the principal that reached it (``Principal.credential``)
