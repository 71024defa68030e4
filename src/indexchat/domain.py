"""Small frozen values that cross layers."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal


def new_id(prefix: str) -> str:
    """A public id in the LlamaCloud style, e.g. ``ses-3f0c…``."""
    return f"{prefix}-{uuid.uuid4()}"


# What the instance secret signs. Each use gets a key of its own, so a value signed for one
# (a page token) never verifies as another (a download link).
KeyPurpose = Literal["page-token", "download-link"]


@dataclass(frozen=True)
class Keys:
    """The keys derived from the instance's one stored secret, one per purpose."""

    secret: bytes = field(repr=False)

    def for_purpose(self, purpose: KeyPurpose) -> bytes:
        """HMAC-SHA256 of the purpose under the secret: a pseudo-random key per purpose
        (HKDF's expand step for one block), none of which tells anything of the secret."""
        return hmac.new(self.secret, b"indexchat key\n" + purpose.encode(), hashlib.sha256).digest()


# The search store's tables live outside Alembic (``search/store.py`` says who creates them and
# when); storage's migration environment skips them, so their names are fixed here, below both.
SEARCH_TABLE_PREFIXES = ("chunk_text", "chunk_vectors_", "chunk_search_")


def full_text_table(index_id: str) -> str:
    """An index's own SQLite full-text table: a digest, so any id makes a plain identifier.
    Existing databases hold tables of this name: it cannot change without a migration."""
    return "chunk_text_" + hashlib.sha256(index_id.encode()).hexdigest()[:24]


def vector_table(dimension: int) -> str:
    """SQLite's one vector table per embedding dimension (the model decides it)."""
    return f"chunk_vectors_{dimension}"


def entries_table(dimension: int) -> str:
    """PostgreSQL's one table of search entries per embedding dimension; its BM25 tables and
    triggers are named after it."""
    return f"chunk_search_{dimension}"


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
