"""Wire models of share links and of what a link's viewer reads (extensions)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from indexchat.api.schemas.sessions import ChatSessionWithEvents
from indexchat.api.schemas.turns import MAX_PROMPT_CHARS, Prompt
from indexchat.domain import wire_timestamp
from indexchat.storage.tables import ShareLink

MAX_EXPIRES_IN_SECONDS = 366 * 86400


class CreateShareLink(BaseModel):
    shared_access: Literal["query", "read_only"] | None = Field(
        default=None,
        description="What the link grants: `read_only` shows the transcript; `query` also lets "
        "viewers ask, each in their own copy. Null or absent: the session's `shared_access`.",
    )
    expires_in_seconds: int | None = Field(
        default=None,
        ge=60,
        le=MAX_EXPIRES_IN_SECONDS,
        description="The link stops working this long after it is made. Null: never.",
    )


class ShareLinkOut(BaseModel):
    id: str
    shared_access: Literal["query", "read_only"]
    created_at: str
    expires_at: str | None = None
    expired: bool = Field(description="True once expires_at has passed.")

    @classmethod
    def of(cls, link: ShareLink, now: datetime) -> ShareLinkOut:
        return cls(
            id=link.id,
            shared_access=link.shared_access,  # type: ignore[arg-type]
            created_at=wire_timestamp(link.created_at),
            expires_at=wire_timestamp(link.expires_at) if link.expires_at else None,
            expired=link.expires_at is not None and link.expires_at <= now,
        )


class CreatedShareLink(ShareLinkOut):
    url: str = Field(description="The link to hand out. Its token is shown here only, once.")


class SharedChat(BaseModel):
    """What a share link's viewer sees: the shared session, and the viewer's own copy once the
    viewer has asked a question through a `query` link."""

    shared_access: Literal["query", "read_only"]
    session: ChatSessionWithEvents
    fork: ChatSessionWithEvents | None = None


class SharedTurnRequest(BaseModel):
    prompt: Prompt = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description=f"The viewer's question, at most {MAX_PROMPT_CHARS:,} characters.",
    )
