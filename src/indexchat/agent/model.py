"""What the agent needs from a language model: stream one reply to a conversation.

Conversations use the OpenAI Chat Completions message format (``role``/``content``, assistant
``tool_calls``, ``tool`` results): every provider we support speaks it or can read it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

Message = dict[str, Any]


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolRequest:
    call_id: str
    name: str
    arguments: str  # JSON text as the model wrote it; may be invalid


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None


ModelOutput = ReasoningDelta | TextDelta | ToolRequest | Usage


class ModelError(Exception):
    """The model call failed: timeout, refused connection, an error status, a malformed reply.
    The message is safe to show to the user."""


class ChatModel(Protocol):
    @property
    def name(self) -> str:
        """Shown in logs and transcripts, e.g. ``openai:gpt-4o-mini`` or ``extractive``."""
        ...

    @property
    def is_language_model(self) -> bool:
        """False for an answerer that runs no model (the extractive one): its steps are not
        counted as model calls, and it reports no tokens."""
        ...

    def stream(
        self, messages: list[Message], tools: list[dict[str, Any]]
    ) -> AsyncIterator[ModelOutput]:
        """One reply: reasoning and text as they come, then the tool calls it asks for, and
        its token usage when known. ``tools`` empty: the model must answer in text."""
        ...
