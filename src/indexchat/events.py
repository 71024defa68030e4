"""The chat turn's event vocabulary: one frozen dataclass per event type, each with its wire form.

``to_wire()`` gives the dict that is both the SSE ``data`` and the stored history row, keys in
the order clients have always received them; ``from_wire()`` reads a stored row back. These
are plain dataclasses rather than pydantic models because deltas are built and sent once per
streamed chunk, and validating each would cost CPU on the hottest path; the wire schemas in
``api/schemas/events.py`` are checked against them by a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

EventType = Literal[
    "user_input",
    "thinking_delta",
    "thinking",
    "tool_call",
    "tool_result",
    "text_delta",
    "text",
    "stop",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """What a turn cost: its wall time, tokens (None when the model server sent none, or no
    language model ran) and model calls."""

    duration_ms: float = 0.0
    total_input_tokens: int | None = None
    total_output_tokens: int | None = None
    turns: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "duration_ms": self.duration_ms,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
            "turns": self.turns,
        }

    @classmethod
    def from_wire(cls, usage: dict[str, Any]) -> Usage:
        return cls(
            duration_ms=usage["duration_ms"],
            total_input_tokens=usage["total_input_tokens"],
            total_output_tokens=usage["total_output_tokens"],
            turns=usage["turns"],
        )


@dataclass(frozen=True, slots=True)
class ImageAttachment:
    """A page image a tool result points at: the file and the attachment's name in it."""

    attachment_name: str
    source_id: str

    def to_wire(self) -> dict[str, Any]:
        return {"attachment_name": self.attachment_name, "source_id": self.source_id}


@dataclass(frozen=True, slots=True)
class UserInput:
    type: ClassVar[Literal["user_input"]] = "user_input"
    content: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "user_input", "content": self.content}


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    type: ClassVar[Literal["thinking_delta"]] = "thinking_delta"
    content: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "thinking_delta", "content": self.content}


@dataclass(frozen=True, slots=True)
class Thinking:
    """A complete reasoning block (its deltas are streamed, this is what history keeps)."""

    type: ClassVar[Literal["thinking"]] = "thinking"
    content: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "thinking", "content": self.content}


@dataclass(frozen=True, slots=True)
class ToolCall:
    type: ClassVar[Literal["tool_call"]] = "tool_call"
    call_id: str
    name: str
    arguments: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "tool_call",
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
        }


@dataclass(frozen=True, slots=True)
class ToolResult:
    type: ClassVar[Literal["tool_result"]] = "tool_result"
    call_id: str
    name: str
    result: Any  # a JSON value
    image_attachment: ImageAttachment | None = None

    def to_wire(self) -> dict[str, Any]:
        image = self.image_attachment
        return {
            "type": "tool_result",
            "call_id": self.call_id,
            "name": self.name,
            "result": self.result,
            "image_attachment": None if image is None else image.to_wire(),
        }


@dataclass(frozen=True, slots=True)
class TextDelta:
    type: ClassVar[Literal["text_delta"]] = "text_delta"
    content: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "text_delta", "content": self.content}


@dataclass(frozen=True, slots=True)
class Text:
    """A complete answer block (its deltas are streamed, this is what history keeps)."""

    type: ClassVar[Literal["text"]] = "text"
    content: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "text", "content": self.content}


@dataclass(frozen=True, slots=True)
class Stop:
    """The end of every turn: its error, if it failed, and what it cost."""

    type: ClassVar[Literal["stop"]] = "stop"
    error: str | None = None
    usage: Usage = Usage()
    skipped_index_ids: list[str] = field(default_factory=list)  # asked for, not queried

    @property
    def is_error(self) -> bool:
        return self.error is not None

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "stop",
            "is_error": self.error is not None,
            "error": self.error,
            "usage": self.usage.to_wire(),
            "skipped_index_ids": self.skipped_index_ids,
        }


Event = UserInput | ThinkingDelta | Thinking | ToolCall | ToolResult | TextDelta | Text | Stop
# Streamed to clients as they come, never stored: the complete block follows them.
Delta = ThinkingDelta | TextDelta
EVENT_CLASSES: tuple[type[Event], ...] = (
    UserInput,
    ThinkingDelta,
    Thinking,
    ToolCall,
    ToolResult,
    TextDelta,
    Text,
    Stop,
)


def from_wire(payload: dict[str, Any]) -> Event:
    """The event a stored history row holds (the inverse of ``to_wire``)."""
    kind = payload["type"]
    if kind in _CONTENT_ONLY:
        return _CONTENT_ONLY[kind](payload["content"])
    if kind == "tool_call":
        return ToolCall(payload["call_id"], payload["name"], payload["arguments"])
    if kind == "tool_result":
        image = payload.get("image_attachment")
        return ToolResult(
            payload["call_id"],
            payload["name"],
            payload["result"],
            None if image is None else ImageAttachment(**image),
        )
    if kind == "stop":
        return Stop(
            error=payload["error"],
            usage=Usage.from_wire(payload["usage"]),
            skipped_index_ids=payload["skipped_index_ids"],
        )
    raise ValueError(f"unknown chat event type {kind!r}")


_CONTENT_ONLY: dict[str, type[UserInput | ThinkingDelta | Thinking | TextDelta | Text]] = {
    "user_input": UserInput,
    "thinking_delta": ThinkingDelta,
    "thinking": Thinking,
    "text_delta": TextDelta,
    "text": Text,
}
