"""The chat event union, as the SDK parses it: discriminated on ``type``, always sent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field


class ImageAttachment(BaseModel):
    attachment_name: str
    source_id: str


class StopUsage(BaseModel):
    duration_ms: float = 0.0
    total_input_tokens: int | None = None
    total_output_tokens: int | None = None
    turns: int = 0


class UserInputEvent(BaseModel):
    type: Literal["user_input"] = "user_input"
    content: str


class ThinkingDeltaEvent(BaseModel):
    type: Literal["thinking_delta"] = "thinking_delta"
    content: str


class ThinkingEvent(BaseModel):
    type: Literal["thinking"] = "thinking"
    content: str


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    call_id: str
    name: str
    arguments: dict[str, Any]


class ToolResultEvent(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    result: Any
    image_attachment: ImageAttachment | None = None


class TextDeltaEvent(BaseModel):
    type: Literal["text_delta"] = "text_delta"
    content: str


class TextEvent(BaseModel):
    type: Literal["text"] = "text"
    content: str


class StopEvent(BaseModel):
    type: Literal["stop"] = "stop"
    is_error: bool
    usage: StopUsage
    error: str | None = None
    skipped_index_ids: list[str] | None = None


Event = Annotated[
    UserInputEvent
    | ThinkingDeltaEvent
    | ThinkingEvent
    | ToolCallEvent
    | ToolResultEvent
    | TextDeltaEvent
    | TextEvent
    | StopEvent,
    Field(discriminator="type"),
]
