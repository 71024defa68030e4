"""Wire models of chat sessions (contract §3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)
from sqlalchemy import Row

from indexchat.api.schemas.common import IdField, RequestBody
from indexchat.api.schemas.events import Event
from indexchat.domain import wire_timestamp
from indexchat.storage.tables import ChatEvent, ChatSession

MAX_INDEX_IDS = 100


class CreateChatSession(RequestBody):
    index_ids: list[IdField] | None = Field(
        default=None,
        max_length=MAX_INDEX_IDS,
        description="Indexes the session retrieves from; locked after the first message. "
        "Null or absent: an unbound session.",
    )
    shared_access: Literal["query", "read_only"] | None = Field(
        default=None,
        description="What the share link grants. Null or absent: the deployment default.",
    )


class JobMetadata(BaseModel):
    duration_ms: float = 0.0
    error: str | None = None
    export_config_ids: list[str] | None = None
    is_error: bool = False
    total_input_tokens: int | None = None
    total_output_tokens: int | None = None
    turns: int = 0


class ChatSessionOut(BaseModel):
    session_id: str
    last_updated_at: str = Field(examples=["2026-04-22T12:34:41.342245"])
    shared_access: Literal["query", "read_only"]
    generated_title: str | None = None
    index_ids: list[str] | None = None
    job_metadata: JobMetadata | None = None
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Extension: where the session came from, e.g. `forked_from` for a copy "
        "made through a share link. Absent when there is nothing to say.",
    )

    @model_serializer(mode="wrap")
    def _omit_missing_metadata(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("metadata") is None:
            data.pop("metadata", None)
        return data

    @classmethod
    def of(cls, chat: ChatSession | Row[Any]) -> ChatSessionOut:
        return cls(**_session_fields(chat))


class ChatSessionWithEvents(ChatSessionOut):
    events: list[Event]

    @classmethod
    def with_events(cls, chat: ChatSession, events: Sequence[ChatEvent]) -> ChatSessionWithEvents:
        return cls(
            **_session_fields(chat),
            events=[_EVENT.validate_python(e.payload) for e in events],
        )


_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


def _session_fields(chat: ChatSession | Row[Any]) -> dict[str, Any]:
    # Raw column values, which the model validates (a stored dict becomes JobMetadata).
    return {
        "session_id": chat.id,
        "last_updated_at": wire_timestamp(chat.last_updated_at),
        "shared_access": chat.shared_access,
        "generated_title": chat.generated_title,
        "index_ids": chat.index_ids,
        "job_metadata": chat.job_metadata,
        "metadata": getattr(chat, "session_metadata", None),
    }


class ChatSessionFound(ChatSessionOut):
    """A session found by search: where it matched, and the matching text."""

    snippet: str = Field(
        description="The matching text, shortened, each match between « and » "
        "(plain text: escape it before showing it as HTML)."
    )
    event_index: int = Field(
        description="Position in the session's `events` of the event that matched (a title "
        "match names the prompt the title came from)."
    )

    @classmethod
    def found(cls, chat: Row[Any], snippet: str, event_index: int) -> ChatSessionFound:
        return cls(**_session_fields(chat), snippet=snippet, event_index=event_index)
