"""One turn of the agent: model → tool calls → tool results → … → answer, as events.

Events are ``indexchat.events`` values. Deltas stream as they arrive; each reasoning or answer
block also ends with its complete event, which is what history keeps.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from indexchat import events
from indexchat.agent.model import (
    ChatModel,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolRequest,
    Usage,
)
from indexchat.agent.tools import TOOL_SPECS, ToolBox, ToolError
from indexchat.agent.trimming import fit_json
from indexchat.events import Event

# What a tool result may add to the conversation the model sees (the event keeps it all); a
# longer one is trimmed to fit, and stays valid JSON.
TOOL_RESULT_CHARS = 16_000


class AgentError(Exception):
    """The turn cannot go on (a bad tool call, a failed tool, no answer in time)."""


@dataclass
class Tally:
    """Counts for the ``stop`` event: model calls and tokens (None when a server sent none,
    or when no language model ran)."""

    model_calls: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None

    def add(self, usage: Usage) -> None:
        if usage.input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + usage.input_tokens
        if usage.output_tokens is not None:
            self.output_tokens = (self.output_tokens or 0) + usage.output_tokens

    def usage(self, duration_ms: float) -> events.Usage:
        return events.Usage(duration_ms, self.input_tokens, self.output_tokens, self.model_calls)


async def run_agent(
    model: ChatModel,
    tools: ToolBox | None,
    messages: list[Message],
    *,
    max_model_calls: int,
    tally: Tally,
) -> AsyncIterator[Event]:
    """Run the turn; the last model call gets no tools, so it has to answer."""
    for call in range(max_model_calls):
        offer = TOOL_SPECS if tools is not None and call < max_model_calls - 1 else []
        if model.is_language_model:
            tally.model_calls += 1
        reasoning: list[str] = []
        text: list[str] = []
        requests: list[ToolRequest] = []
        async for out in model.stream(messages, offer):
            if isinstance(out, ReasoningDelta):
                reasoning.append(out.text)
                yield events.ThinkingDelta(out.text)
            elif isinstance(out, TextDelta):
                if reasoning:  # the answer began: the reasoning block is complete
                    yield events.Thinking("".join(reasoning))
                    reasoning = []
                text.append(out.text)
                yield events.TextDelta(out.text)
            elif isinstance(out, ToolRequest):
                requests.append(out)
            else:
                tally.add(out)
        if reasoning:
            yield events.Thinking("".join(reasoning))
        answer = "".join(text)
        if answer:
            yield events.Text(answer)
        if not requests or not offer:
            return
        messages.append(_assistant_message(answer, requests))
        for request in requests:
            arguments = _arguments(request)
            yield events.ToolCall(request.call_id, request.name, arguments)
            assert tools is not None
            try:
                outcome = await tools.call(request.name, arguments)
            except ToolError as exc:
                raise AgentError(f"tool {request.name} failed: {exc}") from exc
            image = outcome.image_attachment
            yield events.ToolResult(
                request.call_id,
                request.name,
                outcome.result,
                None if image is None else events.ImageAttachment(**image),
            )
            content = fit_json(outcome.result, TOOL_RESULT_CHARS)
            messages.append({"role": "tool", "tool_call_id": request.call_id, "content": content})


def _assistant_message(answer: str, requests: list[ToolRequest]) -> Message:
    return {
        "role": "assistant",
        "content": answer or None,
        "tool_calls": [
            {
                "id": r.call_id,
                "type": "function",
                "function": {"name": r.name, "arguments": r.arguments},
            }
            for r in requests
        ],
    }


def _arguments(request: ToolRequest) -> dict[str, Any]:
    known = {spec["function"]["name"] for spec in TOOL_SPECS}
    if request.name not in known:
        raise AgentError(f"the model called an unknown tool {request.name!r}")
    try:
        arguments = json.loads(request.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise AgentError(
            f"the model called {request.name} with arguments that are not valid JSON: {exc}"
        ) from exc
    if not isinstance(arguments, dict):
        raise AgentError(f"the model called {request.name} with arguments that are not an object")
    return arguments
