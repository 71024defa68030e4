"""Any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp server, LM
Studio…) through the official ``openai`` SDK, streaming, with tool calls.

Reasoning text, where a server sends it (``reasoning_content`` from vLLM and DeepSeek,
``reasoning`` from Ollama and OpenRouter), becomes thinking. ``base_url`` and ``api_key`` left
unset fall back to the SDK's own ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai

from indexchat.agent.model import (
    Message,
    ModelError,
    ModelOutput,
    ReasoningDelta,
    TextDelta,
    ToolRequest,
    Usage,
)

_REASONING_FIELDS = ("reasoning_content", "reasoning")


class OpenAIChatModel:
    is_language_model = True

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.model = model
        self.timeout_seconds = timeout_seconds
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            # Local servers (Ollama, vLLM…) need no key, but the SDK insists on one.
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "unused",
            timeout=timeout_seconds,
            max_retries=0,  # a retry would re-run the whole reply; the user sees the error
        )

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    async def aclose(self) -> None:
        """Close the pooled connections, on the event loop that opened them."""
        await self._client.close()

    async def stream(
        self, messages: list[Message], tools: list[dict[str, Any]]
    ) -> AsyncIterator[ModelOutput]:
        calls: dict[int, dict[str, str]] = {}
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
        try:
            # The SDK's own request path, but chunks come back as parsed JSON: building (and
            # validating the arguments into) pydantic objects for every streamed chunk was the
            # largest CPU cost of a streamed turn.
            stream = await self._client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            async with stream:
                async for chunk in stream:
                    for out in _outputs(chunk, calls):
                        yield out
        except openai.APITimeoutError as exc:
            raise ModelError(
                f"the language model did not answer within {self.timeout_seconds:g} s"
            ) from exc
        except openai.APIConnectionError as exc:
            raise ModelError(
                f"cannot reach the language model at {self._client.base_url}: {exc}"
            ) from exc
        except openai.APIStatusError as exc:
            raise ModelError(
                f"the language model answered HTTP {exc.status_code}: {exc.message}"
            ) from exc
        except (openai.APIError, ValueError) as exc:  # e.g. a chunk that is not JSON
            raise ModelError(f"malformed reply from the language model: {exc}") from exc
        except httpx.HTTPError as exc:  # the connection broke mid-reply
            raise ModelError(f"the language model's reply was cut off: {exc!r}") from exc
        for index in sorted(calls):
            call = calls[index]
            if not call["name"]:
                raise ModelError("malformed reply from the language model: tool call without name")
            yield ToolRequest(call["id"] or f"call_{index}", call["name"], call["args"])


def _outputs(chunk: object, calls: dict[int, dict[str, str]]) -> list[ModelOutput]:
    """What one streamed chunk says; tool call pieces are gathered into ``calls``."""
    if not isinstance(chunk, dict):
        raise ValueError(f"a streamed chunk is not a JSON object: {str(chunk)[:80]!r}")
    outputs: list[ModelOutput] = []
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        outputs.append(Usage(_count(usage, "prompt_tokens"), _count(usage, "completion_tokens")))
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        reasoning = _reasoning(delta)
        if reasoning:
            outputs.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            outputs.append(TextDelta(content))
        for piece in delta.get("tool_calls") or []:
            _gather_tool_call(piece, calls)
    return outputs


def _gather_tool_call(piece: object, calls: dict[int, dict[str, str]]) -> None:
    if not isinstance(piece, dict) or not isinstance(piece.get("index", 0), int):
        raise ValueError(f"a tool call piece is malformed: {str(piece)[:80]!r}")
    call = calls.setdefault(piece.get("index", 0), {"id": "", "name": "", "args": ""})
    call["id"] = piece.get("id") or call["id"]
    function = piece.get("function")
    if isinstance(function, dict):
        call["name"] += function.get("name") or ""
        call["args"] += function.get("arguments") or ""


def _count(usage: dict[str, Any], field: str) -> int | None:
    value = usage.get(field)
    return value if isinstance(value, int) else None


def _reasoning(delta: dict[str, Any]) -> str | None:
    for field in _REASONING_FIELDS:
        value = delta.get(field)
        if isinstance(value, str) and value:
            return value
    return None
